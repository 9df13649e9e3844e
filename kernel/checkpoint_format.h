// The on-disk checkpoint format (docs/persistence.md, "Format").
//
// Read by a kernel that may be another build than the one that wrote it,
// and by the host (toolchain/persist/format.py mirrors every struct here),
// so: fixed-size little-endian fields, explicit padding, no pointers and no
// kernel address anywhere, and a version number that any change of layout
// or meaning bumps. Every length, offset and count below is the writer's
// claim: a reader checks each one before use (the disk may have been edited
// by hand).
//
// The disk, in 4096-byte blocks (CKPT_BLOCK = 8 sectors of 512 bytes):
//
//   block 0, 1       the two slot headers: generation g commits into slot g % 2
//   block 2          the output-release mark (struct ckpt_release)
//   block 3 ...      data blocks: manifests and page contents, allocated by
//                    the writer so that a new checkpoint never overwrites a
//                    block the newest committed checkpoint references
//
// A checkpoint is one header plus one manifest (a contiguous run of blocks
// holding the sections listed in header.section[]) plus the page blocks its
// page records name. An incremental checkpoint's page records name blocks
// written by earlier checkpoints for pages that did not change: every
// checkpoint is complete on its own, no chain is followed at restore.
#ifndef CHECKPOINT_FORMAT_H
#define CHECKPOINT_FORMAT_H
#include <stdint.h>

#define CKPT_MAGIC        0x4b435652U   // "RVCK" in disk (little-endian) order
#define CKPT_RELEASE_MAGIC 0x4c455252U  // "RREL"
#define CKPT_VERSION      1
#define CKPT_BLOCK        4096
#define CKPT_SECTOR       512
#define CKPT_SECTORS_PER_BLOCK (CKPT_BLOCK / CKPT_SECTOR)
#define CKPT_SLOTS        2
#define CKPT_RELEASE_BLOCK 2
#define CKPT_FIRST_DATA_BLOCK 3
#define CKPT_NAME_MAX     32            // = ENV_NAME_MAX
#define CKPT_FPU_BYTES    512           // fxsave image

// header.flags
#define CKPT_FULL         (1U << 0)     // every page was written by this checkpoint
#define CKPT_OUTCOMMIT    (1U << 1)     // output commit was on (outcommit=on)

// The manifest's sections, each an array of fixed-size records at the
// offset its descriptor gives (in any order inside the manifest; they do
// not overlap). header.section[i] describes section i (its type == i; a
// reader refuses any other).
enum ckpt_section {
    CKPT_SEC_ENV = 0,       // struct ckpt_env, one per environment (live or zombie)
    CKPT_SEC_THREAD,        // struct ckpt_thread, one per vproc
    CKPT_SEC_ACTSLOT,       // struct ckpt_act_slot, one per activation record in use
    CKPT_SEC_SHM,           // struct ckpt_shm, one per shared region
    CKPT_SEC_SHMHOLD,       // struct ckpt_shm_hold, one per (environment, region) hold
    CKPT_SEC_PAGE,          // struct ckpt_page, one per saved page
    CKPT_SEC_OUTPUT,        // record_size 1: the held console output bytes
    CKPT_SECTIONS
};

struct ckpt_section_desc {
    uint32_t type;          // enum ckpt_section, == its index in header.section[]
    uint32_t record_size;   // sizeof the record (1 for bytes); a reader refuses a mismatch
    uint32_t count;         // records
    uint32_t reserved;      // 0
    uint64_t offset;        // bytes from the start of the manifest, 8-aligned
    uint64_t bytes;         // == count * record_size
};

