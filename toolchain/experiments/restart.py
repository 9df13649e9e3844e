"""restart: the producer/consumer ring (two environments, a shared region, futexes) under
in-place restarts every millisecond until the producer has seen N of them; no message lost,
doubled or corrupted, and the consumer's checksum is the expected one. Figures: the kernel's
own restart cost (ns, guest time) per restart: median and max per trial."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .. import restart as restarts
from . import boot
from .engine import RR, TrialPlan, TrialResult, trial_seed


class Restart:
    name = "restart"
    about = "the ring under a restart every ms until N restarts: no message lost, doubled or corrupt"
    defaults = {"size": 10_000}
    default_trials = 1
    instant = None
    units = {"restart_ns_median": "ns (guest)", "restart_ns_max": "ns (guest)", "restarts": "count",
             "size": "restarts"}
    every_ms, hz = 1, 1000

    def append(self, size: int) -> str:
        return f"hz={self.hz} restart_every={self.every_ms} run=ring:1:16:0:{size}"

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        return TrialPlan(index, trial_seed(self.name, campaign_seed, index),
                         {"size": int(options["size"]), "every_ms": self.every_ms, "hz": self.hz})

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        n = plan.params["size"]
        # ~1 restart per guest ms; plain TCG runs the ring at a few guest seconds per host second
        # on a loaded 2-core host, hence the generous budget.
        b = boot.boot("restart", self.append(n), 60 + n * 0.02, workdir, boot.icount(0, rr) if rr else [])
        v = restarts.ring_verdict(b.lines) or {}
        kernel = restarts.kernel_restarts(b.lines)
        costs = sorted(r.ns for r in kernel)
        figures = {"restarts": len(kernel), "restarted_upcalls": v.get("restarts", 0),
                   "messages": v.get("got", 0), "sent": v.get("sent", 0),
                   "futex_waiters_dropped": sum(r.futex for r in kernel), "exit_status": b.status}
        figures.update({k: v[k] for k in ("lost", "doubled", "corrupt") if k in v})
        if costs:
            figures.update(restart_ns_median=costs[len(costs) // 2], restart_ns_max=costs[-1])
        why = []
        if b.status != 33:
            why.append(f"exit status {b.status}")
        if not restarts.ring_exact(v or None):
            why.append(f"the ring is not exact ({_ring_text(v)})")
        if v.get("producer_restarts", 0) < n:
            why.append(f"the producer saw {v.get('producer_restarts', 0)} of {n} restarts")
        return TrialResult.of_plan(plan, "wrong" if why else "ok", message="; ".join(why), figures=figures,
                                   artifacts={"serial": str(b.log)})

    def describe(self, options: dict) -> dict:
        return {"argv": boot.argv_template(self.append(int(options["size"]))),
                "expected": "ring: consumer got=N lost=0 doubled=0 corrupt=0 checksum_expected=X checksum_got=X"}


def _ring_text(v: dict) -> str:
    return " ".join(f"{k}={v[k]}" for k in ("got", "sent", "lost", "doubled", "corrupt", "fails",
                                            "checksum_expected", "checksum_got") if k in v) or "no consumer line"


EXPERIMENT = Restart()
