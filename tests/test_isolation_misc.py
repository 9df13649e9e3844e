"""Isolation between programs beyond memory: CPU time, segment registers, descriptor tables.

Each test boots the kernel with ``run=...`` and reads the programs' own lines
(userland/progs/attack_x.c, witness.c, segs.c, crasher.c) and the kernel's.
"""
from __future__ import annotations

import shutil

import pytest

from toolchain.runlog import EXIT_OK

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")


# ------------------------------------------------------------------ CPU time

STALL_HZ = 1000
STALL_MS = 200
STALL_TABLES = 4000    # one unmap over 4,000 regions without the budget: ~19 ms, 19 ticks
# A fair round robin of two CPU-bound programs gives the witness gaps of one
# tick (the attacker's slice); a system call may add less than one more.
# Measured under -icount at 1 kHz: 1.95 ticks with the bounded unmap, 16.2
# ticks with the budget removed (one unmap over 4,000 regions in one go);
# before tables were freed, 30,000 piled-up empty tables made one unmap take
# ~0.9 s with interrupts off.
STALL_MAX_TICKS = 3


def witness_beside(run, attacker: str, report: str):
    """Run `attacker` beside the witness at STALL_HZ under -icount (guest time is instructions,
    so a busy host neither hides a stall nor makes one up); both must exit 0 and the witness
    must never have been kept off the CPU for more than STALL_MAX_TICKS. Returns the
    attacker's report line (a match of `report`)."""
    r = run(f"run={attacker},witness:{STALL_MS}:{STALL_HZ} hz={STALL_HZ}", timeout=120, icount=True)
    r.assert_sane()
    attack = r.matching(report)
    assert attack, f"the attacker did not report; log: {r.log}"
    gap = r.matching(r"^witness: longest gap (\d+) ns \(([\d.]+) ticks\)$")
    assert gap, f"the witness did not report; log: {r.log}"
    assert int(gap[0].group(1)) <= STALL_MAX_TICKS * 10**9 // STALL_HZ, \
        f"{gap[0].string}: held off the CPU for more than {STALL_MAX_TICKS} ticks; {attack[0].string}; log: {r.log}"
    assert r.has("init: attack_x exited status=0") and r.has("init: witness exited status=0")
    return attack[0]


def test_unmap_over_piled_up_page_tables_does_not_stall_the_others(run):
    attack = witness_beside(run, f"attack_x:stall:{STALL_MS}:{STALL_TABLES}",
                            r"^attack_x: stall piled (\d+) rounds (\d+) regions (\d+) longest unmap (\d+) us$")
    piled, rounds, regions, _ = map(int, attack.groups())
    # It really piled up tables and unmapped them again and again.
    assert piled >= STALL_TABLES and rounds >= 2 and regions >= 1000, attack.string


MAPSTALL_PAGES = 16384  # 64 MiB a round


def test_mapping_a_large_range_does_not_stall_the_others(run):
    # Every fresh page is zeroed with interrupts off: one map() of 64 MiB kept the witness
    # off the CPU for 10.6 ticks. map() now takes at most MAP_MAX per call (-E2BIG beyond)
    # and the program's map_all() asks piece by piece: 1.3 ticks.
    attack = witness_beside(run, f"attack_x:mapstall:{STALL_MS}:{MAPSTALL_PAGES}",
                            r"^attack_x: mapstall pages (\d+) rounds (\d+) longest map (\d+) us$")
    assert int(attack.group(2)) >= 2, attack.string


# ---------------------------------------------------------- segment registers

SEGS_HZ = 10_000
SEGS_MS = 100
ZERO_SEGS = "ds=0x0 es=0x0 fs=0x0 gs=0x0"


