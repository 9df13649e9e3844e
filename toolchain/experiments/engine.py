"""The experiment engine: a campaign is N trials of one experiment, each a pure function of
(build, experiment, options, campaign seed, index), run in parallel, sliced into shards,
merged back, and written as result.json + report.md + PNG plots (report.py).

Why trials are pure functions: a failing trial is only worth something if it can be run again
exactly (``--trial K``, and record/replay in rr.py). So every random choice of a trial is drawn
from its own seed, which derives from (experiment, campaign seed, index) alone, and the JSON
names the build (``build_id``) so that a rerun on another kernel is refused, not trusted.

Why shards by ``K % N``: a CI matrix or a batch scheduler spreads one campaign over machines
with nothing but ``--shard I/N``; interleaving keeps every shard's trials spread over the whole
seed range (a trial's cost does not depend on its index, but a workload's might drift with it).

The contract with rr.py and the experiment modules (issue 10) is the public names below:
TrialPlan, TrialResult, RR, Experiment, Campaign, Shard, build_id, trial_seed, run_campaign,
merge, load. Change them only with a commit message starting "engine change:".
"""
from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import json
import os
import random
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from .. import paths
from ..errors import RevenantError, UsageError

FORMAT = 1
VERDICTS = ("ok", "wrong", "late", "error")
FAILING = ("wrong", "error")            # "late": the trial tested nothing, which is no failure
KEEP = ("failing", "all", "none")
ARTIFACTS = "artifacts"                 # <campaign dir>/artifacts/trial-<K>/: one trial's files


# ------------------------------------------------------------------------ data model
@dataclass
class TrialPlan:
    """Everything a trial will do: every random choice, drawn from ``seed``, and the options
    it depends on (so a plan alone reruns it)."""

    index: int
    seed: int
    params: dict


@dataclass
class TrialResult:
    index: int
    seed: int
    params: dict
    verdict: str                        # "ok" | "wrong" | "late" | "error"
    figures: Dict[str, float] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0
    artifacts: Dict[str, str] = field(default_factory=dict)   # name -> path relative to the campaign dir

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING

    @classmethod
    def of_plan(cls, plan: TrialPlan, verdict: str = "error", **kw: Any) -> "TrialResult":
        return cls(plan.index, plan.seed, dict(plan.params), verdict, **kw)


@dataclass
class RR:
    """QEMU record/replay of one trial (rr.py turns it into ``-icount ...,rr=...,rrfile=...``)."""

    mode: str                           # "record" | "replay"
    file: Path


class Experiment(Protocol):
    """One module under toolchain/experiments/ and one registry entry (``__init__.py``)."""

    name: str
    about: str                          # one line for --help and the report
    defaults: Dict[str, Any]            # every option it takes (e.g. size, workload) -> default
    default_trials: int
    instant: Optional[str]              # the param plotted as "the instant" (None: the index)
    units: Dict[str, str]               # param or figure name -> unit, for the plots' axes

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        """A pure function: the same arguments give the same plan, on any machine."""
        ...

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        """Run one trial; its files go in ``workdir`` (kept or deleted by the engine). Raising
        is allowed: the engine records an ``error`` verdict with the exception's text."""
        ...

    def describe(self, options: dict) -> dict:
        """For the JSON, once per campaign: {"argv": QEMU argv template, "expected": final line}."""
        ...


@dataclass(frozen=True)
class Shard:
    index: int                          # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def picks(self, k: int) -> bool:
        return k % self.count == self.index - 1


