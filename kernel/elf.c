// ELF64 loader for user programs.
//
// The image is input, never trusted: today it comes from the initrd, later
// from checkpoints and from users. So every field the loader uses is
// checked before it is used, every sum of two file-supplied numbers is
// checked for overflow before it is formed, and a rejection names the field
// so the console line says what was wrong.
//
// The rules (docs/abi.md): ELF64, little-endian, x86-64, ET_EXEC, at most
// ELF_MAX_PHDRS program headers of 56 bytes inside the file; every PT_LOAD
// lies inside the file (p_offset, p_filesz), has p_filesz <= p_memsz, lies
// in [USER_BASE, USER_LIMIT) without wrapping, clear of the activation area
// and the stack, shares no page with another segment, and is not both
// writable and executable; the entry point is inside an executable segment.
// No PT_INTERP / PT_DYNAMIC: programs are static.
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include "memlayout.h"
#include "abi.h"
#include "elf.h"
#include "printf.h"
#include "string.h"
#include "vm.h"

#define PAGE_DOWN(a) ((a) & ~(uint64_t)(PAGE_SIZE - 1))
#define PAGE_UP(a)   PAGE_DOWN((a) + PAGE_SIZE - 1)

// The activation area: the restore-sequence page up to the end of
// the activation segment. Nothing a program brings may land there.
#define ACT_AREA_START ACT_RESTORE
#define ACT_AREA_END   (ACT_SEGMENT + ACT_SEGMENT_SIZE)
#define STACK_START    (USER_STACK_TOP - USER_STACK_SIZE)

