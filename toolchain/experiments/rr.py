"""Record/replay of a campaign's trials (QEMU 7.2 ``-icount ...,rr=record|replay,rrfile=F``),
`invoke experiment replay RESULT.json --trial K` and `invoke experiment bisect RESULT.json
--trial K`.

- ``rr_args(rr, shift)``: the ``-icount`` arguments of a trial: ``shift=N,sleep=off`` always
  (``sleep=off``: an idle guest's clock jumps to its next timer instead of following the host's,
  so a run is a pure function of its command line even without a recording: measured, docs/
  toolkit.md), plus ``rr=...,rrfile=F`` under record/replay.
- ``recorder(exp)``: the engine's ``rr_for`` for a campaign (``record_into`` for experiments
  with ``recordable = True``): each trial records into ``<its workdir>/trial.rr``, which the
  experiment lists among its artifacts, kept with its serial log for a failing trial (or every
  trial with ``--keep all``) and deleted otherwise.
- ``replay``: the trial again from its recording; its serial log must equal the kept one byte
  for byte (and QEMU's exit status the recorded one).
- ``bisect``: for an experiment whose instant is guest time (``bisectable``), the first failing
  instant after the nearest passing one, by running the trial at instants in between
  (bisect.py); JSON in the campaign directory.

Both refuse, in one line, a result of another build (naming both ids), a trial the campaign
does not have, and a trial whose artifacts are gone.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ..errors import BootTimeout, RevenantError, UsageError
from . import bisect as bisection
from .engine import RR, Campaign, TrialPlan, TrialResult, build_id, load

RR_FILE = "trial.rr"


def rr_args(rr: Optional[RR], shift: int = 0) -> List[str]:
    """``-icount shift=N,sleep=off[,rr=MODE,rrfile=F]`` (commas in F doubled, QEMU's escape)."""
    opts = f"shift={shift},sleep=off"
    if rr is not None:
        if rr.mode not in ("record", "replay"):
            raise ValueError(f"rr mode must be record or replay, not {rr.mode!r}")
        opts += f",rr={rr.mode},rrfile={str(rr.file).replace(',', ',,')}"
    return ["-icount", opts]


def record_into(plan: TrialPlan, workdir: Path) -> RR:
    """The engine's ``rr_for``: every trial records into its own directory."""
    return RR("record", Path(workdir) / RR_FILE)


def recorder(exp: object) -> Optional[Callable[[TrialPlan, Path], Optional[RR]]]:
    """``rr_for`` for a campaign of ``exp``: ``record_into`` if its trials can be recorded
    (``recordable``; loadvm cannot: QEMU 7.2 hangs on a snapshot-load while recording), else None."""
    return record_into if getattr(exp, "recordable", False) else None


# ------------------------------------------------------------------ what both commands check
@dataclass
class Chosen:
    camp: Campaign
    trial: TrialResult
    exp: object


def choose(result: Path, trial: int, kernel: Optional[Path] = None) -> Chosen:
    """The campaign and trial K, refused in one line if they cannot be run again here."""
    from . import get

    camp = load(result)
    exp = get(camp.experiment)
    here = build_id(kernel)
    there = str(camp.build.get("id", ""))
    if here != there:
        raise UsageError(f"{camp.json_path}: recorded on build {there[:16]}, this is build {here[:16]}: "
                         f"a trial replays only on the build that ran it")
    found = [t for t in camp.results if t.index == trial]
    if not found:
        have = sorted(t.index for t in camp.results)
        span = f"{have[0]}..{have[-1]}" if have else "none"
        raise UsageError(f"{camp.json_path}: no trial {trial} (this result has trials {span})")
    check_plan(camp, found[0], exp)
    return Chosen(camp, found[0], exp)


def check_plan(camp: Campaign, t: TrialResult, exp: object) -> None:
    """A trial is a pure function of (campaign seed, index, options): what the JSON says it ran
    must be what the experiment plans for them, or the JSON was edited (or the toolkit changed),
    and nothing from it reaches a QEMU command line."""
    try:
        planned = exp.plan(camp.seed, t.index, camp.options)  # type: ignore[attr-defined]
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{camp.json_path}: its options {camp.options} make no plan for experiment "
                         f"{camp.experiment} ({type(err).__name__}: {err})") from None
    if (planned.seed, planned.params) != (t.seed, t.params):
        raise UsageError(f"{camp.json_path}: trial {t.index} says it ran seed {t.seed} with {t.params}, but "
                         f"the experiment plans seed {planned.seed} with {planned.params}: an edited result, "
                         f"or another version of the toolkit")