// One slot header: the first 512-byte sector of block 0 or 1. Written last,
// after the manifest and every new page block are on disk (flushed); its
// own flush is the instant the checkpoint commits.
struct ckpt_header {
    uint32_t magic;             // CKPT_MAGIC
    uint32_t version;           // CKPT_VERSION
    uint32_t header_size;       // sizeof(struct ckpt_header)
    uint32_t block_size;        // CKPT_BLOCK
    uint64_t generation;        // 1, 2, 3, ... ; this header lives in slot generation % 2
    uint64_t disk_blocks;       // the disk's size in blocks as the writer saw it: every block number < this
    uint64_t clock_ns;          // guest clock_ns() at capture: a restore never lets it go back
    uint64_t capture_ns;        // how long the capture + write took (informational)
    uint64_t manifest_block;    // first block of the manifest
    uint64_t manifest_bytes;    // its length; it occupies ceil(bytes / CKPT_BLOCK) blocks
    uint32_t manifest_crc;      // CRC32C of the manifest's manifest_bytes bytes
    uint32_t flags;             // CKPT_FULL, CKPT_OUTCOMMIT
    uint32_t pages_total;       // page records (== section[CKPT_SEC_PAGE].count)
    uint32_t pages_written;     // of those, written by this checkpoint (the rest are older blocks)
    int32_t  next_env_id;       // the id the next spawn gets: ids are never reused
    int32_t  console_holder;    // env id that holds the console, 0: nobody
    uint32_t console_give_next; // 1: the holder's next spawn takes the console
    uint32_t console_ring_size; // attached ring capacity, 0: none attached
    uint64_t console_ring_va;   // the holder's ring (user address), 0: none
    uint32_t console_head;      // bytes appended to the ring since the attach
    uint32_t reserved0;         // 0
    uint64_t output_seq;        // console bytes produced by programs since the first boot, before the held ones
    struct ckpt_section_desc section[CKPT_SECTIONS];
    uint8_t  reserved[32];      // 0
    uint32_t reserved1;         // 0
    uint32_t header_crc;        // CRC32C of the header_size bytes with this field taken as 0
};

// Block 2: rewritten (and flushed) after the held output of a checkpoint
// has gone to the console, so that a restore does not print it again
// (docs/persistence.md, "Output commit").
struct ckpt_release {
    uint32_t magic;             // CKPT_RELEASE_MAGIC
    uint32_t version;           // CKPT_VERSION
    uint64_t generation;        // the checkpoint whose held output was released
    uint64_t released_seq;      // output_seq + held bytes of that checkpoint
    uint32_t reserved;          // 0
    uint32_t crc;               // CRC32C of the 28 bytes before it
};

// enum ckpt_env.state
#define CKPT_ENV_LIVE   1
#define CKPT_ENV_ZOMBIE 2
// ckpt_env.flags
#define CKPT_ENV_ACT_USED   (1U << 0)   // it used activations (report at exit)
#define CKPT_ENV_OUT_DIRECT (1U << 1)   // it turned output commit off for itself

struct ckpt_env {
    int32_t  id;
    int32_t  parent;            // 0: none
    uint32_t state;             // CKPT_ENV_LIVE, CKPT_ENV_ZOMBIE
    int32_t  status;            // exit status (zombies)
    char     name[CKPT_NAME_MAX];   // NUL-padded, not necessarily NUL-terminated
    uint32_t nthreads;          // its vprocs (thread records with this env id)
    uint32_t flags;             // CKPT_ENV_*
    uint32_t pages;             // its own page records (not shared regions)
    uint32_t reserved;          // 0
    uint32_t blocked[8];        // rewind counters by wait kind (env->blocked), informational
    // Activations (zero if the environment has none: a zombie).
    uint32_t act_pool_size;     // records in its pool
    uint32_t act_reserved;      // 0
    uint64_t act_seq;           // deliveries so far
    uint64_t act_event_seq;     // seq of the last unblocked/restarted upcall
    uint64_t act_stats[14];     // struct act_stats, field by field
};

// ckpt_thread.frame_kind: how the frame was entered (what sysret may trust)
#define CKPT_FRAME_SYSCALL   1  // a system call (rewound if it was blocked): rcx/r11 dead
#define CKPT_FRAME_FRESH     2  // never ran
#define CKPT_FRAME_UPCALL    3  // an upcall entry: rcx/r11 dead
#define CKPT_FRAME_INTERRUPT 4  // an interrupt or exception: every register live
// ckpt_thread.flags
#define CKPT_THR_BLOCKED         (1U << 0)  // was blocked: the frame is rewound onto its syscall
#define CKPT_THR_ACT_DISABLED    (1U << 1)
#define CKPT_THR_RESTART_PENDING (1U << 2)
#define CKPT_THR_WAKE_PENDING    (1U << 3)
#define CKPT_THR_ACT_IDLE        (1U << 4)

