"""``invoke experiment powercut --size N``: power cuts at random instants, then a restore.

Each trial boots a workload that prints a numbered progress line every few rounds
(``clockwatch`` with ``every``) with ``checkpoint_every=20`` on a fresh disk, SIGKILLs QEMU
after a seeded random delay (so the cut lands anywhere: in user code, in the kernel, inside a
checkpoint's write sequence), boots again on the same disk and lets the workload finish. Over
the two boots' serial output:

* ``lost``: progress lines that never appeared (output committed, then lost);
* ``doubled``: progress lines that appeared more than once (work shown twice);
* ``repeated_lines``: program lines of any kind that appeared more than once;
* the final line must be the uninterrupted run's (same checksum).

All three are 0 when a trial passes. The JSON holds, per trial, both QEMU command lines, the
disk and the expected final line (``build/experiments/powercut-<stamp>/trials.json``).
"""
from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from typing import Any

from .. import paths

ROUNDS, EVERY = 300, 10
WORKLOAD = f"clockwatch:{ROUNDS}:2000:2:{EVERY}"
PROGRESS = re.compile(r"^clockwatch: round (\d+)$")
FINAL = re.compile(r"^clockwatch: done .* checksum=([0-9a-f]+)")
PROGRAM_LINE = re.compile(r"^(clockwatch|init): ")


def _lines(machine: Any) -> list[str]:
    return [line.rstrip("\r") for line in machine.console.lines()]


def judge(first: list[str], second: list[str], expected_checksum: str) -> dict:
    """The figures of one trial from its two boots' lines."""
    lines = [line for line in first + second if PROGRAM_LINE.match(line)]
    rounds = Counter(int(m.group(1)) for line in lines if (m := PROGRESS.match(line)))
    wanted = range(EVERY, ROUNDS + 1, EVERY)
    final = next((m.group(1) for line in second if (m := FINAL.match(line))), None)
    return {
        "lost": sum(1 for r in wanted if rounds[r] == 0),
        "doubled": sum(1 for r in wanted if rounds[r] > 1),
        "repeated_lines": sum(n - 1 for n in Counter(lines).values() if n > 1),
        "checksum": final,
        "checksum_ok": final == expected_checksum,
    }


def experiment(n: int, seed: int = 1, extra: str = ""):
    """N trials; ``extra`` words go on both boots' command lines (``outcommit=off`` shows what
    output commit prevents)."""
    from ..experiment import ExperimentResult
    from ..machine import Machine, MachineConfig
    from ..runlog import RunLog

    t0 = time.monotonic()
    work = paths.BUILD / "experiments" / f"powercut-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    with Machine(MachineConfig(append=f"run={WORKLOAD}", name="powercut-baseline")) as m:
        RunLog(m, 120)
        expected = next((g.group(1) for line in _lines(m) if (g := FINAL.match(line))), "")
    rng = random.Random(seed)
    append = f"checkpoint_every=20 {extra} run={WORKLOAD}".replace("  ", " ")
    trials, logs = [], []
    for k in range(n):
        disk = work / f"trial-{k}.qcow2"
        delay = rng.uniform(0.3, 3.0)
        with Machine(MachineConfig(append=append, disk=disk, name=f"powercut-a{k}")) as a:
            argv_a = a.argv()
            a.wait_until_exit(delay)
            a.kill()
            first = _lines(a)
            logs.append(str(a.log_path))
        with Machine(MachineConfig(append=append, disk=disk, name=f"powercut-b{k}")) as b:
            argv_b = b.argv()
            r = RunLog(b, 180)
            logs.append(str(b.log_path))
        figures = judge(first, r.lines, expected)
        ok = (figures["lost"] == figures["doubled"] == figures["repeated_lines"] == 0
              and figures["checksum_ok"] and r.status == 33)
        trials.append({"trial": k, "cut_after_s": round(delay, 3), "ok": ok, **figures,
                       "restored": next((line for line in r.lines if line.startswith("restore:")), ""),
                       "disk": str(disk), "argv_a": argv_a, "argv_b": argv_b,
                       "expected_final_checksum": expected, "exit_status_b": r.status})
    per_trial = work / "trials.json"
    per_trial.write_text(json.dumps({"expected_final_checksum": expected, "trials": trials}, indent=1))
    totals = {key: sum(t[key] for t in trials) for key in ("lost", "doubled", "repeated_lines")}
    figures = {"trials": n, "passed": sum(t["ok"] for t in trials), "seed": seed, **totals,
               "expected_final_checksum": expected, "per_trial": str(per_trial)}
    return ExperimentResult("powercut", n, bool(expected) and all(t["ok"] for t in trials),
                            time.monotonic() - t0, figures, logs)
