"""instant: one in-place restart at a guest-time instant drawn from the trial's seed
(``restart_at=NS``), every trial recorded with QEMU's record/replay (rr.py).

Why guest time and not a QMP ``inject-nmi``: under ``-icount shift=0,sleep=off`` the guest
clock advances one ns per guest instruction and never with the host's, so ``restart_at=NS``
restarts the same run at the same instruction every time. A failing trial is then a pure
function of (build, workload, NS): ``--trial K`` reruns it, ``replay`` replays its recording
byte for byte, and ``bisect`` narrows NS down to the first failing ns. An NMI sent over QMP
lands wherever the host's scheduler lets it, and QEMU 7.2 cannot replay it (docs/toolkit.md,
"Record and replay").

Workloads (``--workload``):

- ring (default): the producer/consumer ring, 1,000 messages; nothing lost or doubled,
  wherever the restart falls.
- tally: one counted step around a blocking sleep, written right: always one step.
- tally_buggy: the same step with a real restart bug (userland/progs/tally.c): counted before
  the call and redone when a restart is seen across it; wrong exactly when the restart falls
  while the program waits in the call. The deliberately failing mode.

Verdicts: ``ok`` (the workload's final line is the expected one), ``wrong`` (not, or a failing
exit), ``late`` (the workload ended before NS: the restart never came, nothing was tested).
Figures: ``restart_at`` and, when the restart came, ``taken_ns`` (the safe point it was taken
at) and ``not_due_ns`` (the safe point before it: every NS in (not_due_ns, taken_ns] restarts
at that same point, which ``bisect`` uses to skip ahead).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from ..errors import UsageError
from .. import restart as restarts
from . import boot
from .engine import RR, TrialPlan, TrialResult, trial_seed
from .rr import rr_args

TIMEOUT = 60.0                          # a replay that diverged stalls until this
TAKEN = re.compile(r"^restart: instant (\d+) ns taken at (\d+) ns; not due at (\d+) ns$")
TALLY = re.compile(r"^tally: steps=(\d+) want=1$")
CONSUMER = re.compile(r"^ring: consumer got=\d+ lost=\d+ doubled=\d+ corrupt=\d+ "
                      r"checksum_expected=\S+ checksum_got=\S+")


def _tally(lines: List[str]) -> Tuple[bool, str]:
    got = [m.group(1) for line in lines if (m := TALLY.match(line))]
    if not got:
        return False, "tally printed no steps line"
    return got[-1] == "1", f"tally counted {got[-1]} steps, want 1"


def _ring(lines: List[str]) -> Tuple[bool, str]:
    v = restarts.ring_verdict(lines)
    if not v:
        return False, "the ring printed no consumer line"
    return restarts.ring_exact(v), " ".join(f"{k}={v[k]}" for k in ("got", "lost", "doubled", "corrupt") if k in v)


@dataclass(frozen=True)
class Workload:
    name: str
    append: str
    window: Tuple[int, int]             # NS is uniform in [lo, hi] (guest ns since the timer started)
    expected: str                       # the final line a correct run ends with (for the JSON)
    judge: Callable[[List[str]], Tuple[bool, str]]
    about: str


# Windows measured under -icount shift=0,sleep=off (docs/toolkit.md): the programs start about
# 0.33 ms into the guest's clock (tally blocks in its sleep at 1.33 ms, wakes at 4.0 and ends at
# 5.05); the ring of 1,000 messages flows from about 1.39 ms to 3.7 ms. tally's window reaches
# past both ends on purpose: passing instants on both sides of the failing ones.
WORKLOADS = {w.name: w for w in [
    Workload("ring", "hz=1000 run=ring:1000", (1_300_000, 3_600_000),
             "ring: consumer got=1000 lost=0 doubled=0 corrupt=0 checksum_expected=X checksum_got=X",
             _ring, "producer/consumer ring, 1,000 messages through 16 slots"),
    Workload("tally", "hz=1000 run=tally:ok", (500_000, 5_500_000), "tally: steps=1 want=1", _tally,
             "one counted step around a blocking sleep, counted after the call"),
    Workload("tally_buggy", "hz=1000 run=tally:buggy", (500_000, 5_500_000), "tally: steps=1 want=1",
             _tally, "the same step counted before the call and redone after a restart (fails on purpose)"),
]}


class Instant:
    name = "instant"
    about = "one in-place restart at a guest instant (restart_at=NS) drawn from the seed, recorded (rr)"
    defaults = {"workload": "ring"}
    default_trials = 20
    instant = "restart_at"
    units = {"restart_at": "ns (guest)", "taken_ns": "ns (guest)", "not_due_ns": "ns (guest)"}
    recordable = True                   # rr.recorder: every trial under rr=record
    bisectable = True                   # rr.bisect: the instant is guest time, a trial a pure function of it

    def workload(self, name: str) -> Workload:
        if name not in WORKLOADS:
            raise UsageError(f"--workload: unknown workload {name!r} for experiment instant; "
                             f"choose one of {', '.join(WORKLOADS)}")
        return WORKLOADS[name]

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        w = self.workload(str(options["workload"]))
        seed = trial_seed(self.name, campaign_seed, index)
        return TrialPlan(index, seed, {"workload": w.name, "restart_at": random.Random(seed).randint(*w.window)})

    def append(self, params: dict) -> str:
        return f"{self.workload(str(params['workload'])).append} restart_at={int(params['restart_at'])}"

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        w = self.workload(str(plan.params["workload"]))
        b = boot.boot(self.name, self.append(plan.params), TIMEOUT, workdir, rr_args(rr, 0))
        artifacts = {"serial": str(b.log)}
        if rr is not None and rr.mode == "record":
            artifacts["rr"] = str(rr.file)
        figures = {"restart_at": float(plan.params["restart_at"]), "exit_status": b.status}
        taken = [m for line in b.lines if (m := TAKEN.match(line))]
        if taken:
            figures.update(taken_ns=int(taken[0].group(2)), not_due_ns=int(taken[0].group(3)))
        good, what = w.judge(b.lines)
        if b.status == 33 and good and not taken:
            return TrialResult.of_plan(plan, "late", message="the workload ended before the restart",
                                       figures=figures, artifacts=artifacts)
        why = [] if b.status == 33 else [f"exit status {b.status}"]
        if not good:
            why.append(what)
        return TrialResult.of_plan(plan, "wrong" if why else "ok", message="; ".join(why), figures=figures,
                                   artifacts=artifacts)

    def describe(self, options: dict) -> dict:
        w = self.workload(str(options["workload"]))
        params = {"workload": w.name, "restart_at": 0}
        return {"argv": boot.argv_template(self.append(params).replace("restart_at=0", "restart_at={restart_at}"),
                                           rr_args(None, 0)),
                "expected": w.expected, "window_ns": list(w.window), "about": w.about}


EXPERIMENT = Instant()