struct ckpt_thread {
    int32_t  env_id;
    uint32_t index;             // vproc index in the environment
    uint32_t frame_kind;        // CKPT_FRAME_*
    uint32_t flags;             // CKPT_THR_*
    uint32_t wait_kind;         // what it was blocked on (informational: waits are not restored)
    int32_t  act_resuming;      // record being restored, -1: none
    // The user frame: untrusted at restore like any activation record
    // (selectors forced, rflags masked, rip/rsp checked).
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t rip, cs, rflags, rsp, ss;
    uint16_t seg[4];            // DS, ES, FS, GS selectors
    uint8_t  fpu[CKPT_FPU_BYTES];   // fxsave image (MXCSR checked at restore)
};

// An activation record that is not free. BLOCKED and WOKEN records are
// handed back to their program at restore (a restarted upcall), like an
// in-place restart: their waits are derived state.
#define CKPT_SLOT_HELD    1
#define CKPT_SLOT_BLOCKED 2
#define CKPT_SLOT_WOKEN   3
struct ckpt_act_slot {
    int32_t  env_id;
    uint32_t index;             // record number in the pool (< act_pool_size)
    uint32_t state;             // CKPT_SLOT_*
    uint32_t reserved;          // 0
};

// A shared region, saved once however many environments map it.
struct ckpt_shm {
    uint32_t id;                // its index in this section (checkpoint-local)
    uint32_t npages;
    uint64_t reserved;          // 0
};

// One environment's hold on a region: a handle, a mapping, or both.
struct ckpt_shm_hold {
    int32_t  env_id;
    uint32_t slot;              // in its shm table (< SHM_REGIONS_MAX); the handle is derived from (slot, gen)
    uint32_t shm;               // ckpt_shm.id
    uint32_t gen;               // the slot's generation
    uint32_t has_handle;        // 0 or 1
    uint32_t prot;              // PROT_* of the mapping (0 if not mapped)
    uint64_t va;                // where it is mapped, 0: not mapped
};

// ckpt_page.owner_kind
#define CKPT_OWNER_ENV 1        // owner = env id, va = the user address
#define CKPT_OWNER_SHM 2        // owner = ckpt_shm.id, va = byte offset in the region
// ckpt_page.prot: PROT_READ | PROT_WRITE | PROT_EXEC (abi.h)
// ckpt_page.flags
#define CKPT_PAGE_WRITTEN (1U << 0)     // its block was written by this checkpoint
#define CKPT_PAGE_ACT     (1U << 1)     // in the activation segment

struct ckpt_page {
    uint32_t owner_kind;        // CKPT_OWNER_*
    int32_t  owner;
    uint64_t va;
    uint32_t prot;
    uint32_t flags;             // CKPT_PAGE_*
    uint64_t block;             // where its 4096 bytes are
    uint64_t generation;        // the checkpoint that wrote that block
    uint32_t crc;               // CRC32C of the 4096 bytes
    uint32_t reserved;          // 0
};

_Static_assert(sizeof(struct ckpt_section_desc) == 32, "ckpt_section_desc layout");
_Static_assert(sizeof(struct ckpt_header) <= CKPT_SECTOR, "the header fits one sector (atomic write)");
_Static_assert(sizeof(struct ckpt_header) == 384, "ckpt_header layout");
_Static_assert(sizeof(struct ckpt_release) == 32, "ckpt_release layout");
_Static_assert(sizeof(struct ckpt_env) == 232, "ckpt_env layout");
_Static_assert(sizeof(struct ckpt_thread) == 704, "ckpt_thread layout");
_Static_assert(sizeof(struct ckpt_act_slot) == 16, "ckpt_act_slot layout");
_Static_assert(sizeof(struct ckpt_shm) == 16, "ckpt_shm layout");
_Static_assert(sizeof(struct ckpt_shm_hold) == 32, "ckpt_shm_hold layout");
_Static_assert(sizeof(struct ckpt_page) == 48, "ckpt_page layout");
#endif