@dataclass
class Campaign:
    """A campaign's result: what result.json holds (``to_json``/``from_json``)."""

    experiment: str
    seed: int
    trials: int                         # the whole campaign's N (a shard runs a slice of it)
    options: dict
    build: dict                         # {"id": sha256, "kernel": path}
    shard: Optional[Shard] = None
    only: Optional[int] = None          # --trial K: this one trial of the campaign
    argv: List[str] = field(default_factory=list)
    expected: str = ""
    setup: dict = field(default_factory=dict)  # the rest of describe(): how to repeat a trial by hand
    results: List[TrialResult] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)    # jobs, seconds, started: how, not what
    dir: str = ""                       # the campaign directory (not part of the identity)

    @property
    def ok(self) -> bool:
        return bool(self.results) and not any(r.failing for r in self.results)

    @property
    def json_path(self) -> Path:
        return Path(self.dir) / "result.json"

    def seed_range(self) -> str:
        ks = [r.index for r in self.results]
        return f"campaign seed {self.seed}, trials {min(ks)}..{max(ks)}" if ks else f"campaign seed {self.seed}"

    def to_json(self) -> dict:
        """A JSON-able copy (no dict shared with this campaign: editing it changes nothing here)."""
        return copy.deepcopy({"format": FORMAT, "experiment": self.experiment,
                "campaign": {"seed": self.seed, "trials": self.trials, "options": self.options,
                             "only": self.only},
                "build": self.build,
                "shard": None if self.shard is None else {"index": self.shard.index, "count": self.shard.count},
                "argv": self.argv, "expected": self.expected, "setup": self.setup,
                "trials": [asdict(r) for r in self.results],
                "summary": self.summary, "run": self.run})

    @classmethod
    def from_json(cls, data: dict, where: str = "") -> "Campaign":
        try:
            if data.get("format") != FORMAT:
                raise UsageError(f"{where}: not a campaign result of format {FORMAT} "
                                 f"(format {data.get('format')!r})")
            c = data["campaign"]
            shard = data.get("shard")
            return cls(experiment=str(data["experiment"]), seed=int(c["seed"]), trials=int(c["trials"]),
                       options=dict(c["options"]), build=dict(data["build"]),
                       shard=None if shard is None else Shard(int(shard["index"]), int(shard["count"])),
                       only=c.get("only"), argv=list(data.get("argv", [])),
                       expected=str(data.get("expected", "")), setup=dict(data.get("setup") or {}),
                       results=[_trial(t) for t in data["trials"]],
                       summary=dict(data.get("summary", {})), run=dict(data.get("run", {})),
                       dir=str(Path(where).parent) if where else "")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise UsageError(f"{where}: not a campaign result ({type(err).__name__}: {err})") from None


def _trial(t: dict) -> TrialResult:
    """One trial of a result file, its types checked: a file may come from anywhere."""
    r = TrialResult(**t)
    if not (isinstance(r.index, int) and r.index >= 0 and isinstance(r.seed, int)
            and isinstance(r.params, dict) and r.verdict in VERDICTS and isinstance(r.message, str)
            and isinstance(r.seconds, (int, float)) and isinstance(r.figures, dict)
            and all(isinstance(v, (int, float)) for v in r.figures.values())
            and isinstance(r.artifacts, dict) and all(isinstance(v, str) for v in r.artifacts.values())):
        raise ValueError(f"trial {t.get('index')!r} has a field of the wrong type or an unknown verdict")
    return r


def load(path: Path) -> Campaign:
    """A result.json (or the campaign directory holding one) as a Campaign; one clear line if not."""
    path, data = read_json(path, "campaign result")
    return Campaign.from_json(data, str(path))


def read_json(path: Path, what: str) -> tuple:
    """(path, the JSON object in it): a directory means its result.json; anything but a readable
    JSON object is one clear line naming ``what`` was expected."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a JSON {what} ({err})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a {what} (a JSON {type(data).__name__})")
    return path, data


# ------------------------------------------------------------------------ identity
def build_id(kernel: Optional[Path] = None, user_dir: Optional[Path] = None) -> str:
    """sha256 over the kernel image and every user program binary (name and bytes), so two
    builds that would run a trial differently never share an id."""
    from ..userbuild import OUT_DIR

    kernel = Path(kernel or paths.KERNEL_ELF)
    h = hashlib.sha256()
    try:
        h.update(b"kernel\0" + kernel.read_bytes())
    except FileNotFoundError:
        raise RevenantError(f"no kernel image at {kernel}: run `invoke build` first") from None
    for prog in sorted(Path(user_dir or OUT_DIR).glob("*.elf")):
        h.update(prog.name.encode() + b"\0" + prog.read_bytes())
    return h.hexdigest()


def trial_seed(experiment: str, campaign_seed: int, index: int) -> int:
    """Trial ``index``'s seed: a pure function of the experiment, the campaign seed and the index."""
    return random.Random(f"{experiment}/{campaign_seed}/{index}").getrandbits(32)


