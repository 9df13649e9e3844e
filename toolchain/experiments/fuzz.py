"""fuzz: each trial boots the kernel with `run=fuzz:SEED:CALLS,hello`: CALLS random system calls
from a fuzz seed drawn from the trial's seed; the kernel must survive every one and init must go
on to run hello. A failing trial names its fuzz seed (params.fuzz_seed): `invoke run --append
'run=fuzz:SEED:CALLS,hello'` replays it."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

from . import boot
from .engine import RR, TrialPlan, TrialResult, trial_seed


class Fuzz:
    name = "fuzz"
    about = "N boots of CALLS (--size) random syscalls each, from seeded fuzz seeds; the kernel survives"
    defaults = {"size": 100_000}
    default_trials = 20
    instant = None
    units = {"fuzz_seed": "seed", "size": "system calls"}

    def append(self, fuzz_seed: int, calls: int) -> str:
        return f"run=fuzz:{fuzz_seed}:{calls},hello"

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        seed = trial_seed(self.name, campaign_seed, index)
        return TrialPlan(index, seed, {"fuzz_seed": random.Random(seed).randrange(1, 2**31),
                                       "calls": int(options["size"])})

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        calls = plan.params["calls"]
        b = boot.boot("fuzz", self.append(plan.params["fuzz_seed"], calls), 120 + calls / 2_000, workdir,
                      boot.icount(0, rr) if rr else [])
        why = []
        if b.status != 33:
            why.append(f"exit status {b.status}")
        if f"fuzz: done {calls} calls" not in b.lines:
            why.append(f"no `fuzz: done {calls} calls`")
        return TrialResult.of_plan(plan, "wrong" if why else "ok", message="; ".join(why),
                                   figures={"calls": calls, "exit_status": b.status},
                                   artifacts={"serial": str(b.log)})

    def describe(self, options: dict) -> dict:
        return {"argv": boot.argv_template(self.append(0, int(options["size"]))),
                "expected": f"fuzz: done {int(options['size'])} calls (argv: fuzz seed 0 stands for params.fuzz_seed)"}


EXPERIMENT = Fuzz()
