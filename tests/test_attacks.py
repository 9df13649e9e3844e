"""Hostile programs against the kernel's trust boundary (userland/progs/attack_x.c).

Each boot runs one attack next to ``hello``: the kernel must answer with an
error or kill only the attacker, hello must still run, and the machine must
power off cleanly (no panic, no hang). The boots run concurrently to keep the
file fast. The modes that abuse a harmless call (yield, sleep, write) have a
test each below, with what the call must still guarantee.
"""
from __future__ import annotations

import re
import shutil
from typing import Dict

import pytest

from toolchain.runlog import RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

TIMEOUT = 15.0

# mode -> (expected status of attack_x, a line (regex) that must appear)
ATTACKS = {
    # syscall with TF set: the #DB lands after sysret, in user mode
    "tf": (257, r"^env \d+ \(attack_x\) killed: debug exception \(vector 1\) rip=0x"),
    # upcall stack unmapped / read-only restore page / entry unmapped / entry = the
    # restore sequence on a garbage stack: one clean page fault, not a re-fault loop
    "stack_unmapped": (270, r"^env \d+ \(attack_x\) killed: page fault .* addr=0x000000004ffffff0 "),
    "stack_restore": (270, r"^env \d+ \(attack_x\) killed: page fault .* addr=0x000000003fc00ff0 "),
    "entry_unmapped": (270, r"^env \d+ \(attack_x\) killed: page fault \(vector 14\) rip=0x0000000050000000 "),
    "entry_restore": (270, r"^env \d+ \(attack_x\) killed: page fault \(vector 14\) rip=0x000000003fc0"),
    # upcall stack inside the activation segment: the program's own business
    "stack_segment": (7, r"^env \d+ \(attack_x\) exited status=7$"),
    # map/unmap refuse the activation area, whole or in part
    "unmap_act": (0, r"^attack_x: unmap_act -22 -22 -22 -22$"),
    # 63 children never waited for: the table fills, spawn says ENOMEM, the
    # zombies go with their parent
    "zombies": (0, r"^attack_x: zombies \d+ then ENOMEM$"),
    # all of memory mapped: spawn fails cleanly, the others go on
    "oom": (0, r"^attack_x: oom mapped \d+ KiB, spawn=ENOMEM$"),
    # page tables piled up by map/unmap of one page per 2 MiB until memory runs out
    "tables": (0, r"^attack_x: tables \d+$"),
}


def test_attacks_kill_only_the_attacker(boot):
    machines = {mode: boot(f"run=attack_x:{mode},hello", timeout=TIMEOUT + 10) for mode in ATTACKS}
    problems: Dict[str, str] = {}
    for mode, machine in machines.items():
        r = RunLog(machine, TIMEOUT)
        result, lines = r.result, r.lines
        want_status, want_line = ATTACKS[mode]
        if any(line.startswith("PANIC:") for line in lines):
            problems[mode] = "kernel panic"
        elif not any(re.match(want_line, line) for line in lines):
            problems[mode] = f"no line matching {want_line!r}"
        elif f"init: attack_x exited status={want_status}" not in lines:
            problems[mode] = f"attack_x did not end with status {want_status}"
        elif "init: hello exited status=0" not in lines:
            problems[mode] = "hello did not run to the end"
        elif result.status != (33 if want_status == 0 else 35):
            problems[mode] = f"QEMU ended with {result}"
    assert not problems, "\n".join(f"{m}: {p} (log: {machines[m].log_path})" for m, p in problems.items())


def test_hz_on_the_command_line_is_judged_before_narrowing(run):
    # hz=2^32+1 used to be narrowed to 1 Hz before the range check; now it is
    # out of range and the default applies.
    r = run("hz=4294967297 run=hello", timeout=TIMEOUT)
    assert r.matching(r"^timer: .* tick 100 Hz$"), r.log
    assert r.status == 33, r.log


# ---------------------------------------------------- yield, sleep and write

YIELD_MS = 200


def test_a_program_that_only_yields_gets_one_turn_per_tick_next_to_a_busy_one(run):
    # yield puts the caller behind the witness, which then runs its whole slice:
    # each call comes back after about one tick (hz=100: 20 in 200 ms). A yield
    # that keeps the CPU comes back at once, thousands of times a tick. A busy
    # host only lowers the count (fewer ticks reach the guest).
    r = run(f"run=attack_x:yield:{YIELD_MS},witness:{YIELD_MS + 100}", timeout=TIMEOUT)
    r.assert_sane()
    found = r.matching(rf"^attack_x: yield (\d+) calls in {YIELD_MS} ms$")
    assert found, f"the yielder did not report; log: {r.log}"
    ticks = YIELD_MS * 100 // 1000
    assert 1 <= int(found[0].group(1)) <= 2 * ticks, f"{found[0].string}: want at most {2 * ticks}; log: {r.log}"
    assert r.has("init: attack_x exited status=0") and r.has("init: witness exited status=0"), f"log: {r.log}"


def test_sleep_until_the_last_instant_never_returns_and_the_others_run_on(boot):
    # sleep_until(2^64 - 1): a deadline read as signed (-1, the past) or one
    # that wraps when the kernel adds to it would end the sleep at once.
    machine = boot("run=attack_x:sleep,witness:300", timeout=TIMEOUT + 10)
    machine.expect("init: witness exited status=0", timeout=TIMEOUT)
    lines = machine.console.lines()     # 300 ms of guest time later: 30 ticks at hz=100
    woke = [line for line in lines if line.startswith("attack_x: sleep returned")
            or re.match(r"^env \d+ \(attack_x\) (exited|killed)", line)]
    assert not woke, f"{woke}; log: {machine.log_path}"
    assert "init: all done (0 failed)" not in lines, f"init did not wait for the sleeper; log: {machine.log_path}"


WRITE_LEN = 65536
WRITE_MAX = 1 << 20     # kernel/abi.h


def test_a_write_reaches_the_console_whole_and_in_one_piece_up_to_write_max(run):
    # The buffer is one line of 'x's; hello prints while the writes happen: not one
    # of its bytes may land inside the line.
    r = run(f"run=attack_x:write:{WRITE_LEN},attack_x:write:{WRITE_MAX + 1},hello", timeout=TIMEOUT)
    r.assert_sane()
    # WRITE_LEN - 1 'x's and a newline: exactly one such line, nothing else on it.
    xs = [len(line) for line in r.lines if "x" * 64 in line]
    assert xs == [WRITE_LEN - 1] and r.has("x" * (WRITE_LEN - 1)), \
        f"lines with runs of 'x' on the console: lengths {xs}, want one line of exactly {WRITE_LEN - 1}; log: {r.log}"
    writes = [m.string for m in r.matching(r"^attack_x: write ")]
    assert r.matching(rf"^attack_x: write {WRITE_LEN} returned {WRITE_LEN} in \d+ ms$"), f"{writes}; log: {r.log}"
    assert r.matching(rf"^attack_x: write {WRITE_MAX + 1} returned -22 in \d+ ms$"), \
        f"want -EINVAL for WRITE_MAX + 1 bytes: {writes}; log: {r.log}"
    assert len(r.matching(r"^init: attack_x exited status=0$")) == 2, f"log: {r.log}"
    assert r.has("init: hello exited status=0") and r.status == 33, f"log: {r.log}"