def parse_shard(text: str) -> Optional[Shard]:
    """``--shard I/N`` (1 <= I <= N) or None for an empty value."""
    raw = str(text).strip()
    if not raw:
        return None
    i, sep, n = raw.partition("/")
    if not (sep and i.strip().isdigit() and n.strip().isdigit()):
        raise UsageError(f"--shard takes I/N (shard I of N, e.g. 1/4), not {raw!r}")
    shard = Shard(int(i), int(n))
    if not 1 <= shard.index <= shard.count:
        raise UsageError(f"--shard {raw}: I must be from 1 to N")
    return shard


def indices(trials: int, shard: Optional[Shard] = None, only: Optional[int] = None) -> List[int]:
    """The trial indices a run executes: all, a shard's slice (K % N == I - 1), or one."""
    if only is not None:
        return [only]
    return [k for k in range(trials) if shard is None or shard.picks(k)]


def check_options(exp: Experiment, given: Dict[str, Any]) -> dict:
    """The experiment's defaults overridden by what was given; an option it lacks is refused."""
    unknown = sorted(k for k, v in given.items() if v is not None and k not in exp.defaults)
    if unknown:
        takes = ", ".join(f"--{k}" for k in exp.defaults) or "no options of its own"
        raise UsageError(f"experiment {exp.name} does not take {', '.join('--' + k for k in unknown)} "
                         f"(it takes {takes})")
    return {k: (given[k] if given.get(k) is not None else v) for k, v in exp.defaults.items()}


# ------------------------------------------------------------------------ running
RRFor = Callable[[TrialPlan, Path], Optional[RR]]     # (plan, the trial's workdir) -> its record/replay


def run_trial(exp: Experiment, plan: TrialPlan, campaign_dir: Path, keep: str,
              rr_for: Optional[RRFor] = None) -> TrialResult:
    """One trial in its own directory; never raises; applies the keep policy to its files.
    ``rr_for`` (rr.py) gives the trial its RR, e.g. RR("record", workdir / "trial.rr"); the
    experiment names the rr file among its artifacts."""
    workdir = campaign_dir / ARTIFACTS / f"trial-{plan.index}"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        result = exp.run(plan, workdir, rr_for(plan, workdir) if rr_for else None)
    except RevenantError as err:
        result = TrialResult.of_plan(plan, "error", message=err.summary)
    except Exception as err:            # a QMP library error or the like: one trial, not the campaign
        result = TrialResult.of_plan(plan, "error", message=f"{type(err).__name__}: {err}")
    if result.verdict not in VERDICTS:
        result.message = f"unknown verdict {result.verdict!r}; {result.message}"
        result.verdict = "error"
    result.seconds = round(time.monotonic() - t0, 3)
    if keep == "none" or (keep == "failing" and not result.failing):
        shutil.rmtree(workdir, ignore_errors=True)
        result.artifacts = {}
    else:
        result.artifacts = {name: _relative(p, campaign_dir) for name, p in result.artifacts.items()
                            if (campaign_dir / _relative(p, campaign_dir)).exists()}
    return result


