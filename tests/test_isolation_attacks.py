"""Kernel memory from user mode through QEMU's supervisor stack accesses (userland/progs/breakin.c).

QEMU 7.2's TCG performs the stack accesses of ``lcall``, ``lretq`` and ``iretq``
executed at CPL 3 as supervisor accesses. While the kernel half is mapped in
every user address space (protected by the U/S bit only), a far call with rsp
pointing into the kernel writes 16 bytes there, and an iretq frame built that
way reads 8 bytes back. ``breakin`` turns that into one attack per mode; the
kernel must stop each at its first kernel access: breakin is killed with a page
fault, and nothing else happens.

Every boot runs ``expect_killed:breakin:<mode>:<args>`` (exits 0 iff breakin
was killed by a CPU exception) next to ``victim`` (keeps a secret only in r12
while it yields, then checks it: ``victim: secret 0x... intact``, exit 0), so
a stopped attack powers off with 33. The kernel addresses and offsets come
from build/kernel.elf: symbols, and struct layouts from its DWARF (-g). The
boots run concurrently; every mode is its own test.

What they need from the kernel: no writable-by-supervisor kernel page that is
reachable from a user CR3 holds anything that matters. ``syscalls``, the
kernel's PML4 (``kernel_pml4``, else ``boot_pml4``) and an in-kernel test table
(``iret_read``) must not be mapped there; ``tss`` (``tss``, and ``read_reg`` /
``write_reg`` / ``redirect``, which start by reading ``tss.rsp[0]``) may be, but
only read-only. The fault these accesses raise is a supervisor one (error code
bit 2 clear, e.g. err=0x2) with a user CS in the frame.
``test_an_unmapped_kernel_address_...`` shows the required outcome today.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from elftools.elf.elffile import ELFFile

from toolchain import paths
from toolchain.errors import RevenantError
from toolchain.runlog import EXIT_OK, RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

TIMEOUT = 15.0
KERNEL_HALF = 0xffff800000000000
SYS_GETPID = 3                      # kernel/abi.h
VICTIM = "victim"                   # userland/progs/victim.c, default 200 ms
BOOT_PD_5 = (5 << 21) | 0x83       # boot/entry.S: 2 MiB page, present, writable

MODES = ["syscall_table", "tss", "pml4", "iret_read", "read_reg", "write_reg", "redirect",
         "data_read", "data_write"]
# A kernel-half address no kernel maps (PML4 slot 384): the first write of the read
# faults on every kernel, so this boot shows the outcome the attacks must get.
UNMAPPED = 0xffffc00000000000
CONTROL = "control"

KILL = re.compile(r"^env (\d+) \((\S+)\) killed: (.*)$")
BREAKIN_FAULT = re.compile(r"^env \d+ \(breakin\) killed: page fault \(vector 14\) rip=0x[0-9a-f]{16} "
                           r"addr=0x([0-9a-f]{16}) err=0x[0-9a-f]+$")
VICTIM_OK = re.compile(r"^victim: secret 0x([0-9a-f]{16}) intact$")


# ------------------------------------------------------------------ the kernel's layout

class ElfLayout:
    """Symbols, initialized data and DWARF struct layouts of one ELF."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")
        self.elf = ELFFile(self._file)

    def close(self) -> None:
        self._file.close()

    @cached_property
    def symbols(self) -> Dict[str, Tuple[int, int]]:
        """name -> (address, size)."""
        table = self.elf.get_section_by_name(".symtab")
        assert table is not None, f"{self.path} has no symbol table"
        return {s.name: (s["st_value"], s["st_size"]) for s in table.iter_symbols() if s.name}

    def symbol(self, *names: str) -> Tuple[str, int]:
        """The first of ``names`` the ELF defines, and its address."""
        for name in names:
            if name in self.symbols:
                return name, self.symbols[name][0]
        raise AssertionError(f"{self.path} defines none of {', '.join(names)}")

    def word(self, addr: int) -> int:
        """The 8 bytes at addr in the file (a PROGBITS section)."""
        for sec in self.elf.iter_sections():
            start = sec["sh_addr"]
            if sec["sh_type"] == "SHT_PROGBITS" and start <= addr and addr + 8 <= start + sec["sh_size"]:
                return int.from_bytes(sec.data()[addr - start:addr - start + 8], "little")
        raise AssertionError(f"0x{addr:x} is not in initialized data of {self.path}")

    @cached_property
    def _structs(self) -> Dict[Tuple[str, str], Tuple[int, Dict[str, int]]]:
        """(struct name, compilation unit) -> (byte size, member -> offset)."""
        out = {}
        for cu in self.elf.get_dwarf_info().iter_CUs():
            top = cu.get_top_DIE()
            unit = top.attributes["DW_AT_name"].value.decode()
            for die in top.iter_children():
                if die.tag != "DW_TAG_structure_type" or "DW_AT_byte_size" not in die.attributes \
                        or "DW_AT_name" not in die.attributes:
                    continue
                members = {m.attributes["DW_AT_name"].value.decode():
                           m.attributes["DW_AT_data_member_location"].value
                           for m in die.iter_children()
                           if m.tag == "DW_TAG_member" and "DW_AT_name" in m.attributes}
                out[(die.attributes["DW_AT_name"].value.decode(), unit)] = (
                    die.attributes["DW_AT_byte_size"].value, members)
        return out

    def struct(self, name: str, unit: str = "") -> Tuple[int, Dict[str, int]]:
        """(sizeof, member offsets) of ``struct name`` (defined in a unit ending with ``unit``)."""
        for (sname, sunit), layout in self._structs.items():
            if sname == name and sunit.endswith(unit):
                return layout
        raise AssertionError(f"no struct {name} in the DWARF of {self.path}")