def artifact(chosen: Chosen, name: str, what: str) -> Path:
    """A kept artifact of the chosen trial, or one line saying why there is none."""
    t, camp = chosen.trial, chosen.camp
    rel = t.artifacts.get(name)
    if rel is None:
        kept = "it passed, and only failing trials keep theirs (run with --keep all to keep every one)" \
            if not t.failing else "it was not recorded"
        raise UsageError(f"trial {t.index} of {camp.json_path} has no {what}: {kept}")
    base = Path(camp.dir).resolve()
    path = (base / rel).resolve()
    if base not in path.parents:
        raise UsageError(f"trial {t.index} of {camp.json_path}: its {what} {rel!r} is outside the campaign "
                         f"directory")
    if not path.is_file():
        raise UsageError(f"trial {t.index} of {camp.json_path}: its {what} {path} is gone")
    return path


def plan_of(t: TrialResult) -> TrialPlan:
    return TrialPlan(t.index, t.seed, dict(t.params))


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"


# ------------------------------------------------------------------------------- replay
@dataclass
class ReplayResult:
    experiment: str
    trial: int
    seed: int
    verdict_recorded: str
    verdict_replayed: str
    identical: bool
    recorded_log: str
    replayed_log: str
    recorded_bytes: int
    replayed_bytes: int
    first_difference: str = ""
    qemu_error: str = ""                # QEMU's own complaint about the recording, if any
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.identical

    def render(self) -> str:
        head = (f"replay {self.experiment} trial {self.trial} (seed {self.seed}): "
                f"{'IDENTICAL' if self.identical else 'DIFFERENT'} serial log "
                f"({self.replayed_bytes} of {self.recorded_bytes} bytes) in {self.seconds:.1f} s")
        lines = [head, f"  verdict: recorded {self.verdict_recorded}, replayed {self.verdict_replayed}",
                 f"  recorded: {self.recorded_log}", f"  replayed: {self.replayed_log}"]
        if self.first_difference:
            lines.append(f"  first difference: {self.first_difference}")
        if self.qemu_error:
            lines.append(f"  QEMU: {self.qemu_error}")
        return "\n".join(lines)


def first_difference(a: bytes, b: bytes) -> str:
    """Where two logs part: the line number and both lines."""
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb), 1):
        if x != y:
            return f"line {i}: recorded {x[:120]!r}, replayed {y[:120]!r}"
    shorter = "replayed" if len(lb) < len(la) else "recorded"
    return f"the {shorter} log ends after line {min(len(la), len(lb))}"


def replay(result: Path, trial: int, kernel: Optional[Path] = None) -> ReplayResult:
    """Trial ``trial`` of ``result`` replayed from its recording; compared byte for byte."""
    chosen = choose(result, trial, kernel)
    rrfile = artifact(chosen, "rr", "record/replay file")
    recorded = artifact(chosen, "serial", "serial log")
    out = Path(chosen.camp.dir) / "replays" / f"trial-{trial}-{_stamp()}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        r = chosen.exp.run(plan_of(chosen.trial), out, RR("replay", rrfile))  # type: ignore[attr-defined]
    except BootTimeout as err:
        # QEMU replaying a recording the run no longer fits waits forever for the next event.
        raise RevenantError(f"the replay stalled ({err.summary}): QEMU waits for an event its recording "
                            f"does not have, so the run diverged from the recorded one; replay in {out}") from None
    seconds = round(time.monotonic() - t0, 3)
    replayed = Path(r.artifacts["serial"])
    a, b = recorded.read_bytes(), replayed.read_bytes()
    return ReplayResult(chosen.camp.experiment, trial, chosen.trial.seed, chosen.trial.verdict, r.verdict,
                        a == b, str(recorded), str(replayed), len(a), len(b),
                        "" if a == b else first_difference(a, b), qemu_complaint(replayed), seconds)


