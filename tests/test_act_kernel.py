"""The kernel side of activations, without the thread runtime: act_probe
(upcalls arrive, records are resumed and freed, counters agree) and
act_hostile (each forged field kills only its own environment, with a
message naming the field). docs/activations.md describes the mechanism.
"""
from __future__ import annotations

import re
import shutil

import pytest

from toolchain.runlog import RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

KILLED_OTHER = 512      # kernel/abi.h STATUS_KILLED_OTHER
STATS = re.compile(r"^act: env (\d+) \((\S+)\) stats pool=(\d+) free=(\d+) delivered=(\d+) "
                   r"redelivered=(\d+) resumed=(\d+) freed=(\d+) disabled_saves=(\d+) blocked=(\d+)"
                   r"(?: \w+=\d+)*$")     # then the blocking-call counters (docs/abi.md)


def _run(run, append: str):
    r = run(append)
    r.assert_no_panic()
    return r.result, r.lines, r.log


def test_upcalls_resume_and_free_every_record(run):
    result, lines, log = _run(run, "run=act_probe:40 hz=1000")
    assert "act_probe: ok" in lines, f"log: {log}"
    assert result.status == 33, f"log: {log}"
    stats = [m for m in map(STATS.match, lines) if m and m.group(2) == "act_probe"]
    assert stats, f"no act stats line; log: {log}"
    pool, free, delivered, redelivered, resumed, freed, _, _ = map(int, stats[0].groups()[2:])
    assert pool == 64 and free == pool, stats[0].group(0)
    # act_probe waits for 40 upcalls; a re-delivery (an interrupt inside the restore
    # sequence) is an upcall of an already delivered record, so it counts there too.
    assert delivered + redelivered >= 40, stats[0].group(0)
    assert resumed == delivered + redelivered and freed == delivered, stats[0].group(0)


def test_the_upcall_handler_is_entered_as_if_called_with_rsp_upcall_stack_minus_8(run):
    # SysV: at a function's first instruction rsp % 16 == 8 (the call pushed
    # 8 bytes onto a 16-aligned stack); act_probe's entry stub hands the
    # entry rsp to the handler, which compares it on every upcall.
    result, lines, log = _run(run, "run=act_probe:20 hz=1000")
    fails = [line for line in lines if line.startswith("act_probe: FAIL")]
    assert not fails, "\n".join(fails + [f"log: {log}"])
    assert "act_probe: upcall rsp ok n=20" in lines, f"log: {log}"
    assert "act_probe: ok" in lines and result.status == 33, f"log: {log}"


# Tick rates the disabled state is checked at. The handler holds each of the first
# HELD upcalls until the kernel has absorbed a tick (header disabled_saves went up),
# so a tick lands in the disabled handler at every rate, however slow; no -icount
# needed: the hold waits for the tick, whenever it comes.
DISABLED_HZ = (100, 1000, 10000)
HELD = 3


def test_no_upcall_arrives_while_the_handler_runs_disabled_at_any_tick_rate(boot):
    machines = {hz: boot(f"run=act_probe:5:{HELD} hz={hz}", timeout=40) for hz in DISABLED_HZ}
    problems = []
    for hz, machine in machines.items():
        r = RunLog(machine, 30)
        r.assert_no_panic()
        fails = [line for line in r.lines if line.startswith("act_probe: FAIL")]
        if fails:
            problems.append(f"hz={hz}: {fails} (log: {r.log})")
        elif not r.matching(rf"^act_probe: held {HELD} upcalls over \d+ ticks absorbed while disabled, none nested$"):
            problems.append(f"hz={hz}: no report of the held upcalls (log: {r.log})")
        elif "act_probe: ok" not in r.lines or r.status != 33:
            problems.append(f"hz={hz}: QEMU {r.result} (log: {r.log})")
        else:
            stats = [m for m in map(STATS.match, r.lines) if m and m.group(2) == "act_probe"]
            if not stats or int(stats[0].group(9)) < HELD:
                problems.append(f"hz={hz}: the kernel absorbed fewer than {HELD} ticks: {stats and stats[0].string}")
    assert not problems, "\n".join(problems)


def test_the_pool_size_comes_from_the_command_line(run):
    result, lines, log = _run(run, "run=act_probe:5 hz=1000 act_pool=3")
    assert "act_probe: ok" in lines and result.status == 33, f"log: {log}"
    assert any(line.startswith("act_probe: stats pool=3 free=3 ") for line in lines), f"log: {log}"


FIELDS = ["cs", "ss", "rflags.IF", "rflags.IOPL", "rflags.TF", "rflags.NT", "rflags.AC",
          "rflags.VM", "rflags.RF", "rip", "rip.noncanonical", "rsp", "address", "unused", "outside"]


@pytest.mark.parametrize("field", FIELDS)
def test_a_forged_record_kills_only_its_environment(run, field):
    result, lines, log = _run(run, f"run=act_hostile:{field},hello hz=1000")
    named = {"unused": "address", "outside": "address", "rip.noncanonical": "rip"}.get(field, field)
    rx = re.compile(rf"^env (\d+) \(act_hostile\) killed: hostile activation record (\d+): "
                    rf"{re.escape(named)} 0x[0-9a-f]+$")
    assert any(map(rx.match, lines)), f"no kill naming {named}; log: {log}"
    assert f"init: act_hostile exited status={KILLED_OTHER}" in lines
    assert "init: hello exited status=0" in lines
    assert not any("FAIL" in line for line in lines)
    assert result.status == 35, f"{result}; log: {log}"      # one program failed: init says so


@pytest.mark.parametrize("field", ["entry", "upcall_stack"])
def test_a_hostile_header_kills_only_its_environment(run, field):
    result, lines, log = _run(run, f"run=act_hostile:{field},hello hz=1000")
    want = "entry[4]" if field == "entry" else field
    assert any(re.match(rf"^env \d+ \(act_hostile\) killed: hostile activation header: "
                        rf"{re.escape(want)} 0x[0-9a-f]+$", line) for line in lines), f"log: {log}"
    assert f"init: act_hostile exited status={KILLED_OTHER}" in lines, f"log: {log}"
    assert "init: hello exited status=0" in lines
    assert result.status == 35, f"{result}; log: {log}"


def test_an_exhausted_pool_is_reported_not_a_hang(run):
    result, lines, log = _run(run, "run=act_hostile:exhaust,hello hz=1000 act_pool=8")
    assert any(re.match(r"^env \d+ \(act_hostile\) killed: activation record pool exhausted "
                        r"\(8 records in use\)$", line) for line in lines), f"log: {log}"
    assert "init: hello exited status=0" in lines
    stats = [m for m in map(STATS.match, lines) if m and m.group(2) == "act_hostile"]
    assert stats, f"no act: stats line for act_hostile; log: {log}"
    pool, free, delivered, freed = (int(stats[0].group(i)) for i in (3, 4, 5, 8))
    # Every record is in use when it dies; the runtime may have taken (and given back)
    # a record or two before main() took over, so count what is held, not what was delivered.
    assert (pool, free) == (8, 0), f"log: {log}"
    assert delivered - freed == pool, f"{delivered} delivered, {freed} freed; log: {log}"
