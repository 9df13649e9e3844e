// The ELF validator on images built in memory, one broken field at a time,
// plus the real programs of the initrd (valid ones load, corrupt_* do not).
#include <stdint.h>
#include "abi.h"
#include "elf.h"
#include "initrd.h"
#include "ktest.h"
#include "memlayout.h"
#include "string.h"
#include "vm.h"

#define IMG_SIZE 256
#define TEXT_OFF 0xb0
#define DATA_OFF 0xc0
#define TEXT_VA  0x400000UL
#define DATA_VA  0x401000UL

struct image {
    union {
        uint8_t bytes[IMG_SIZE];
        struct elf64_ehdr eh;
    };
};

// A minimal valid program: text (R-X, 16 bytes) and data (RW-, 8 bytes of
// file, 8 KiB in memory) with the header table right after the ELF header.
static void make_valid(struct image *img)
{
    memset(img, 0, sizeof(*img));
    memcpy(img->eh.ident, "\x7f" "ELF\x02\x01\x01", 7);
    img->eh.type = ET_EXEC;
    img->eh.machine = EM_X86_64;
    img->eh.version = EV_CURRENT;
    img->eh.entry = TEXT_VA;
    img->eh.phoff = 64;
    img->eh.ehsize = 64;
    img->eh.phentsize = 56;
    img->eh.phnum = 2;
    struct elf64_phdr ph[2] = {
        { PT_LOAD, PF_R | PF_X, TEXT_OFF, TEXT_VA, TEXT_VA, 16, 16, 0x1000 },
        { PT_LOAD, PF_R | PF_W, DATA_OFF, DATA_VA, DATA_VA, 8, 0x2000, 0x1000 },
    };
    memcpy(img->bytes + 64, ph, sizeof(ph));
    memset(img->bytes + TEXT_OFF, 0x90, 16);
}

static struct elf64_phdr *ph(struct image *img, int i)
{
    return (struct elf64_phdr *)(img->bytes + 64 + 56 * i);
}

static char why[96];

static int check(struct image *img, uint64_t len)
{
    struct elf_info info;
    why[0] = '\0';
    return elf_check(img->bytes, len, &info, why, sizeof(why));
}

#define EXPECT_REJECT(t, img, len, reason)            \
    do {                                              \
        KEXPECT_EQ(t, check(img, len), -ENOEXEC);     \
        KEXPECT_STREQ(t, why, reason);                \
    } while (0)

static struct image img;

static void accepts_a_valid_image(struct ktest *t)
{
    struct elf_info info;
    make_valid(&img);
    KEXPECT_EQ(t, elf_check(img.bytes, IMG_SIZE, &info, why, sizeof(why)), 0);
    KEXPECT_EQ(t, info.entry, TEXT_VA);
    KEXPECT_EQ(t, info.nseg, 2);
    KEXPECT_EQ(t, info.seg[0].prot, VM_READ | VM_EXEC);
    KEXPECT_EQ(t, info.seg[1].prot, VM_READ | VM_WRITE);
    KEXPECT_EQ(t, info.seg[1].start, DATA_VA);
    KEXPECT_EQ(t, info.seg[1].end, DATA_VA + 0x2000);
}

static void rejects_bad_identification(struct ktest *t)
{
    make_valid(&img);
    img.eh.ident[1] = 'L';
    EXPECT_REJECT(t, &img, IMG_SIZE, "bad magic");
    make_valid(&img);
    img.eh.ident[4] = 1;
    EXPECT_REJECT(t, &img, IMG_SIZE, "not ELFCLASS64");
    make_valid(&img);
    img.eh.ident[5] = 2;
    EXPECT_REJECT(t, &img, IMG_SIZE, "not little-endian");
    make_valid(&img);
    img.eh.version = 2;
    EXPECT_REJECT(t, &img, IMG_SIZE, "unknown ELF version");
    make_valid(&img);
    img.eh.machine = 3;
    EXPECT_REJECT(t, &img, IMG_SIZE, "e_machine is not x86-64");
    make_valid(&img);
    img.eh.type = 3;
    EXPECT_REJECT(t, &img, IMG_SIZE, "e_type is not ET_EXEC");
}

