"""chained: act_stress at a high tick rate until the kernel has re-delivered N activation records
(interrupts that landed inside the restore sequence); every checksum still exact. Plain TCG at
20 kHz: how often a tick lands in the restore sequence depends on the host, which is the point
(a deterministic -icount tick would hit the same few places)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import boot
from .engine import RR, TrialPlan, TrialResult, trial_seed
from .leak import THREADS, stress_message, stress_verdict


class Chained:
    name = "chained"
    about = "act_stress at 20 kHz until N re-deliveries (ticks inside the restore sequence)"
    defaults = {"size": 1_000}
    default_trials = 1
    instant = None
    units = {"redelivered": "count", "size": "re-deliveries"}
    hz = 20_000     # a 10 us tick under plain TCG collapses on a loaded host (tests/test_activations.py)

    def append(self, size: int) -> str:
        return f"run=act_stress:{THREADS}:10000:0:0:{size} hz={self.hz}"

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        return TrialPlan(index, trial_seed(self.name, campaign_seed, index),
                         {"size": int(options["size"]), "hz": self.hz, "threads": THREADS})

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        n = plan.params["size"]
        # under record/replay the run needs -icount (rr.py); otherwise plain TCG, as measured
        b = boot.boot("chained", self.append(n), 120 + n * 0.1, workdir, boot.icount(0, rr) if rr else [])
        v = stress_verdict(b.lines)
        redelivered = v.get("kernel_redelivered", 0)
        why = stress_message(v, b.status, "" if redelivered >= n else f"only {redelivered} of {n} re-deliveries")
        return TrialResult.of_plan(plan, "wrong" if why else "ok", message=why,
                                   figures={"redelivered": redelivered, "exit_status": b.status, **v},
                                   artifacts={"serial": str(b.log)})

    def describe(self, options: dict) -> dict:
        return {"argv": boot.argv_template(self.append(int(options["size"]))),
                "expected": "stress: done ok (and the kernel's act stats line with free == pool)"}


EXPERIMENT = Chained()
