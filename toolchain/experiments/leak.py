"""leak: act_stress with N preemptions under a deterministic tick (-icount shift=0); at the end
every thread's checksum is exact and the kernel's free-record count equals the pool size (no
activation record leaked). Nothing random: every trial of a campaign is the same run (more trials
only repeat it; under record/replay each is bit-identical)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

from . import boot
from .engine import RR, TrialPlan, TrialResult, trial_seed

STATS = re.compile(r"^act: env \d+ \(act_stress\) stats (.*)$")
THREADS = 8


def stress_verdict(lines: List[str]) -> Dict[str, int]:
    """act_stress's end: threads with exact checksums, the done line, the kernel's pool counts."""
    kernel = next((boot.fields(m.group(1)) for line in lines if (m := STATS.match(line))), {})
    return {
        "threads_exact": sum(1 for line in lines if re.match(r"^stress: thread \d+ ok ", line)),
        "done_ok": int("stress: done ok" in lines),
        "pool_whole": int(bool(kernel) and kernel.get("free") == kernel.get("pool")),
        **{f"kernel_{k}": v for k, v in kernel.items()},
    }


def stress_message(v: Dict[str, int], status: int, want: str) -> str:
    """Why a stress run is not ok ("" if it is)."""
    why = []
    if status != 33:
        why.append(f"exit status {status}")
    if not v["done_ok"]:
        why.append("no `stress: done ok`")
    if v["threads_exact"] != THREADS:
        why.append(f"{v['threads_exact']}/{THREADS} threads exact")
    if not v["pool_whole"]:
        why.append(f"pool not whole (free {v.get('kernel_free')} of {v.get('kernel_pool')})")
    return "; ".join(why + ([want] if want else []))


class Leak:
    name = "leak"
    about = "act_stress with N preemptions (-icount shift=0): exact checksums, no activation record leaked"
    defaults = {"size": 10_000_000}
    default_trials = 1
    instant = None
    units = {"preemptions": "count", "size": "preemptions"}
    hz = 100_000

    def append(self, size: int) -> str:
        return f"run=act_stress:{THREADS}:10000:0:{size} hz={self.hz}"

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        return TrialPlan(index, trial_seed(self.name, campaign_seed, index),
                         {"size": int(options["size"]), "hz": self.hz, "threads": THREADS})

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        n = plan.params["size"]
        budget = 60 + n / 20_000          # ~57,000 preemptions/s measured under icount; slack for load
        b = boot.boot("leak", self.append(n), budget, workdir, boot.icount(0, rr))
        v = stress_verdict(b.lines)
        preemptions = v.get("kernel_delivered", 0) + v.get("kernel_redelivered", 0)
        why = stress_message(v, b.status, "" if preemptions >= n else f"only {preemptions} of {n} preemptions")
        return TrialResult.of_plan(plan, "wrong" if why else "ok", message=why,
                                   figures={"preemptions": preemptions, "exit_status": b.status, **v},
                                   artifacts={"serial": str(b.log)})

    def describe(self, options: dict) -> dict:
        return {"argv": boot.argv_template(self.append(int(options["size"])), boot.icount(0, None)),
                "expected": "stress: done ok (and the kernel's act stats line with free == pool)"}


EXPERIMENT = Leak()