def _relative(path: str, base: Path) -> str:
    p = Path(path)
    try:
        return str(p.relative_to(base)) if p.is_absolute() else str(p)
    except ValueError:
        return str(p)


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def summarize(results: Sequence[TrialResult]) -> dict:
    """Counts per verdict, and for every figure its n, min, median, max and total."""
    out: dict = {"counts": {v: sum(1 for r in results if r.verdict == v) for v in VERDICTS},
                 "seconds_total": round(sum(r.seconds for r in results), 3), "figures": {}}
    names = sorted({k for r in results for k, v in r.figures.items() if _is_number(v)})
    for name in names:
        xs = sorted(float(r.figures[name]) for r in results if _is_number(r.figures.get(name)))
        out["figures"][name] = {"n": len(xs), "min": xs[0], "median": xs[len(xs) // 2], "max": xs[-1],
                                "total": sum(xs)}
    return out


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def campaign_dir(name: str, out_root: Optional[Path] = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{int(time.time() * 1000) % 1000:03d}"
    d = Path(out_root or paths.BUILD / "experiments") / f"{name}-{stamp}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_campaign(exp: Experiment, *, seed: int = 1, trials: Optional[int] = None,
                 options: Optional[dict] = None, jobs: int = 0, shard: Optional[Shard] = None,
                 keep: str = "failing", only: Optional[int] = None, out_root: Optional[Path] = None,
                 kernel: Optional[Path] = None, progress: Optional[bool] = None,
                 report: bool = True, rr_for: Optional[RRFor] = None) -> Campaign:
    """Run (a slice of) a campaign and write its result.json, report.md and plots."""
    from . import progress as bar

    camp = _new_campaign(exp, seed, exp.default_trials if trials is None else trials, options or {},
                         shard, keep, only, kernel)
    out = campaign_dir(exp.name, out_root)
    camp.dir = str(out)
    plans = [exp.plan(seed, k, camp.options) for k in indices(camp.trials, shard, only)]
    jobs = min(jobs or default_jobs(), max(1, len(plans)))     # what really runs at once
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S"), time.monotonic()
    results: List[TrialResult] = []
    lock = threading.Lock()
    with bar.Progress(f"{exp.name}", len(plans), enabled=progress) as shown:
        def one(plan: TrialPlan) -> TrialResult:
            r = run_trial(exp, plan, out, keep, rr_for)
            with lock:
                results.append(r)
                shown.advance(r)
            return r

        _run_all(one, plans, jobs)
    camp.results = sorted(results, key=lambda r: r.index)
    camp.summary = summarize(camp.results)
    seconds = round(time.monotonic() - t0, 3)
    camp.run = {"jobs": jobs, "seconds": seconds, "started": started,
                "trials_per_minute": round(len(results) * 60 / seconds, 1) if seconds else 0.0}
    _prune_empty(out / ARTIFACTS)
    write(camp, report=report)
    return camp


def _new_campaign(exp: Experiment, seed: int, n: int, options: dict, shard: Optional[Shard], keep: str,
                  only: Optional[int], kernel: Optional[Path]) -> Campaign:
    """The campaign's identity, every argument checked, and the experiment's description (for
    loadvm a reference boot: before the campaign directory, so a failing one leaves none)."""
    if n < 1:
        raise UsageError(f"--trials takes a whole number of at least 1, not {n}")
    if keep not in KEEP:
        raise UsageError(f"--keep takes {', '.join(KEEP)}, not {keep!r}")
    if only is not None and shard is not None:
        raise UsageError("--trial K runs one trial: it takes no --shard")
    if only is not None and only < 0:
        raise UsageError(f"--trial takes a whole number of at least 0, not {only}")
    opts = check_options(exp, options)
    camp = Campaign(exp.name, seed, max(n, only + 1) if only is not None else n, opts,
                    {"id": build_id(kernel), "kernel": str(kernel or paths.KERNEL_ELF)}, shard, only)
    described = exp.describe(opts)
    camp.argv, camp.expected = list(described.get("argv", [])), str(described.get("expected", ""))
    camp.setup = {k: v for k, v in described.items() if k not in ("argv", "expected")}
    return camp


def _run_all(one: Callable[[TrialPlan], TrialResult], plans: List[TrialPlan], jobs: int) -> None:
    """Every plan through ``one``, ``jobs`` at a time. Interrupted (Ctrl-C), the trials not
    started are dropped and the running ones' QEMUs killed, instead of waiting for them."""
    if jobs == 1 or len(plans) <= 1:
        for p in plans:
            one(p)
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        list(pool.map(one, plans))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        from ..machine import kill_all
        kill_all()
        raise
    pool.shutdown()


def _prune_empty(d: Path) -> None:
    try:
        d.rmdir()                       # only if no trial kept anything
    except OSError:
        pass


def write(camp: Campaign, report: bool = True) -> Path:
    """result.json, and (report=True) report.md and the plots, in the campaign directory."""
    out = Path(camp.dir)
    out.mkdir(parents=True, exist_ok=True)
    camp.json_path.write_text(json.dumps(camp.to_json(), indent=2) + "\n")
    if report:
        from . import report as reports
        reports.write_reports(camp)
    return camp.json_path


# ------------------------------------------------------------------------ merge
def merge(parts: Sequence[Campaign], out_dir: Optional[Path] = None, report: bool = True) -> Campaign:
    """One campaign from its shards; refuses (one clear line) anything that is not exactly the
    shards of one campaign of one build."""
    if len(parts) < 2:
        raise UsageError("merge takes at least two shard results")
    first = parts[0]
    for p in parts[1:]:
        for what, a, b in (("experiments", first.experiment, p.experiment),
                           ("build ids", first.build.get("id"), p.build.get("id")),
                           ("campaign seeds", first.seed, p.seed),
                           ("campaign sizes (--trials)", first.trials, p.trials),
                           ("options", first.options, p.options)):
            if a != b:
                raise UsageError(f"merge: different {what}: {a} in {_where(first)} vs {b} in {_where(p)}")
    for p in parts:
        if p.shard is None or p.only is not None:
            raise UsageError(f"merge: {_where(p)} is not a shard (it ran "
                             f"{'one trial' if p.only is not None else 'the whole campaign'})")
    counts = {p.shard.count for p in parts if p.shard}
    if len(counts) != 1:
        raise UsageError(f"merge: shards of different splits ({', '.join(str(p.shard) for p in parts)})")
    count = counts.pop()
    seen: Dict[int, Campaign] = {}
    for p in parts:
        assert p.shard is not None
        if p.shard.index in seen:
            raise UsageError(f"merge: shard {p.shard} given twice ({_where(seen[p.shard.index])}, {_where(p)})")
        seen[p.shard.index] = p
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise UsageError(f"merge: incomplete: shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing")
    results = sorted((r for p in parts for r in p.results), key=lambda r: r.index)
    got = [r.index for r in results]
    if got != list(range(first.trials)):
        raise UsageError(f"merge: the shards' trials are not exactly 0..{first.trials - 1} "
                         f"(got {len(got)} trials, {len(set(got))} distinct)")
    merged = Campaign(first.experiment, first.seed, first.trials, first.options, first.build, None, None,
                      first.argv, first.expected, first.setup, results, summarize(results),
                      {"merged_from": [str(p.json_path) for p in parts],
                       "seconds": round(sum(float(p.run.get("seconds", 0)) for p in parts), 3)})
    if out_dir is None:
        out_dir = campaign_dir(f"{first.experiment}-merged")
    merged.dir = str(out_dir)
    for p in parts:                     # kept artifacts stay where they are: point at them
        for r in p.results:
            r.artifacts = {k: os.path.relpath(Path(p.dir) / v, out_dir) for k, v in r.artifacts.items()}
    write(merged, report=report)
    return merged


def _where(c: Campaign) -> str:
    return str(c.json_path) if c.dir else c.experiment


__all__ = ["TrialPlan", "TrialResult", "RR", "RRFor", "Experiment", "Campaign", "Shard", "build_id", "trial_seed",
           "parse_shard", "indices", "check_options", "run_trial", "run_campaign", "merge", "load", "write",
           "summarize", "default_jobs", "read_json", "FAILING", "VERDICTS", "KEEP"]
