"""upgrade: checkpoint under kernel build A (this tree), cut, restore under build B and finish
with the same lines (docs/persistence.md, "Upgrade" and "Experiments").

Build B is toolchain/persist/upgrade.py's variant of this tree: ``struct env`` padded (every
field at another offset), a 250 Hz tick instead of 100, system call 35 more, and a banner line.
A checkpoint names no kernel address or structure, so B must restore what A wrote.

A trial is one powercut trial (powercut.py: the same workload, disk, cut kinds and verdict)
with exactly one cut, always after at least one committed checkpoint (a cut before any would
boot B clean and test no upgrade), and the second boot under B. On top of powercut's verdict,
the boot under B must show B's banner and a restore line. The cut instant (which checkpoint,
which step, which delay) is what varies between trials.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import List, Tuple

from .. import paths
from ..persist import upgrade as variant
from .engine import TrialPlan, trial_seed
from .powercut import (RESTORED, STEPS, Boot, Cut, Powercut, Verdict, _options, checkpoint_period,
                       checkpoints_within, draw_kill)


class Upgrade(Powercut):
    name = "upgrade"
    about = "checkpoint under build A, cut, restore under build B (padded struct env, 250 Hz, syscall 35)"
    defaults = {"size": 120, "cuts": "mixed"}
    default_trials = 20
    instant = "first_after"

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        """Trial K: a kernel cut at step K % 7 + 1 for even K (cuts=steps: every K, with a
        checkpoint() after every unit, as powercut's), else a SIGKILL after a random delay;
        always after at least one committed checkpoint."""
        units, mode = _options(options)
        seed = trial_seed(self.name, campaign_seed, index)
        rng = random.Random(seed)
        step = index % STEPS + 1 if mode == "steps" or index % 2 == 0 else None
        every_ms, every_units = (50, 1) if mode == "steps" else checkpoint_period(rng, step)
        after = rng.randint(1, checkpoints_within(units, every_ms, every_units))
        if step is not None:
            cut = Cut("step", after, step)
        else:
            cut = Cut("kill", after, delay_ms=draw_kill(rng, 0).delay_ms)
        return self.params(index, seed, units, every_ms, every_units, [cut])

    def kernels(self) -> Tuple[Path, Path]:
        return paths.KERNEL_ELF, variant.build_b()

    def describe(self, options: dict) -> dict:
        out = super().describe(options)
        out["kernels"] = {"A": str(paths.KERNEL_ELF), "B": str(variant.build_b())}
        out["by_hand"] = ("ci/powercut-by-hand.py RESULT.json --trial K: boot 1 with kernel A, "
                          "the boots after the cut with kernel B")
        return out

    def also(self, boots: List[Boot], v: Verdict) -> Verdict:
        if v.verdict != "ok":
            return v
        after: List[str] = [line for b in boots[1:] for line in b.lines]
        why = []
        if not any(line.startswith(variant.BANNER) for line in after):
            why.append("build B did not boot after the cut")
        if not any(RESTORED.match(line) for line in after):
            why.append("build B restored no checkpoint (it booted clean)")
        if why:
            return Verdict("wrong", "; ".join(why), v.figures)
        return v


EXPERIMENT = Upgrade()
