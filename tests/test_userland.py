"""User programs on the real kernel: init, exit statuses, isolation, preemption,
the ELF loader's rejections, hostile pointers and a syscall fuzzer.

Every test boots build/kernel.elf with ``run=...`` (init spawns the programs,
waits for all of them and powers off: 33 if all exited 0, 35 otherwise) and
checks the serial log lines of docs/abi.md.
"""
from __future__ import annotations

import os
import random
import shutil
import warnings

import pytest

from toolchain import corrupt_elf, paths
from toolchain.linuxpeer import parse_results
from toolchain.runlog import EXIT_FAIL, EXIT_OK
from toolchain.userbuild import CORRUPT_BASE

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

USER = paths.BUILD / "user"
KILLED_BASE = 256           # kernel/abi.h STATUS_KILLED(vector) = 256 + vector



# --------------------------------------------------------------------- basics

def test_hello_runs_and_the_machine_powers_off_ok(run):
    r = run("run=hello")
    r.assert_sane()
    (hello,) = r.env_ids("hello")
    assert r.matching(rf"^hello: hello, world from env {hello} \(argc=1, argv\[0\]=hello\)$"), r.where()
    assert r.has("init: hello exited status=0")
    assert r.has("init: all done (0 failed)")
    assert r.has("revenant: poweroff status=0")
    assert r.status == EXIT_OK


def test_a_non_zero_exit_status_reaches_init_and_fails_the_run(run):
    r = run("run=hello,exit3")
    r.assert_sane()
    (exit3,) = r.env_ids("exit3")
    assert r.exit_status(exit3) == 3, r.where()
    assert r.has("init: exit3 exited status=3")
    assert r.has("init: hello exited status=0")
    assert r.has("init: all done (1 failed)")
    assert r.status == EXIT_FAIL


def test_init_without_run_has_nothing_to_do(run):
    r = run("")
    assert r.has("init: nothing to run"), r.where()
    assert r.status == EXIT_OK


def test_an_unknown_program_is_reported_by_init(run):
    r = run("run=no_such_program,hello")
    r.assert_sane()
    assert r.has("init: spawn no_such_program failed: ENOENT"), r.where()
    assert r.has("init: hello exited status=0")
    assert r.status == EXIT_FAIL


# ------------------------------------------------------------------ isolation

def test_reading_kernel_memory_and_another_envs_page_kills_only_the_culprit(run):
    r = run("run=peek,poke_other:owner,poke_other,hello")
    r.assert_sane()
    kills = r.kills()
    (peek,) = r.env_ids("peek")
    owner, attacker = r.env_ids("poke_other")
    (hello,) = r.env_ids("hello")

    assert peek in kills, f"peek was not killed; {r.where()}"
    assert kills[peek].vector == 14 and kills[peek].addr == 0xFFFFFFFF80100000
    assert kills[peek].function() == "peek", f"rip {kills[peek].rip:#x}: {r.where()}"
    assert not r.matching(r"^peek: FAIL")
    assert r.exit_status(peek) is None and r.has(f"init: peek exited status={KILLED_BASE + 14}")

    assert attacker in kills, f"poke_other did not fault; {r.where()}"
    assert kills[attacker].vector == 14 and kills[attacker].addr == 0x10000000
    assert kills[attacker].function() == "poke"
    assert owner not in kills and r.exit_status(owner) == 0
    assert r.has("poke_other: owner: page intact")

    assert hello not in kills and r.exit_status(hello) == 0
    assert r.has("init: all done (2 failed)")


def test_reading_a_page_mapped_only_in_another_env_kills_the_reader_and_leaves_the_owner_intact(run):
    r = run("run=poke_other:owner,peek:0x10000000,hello")
    r.assert_sane()
    (owner,) = r.env_ids("poke_other")
    (reader,) = r.env_ids("peek")
    kill = r.kills().get(reader)
    assert kill is not None, f"peek read another env's page and was not killed; {r.where()}"
    assert kill.vector == 14 and kill.addr == 0x10000000, kill
    assert kill.function() == "peek", f"rip {kill.rip:#x}; {r.where()}"
    assert not r.matching(r"^peek: FAIL"), r.where()
    assert owner not in r.kills() and r.exit_status(owner) == 0, r.where()
    assert r.has("poke_other: owner: page intact") and r.has("init: hello exited status=0")
    assert r.has("init: all done (1 failed)")


