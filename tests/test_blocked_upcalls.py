"""Scheduler activations for blocking calls, on the real kernel (docs/activations.md,
"Blocking calls").

A thread of a program with the runtime whose system call must wait does not stop the
program: the kernel puts the thread, rewound onto its ``syscall``, into an activation record
that takes the wait (a *blocked* upcall) and hands it back when the wait is over (an
*unblocked* upcall, or the result of the idle call ``act_wait``); resuming it reruns the
call. The program is userland/progs/act_block.c; the kernel's counters come from its line

    act: env <id> (<name>) stats pool=.. free=.. delivered=.. ... blocked_upcalls=.. unblocked_upcalls=..
         unblocked_waits=.. idle_waits=.. cancelled=.. blocked_now=..

Timing-sensitive runs use ``-icount shift=0`` (a guest ns is one instruction), so what the
seven workers did during a block is the scheduler's doing, not the host's.
"""
from __future__ import annotations

import shutil

import pytest

from test_restart import kernel_without_the_rewind
from toolchain.restart import kernel_restarts
from toolchain.runlog import EXIT_FAIL, EXIT_OK, RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

STATUS_KILLED_OTHER = 512
WORKERS = 7
BLOCK_MS = 50


def act_line(r: RunLog) -> dict:
    return r.kernel_stats(r.env_id("act_block"))


def assert_ok(r: RunLog, mode: str) -> None:
    fails = [line for line in r.lines if line.startswith("act_block: FAIL") or line.startswith("thread: FAIL")]
    assert not fails, "\n".join(fails + [r.where()])
    assert r.has(f"act_block: ok {mode}"), r.where()


# ----------------------------------------------------- one blocks, seven compute

@pytest.mark.parametrize("mode", ["futex", "sleep"])
def test_one_thread_blocks_in_the_kernel_while_seven_others_keep_computing(run, mode, record_property):
    # main waits BLOCK_MS in the kernel's futex_wait (a worker wakes it) or sleep_until.
    # Before blocked upcalls the whole vproc stopped with it: the seven did nothing.
    r = run(f"run=act_block:{mode}:{BLOCK_MS} hz=1000", icount=True)
    r.assert_sane()
    assert_ok(r, mode)
    got = r.fields(rf"^act_block: {mode} ")
    progress = {int(m.group(1)): int(m.group(2)) for m in r.matching(r"^act_block: progress thread (\d+) (\d+)$")}
    assert sorted(progress) == list(range(1, WORKERS + 1)), r.where()
    for key in ("blocked_us", "resume_us", "utilization_pct", "progress_min"):
        record_property(key, got[key])
    assert got["blocked_us"] >= BLOCK_MS * 1000, got
    # Every worker ran during the block, round robin: each within 1/2..2 of a fair share ...
    fair = sum(progress.values()) / WORKERS
    assert all(fair / 2 <= p <= 2 * fair for p in progress.values()), progress
    # ... and together they used the vproc all along (measured: 99-100%).
    assert got["utilization_pct"] >= 80, got
    # Woken, main waits its turn behind the seven (one tick each at most) and reruns its call.
    assert got["resume_us"] <= (WORKERS + 2) * 1000, got
    k = act_line(r)
    assert k["blocked_upcalls"] >= 1 and k["unblocked_upcalls"] + k["unblocked_waits"] >= 1, k
    assert k["blocked_now"] == 0 and k["free"] == k["pool"] and k["freed"] == k["delivered"], k
    assert r.status == EXIT_OK


# ------------------------------------------------------------- everyone blocks

IDLE_THREADS = 8
IDLE_MS = 100


# sleep=off: the idle time is skipped, not waited for on the host, so lateness is the
# kernel's alone (with sleep=on a loaded host made it 3.8 ms once).
ICOUNT_EXACT = ["-icount", "shift=0,sleep=off"]