def qemu_complaint(log: Path) -> str:
    """The first line QEMU wrote to its stderr during the run of ``log`` (Machine keeps it beside)."""
    try:
        text = log.with_suffix(".stderr").read_text(errors="replace")
    except OSError:
        return ""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# ------------------------------------------------------------------------------- bisect
@dataclass
class BisectResult:
    experiment: str
    trial: int
    param: str
    start: List[int]                    # [passing, failing] the search began with
    passing: int
    failing: int
    steps: int
    seconds: float
    probes: List[dict] = field(default_factory=list)
    json_path: str = ""
    ok: bool = True

    def render(self) -> str:
        return "\n".join([
            f"bisect {self.experiment} trial {self.trial}: {self.param}={self.passing} passes, "
            f"{self.param}={self.failing} fails ({self.steps} runs, {self.seconds:.1f} s)",
            f"  searched between {self.start[0]} (passing) and {self.start[1]} (failing)",
            f"  json: {self.json_path}"])


def start_pair(chosen: Chosen) -> tuple:
    """(a passing instant, the failing trial's instant): the nearest passing trial below it in
    the campaign, or the lower end of the experiment's window."""
    exp, camp, t = chosen.exp, chosen.camp, chosen.trial
    param = getattr(exp, "instant", None)
    if not getattr(exp, "bisectable", False) or not param:
        raise UsageError(f"experiment {camp.experiment} cannot be bisected: its trials' instants are not "
                         f"guest time (bisect works on experiment instant)")
    if not t.failing:
        raise UsageError(f"trial {t.index} of {camp.json_path} did not fail ({t.verdict}): nothing to bisect")
    hi = int(t.params[param])
    below = [int(r.params[param]) for r in camp.results if r.verdict == "ok" and int(r.params[param]) < hi]
    lo = max(below) if below else int(camp.setup.get("window_ns", [0])[0])
    if lo >= hi:
        raise UsageError(f"trial {t.index} fails at {param}={hi}, at the start of the window: no passing "
                         f"instant below it to bisect from")
    return param, lo, hi


def bisect(result: Path, trial: int, kernel: Optional[Path] = None) -> BisectResult:
    """The first failing instant after the nearest passing one, for trial ``trial``."""
    chosen = choose(result, trial, kernel)
    param, lo, hi = start_pair(chosen)
    plan = plan_of(chosen.trial)
    work = Path(chosen.camp.dir) / f"bisect-trial-{trial}-{_stamp()}"

    def run(ns: int) -> bisection.Probe:
        d = work / f"{param}-{ns}"
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        r = chosen.exp.run(TrialPlan(plan.index, plan.seed, {**plan.params, param: ns}), d, None)  # type: ignore[attr-defined]
        if r.verdict == "error" or (r.verdict == "late" and ns < hi):
            raise RevenantError(f"bisect: the run at {param}={ns} gave {r.verdict}: {r.message}")
        taken, not_due = r.figures.get("taken_ns"), r.figures.get("not_due_ns")
        return bisection.Probe(ns, r.failing, None if taken is None else int(taken),
                               None if not_due is None else int(not_due), r.verdict,
                               round(time.monotonic() - t0, 3))

    t0 = time.monotonic()
    try:
        found = bisection.search(lo, hi, run)
    except bisection.Contradiction as err:
        must = "fail, as the campaign recorded" if err.expected_failing else "pass, to start from"
        raise RevenantError(f"bisect: {param}={err.probe.ns} {'failed' if err.probe.failing else 'passed'} "
                            f"when run again, but it must {must}: the trial is not a pure function of its "
                            f"instant; runs in {work}") from None
    out = BisectResult(chosen.camp.experiment, trial, param, [lo, hi], found.passing, found.failing,
                       found.steps, round(time.monotonic() - t0, 3), [asdict(p) for p in found.probes])
    for d in work.iterdir():            # keep the two runs that make the boundary
        if d.name not in (f"{param}-{found.passing}", f"{param}-{found.failing}"):
            shutil.rmtree(d, ignore_errors=True)
    out.json_path = str(work / "bisect.json")
    Path(out.json_path).write_text(json.dumps(asdict(out), indent=2) + "\n")
    return out


__all__ = ["rr_args", "record_into", "recorder", "replay", "bisect", "ReplayResult", "BisectResult", "RR_FILE"]
