// The ELF64 loader for user programs.
#ifndef ELF_H
#define ELF_H
#include <stdint.h>

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