static int reject(char *why, int whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int reject(char *why, int whylen, const char *fmt, ...)
{
    if (why && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -ENOEXEC;
}

static bool ranges_meet(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
    return a0 < b1 && b0 < a1;
}

static int check_header(const uint8_t *image, uint64_t len, struct elf64_ehdr *eh,
                        char *why, int whylen)
{
    if (len < sizeof(*eh))
        return reject(why, whylen, "file too short for the ELF header");
    memcpy(eh, image, sizeof(*eh));         // the image may be unaligned
    if (memcmp(eh->ident, "\x7f" "ELF", 4) != 0)
        return reject(why, whylen, "bad magic");
    if (eh->ident[4] != ELFCLASS64)
        return reject(why, whylen, "not ELFCLASS64");
    if (eh->ident[5] != ELFDATA2LSB)
        return reject(why, whylen, "not little-endian");
    if (eh->ident[6] != EV_CURRENT || eh->version != EV_CURRENT)
        return reject(why, whylen, "unknown ELF version");
    if (eh->machine != EM_X86_64)
        return reject(why, whylen, "e_machine is not x86-64");
    if (eh->type != ET_EXEC)
        return reject(why, whylen, "e_type is not ET_EXEC");
    if (eh->phentsize != sizeof(struct elf64_phdr))
        return reject(why, whylen, "e_phentsize is not 56");
    if (eh->phnum > ELF_MAX_PHDRS)
        return reject(why, whylen, "e_phnum too large");
    // phnum * 56 cannot overflow (phnum <= 16); phoff can be anything.
    if (eh->phoff > len || (uint64_t)eh->phnum * sizeof(struct elf64_phdr) > len - eh->phoff)
        return reject(why, whylen, "program headers outside the file");
    return 0;
}

// Check one PT_LOAD against the file and the address-space rules; fills *s.
static int check_load(int i, const struct elf64_phdr *ph, uint64_t len, struct elf_segment *s,
                      char *why, int whylen)
{
    if (ph->filesz > ph->memsz)
        return reject(why, whylen, "segment %d: p_filesz > p_memsz", i);
    if (ph->offset > len || ph->filesz > len - ph->offset)
        return reject(why, whylen, "segment %d: p_offset+p_filesz beyond the file", i);
    if (ph->memsz > UINT64_MAX - ph->vaddr)
        return reject(why, whylen, "segment %d wraps around the address space", i);
    uint64_t end = ph->vaddr + ph->memsz;
    if (ph->vaddr < USER_BASE)
        return reject(why, whylen, "segment %d below USER_BASE", i);
    if (end > USER_LIMIT)
        return reject(why, whylen, "segment %d outside user space", i);
    if (ph->memsz > ELF_MAX_MEMSZ)
        return reject(why, whylen, "segment %d larger than %lu MiB", i, ELF_MAX_MEMSZ >> 20);
    if ((ph->flags & PF_W) && (ph->flags & PF_X))
        return reject(why, whylen, "segment %d is writable and executable", i);
    *s = (struct elf_segment){
        .vaddr = ph->vaddr, .memsz = ph->memsz, .offset = ph->offset, .filesz = ph->filesz,
        .start = PAGE_DOWN(ph->vaddr), .end = PAGE_UP(end),     // end <= USER_LIMIT: no overflow
        .prot = VM_READ | (ph->flags & PF_W ? VM_WRITE : 0) | (ph->flags & PF_X ? VM_EXEC : 0),
        .index = i,
    };
    if (ranges_meet(s->start, s->end, ACT_AREA_START, ACT_AREA_END))
        return reject(why, whylen, "segment %d overlaps the activation area", i);
    if (ranges_meet(s->start, s->end, STACK_START, USER_STACK_TOP))
        return reject(why, whylen, "segment %d overlaps the stack", i);
    return 0;
}

// Segments are page-granular: two that share a page would need two
// protections for it.
static int check_overlaps(const struct elf_info *info, char *why, int whylen)
{
    const struct elf_segment *last = &info->seg[info->nseg - 1];
    for (int j = 0; j < info->nseg - 1; j++)
        if (ranges_meet(info->seg[j].start, info->seg[j].end, last->start, last->end))
            return reject(why, whylen, "segment %d overlaps segment %d",
                          info->seg[j].index, last->index);
    return 0;
}

static int check_segments(const uint8_t *image, uint64_t len, const struct elf64_ehdr *eh,
                          struct elf_info *info, char *why, int whylen)
{
    uint64_t total = 0;
    for (int i = 0; i < eh->phnum; i++) {
        struct elf64_phdr ph;
        memcpy(&ph, image + eh->phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.type == PT_INTERP || ph.type == PT_DYNAMIC)
            return reject(why, whylen, "segment %d: %s (dynamic programs are not supported)", i,
                          ph.type == PT_INTERP ? "PT_INTERP" : "PT_DYNAMIC");
        if (ph.type != PT_LOAD)
            continue;                       // notes, GNU_STACK, ...: nothing to load
        if (ph.memsz == 0 && ph.filesz == 0)
            continue;                       // an empty segment maps nothing
        int r = check_load(i, &ph, len, &info->seg[info->nseg], why, whylen);
        if (r < 0)
            return r;
        info->nseg++;
        if ((r = check_overlaps(info, why, whylen)) < 0)
            return r;
        total += PAGE_UP(ph.memsz);         // memsz < USER_LIMIT here: no overflow
        if (total > ELF_MAX_MEMSZ)
            return reject(why, whylen, "segments larger than %lu MiB in total",
                          ELF_MAX_MEMSZ >> 20);
    }
    if (info->nseg == 0)
        return reject(why, whylen, "no loadable segment");
    return 0;
}

int elf_check(const uint8_t *image, uint64_t len, struct elf_info *info, char *why, int whylen)
{
    struct elf64_ehdr eh;
    memset(info, 0, sizeof(*info));
    if (!image)
        return reject(why, whylen, "no image");
    int r = check_header(image, len, &eh, why, whylen);
    if (r == 0)
        r = check_segments(image, len, &eh, info, why, whylen);
    if (r < 0)
        return r;
    for (int i = 0; i < info->nseg; i++) {
        const struct elf_segment *s = &info->seg[i];
        if ((s->prot & VM_EXEC) && eh.entry >= s->vaddr && eh.entry - s->vaddr < s->memsz) {
            info->entry = eh.entry;
            return 0;
        }
    }
    return reject(why, whylen, "entry not in an executable segment");
}

int elf_load(uint64_t *pml4, const uint8_t *image, uint64_t len, uint64_t *entry,
             char *why, int whylen)
{
    struct elf_info info;
    int r = elf_check(image, len, &info, why, whylen);
    if (r < 0)
        return r;
    for (int i = 0; i < info.nseg; i++) {
        const struct elf_segment *s = &info.seg[i];
        // Fresh zeroed frames: the bytes past p_filesz (bss) and around the
        // segment in its first and last page are zero without extra work.
        r = vm_map_user(pml4, s->start, s->end - s->start, s->prot);
        if (r == 0)
            r = vm_write_aspace(pml4, s->vaddr, image + s->offset, s->filesz);
        if (r < 0) {
            if (why && whylen > 0)
                snprintf(why, whylen, "segment %d: cannot map (error %d)", s->index, r);
            return r;
        }
    }
    *entry = info.entry;
    return 0;
}
