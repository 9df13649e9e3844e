// Boot information parsing, fed with synthetic PVH and multiboot2 data.
//
// The structures live in the kernel image, whose physical address is
// KV2P(x); bootinfo_parse reaches them through the direct map exactly as
// it reaches the real loader's data.
#include "bootinfo.h"
#include "ktest.h"

static struct hvm_start_info pvh;
static struct hvm_memmap_entry pvh_map[3];
static char pvh_cmdline[] = "test=memmap.* hz=250";

static void make_pvh(void)
{
    pvh = (struct hvm_start_info){
        .magic = HVM_START_MAGIC,
        .version = 1,
        .cmdline_paddr = KV2P(pvh_cmdline),
        .memmap_paddr = KV2P(pvh_map),
        .memmap_entries = 3,
    };
    pvh_map[0] = (struct hvm_memmap_entry){ 0x0, 0x9fc00, MEM_USABLE, 0 };
    pvh_map[1] = (struct hvm_memmap_entry){ 0x9fc00, 0x400, MEM_RESERVED, 0 };
    pvh_map[2] = (struct hvm_memmap_entry){ 0x100000, 0x7ee0000, MEM_USABLE, 0 };
}

static void pvh_start_info(struct ktest *t)
{
    static struct boot_info bi;
    make_pvh();
    KEXPECT_TRUE(t, bootinfo_parse(BOOT_PROTO_PVH, KV2P(&pvh), &bi));
    KEXPECT_STREQ(t, bi.cmdline, "test=memmap.* hz=250");
    KEXPECT_EQ(t, bi.memmap.n, 3);
    KEXPECT_EQ(t, bi.memmap.region[1].base, 0x9fc00);
    KEXPECT_EQ(t, bi.memmap.region[1].type, MEM_RESERVED);
    KEXPECT_EQ(t, memmap_usable_bytes(&bi.memmap), 0x9fc00 + 0x7ee0000);
}

static void pvh_bad_magic(struct ktest *t)
{
    static struct boot_info bi;
    make_pvh();
    pvh.magic = 0x12345678;
    KEXPECT_FALSE(t, bootinfo_parse(BOOT_PROTO_PVH, KV2P(&pvh), &bi));
    KEXPECT_STREQ(t, bi.cmdline, "");
    KEXPECT_EQ(t, bi.memmap.n, 0);
}

static void pvh_version0_has_no_map(struct ktest *t)
{
    static struct boot_info bi;
    make_pvh();
    pvh.version = 0;        // memmap fields did not exist before version 1
    KEXPECT_TRUE(t, bootinfo_parse(BOOT_PROTO_PVH, KV2P(&pvh), &bi));
    KEXPECT_EQ(t, bi.memmap.n, 0);
    KEXPECT_STREQ(t, bi.cmdline, "test=memmap.* hz=250");
}

// Multiboot2 information built by hand: header, a cmdline tag, a tag this
// parser ignores, an mmap tag with two entries, and the end tag.
static uint8_t mb2[256] __attribute__((aligned(8)));

static uint32_t put32(uint32_t off, uint32_t v)
{
    *(uint32_t *)(mb2 + off) = v;
    return off + 4;
}

static uint32_t put64(uint32_t off, uint64_t v)
{
    *(uint64_t *)(mb2 + off) = v;
    return off + 8;
}

static uint32_t align8(uint32_t off)
{
    return (off + 7) & ~7u;
}

static void make_mb2(void)
{
    memset(mb2, 0, sizeof(mb2));
    uint32_t off = 8;
    // cmdline tag: "crash=hang\0" (11 bytes) -> size 19, padded to 24
    off = put32(off, MB2_TAG_CMDLINE);
    off = put32(off, 8 + 11);
    memcpy(mb2 + off, "crash=hang", 11);
    off = align8(off + 11);
    // boot loader name tag (type 2), ignored
    off = put32(off, 2);
    off = put32(off, 8 + 5);
    memcpy(mb2 + off, "GRUB", 5);
    off = align8(off + 5);
    // mmap tag: entry_size 24, version 0, two entries
    off = put32(off, MB2_TAG_MMAP);
    off = put32(off, 16 + 2 * 24);
    off = put32(off, 24);
    off = put32(off, 0);
    off = put64(off, 0x0);
    off = put64(off, 0x9f000);
    off = put32(off, MEM_USABLE);
    off = put32(off, 0);
    off = put64(off, 0x100000);
    off = put64(off, 0x3f00000);
    off = put32(off, MEM_USABLE);
    off = put32(off, 0);
    // end tag
    off = put32(off, MB2_TAG_END);
    off = put32(off, 8);
    put32(0, off);          // total_size
}

static void multiboot2_tags(struct ktest *t)
{
    static struct boot_info bi;
    make_mb2();
    KEXPECT_TRUE(t, bootinfo_parse(BOOT_PROTO_MB2, KV2P(mb2), &bi));
    KEXPECT_STREQ(t, bi.cmdline, "crash=hang");
    KEXPECT_EQ(t, bi.memmap.n, 2);
    KEXPECT_EQ(t, bi.memmap.region[1].base, 0x100000);
    KEXPECT_EQ(t, memmap_usable_bytes(&bi.memmap), 0x9f000 + 0x3f00000);
}

static void multiboot2_truncated_tag(struct ktest *t)
{
    static struct boot_info bi;
    make_mb2();
    put32(0, 8 + 24 + 8);   // total size ends inside the second tag
    KEXPECT_TRUE(t, bootinfo_parse(BOOT_PROTO_MB2, KV2P(mb2), &bi));
    KEXPECT_STREQ(t, bi.cmdline, "crash=hang");
    KEXPECT_EQ(t, bi.memmap.n, 0);
}

static void memmap_limits(struct ktest *t)
{
    static struct memmap mm;
    mm = (struct memmap){ 0 };
    memmap_add(&mm, 0x1000, 0, MEM_USABLE);     // empty regions are dropped
    KEXPECT_EQ(t, mm.n, 0);
    for (int i = 0; i < MEMMAP_MAX + 2; i++)
        memmap_add(&mm, (uint64_t)i << 20, 1 << 20, i % 2 ? MEM_RESERVED : MEM_USABLE);
    KEXPECT_EQ(t, mm.n, MEMMAP_MAX);
    KEXPECT_TRUE(t, mm.truncated);
    KEXPECT_EQ(t, memmap_usable_bytes(&mm), (uint64_t)(MEMMAP_MAX / 2) << 20);
    KEXPECT_STREQ(t, memmap_type_name(MEM_ACPI_NVS), "acpi-nvs");
}

KTEST_SUITE(memmap,
            KTEST_CASE(pvh_start_info),
            KTEST_CASE(pvh_bad_magic),
            KTEST_CASE(pvh_version0_has_no_map),
            KTEST_CASE(multiboot2_tags),
            KTEST_CASE(multiboot2_truncated_tag),
            KTEST_CASE(memmap_limits));