def kmalloc_block(size: int, header: int) -> int:
    """The kmalloc size class of a ``size``-byte object (kernel/kalloc.c: powers of two from 32)."""
    block = 32
    while block < size + header:
        block *= 2
    return block


@dataclass
class Attack:
    mode: str                       # breakin's first argument
    args: List[int]                 # the others, printed in hex
    expect: str                     # what breakin achieves where it is not stopped


def attacks(kernel: ElfLayout, breakin: ElfLayout, victim: ElfLayout) -> Dict[str, Attack]:
    _, tss = kernel.struct("tss", "gdt.c")
    _, tss_addr = kernel.symbol("tss")
    tf_size, tf = kernel.struct("trapframe")
    vproc_size, vproc = kernel.struct("vproc")
    header_size, _ = kernel.struct("header", "kalloc.c")
    find_victim = [tss_addr + tss["rsp"], tf_size, vproc["fpu"], kmalloc_block(vproc_size, header_size),
                   header_size]
    pml4_name, pml4 = kernel.symbol("kernel_pml4", "boot_pml4")
    _, syscalls = kernel.symbol("syscalls")
    _, boot_pd = kernel.symbol("boot_pd")
    # A word of an in-kernel test table (used only with `test`) that the read's clobbers,
    # 24 bytes below and 17 above, leave inside the table.
    table = min(name for name, (_, size) in kernel.symbols.items()
                if name.endswith("_ktest_cases") and size >= 64)
    word = kernel.symbols[table][0] + 24
    _, target = breakin.symbol("redirect_ret")
    _, hijacked = victim.symbol("victim_hijacked")
    assert target == hijacked, (f"breakin's redirect_ret 0x{target:x} != victim_hijacked 0x{hijacked:x}: "
                                "both must follow crt0's _start (.text.zone, userland/user.ld)")
    return {
        "syscall_table": Attack("syscall_table", [syscalls + 8 * SYS_GETPID],
                                "PANIC: the kernel's getpid calls into breakin"),
        "tss": Attack("tss", [tss_addr + tss["ist"]], "tss.ist[0] written and read back"),
        "pml4": Attack("pml4", [pml4], f"{pml4_name} entries 510/511 written (triple fault once it is used)"),
        "iret_read": Attack("iret_read", [word], f"read 0x{kernel.word(word):016x} at {table}+24"),
        "read_reg": Attack("read_reg", find_victim + [tf["r12"]], "the victim's r12 read"),
        "write_reg": Attack("write_reg", find_victim + [tf["r12"]], "the victim's saved r12 overwritten"),
        "redirect": Attack("redirect", find_victim + [tf["rip"], target],
                           "the victim's saved rip pointed at victim_hijacked"),
        # Writable kernel data: kernel W^X alone stops every attack above
        # (their clobbers hit read-only pages) except pml4; only isolation
        # stops these. The boot page directory is dead once kernmap_init has
        # switched tables, and entry 5 maps 10 MiB as a 2 MiB page.
        "data_read": Attack("iret_read", [boot_pd + 40], f"read 0x{BOOT_PD_5:016x} at boot_pd+40"),
        "data_write": Attack("write", [boot_pd + 64], "boot_pd+64 written and read back"),
        CONTROL: Attack("iret_read", [UNMAPPED], "nothing: the address is not mapped"),
    }


# ------------------------------------------------------------------ the boots

@dataclass
class Outcome:
    log: Optional[RunLog]
    error: str = ""


