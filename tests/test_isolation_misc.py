"""Isolation between programs beyond memory: CPU time, segment registers, descriptor tables.

Each test boots the kernel with ``run=...`` and reads the programs' own lines
(userland/progs/attack_x.c, witness.c, segs.c, crasher.c) and the kernel's.
"""
from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")


# ------------------------------------------------------------------ CPU time

STALL_HZ = 100
STALL_MS = 2000
# A fair round robin of two CPU-bound programs gives the witness gaps of one
# tick (the attacker's slice); a system call may add less than one more.
# Measured under -icount: 1.17 ticks with the bounded unmap, 90 ticks before
# (one unmap over 30,000 empty page tables, ~0.9 s with interrupts off).
STALL_MAX_TICKS = 3


def test_unmap_over_piled_up_page_tables_does_not_stall_the_others(run):
    # -icount: guest time is instructions, so a busy host neither hides a stall
    # nor makes one up.
    r = run(f"run=attack_x:stall:{STALL_MS},witness:{STALL_MS}:{STALL_HZ} hz={STALL_HZ}",
            timeout=120, icount=True)
    r.assert_sane()
    attack = r.matching(r"^attack_x: stall piled (\d+) rounds (\d+) regions (\d+) longest unmap (\d+) us$")
    assert attack, f"the attacker did not report; log: {r.log}"
    piled, rounds, regions, _ = map(int, attack[0].groups())
    # It really piled up tables and unmapped them again and again.
    assert piled >= 10000 and rounds >= 2 and regions >= 1000, attack[0].string
    gap = r.matching(r"^witness: longest gap (\d+) ns \(([\d.]+) ticks\)$")
    assert gap, f"the witness did not report; log: {r.log}"
    ns = int(gap[0].group(1))
    assert ns <= STALL_MAX_TICKS * 10**9 // STALL_HZ, \
        f"{gap[0].string}: held off the CPU for more than {STALL_MAX_TICKS} ticks; {attack[0].string}; log: {r.log}"
    assert r.has("init: attack_x exited status=0") and r.has("init: witness exited status=0")