def test_a_program_whose_every_thread_blocks_waits_in_act_wait_without_spinning(run, record_property):
    r = run(f"run=act_block:idle:{IDLE_THREADS}:{IDLE_MS} hz=1000", extra_args=ICOUNT_EXACT)
    r.assert_sane()
    assert_ok(r, "idle")
    got = r.fields(r"^act_block: idle ")
    record_property("idle_waits", got["idle_waits"])
    record_property("late_max_us", got["late_max_us"])
    # Each thread blocked once and came back once; none woke early.
    assert got["blocked_upcalls"] == IDLE_THREADS and got["unblocked"] == IDLE_THREADS, got
    assert got["early"] == 0, got
    # For 100 ms nothing could run: the vproc stopped in the kernel (idle_waits >= 1, the
    # kernel's count of act_wait blocking it) a handful of times, not once per tick or in a loop.
    assert 1 <= got["idle_waits"] <= IDLE_THREADS, got
    assert got["runtime_idle_waits"] <= 2 * IDLE_THREADS, got
    # The wake is the deadline, seen at a tick (1 ms); records woken at one tick come back in turn.
    assert got["late_max_us"] <= 2000, got
    assert act_line(r)["idle_waits"] == got["idle_waits"]
    assert r.status == EXIT_OK


# ------------------------------------------------------------------ no leaks

CYCLES = 20000


def cycles_exact(r: RunLog) -> tuple[dict, dict]:
    """act_block:cycles ran every handoff, and no record stayed in use: by the program's
    count at the end and by the kernel's at exit (every record it filled was freed)."""
    r.assert_sane()
    assert_ok(r, "cycles")
    got = r.fields(r"^act_block: cycles ")
    assert got["handoffs"] == 2 * CYCLES and got["bad"] == 0, got
    assert got["free"] == got["pool"] and got["blocked_now"] == 0, got
    k = act_line(r)
    assert k["free"] == k["pool"] and k["freed"] == k["delivered"] and k["blocked_now"] == 0, k
    # The runtime never resumed a record that still waited (legal, but it would mean it
    # lost track: a restart hands back the records blocked before it, not after).
    assert k["cancelled"] == 0, k
    assert r.status == EXIT_OK
    return got, k


def test_twenty_thousand_block_unblock_handoffs_leave_the_pool_whole(run):
    got, _ = cycles_exact(run(f"run=act_block:cycles:{CYCLES} hz=1000", timeout=60))
    assert got["blocked_upcalls"] >= CYCLES and got["unblocked"] == got["blocked_upcalls"], got


def test_restarts_with_threads_blocked_hand_every_record_back_once(run):
    # A restart every ms drops the waits of blocked records; the restarted upcall hands them
    # all back and each call reruns (blocking again if it must): the handoffs stay exact and
    # no record is lost or handed back twice.
    r = run(f"hz=1000 restart_every=1 run=act_block:cycles:{CYCLES}", timeout=90)
    got, _ = cycles_exact(r)
    assert got["restarts"] >= 5, got
    restarts = kernel_restarts(r.lines)
    assert sum(x.futex for x in restarts) >= 1, f"no blocked record was dropped; {r.where()}"


def test_restarts_while_every_thread_blocks_never_end_a_wait_early(run):
    r = run(f"hz=1000 restart_every=2 run=act_block:idle:{IDLE_THREADS}:{IDLE_MS}", timeout=60)
    r.assert_sane()
    assert_ok(r, "idle")
    got = r.fields(r"^act_block: idle ")
    assert got["early"] == 0, got
    # Each restart handed the records back and every call reran and blocked again.
    assert got["blocked_upcalls"] > IDLE_THREADS, got
    assert sum(x.sleep + x.futex for x in kernel_restarts(r.lines)) >= IDLE_THREADS, r.where()
    k = act_line(r)
    assert k["free"] == k["pool"] and k["blocked_now"] == 0 and k["cancelled"] == 0, k


# ------------------------------------------------------------------- hostile

def test_a_blocked_record_resumed_early_just_reruns_its_call(run):
    r = run("run=act_block:early:5:20 hz=1000")
    r.assert_sane()
    assert_ok(r, "early")
    sleep = r.fields(r"^act_block: early sleep ")
    futex = r.fields(r"^act_block: early futex ")
    # Five early resumes: five waits cancelled, five reruns that blocked again.
    for got in (sleep, futex):
        assert got["cancelled"] == 5 and got["blocked_upcalls"] == 6, got
    assert sleep["early_ns"] == 0, sleep
    assert act_line(r)["cancelled"] == 10


