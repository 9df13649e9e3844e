"""`invoke experiment ...` and `invoke report ...` behind tasks.py: every option checked (one
clear line) before anything is built or booted.

    invoke experiment NAME [--trials N --seed S --jobs J --shard I/N --keep failing|all|none
                            --size N --workload W --trial K]
    invoke experiment merge A.json B.json ... [--out DIR]
    invoke experiment replay RESULT.json --trial K      (rr.py: record/replay, issue 10 rr branch)
    invoke experiment bisect RESULT.json --trial K      (rr.py)
    invoke report RESULT.json|BENCH.json [--out DIR]

SUBCOMMANDS are the words that are not experiments. replay and bisect call ``rr.replay`` /
``rr.bisect`` (``(result: Path, trial: int) -> object with .render() and .ok``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..cli import number
from ..errors import UsageError
from . import engine, get, names

SUBCOMMANDS = ("merge", "replay", "bisect")


@dataclass
class Outcome:
    text: str
    ok: bool


@dataclass
class Command:
    """A checked command line: ``needs_build`` before ``run()``."""

    needs_build: bool
    run: Callable[[], Outcome]


@dataclass
class Given:
    """The task's options as typed ("" = not given)."""

    size: str = ""
    workload: str = ""
    trials: str = ""
    seed: str = ""
    jobs: str = ""
    shard: str = ""
    keep: str = ""
    trial: str = ""
    out: str = ""
    progress: Optional[bool] = None
    extra: Dict[str, str] = field(default_factory=dict)

    def set(self) -> List[str]:
        return [f"--{k}" for k in ("size", "workload", "trials", "seed", "jobs", "shard", "keep", "trial", "out")
                if str(getattr(self, k)).strip()]


def _whole(option: str, text: str, minimum: int) -> Optional[int]:
    return int(number(option, text, integer=True, minimum=minimum)) if str(text).strip() else None


def parse(name: str, words: List[str], given: Given) -> Command:
    """The command for `invoke experiment NAME [WORDS...] [options]`."""
    if name == "merge":
        return _merge(words, given)
    if name in ("replay", "bisect"):
        return _rr(name, words, given)
    exp = get(name)                     # unknown names: one line listing the choices
    if words:
        raise UsageError(f"experiment {name} takes no file arguments (got {' '.join(words)}); "
                         f"merge, replay and bisect do")
    if given.out:
        raise UsageError("--out is for merge and report; a campaign writes build/experiments/<name>-<stamp>/")
    options: Dict[str, object] = {}
    if given.size.strip():
        options["size"] = _whole("--size", given.size, 1)
    if given.workload.strip():
        options["workload"] = given.workload.strip()
    opts = engine.check_options(exp, options)
    if "workload" in opts:
        from .loadvm import workload
        workload(str(opts["workload"]))
    seed = _whole("--seed", given.seed, 0)
    trials = _whole("--trials", given.trials, 1)
    jobs = _whole("--jobs", given.jobs, 1)
    only = _whole("--trial", given.trial, 0)
    shard = engine.parse_shard(given.shard)
    keep = given.keep.strip() or "failing"
    if keep not in engine.KEEP:
        raise UsageError(f"--keep takes {', '.join(engine.KEEP)}, not {keep!r}")
    if only is not None and shard is not None:
        raise UsageError("--trial K runs one trial: it takes no --shard")

    def run() -> Outcome:
        from .report import render
        camp = engine.run_campaign(exp, seed=1 if seed is None else seed, trials=trials, options=opts,
                                   jobs=jobs or 0, shard=shard, keep=keep, only=only, progress=given.progress)
        return Outcome(render(camp), camp.ok)

    return Command(True, run)


def _merge(words: List[str], given: Given) -> Command:
    stray = [o for o in given.set() if o != "--out"]
    if stray:
        raise UsageError(f"experiment merge takes only result files and --out, not {', '.join(stray)}")
    if len(words) < 2:
        raise UsageError("experiment merge takes at least two shard results: merge A.json B.json ... [--out DIR]")

    def run() -> Outcome:
        from .report import render
        merged = engine.merge([engine.load(Path(w)) for w in words], Path(given.out) if given.out else None)
        return Outcome(render(merged), merged.ok)

    return Command(False, run)


def _rr(name: str, words: List[str], given: Given) -> Command:
    stray = [o for o in given.set() if o not in ("--trial",)]
    if stray:
        raise UsageError(f"experiment {name} takes RESULT.json and --trial K, not {', '.join(stray)}")
    if len(words) != 1:
        raise UsageError(f"experiment {name} takes one RESULT.json (got {len(words)})")
    k = _whole("--trial", given.trial, 0)
    if k is None:
        raise UsageError(f"experiment {name} needs --trial K (the trial to {name})")
    try:
        rr = importlib.import_module(".rr", __package__)
    except ModuleNotFoundError:
        raise UsageError(f"experiment {name} needs toolchain/experiments/rr.py (record/replay), "
                         f"not in this tree") from None

    def run() -> Outcome:
        result = getattr(rr, name)(Path(words[0]), trial=k)
        return Outcome(result.render(), bool(result.ok))

    return Command(True, run)


def report(path: str, out: str = "") -> Outcome:
    from .report import redraw
    return Outcome(redraw(Path(path), Path(out) if out else None).render(), True)


def choices() -> str:
    return " | ".join([*names(), *SUBCOMMANDS])


__all__ = ["parse", "report", "Given", "Command", "Outcome", "SUBCOMMANDS", "choices"]
