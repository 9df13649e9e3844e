// Reading the PVH start info and multiboot2 information.
//
// Everything the loader hands over is addressed physically, and lives in
// low memory the kernel will later reuse, so it is copied out at once.
#include "bootinfo.h"
#include "string.h"

void memmap_add(struct memmap *mm, uint64_t base, uint64_t length, uint32_t type)
{
    if (length == 0)
        return;
    if (mm->n == MEMMAP_MAX) {
        mm->truncated = true;
        return;
    }
    mm->region[mm->n++] = (struct mem_region){ base, length, type };
}

uint64_t memmap_usable_bytes(const struct memmap *mm)
{
    uint64_t total = 0;
    for (int i = 0; i < mm->n; i++)
        if (mm->region[i].type == MEM_USABLE)
            total += mm->region[i].length;
    return total;
}

const char *memmap_type_name(uint32_t type)
{
    switch (type) {
    case MEM_USABLE:        return "usable";
    case MEM_RESERVED:      return "reserved";
    case MEM_ACPI_RECLAIM:  return "acpi";
    case MEM_ACPI_NVS:      return "acpi-nvs";
    case MEM_BAD:           return "bad";
    default:                return "other";
    }
}

static void copy_string(char *dst, size_t size, uint64_t paddr)
{
    if (paddr == 0 || paddr >= DIRECT_MAP_SIZE) {
        dst[0] = '\0';
        return;
    }
    strlcpy(dst, P2V(paddr), size);
}

static bool parse_pvh(uint64_t info, struct boot_info *out)
{
    const struct hvm_start_info *si = P2V(info);
    if (si->magic != HVM_START_MAGIC)
        return false;
    copy_string(out->cmdline, sizeof(out->cmdline), si->cmdline_paddr);
    if (si->version >= 1 && si->memmap_paddr && si->memmap_paddr < DIRECT_MAP_SIZE) {
        const struct hvm_memmap_entry *e = P2V(si->memmap_paddr);
        for (uint32_t i = 0; i < si->memmap_entries; i++)
            memmap_add(&out->memmap, e[i].addr, e[i].size, e[i].type);
    }
    return true;
}

// Multiboot2 information: u32 total_size, u32 reserved, then 8-byte aligned
// tags {u32 type, u32 size, payload}, ending with a type-0 tag.
static void parse_mb2_mmap(const uint8_t *tag, uint32_t size, struct memmap *mm)
{
    uint32_t entry_size = *(const uint32_t *)(tag + 8);
    if (entry_size < 24)
        return;
    for (uint32_t off = 16; off + entry_size <= size; off += entry_size) {
        const uint8_t *e = tag + off;
        memmap_add(mm, *(const uint64_t *)e, *(const uint64_t *)(e + 8),
                   *(const uint32_t *)(e + 16));
    }
}

static bool parse_mb2(uint64_t info, struct boot_info *out)
{
    const uint8_t *base = P2V(info);
    uint32_t total = *(const uint32_t *)base;
    if (total < 16 || total > 1 << 20)
        return false;
    for (uint32_t off = 8; off + 8 <= total;) {
        const uint8_t *tag = base + off;
        uint32_t type = *(const uint32_t *)tag;
        uint32_t size = *(const uint32_t *)(tag + 4);
        if (type == MB2_TAG_END || size < 8 || off + size > total)
            break;
        if (type == MB2_TAG_CMDLINE) {
            size_t n = size - 8 < sizeof(out->cmdline) ? size - 8 : sizeof(out->cmdline) - 1;
            memcpy(out->cmdline, tag + 8, n);
            out->cmdline[n] = '\0';     // the tag holds a NUL already; be safe
        } else if (type == MB2_TAG_MMAP) {
            parse_mb2_mmap(tag, size, &out->memmap);
        }
        off += (size + 7) & ~7u;
    }
    return true;
}

bool bootinfo_parse(int protocol, uint64_t info, struct boot_info *out)
{
    memset(out, 0, sizeof(*out));
    out->protocol = protocol;
    if (info == 0 || info >= DIRECT_MAP_SIZE)
        return false;
    bool ok = false;
    if (protocol == BOOT_PROTO_PVH)
        ok = parse_pvh(info, out);
    else if (protocol == BOOT_PROTO_MB2)
        ok = parse_mb2(info, out);
    if (!ok) {
        out->cmdline[0] = '\0';
        out->memmap.n = 0;
    }
    return ok;
}