def test_skipping_a_blocked_call_only_forges_the_programs_own_result(run):
    # The blocked handler moves wait()'s record past its syscall with rax = 12345: the
    # program sees 12345, but the kernel never completed the call, so the child is not
    # reaped: the next, real, wait returns it with its status.
    r = run("run=act_block:skip hz=1000")
    r.assert_sane()
    assert_ok(r, "skip")
    got = r.fields(r"^act_block: skip r=")
    assert got["r"] == 12345 and got["cancelled"] == 1 and got["blocked_now"] == 0, got
    assert r.matching(r"^act_block: skip then wait r=\d+ status=7$"), r.where()


FORGED = [
    pytest.param("address", r"hostile activation record \d+: address 0x[0-9a-f]+", id="address"),
    pytest.param("unused", r"hostile activation record 40: address 0x[0-9a-f]+", id="unused"),
    pytest.param("cs", r"hostile activation record \d+: cs 0x8", id="cs"),
    pytest.param("entry6", r"hostile activation header: entry\[6\] 0xffffffff80100000", id="entry6"),
    pytest.param("exhaust", r"activation record pool exhausted \(64 records in use\)", id="exhaust"),
]


@pytest.mark.parametrize("how, why", FORGED)
def test_a_forged_blocked_record_ends_only_its_own_environment(run, how, why):
    r = run(f"run=act_block:forge:{how},hello,threads_fair:2:200 hz=1000")
    r.assert_sane()
    env = r.env_id("act_block")
    assert r.matching(rf"^env {env} \(act_block\) killed: {why}$"), r.where()
    assert r.has(f"init: act_block exited status={STATUS_KILLED_OTHER}")
    assert r.has("init: hello exited status=0") and r.has("init: threads_fair exited status=0"), r.where()
    assert r.has("init: all done (1 failed)")


# ------------------------------------------------------- the rewind is load-bearing

def test_without_the_rewind_the_blocked_upcall_tests_fail(run, kernel_elf):
    # The record of a blocked call holds the frame the dispatcher rewound; without the
    # rewind, resuming it "returns" the call's own number, and the runtime's own idle
    # act_wait (22) returns 22.
    patched = kernel_without_the_rewind(kernel_elf)
    futex = run(f"run=act_block:futex:{BLOCK_MS} hz=1000", kernel=patched)
    assert futex.matching(r"^act_block: (futex r=15 |FAIL futex_wait result: got 15,)"), futex.where()
    sleep = run(f"run=act_block:sleep:{BLOCK_MS} hz=1000", kernel=patched)
    assert sleep.matching(r"^act_block: FAIL (sleep_until result: got 10,|resumed before the wake)"), \
        sleep.where()
    idle = run(f"run=act_block:idle:{IDLE_THREADS}:20 hz=1000", kernel=patched)
    assert idle.matching(r"^(thread: FAIL kernel act_wait returned 22,|act_block: FAIL idle thread)"), \
        idle.where()
    cycles = run("run=act_block:cycles:2000 hz=1000", kernel=patched)
    assert cycles.matching(r"^(act_block: FAIL futex_wait returned 15 |thread: FAIL kernel act_wait returned 22,)"), \
        cycles.where()
    for r in (futex, sleep, idle, cycles):
        assert r.status == EXIT_FAIL, r.where()


# ------------------------------------------------------------------- the cost

def test_a_block_and_unblock_round_trip_costs_a_few_thousand_instructions(run, record_property):
    # Under -icount shift=0 one TSC tick is one guest instruction: per handoff between two
    # threads, through the kernel's futex (a blocked and an unblocked upcall, the rerun) and
    # through thread_yield (a user-level switch).
    r = run("run=act_block:bench:20000 hz=1000", icount=True, timeout=60)
    r.assert_sane()
    results = {m.group(1): float(m.group(2))
               for m in r.matching(r"^RESULT name=(\w+) iters=\d+ tsc_per_iter=([0-9.]+) ")}
    block, switch = results["block_unblock"], results["uswitch_ref"]
    record_property("block_unblock_instructions", block)
    record_property("uswitch_instructions", switch)
    assert switch < 200, results
    assert switch < block < 10_000, results
