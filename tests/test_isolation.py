"""Isolation seen from outside the guest (docs/kernel.md, "Isolation").

QEMU's monitor shows what the loaded page table really maps: ``info mem``
(ranges with u/r/w) and ``info tlb`` (every leaf with its NX/U/W bits). The
tests stop the machine while a program runs at CPL 3 (so CR3 is that
program's user view) or while the kernel idles (CR3 is the kernel's own
table), and compare with the addresses in build/kernel.elf.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from elftools.elf.elffile import ELFFile

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

KERNEL_HALF = 0xFFFF800000000000
KERNEL_BASE = 0xFFFFFFFF80000000
DIRECT_MAP = 0xFFFF800000000000


def symbols(elf: Path, *names: str) -> Dict[str, int]:
    with open(elf, "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        found = {s.name: s["st_value"] for s in table.iter_symbols() if s.name in names}
    missing = set(names) - set(found)
    assert not missing, f"{elf} lacks symbols {sorted(missing)}"
    return found


def stop_at(machine, cpl: int, tries: int = 200) -> str:
    """Stop the vCPU at a moment it runs at privilege ``cpl``; return ``info registers``."""
    q = machine.qmp
    for _ in range(tries):
        q.stop()
        regs = q.hmp("info registers")
        if f"CPL={cpl}" in regs:
            return regs
        q.cont()
        time.sleep(0.005)
    pytest.fail(f"never caught the CPU at CPL {cpl} (log: {machine.log_path})")


def info_mem(machine) -> List[Tuple[int, int, str]]:
    """``info mem``: (start, end, flags like 'ur-' / '-rw') per range."""
    out = []
    for line in machine.qmp.hmp("info mem").splitlines():
        m = re.match(r"^([0-9a-f]{16})-([0-9a-f]{16}) [0-9a-f]{16} ([u-][r-][w-])$", line.strip())
        if m:
            out.append((int(m[1], 16), int(m[2], 16), m[3]))
    assert out, "info mem printed no mappings"
    return out


def info_tlb(machine) -> List[Tuple[int, str]]:
    """``info tlb``: (virtual address, flags 'XGPDACTUW' with '-' for clear) per leaf."""
    out = []
    for line in machine.qmp.hmp("info tlb").splitlines():
        m = re.match(r"^([0-9a-f]{16}): [0-9a-f]{16} ([X-][G-][P-][D-][A-][C-][T-][U-][W-])$", line.strip())
        if m:
            out.append((int(m[1], 16), m[2]))
    assert out, "info tlb printed no mappings"
    return out


def entry_area(elf: Path) -> Dict[Tuple[int, int], str]:
    s = symbols(elf, "__entry_text_start", "__entry_text_end", "__entry_ro_start", "__entry_ro_end",
                "__entry_stack_start", "__entry_stack_end")
    return {
        (s["__entry_text_start"], s["__entry_text_end"]): "-r-",
        (s["__entry_ro_start"], s["__entry_ro_end"]): "-r-",
        (s["__entry_stack_start"], s["__entry_stack_end"]): "-rw",
    }


def kernel_ranges_seen_by_a_program(boot, append: str) -> List[Tuple[int, int, str]]:
    m = boot(append, qmp=True, timeout=30)
    m.expect("progress", timeout=20)
    stop_at(m, 3)
    return [r for r in info_mem(m) if r[0] >= KERNEL_HALF]


def test_a_running_program_maps_only_the_kernels_entry_area(boot, kernel_elf):
    # Adjacent ranges with the same rights are merged by `info mem`, so
    # compare page by page.
    want = entry_area(kernel_elf)
    seen = kernel_ranges_seen_by_a_program(boot, "run=spin:1000")
    pages = {a: f for lo, hi, f in seen for a in range(lo, hi, 4096)}
    expected = {a: f for (lo, hi), f in want.items() for a in range(lo, hi, 4096)}
    assert pages == expected, (
        "kernel pages in a user page table differ from the entry area:\n"
        + "\n".join(f"  {lo:#x}-{hi:#x} {f}" for lo, hi, f in seen))
    assert len(pages) <= 8, f"{len(pages)} kernel pages mapped in user space"


def test_with_pti_off_a_program_sees_the_whole_kernel(boot):
    # The comparison mode (`pti=off`) really is the old, unsafe layout: the
    # test above would fail on it.
    seen = kernel_ranges_seen_by_a_program(boot, "pti=off run=spin:1000")
    mapped = sum(hi - lo for lo, hi, _ in seen)
    assert mapped >= 1 << 30, f"pti=off maps only {mapped} bytes of the kernel half"


def test_the_kernels_page_tables_are_w_xor_x(boot, kernel_elf):
    s = symbols(kernel_elf, "__kernel_start", "__text_start", "__rodata_start", "__data_start",
                "__kernel_end", "__entry_ro_start", "__entry_ro_end")
    m = boot("heartbeat=20", qmp=True, timeout=30)
    m.expect("heartbeat 2", timeout=20)
    stop_at(m, 0)
    leaves = [(va, f) for va, f in info_tlb(m) if va >= KERNEL_HALF]
    problems = []
    text = range(s["__text_start"], s["__rodata_start"])
    read_only = [range(s["__rodata_start"], s["__data_start"]),
                 range(s["__entry_ro_start"], s["__entry_ro_end"])]
    image_phys = range(s["__kernel_start"] - KERNEL_BASE, s["__kernel_end"] - KERNEL_BASE)
    for va, f in leaves:
        nx, user, writable = f[0] == "X", f[7] == "U", f[8] == "W"
        if user:
            problems.append(f"{va:#x} {f}: user page in the kernel half")
        if writable and not nx:
            problems.append(f"{va:#x} {f}: writable and executable")
        if va >= KERNEL_BASE:
            if va in text and (writable or nx):
                problems.append(f"{va:#x} {f}: kernel text not r-x")
            if any(va in r for r in read_only) and (writable or not nx):
                problems.append(f"{va:#x} {f}: read-only kernel data not r--")
            if va < s["__kernel_start"] or va >= s["__kernel_end"]:
                problems.append(f"{va:#x} {f}: outside the kernel image")
        elif va - DIRECT_MAP in image_phys:
            alias = va - DIRECT_MAP + KERNEL_BASE
            if not nx:
                problems.append(f"{va:#x} {f}: executable alias of the kernel image")
            if writable and (alias in text or any(alias in r for r in read_only)):
                problems.append(f"{va:#x} {f}: writable alias of read-only kernel memory")
    image_pages = [va for va, _ in leaves if s["__kernel_start"] <= va < s["__kernel_end"]]
    assert len(image_pages) == (s["__kernel_end"] - s["__kernel_start"]) // 4096, "kernel image not fully mapped"
    assert not problems, "\n".join(problems[:40])


def read_words(machine, phys: int, count: int) -> List[int]:
    """``xp`` of ``count`` quadwords at a physical address."""
    words: List[int] = []
    out = machine.qmp.hmp(f"xp /{count}gx {phys:#x}")
    for line in out.splitlines():
        words += [int(w, 16) for w in line.split(":", 1)[1].split()]
    assert len(words) == count, out
    return words


def test_the_entry_stacks_hold_nothing_but_the_running_programs_own_frame(boot, kernel_elf):
    # Two programs preempting each other, plenty of entries from both; when
    # one runs, the writable part of the kernel it can reach (the entry
    # stacks) holds at most the iretq frame (rip/cs/rflags/rsp/ss) and rax of
    # its own last return from the kernel, and a user stack pointer (its
    # own, written by that return) in the scratch word: every entry's frame
    # (15 registers more) is scrubbed.
    s = symbols(kernel_elf, "__entry_stack_start", "entry_stack_top", "entry_scratch")
    m = boot("hz=1000 run=spin:1000,spin:1000", qmp=True, timeout=30)
    m.expect("progress 2", timeout=20)
    problems = []
    for _ in range(5):
        stop_at(m, 3)
        words = read_words(m, s["__entry_stack_start"] - KERNEL_BASE,
                           (s["entry_stack_top"] - s["__entry_stack_start"]) // 8)
        scratch = (s["entry_scratch"] - s["__entry_stack_start"]) // 8
        frame = words[-5:]                 # rip cs rflags rsp ss of the last exit
        rest = [(i, w) for i, w in enumerate(words[:-6]) if w and i != scratch]
        if rest:
            problems.append(f"left on the entry stacks: {[(hex(i * 8), hex(w)) for i, w in rest[:8]]}")
        if any(frame) and (frame[1] != 0x23 or frame[4] != 0x1B):
            problems.append(f"top frame is not a user frame: {[hex(w) for w in frame]}")
        if words[scratch] >= 0x800000000000:
            problems.append(f"scratch {words[scratch]:#x} is not a user stack pointer")
        m.qmp.cont()
        time.sleep(0.02)
    assert not problems, "\n".join(problems) + f"\n(log: {m.log_path})"
