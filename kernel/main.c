// kmain: from boot/entry.S to whatever the command line asks for.
#include <stdint.h>
#include "activation.h"
#include "blk.h"
#include "blktest.h"
#include "checkpoint.h"
#include "bootinfo.h"
#include "cmdline.h"
#include "console.h"
#include "cpu.h"
#include "crash.h"
#include "env.h"
#include "gdt.h"
#include "initrd.h"
#include "kbd.h"
#include "ktest.h"
#include "lapic.h"
#include "memlayout.h"
#include "pic.h"
#include "pmm.h"
#include "power.h"
#include "printf.h"
#include "restart.h"
#include "restore.h"
#include "sched.h"
#include "syscall.h"
#include "timer.h"
#include "trap.h"
#include "uart.h"
#include "vm.h"
#include "x86.h"

static struct boot_info boot_info;

static void print_memmap(const struct memmap *mm)
{
    for (int i = 0; i < mm->n; i++) {
        const struct mem_region *r = &mm->region[i];
        kprintf("memory: 0x%016lx-0x%016lx %s\n", r->base, r->base + r->length - 1,
                memmap_type_name(r->type));
    }
    kprintf("memory: %lu KiB usable%s\n", memmap_usable_bytes(mm) / 1024,
            mm->truncated ? " (map truncated)" : "");
}

static const char *protocol_name(int protocol)
{
    switch (protocol) {
    case BOOT_PROTO_PVH: return "pvh";
    case BOOT_PROTO_MB2: return "multiboot2";
    default:             return "unknown";
    }
}

// `heartbeat=MS`: a liveness signal in guest time, forever.
static void __attribute__((noreturn)) heartbeat(unsigned long period_ms)
{
    if (period_ms == 0)
        period_ms = 1000;
    uint64_t next = period_ms;
    for (uint64_t n = 1;; n++) {
        while (timer_ms() < next)
            sti_hlt();
        kprintf("heartbeat %lu\n", n);
        next += period_ms;
    }
}

// Start `init` from the initrd as env 1 and hand the CPU to the scheduler
// for good. Without an init there is nothing to do: power off.
static void __attribute__((noreturn)) run_init(void)
{
    const struct user_image *img = initrd_find("init");
    if (!img) {
        kprintf("revenant: no init in the initrd\n");
        power_off(true);
    }
    char *argv[] = { "init" };
    int id = env_spawn("init", img->data, img->len, 1, argv, 0);
    if (id < 0) {
        kprintf("revenant: cannot start init (error %d)\n", id);
        power_off(false);
    }
    schedule();
}

void kmain(int protocol, uint64_t info)
{
    // Descriptor tables first: firmware leaves LINT1 delivering NMIs, and the
    // host may send one (QMP inject-nmi) from the first line on; without an
    // IDT it would reset the machine. Neither function prints.
    gdt_init();
    idt_init();
    uart_init();
    bool parsed = bootinfo_parse(protocol, info, &boot_info);
    cmdline_init(boot_info.cmdline);
    // First line: the toolkit waits for it to know the kernel is alive.
    kprintf("Revenant kernel booting (cmdline: \"%s\")\n", boot_info.cmdline);
    cmdline_report();       // a line per word the kernel will not use, and what it uses instead
    if (!parsed)
        kprintf("boot: no usable boot information (protocol %s, info 0x%lx)\n",
                protocol_name(protocol), info);
    kprintf("boot: protocol %s\n", protocol_name(protocol));

    cpu_init();
    pic_disable();
    lapic_init();
    print_memmap(&boot_info.memmap);
    pmm_init(&boot_info.memmap);
    kprintf("memory: %lu frames free for the allocator\n", pmm_free_count());
    vm_init();
    syscall_init();
    act_init(cmdline_ulong("act_pool"));
    timer_init(cmdline_ulong("hz"));
    restart_init();
    console_init();
    blk_init();
    checkpoint_init();
    if (checkpoint_enabled() && !kbd_init())
        kprintf("checkpoint: no PS/2 keyboard: the host cannot ask for one\n");
    kprintf("revenant: ready\n");

    const char *how = cmdline_get("crash");
    if (how)
        crash(how);
    const char *blk_mode = cmdline_get("blktest");
    if (blk_mode)
        power_off(blktest_run(blk_mode));
    if (cmdline_has("test"))
        power_off(ktest_run(cmdline_get("test")));
    if (cmdline_has("heartbeat"))
        heartbeat(cmdline_ulong("heartbeat"));
    // A checkpoint on the disk is the system to go on with: its init and
    // programs come back, and run= starts nothing (docs/persistence.md).
    if (restore_boot())
        schedule();
    run_init();
}