static void rejects_short_files(struct ktest *t)
{
    make_valid(&img);
    EXPECT_REJECT(t, &img, 0, "file too short for the ELF header");
    EXPECT_REJECT(t, &img, 63, "file too short for the ELF header");
    // Header complete, program headers cut off.
    EXPECT_REJECT(t, &img, 64 + 56 + 10, "program headers outside the file");
    // Headers complete, segment bytes cut off.
    EXPECT_REJECT(t, &img, TEXT_OFF + 8, "segment 0: p_offset+p_filesz beyond the file");
}

static void rejects_bad_header_tables(struct ktest *t)
{
    make_valid(&img);
    img.eh.phentsize = 32;
    EXPECT_REJECT(t, &img, IMG_SIZE, "e_phentsize is not 56");
    make_valid(&img);
    img.eh.phnum = 0xffff;
    EXPECT_REJECT(t, &img, IMG_SIZE, "e_phnum too large");
    make_valid(&img);
    img.eh.phoff = IMG_SIZE + 1;
    EXPECT_REJECT(t, &img, IMG_SIZE, "program headers outside the file");
    make_valid(&img);
    img.eh.phoff = UINT64_MAX - 16;         // phoff + size would wrap to a small number
    EXPECT_REJECT(t, &img, IMG_SIZE, "program headers outside the file");
    make_valid(&img);
    img.eh.phnum = 0;
    EXPECT_REJECT(t, &img, IMG_SIZE, "no loadable segment");
}

static void rejects_segments_outside_the_file(struct ktest *t)
{
    make_valid(&img);
    ph(&img, 1)->offset = UINT64_MAX - 4;   // offset + filesz wraps
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1: p_offset+p_filesz beyond the file");
    make_valid(&img);
    ph(&img, 1)->filesz = UINT64_MAX;
    ph(&img, 1)->memsz = UINT64_MAX;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1: p_offset+p_filesz beyond the file");
    make_valid(&img);
    ph(&img, 0)->filesz = 17;               // > memsz 16
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 0: p_filesz > p_memsz");
}

static void rejects_segments_outside_user_space(struct ktest *t)
{
    make_valid(&img);
    ph(&img, 1)->vaddr = 0xffffffff80000000UL;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 outside user space");
    make_valid(&img);
    ph(&img, 1)->vaddr = USER_LIMIT - 0x1000;   // starts inside, ends past the limit
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 outside user space");
    make_valid(&img);
    ph(&img, 1)->vaddr = 0;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 below USER_BASE");
    make_valid(&img);
    ph(&img, 1)->vaddr = UINT64_MAX - 0xfff;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 wraps around the address space");
    make_valid(&img);
    ph(&img, 1)->memsz = UINT64_MAX - DATA_VA + 1;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 wraps around the address space");
    make_valid(&img);
    ph(&img, 1)->memsz = 1UL << 40;         // inside user space, but absurd
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 larger than 64 MiB");
}

static void rejects_reserved_areas(struct ktest *t)
{
    make_valid(&img);
    ph(&img, 1)->vaddr = ACT_SEGMENT + 0x1000;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 overlaps the activation area");
    make_valid(&img);
    ph(&img, 1)->vaddr = ACT_RESTORE - 0x1000;  // its second page is the restore page
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 overlaps the activation area");
    make_valid(&img);
    ph(&img, 1)->vaddr = USER_STACK_TOP - 0x1000;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1 overlaps the stack");
}

static void rejects_overlaps_and_wx(struct ktest *t)
{
    make_valid(&img);
    ph(&img, 1)->vaddr = TEXT_VA + 0x10;    // the same page with another protection
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 0 overlaps segment 1");
    make_valid(&img);
    ph(&img, 0)->flags = 7;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 0 is writable and executable");
    make_valid(&img);
    ph(&img, 1)->type = 3;
    EXPECT_REJECT(t, &img, IMG_SIZE, "segment 1: PT_INTERP (dynamic programs are not supported)");
}