@pytest.mark.parametrize("how, vector, function", [
    ("divzero", 0, "crash_divzero"), ("ud2", 6, "crash_ud2"),
    ("gp", 13, "crash_gp"), ("null", 14, "crash_null"),
])
def test_cpu_exceptions_kill_the_program_with_a_symbolizable_report(run, how, vector, function):
    r = run(f"run=crasher:{how},hello")
    r.assert_sane()
    (crasher,) = r.env_ids("crasher")
    kill = r.kills().get(crasher)
    assert kill is not None, f"crasher:{how} was not killed; {r.where()}"
    assert kill.vector == vector, kill
    assert kill.function() == function, f"rip {kill.rip:#x}; {r.where()}"
    assert r.has(f"init: crasher exited status={KILLED_BASE + vector}"), r.where()
    assert r.has("init: hello exited status=0")


# ----------------------------------------------------------------- preemption

def test_two_busy_loops_both_advance_under_the_timer(run):
    r = run("run=spin,spin")
    r.assert_sane()
    a, b = r.env_ids("spin")
    order = [(int(m.group(1)), int(m.group(2))) for m in r.matching(r"^spin (\d+) progress (\d+)$")]
    for env in (a, b):
        counts = [n for e, n in order if e == env]
        assert counts == list(range(1, 21)), f"env {env} progress {counts}; {r.where()}"
    # Without preemption the first would finish before the second printed.
    switches = sum(1 for (e1, _), (e2, _) in zip(order, order[1:]) if e1 != e2)
    assert switches >= 4, f"only {switches} switches between the two: {order}; {r.where()}"
    assert r.status == EXIT_OK


# ------------------------------------------------------------------------ ELF

def test_every_corrupt_elf_is_rejected_with_its_reason(run):
    reasons = corrupt_elf.expected_reasons(USER / f"{CORRUPT_BASE}.elf")
    # every field the loader checks has its variant (an empty table would pass vacuously)
    assert {"corrupt_bad_magic", "corrupt_class32", "corrupt_version", "corrupt_machine", "corrupt_entry",
            "corrupt_phoff", "corrupt_offset", "corrupt_filesz", "corrupt_huge_memsz", "corrupt_overlap",
            "corrupt_kernel_half", "corrupt_wrap", "corrupt_truncated"} <= set(reasons), sorted(reasons)
    r = run("run=" + ",".join([*reasons, "hello"]))
    r.assert_sane()
    problems = []
    for name, reason in reasons.items():
        if not r.has(f"elf: {name}: rejected: {reason}"):
            got = [line for line in r.lines if line.startswith(f"elf: {name}:")]
            problems.append(f"{name}: want {reason!r}, got {got}")
        if not r.has(f"init: spawn {name} failed: ENOEXEC"):
            problems.append(f"{name}: init did not report ENOEXEC")
        if r.matching(rf"^env \d+ \({name}\) started$"):
            problems.append(f"{name}: was started")
    assert not problems, "\n".join(problems + [r.where()])
    assert r.has("init: hello exited status=0")
    assert r.has(f"init: all done ({len(reasons)} failed)")


# ----------------------------------------------------------- hostile syscalls

def test_bad_pointers_get_efault(run):
    r = run("run=badptr")
    r.assert_sane()
    fails = [line for line in r.lines if line.startswith("badptr: FAIL")]
    assert not fails, "\n".join(fails + [r.where()])
    assert len(r.matching(r"^badptr: ok ")) >= 40
    # Its scratch page is "LEAK" over and over: a write that failed printed none of it.
    leaked = [line[:80] for line in r.lines if "LEAKLEAK" in line]
    assert not leaked, f"a write that returned -EFAULT printed part of its buffer: {leaked}; {r.where()}"
    assert r.has("init: badptr exited status=0")
    assert r.status == EXIT_OK