@pytest.fixture(scope="module")
def layout(kernel_elf: Path):
    elves = [ElfLayout(kernel_elf), ElfLayout(paths.BUILD / "user" / "breakin.elf"),
             ElfLayout(paths.BUILD / "user" / f"{VICTIM}.elf")]
    yield attacks(*elves)
    for elf in elves:
        elf.close()


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, kernel_elf: Path, layout: Dict[str, Attack]):
    """mode -> how its boot ended; only the selected modes boot, all at once."""
    from toolchain.machine import Machine, MachineConfig

    wanted = [item.callspec.params["mode"] if hasattr(item, "callspec") else CONTROL
              for item in request.session.items if getattr(item, "module", None) is request.module]
    machines = {}
    for name in dict.fromkeys(wanted):
        attack = layout[name]
        args = ":".join(f"{a:x}" for a in attack.args)
        machine = Machine(MachineConfig(kernel=kernel_elf, name=f"breakin-{name}",
                                        append=f"run=expect_killed:breakin:{attack.mode}:{args},{VICTIM}"))
        machines[name] = machine.start()
    results = {}
    for mode, machine in machines.items():
        try:
            results[mode] = Outcome(RunLog(machine, TIMEOUT))
        except RevenantError as e:
            machine.kill()
            results[mode] = Outcome(None, f"{e} (log: {machine.log_path})")
    yield results
    for machine in machines.values():
        machine.close()


def problems(r: RunLog) -> List[str]:
    """Everything that differs from: only breakin killed, by one page fault at a kernel
    address; victim exits 0 with its secret intact; no panic; QEMU exits 33."""
    found = []
    if any(line.startswith("PANIC:") for line in r.lines):
        found.append("kernel panic")
    kills = [line for line in r.lines if KILL.match(line)]
    faults = [BREAKIN_FAULT.match(line) for line in kills]
    if len(kills) != 1 or not faults[0]:
        found.append(f"want exactly one kill, breakin's page fault; got {kills or 'none'}")
    elif int(faults[0].group(1), 16) < KERNEL_HALF:
        found.append(f"breakin's page fault is not at a kernel address: {kills[0]}")
    if not r.has("init: expect_killed exited status=0"):
        found.append("breakin was not killed by a CPU exception")
    if not r.has(f"init: {VICTIM} exited status=0") or not r.matching(VICTIM_OK.pattern):
        found.append("victim did not finish with its secret intact")
    if r.status != EXIT_OK:
        found.append(f"QEMU: {r.result}")
    return found


def confirmed(mode: str, r: RunLog, attack: Attack) -> str:
    """For the reads: whether breakin read what is really there."""
    if attack.mode == "iret_read" and mode != CONTROL:
        got = r.matching(r"^breakin: success: read 0x([0-9a-f]{16}) at ")
        want = re.search(r"read (0x[0-9a-f]{16})", attack.expect).group(1)
        return f"\nbreakin read 0x{got[0].group(1)}, the ELF has {want}" if got else ""
    if mode == "read_reg":
        got = r.matching(r"^breakin: success: victim r12 = 0x([0-9a-f]{16}) ")
        secret = r.matching(VICTIM_OK.pattern)
        if got and secret:
            same = "==" if got[0].group(1) == secret[0].group(1) else "!="
            return f"\nbreakin read r12 0x{got[0].group(1)} {same} the victim's secret 0x{secret[0].group(1)}"
    return ""


def check(mode: str, outcomes: Dict[str, Outcome], layout: Dict[str, Attack]) -> None:
    outcome = outcomes[mode]
    assert outcome.log is not None, outcome.error
    r = outcome.log
    found = problems(r)
    if found:
        achieved = [line for line in r.lines if line.startswith(("breakin: ", "victim: ", "PANIC:"))
                    or KILL.match(line)]
        attack = layout[mode]
        pytest.fail(f"{mode}: breakin:{attack.mode} ({attack.expect} unless stopped):\n  "
                    + "\n  ".join(found) + "\nits lines:\n    " + "\n    ".join(achieved)
                    + confirmed(mode, r, attack) + f"\nQEMU: {r.result}; log: {r.log}", pytrace=False)


@pytest.mark.parametrize("mode", MODES)
def test_the_kernel_stops_the_attack_at_its_first_kernel_access(mode, outcomes, layout):
    check(mode, outcomes, layout)


def test_an_unmapped_kernel_address_gets_the_outcome_the_attacks_must_get(outcomes, layout):
    check(CONTROL, outcomes, layout)
    (fault,) = [m for m in map(BREAKIN_FAULT.match, outcomes[CONTROL].log.lines) if m]
    # kread's first push (USER_CS of the write that puts SS at UNMAPPED+8)
    assert int(fault.group(1), 16) == UNMAPPED + 16, fault.string