static void checks_the_entry_point(struct ktest *t)
{
    make_valid(&img);
    img.eh.entry = DATA_VA;                 // mapped, but not executable
    EXPECT_REJECT(t, &img, IMG_SIZE, "entry not in an executable segment");
    make_valid(&img);
    img.eh.entry = TEXT_VA + 16;            // one past the end of the text
    EXPECT_REJECT(t, &img, IMG_SIZE, "entry not in an executable segment");
    make_valid(&img);
    img.eh.entry = TEXT_VA + 15;
    KEXPECT_EQ(t, check(&img, IMG_SIZE), 0);
}

static void ignores_empty_and_other_segments(struct ktest *t)
{
    make_valid(&img);
    img.eh.phnum = 3;
    *ph(&img, 2) = (struct elf64_phdr){ PT_LOAD, PF_R | PF_W, 0, 0, 0, 0, 0, 0x1000 };  // empty PT_LOAD at 0
    KEXPECT_EQ(t, check(&img, IMG_SIZE), 0);
    ph(&img, 2)->type = 0x6474e551;         // PT_GNU_STACK
    ph(&img, 2)->vaddr = UINT64_MAX;
    KEXPECT_EQ(t, check(&img, IMG_SIZE), 0);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void initrd_programs_check_as_expected(struct ktest *t)
{
    if (initrd_count() == 0)
        KTEST_SKIP(t, "no initrd in this kernel");
    for (int i = 0; i < initrd_count(); i++) {
        const struct user_image *u = initrd_get(i);
        struct elf_info info;
        int r = elf_check(u->data, u->len, &info, why, sizeof(why));
        if (starts_with(u->name, "corrupt_"))
            KEXPECT_EQ(t, r, -ENOEXEC);
        else if (r != 0)
            ktest_fail(t, __FILE__, __LINE__, "%s rejected: %s", u->name, why);
    }
    KEXPECT_TRUE(t, initrd_find("init") != NULL);
    KEXPECT_TRUE(t, initrd_find("no such program") == NULL);
    KEXPECT_TRUE(t, initrd_get(initrd_count()) == NULL);
    KEXPECT_TRUE(t, initrd_get(-1) == NULL);
}

// Load a real program and look at the page tables it got.
static void loads_with_the_right_protections(struct ktest *t)
{
    const struct user_image *u = initrd_find("hello");
    if (!u)
        KTEST_SKIP(t, "no hello in the initrd");
    uint64_t *pml4 = vm_new_aspace();
    if (!pml4)
        KTEST_SKIP(t, "no memory for an address space");
    struct elf_info info;
    KEXPECT_EQ(t, elf_check(u->data, u->len, &info, why, sizeof(why)), 0);
    uint64_t entry = 0;
    KEXPECT_EQ(t, elf_load(pml4, u->data, u->len, &entry, why, sizeof(why)), 0);
    KEXPECT_EQ(t, entry, info.entry);
    for (int i = 0; i < info.nseg; i++) {
        const struct elf_segment *s = &info.seg[i];
        for (uint64_t va = s->start; va < s->end; va += PAGE_SIZE) {
            uint64_t pte = vm_lookup(pml4, va);
            KEXPECT_TRUE(t, pte & PTE_P);
            KEXPECT_TRUE(t, pte & PTE_U);
            KEXPECT_EQ(t, !!(pte & PTE_W), !!(s->prot & VM_WRITE));
            KEXPECT_EQ(t, !(pte & PTE_NX), !!(s->prot & VM_EXEC));
        }
    }
    // Loading again into the same space must fail cleanly: the pages are taken.
    KEXPECT_EQ(t, elf_load(pml4, u->data, u->len, &entry, why, sizeof(why)), -EINVAL);
    vm_free_aspace(pml4);
}

KTEST_SUITE(elf,
            KTEST_CASE(accepts_a_valid_image),
            KTEST_CASE(rejects_bad_identification),
            KTEST_CASE(rejects_short_files),
            KTEST_CASE(rejects_bad_header_tables),
            KTEST_CASE(rejects_segments_outside_the_file),
            KTEST_CASE(rejects_segments_outside_user_space),
            KTEST_CASE(rejects_reserved_areas),
            KTEST_CASE(rejects_overlaps_and_wx),
            KTEST_CASE(checks_the_entry_point),
            KTEST_CASE(ignores_empty_and_other_segments),
            KTEST_CASE(initrd_programs_check_as_expected),
            KTEST_CASE(loads_with_the_right_protections));