def test_segment_registers_are_each_programs_own(run):
    # Two programs load different selectors into DS/ES/FS/GS, a third loads
    # none; at 10 kHz they interleave thousands of times. Each must see only
    # its own values (no covert channel through selectors), keep them over
    # preemption and system calls, and start with all four 0.
    r = run(f"run=segs:set:0:{SEGS_MS},segs:set:1:{SEGS_MS},segs:watch:{SEGS_MS} hz={SEGS_HZ}",
            timeout=120, icount=True)
    r.assert_sane()
    starts = {m.group(1): m.group(2) for m in r.matching(r"^segs: (set \d|watch) start (.*)$")}
    assert sorted(starts) == ["set 0", "set 1", "watch"], f"log: {r.log}"
    fails = [m.string for m in r.matching(r"^segs: .* FAIL ")]
    assert not fails, "\n".join(fails + [f"log: {r.log}"])
    assert all(v == ZERO_SEGS for v in starts.values()), f"start values: {starts}; log: {r.log}"
    for m in r.matching(r"^segs: (set \d|watch) ok "):
        stats = r.fields(rf"^segs: {m.group(1)} ok ")
        # they really ran side by side, preempted, many times
        assert stats["switched"] >= 100 and stats["upcalls"] >= 100, f"{m.string}; log: {r.log}"
    assert len(r.matching(r"^init: segs exited status=0$")) == 3, f"log: {r.log}"
    assert r.status == EXIT_OK


# ------------------------------------------------------------------------ UMIP

UMIP_INSNS = ("sgdt", "sidt", "sldt", "str", "smsw")
STATUS_GP = 256 + 13        # kernel/abi.h STATUS_KILLED(13)


def test_descriptor_table_stores_at_cpl3_are_a_general_protection_fault(run):
    # With CR4.UMIP (offered by -cpu max under TCG) sgdt/sidt/sldt/str/smsw
    # at CPL 3 raise #GP instead of telling user space where the kernel's
    # GDT and IDT are, which task register it uses, and CR0's low bits.
    r = run("run=" + ",".join(f"crasher:{how}" for how in UMIP_INSNS) + ",hello")
    r.assert_sane()
    offered = {m.group(1) for m in r.matching(r"^crasher: cpu umip ([01])$")}
    assert offered, f"crasher did not report the CPU's UMIP bit; log: {r.log}"
    if offered == {"0"}:
        pytest.skip("the CPU does not offer UMIP (CPUID.7.0:ECX bit 2 clear)")
    leaks = [m.string for m in r.matching(r"^crasher: \w+ read ")]
    assert not leaks, "\n".join(leaks + [f"log: {r.log}"])
    envs = r.env_ids("crasher")
    assert len(envs) == len(UMIP_INSNS), f"log: {r.log}"
    kills = r.kills()
    for how, env in zip(UMIP_INSNS, envs):
        kill = kills.get(env)
        assert kill is not None, f"crasher:{how} (env {env}) was not killed; log: {r.log}"
        assert (kill.exception, kill.vector) == ("general protection fault", 13), kill
        assert kill.function() == "crash_umip", f"{how}: rip {kill.rip:#x}; log: {r.log}"
    assert len(r.matching(rf"^init: crasher exited status={STATUS_GP}$")) == len(UMIP_INSNS), f"log: {r.log}"
    assert r.has("init: hello exited status=0")


# ------------------------------------------------------ TLB and RFLAGS.AC

STATUS_PF = 256 + 14        # kernel/abi.h STATUS_KILLED(14)


@pytest.mark.parametrize("pti", ["on", "off"])
def test_a_page_unmapped_by_its_program_faults_at_once(run, pti):
    # With isolation the exit's CR3 write flushes the TLB anyway; with
    # pti=off only unmap's own invlpg makes the translation go.
    r = run(f"pti={pti} run=crasher:stale,hello")
    r.assert_sane()
    assert not r.matching(r"^crasher: FAIL"), f"log: {r.log}"
    kill = r.kills().get(r.env_id("crasher"))
    assert kill is not None, f"crasher was not killed; log: {r.log}"
    assert (kill.vector, kill.function()) == (14, "crash_stale"), kill
    assert r.has(f"init: crasher exited status={STATUS_PF}") and r.has("init: hello exited status=0")


def test_rflags_ac_set_by_a_program_is_dropped_on_every_entry(run):
    # crasher:ac runs 100 ms with AC set (SMAP's override), preempted at
    # 1 kHz; the kernel panics if AC survives an entry from user mode.
    r = run("hz=1000 run=crasher:ac,spin:3")
    r.assert_sane()
    assert r.has("crasher: ran 100 ms with AC set"), f"log: {r.log}"
    assert r.has("init: crasher exited status=0") and r.status == EXIT_OK