# ------------------------------------------------------------ blocking calls

def test_wait_and_sleep_until_called_directly_block_then_return_exactly_what_the_abi_promises(run):
    # No thread runtime in between to re-check a deadline or retry a wait: a
    # sleep that does not block or ends early, a wait that loses its rewind
    # (it then "returns" its own call number) each fail a line of blocking.c.
    # -icount: guest time is instructions, so the children end in the order
    # of their sleeps whatever the host's load.
    r = run("run=blocking", icount=True)
    r.assert_sane()
    fails = [line for line in r.lines if line.startswith("blocking: FAIL")]
    assert not fails, "\n".join(fails + [r.where()])
    for what in ("sleep_until(now + 27 ms) blocked exactly once (act_stats blocked)",
                 "wait(child) returns the child's id",
                 "wait(first child) blocked again after the other child's end woke it"):
        assert r.has(f"blocking: ok {what}"), f"not checked: {what}; {r.where()}"
    assert r.has("blocking: 0 failed") and r.has("init: blocking exited status=0"), r.where()
    assert r.status == EXIT_OK


FUZZ_CALLS = 100_000


def test_the_kernel_survives_100000_random_syscalls(run, record_property):
    # A fresh seed every run; REVENANT_FUZZ_SEED=<n> replays one.
    seed = int(os.environ.get("REVENANT_FUZZ_SEED", random.getrandbits(32)))
    record_property("fuzz_seed", seed)
    print(f"fuzz seed={seed} (replay: REVENANT_FUZZ_SEED={seed})")
    r = run(f"run=fuzz:{seed}:{FUZZ_CALLS},hello", timeout=75)
    replay = f"fuzz seed={seed} (replay: REVENANT_FUZZ_SEED={seed}); {r.where()}"
    assert not any(line.startswith("PANIC:") for line in r.lines), f"kernel panic; {replay}"
    assert r.has(f"fuzz: seed={seed}"), replay
    assert r.has(f"fuzz: done {FUZZ_CALLS} calls"), f"fuzz did not finish; {replay}"
    assert r.has("init: fuzz exited status=0"), replay
    assert r.has("init: hello exited status=0"), replay
    assert r.status == EXIT_OK, f"QEMU: {r.result}; {replay}"
    slow = [line for line in r.lines if line.startswith("fuzz: slow call")]
    if slow:    # a call that holds the CPU for long is a denial of service: show it
        warnings.warn(f"{len(slow)} slow syscall(s), {replay}:\n" + "\n".join(slow))


# ------------------------------------------------------------------ benchmark

def test_bench_null_prints_a_result_line_the_peer_parser_reads(run):
    r = run("run=bench_null:20000")
    r.assert_sane()
    results = parse_results("\n".join(r.lines))
    assert "getpid" in results, r.where()
    getpid = results["getpid"]
    assert getpid["iters"] == 20000
    assert getpid["tsc_per_iter"] > 0 and getpid["ns_per_iter"] > 0
    assert r.status == EXIT_OK


def test_writing_kernel_text_or_the_direct_map_kills_the_writer_and_the_kernel_goes_on(run):
    kernel_text, direct_map = 0xFFFFFFFF80100000, 0xFFFF800000100000
    r = run(f"run=peek:{kernel_text:#x}:write,peek:{direct_map:#x}:write,hello,badptr")
    r.assert_sane()
    writers = r.env_ids("peek")
    kills = r.kills()
    assert len(writers) == 2, r.where()
    for env, addr in zip(writers, (kernel_text, direct_map)):
        kill = kills.get(env)
        assert kill is not None, f"env {env} wrote {addr:#x} and was not killed; {r.where()}"
        assert kill.vector == 14 and kill.addr == addr, kill
        assert kill.function() == "scribble", f"rip {kill.rip:#x}; {r.where()}"
    assert not r.matching(r"^peek: FAIL"), r.where()
    # The kernel still works after the attempts: later programs run and pass.
    assert r.has("init: hello exited status=0") and r.has("init: badptr exited status=0"), r.where()
    assert r.has("init: all done (2 failed)")
