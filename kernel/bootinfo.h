// What the boot loader told us: the command line and the memory map, from
// either boot protocol, in one shape.
#ifndef BOOTINFO_H
#define BOOTINFO_H
#include <stdbool.h>
#include <stdint.h>
#include "memlayout.h"

#define MEMMAP_MAX 64

enum mem_type {
    MEM_USABLE = 1,         // E820 numbering, shared by PVH and multiboot2
    MEM_RESERVED = 2,
    MEM_ACPI_RECLAIM = 3,
    MEM_ACPI_NVS = 4,
    MEM_BAD = 5,
};

struct mem_region {
    uint64_t base;
    uint64_t length;
    uint32_t type;
};

struct memmap {
    int n;
    bool truncated;         // more regions than MEMMAP_MAX
    struct mem_region region[MEMMAP_MAX];
};

struct boot_info {
    int protocol;           // BOOT_PROTO_*
    char cmdline[512];
    struct memmap memmap;
};

// PVH (xen/include/public/arch-x86/hvm/start_info.h).
#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;  // version >= 1
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct hvm_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

// Multiboot2 tags used here.
#define MB2_TAG_END     0
#define MB2_TAG_CMDLINE 1
#define MB2_TAG_MMAP    6

// Parse the loader's data at physical address `info` (reached through the
// direct map). Returns false (with an empty result) if it is not
// recognizable. Pure apart from reading that memory, so tests can feed it
// synthetic structures.
bool bootinfo_parse(int protocol, uint64_t info, struct boot_info *out);

void memmap_add(struct memmap *mm, uint64_t base, uint64_t length, uint32_t type);
uint64_t memmap_usable_bytes(const struct memmap *mm);
const char *memmap_type_name(uint32_t type);
#endif
