// The ELF64 loader for user programs.
#ifndef ELF_H
#define ELF_H
#include <stdint.h>

// The file format (the ELF64 and x86-64 psABI specifications): the headers
// and the values the loader checks, for the loader and for the tests that
// build images.
struct elf64_ehdr {
    uint8_t  ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct elf64_phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header");
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 program header");

#define ELFCLASS64  2
#define ELFDATA2LSB 1
#define EV_CURRENT  1
#define ET_EXEC     2
#define EM_X86_64   62
#define PT_LOAD     1
#define PT_DYNAMIC  2
#define PT_INTERP   3
#define PF_X        1
#define PF_W        2
#define PF_R        4

#define ELF_MAX_PHDRS     16                    // more is refused: "e_phnum too large"
#define ELF_MAX_MEMSZ     (64UL << 20)          // all segments together

// A loadable segment, validated: page-granular range [start, end) and the
// bytes of the file that go at vaddr.
struct elf_segment {
    uint64_t vaddr, memsz;
    uint64_t offset, filesz;
    uint64_t start, end;        // vaddr rounded down, vaddr+memsz rounded up
    int prot;                   // VM_READ | VM_WRITE | VM_EXEC (never W and X)
    int index;                  // in the program header table (for messages)
};

struct elf_info {
    uint64_t entry;
    int nseg;
    struct elf_segment seg[ELF_MAX_PHDRS];
};

// Validate `image` without touching any address space. 0, or -ENOEXEC with
// `why` naming the field that is wrong ("e_machine is not x86-64",
// "segment 1 outside user space", ...). Pure, so tests feed it anything.
int elf_check(const uint8_t *image, uint64_t len, struct elf_info *info, char *why, int whylen);

// elf_check, then map every segment into `pml4` with its protection, copy
// the file bytes and leave the rest zero (bss). 0 and *entry set; -ENOEXEC
// (why filled); -ENOMEM or -EINVAL from the mapping (why filled, pages
// already mapped stay: the caller frees the whole address space).
int elf_load(uint64_t *pml4, const uint8_t *image, uint64_t len, uint64_t *entry,
             char *why, int whylen);
#endif
