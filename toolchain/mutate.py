"""`invoke mutate`: does the suite notice a realistic bug?

A *mutant* is one small bug kept as a patch in ``tests/mutants/<area>-<what>.patch``:
header lines, then a unified diff against the tree (``git diff`` output)::

    # Dispatcher forgets the rewind: a blocked call returns -ERESTART to the program.
    # tests: tests/test_userland.py tests/test_kernel_ktap.py
    # equivalent: why no test can ever tell it from the real code (only if so)
    --- a/kernel/syscall.c
    +++ b/kernel/syscall.c
    @@ ...

The first ``#`` line says what the bug is.  ``tests:`` (optional) names the pytest
arguments that should kill it, for speed; without it the whole suite runs.  A mutant
that survives its named tests is run once more against the whole suite before it is
called a survivor (``--quick`` skips that).  ``equivalent:`` marks a mutant no test
can kill, with the reason; it does not count against the score.

Each mutant is applied, alone, to a scratch copy of the tree (the files git tracks or
would track: no ``build/``, ``.venv/``, ``.git``), which has its own ``build/`` (so its
kernel, user programs and logs are built from the mutated sources) and imports its own
``toolchain`` (``PYTHONPATH`` puts the copy first, ahead of the editable install's
finder; checked before anything runs).  Then ``pytest -x`` runs there; the mutant is
*killed* if a test fails.  Tests that already fail on the unmutated copy (the
baseline run) are deselected, so only a test that passes without the bug can kill it.

The result goes to ``build/mutate.json``; any survivor not marked equivalent makes
the task fail.
"""
from __future__ import annotations

import concurrent.futures
import fnmatch
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from .errors import RevenantError
from .paths import BUILD, ROOT

MUTANTS_DIR = ROOT / "tests" / "mutants"
REPORT = BUILD / "mutate.json"
FAILURES_ENV = "REVENANT_MUTATE_FAILURES"       # where the pytest hooks below record failures
_KEYS = ("tests", "equivalent")
_SKIP_DIRS = {".git", ".venv", "build", "__pycache__", ".pytest_cache"}


class MutantError(RevenantError):
    """A catalogue entry that cannot be used: bad header, patch that does not apply, ..."""


# ---------------------------------------------------------------------------
# The catalogue (pure)


@dataclass(frozen=True)
class Mutant:
    name: str                       # the file name without .patch: <area>-<what>
    path: Path
    what: str                       # the first header line
    patch: str                      # the diff, header stripped
    files: tuple[str, ...]          # the files the patch changes
    tests: tuple[str, ...] = ()     # pytest arguments that should kill it; () = the whole suite
    equivalent: str = ""            # why no test can kill it ('' = it must be killed)

    @property
    def area(self) -> str:
        return self.name.split("-", 1)[0]


_FILE_HEADER = re.compile(r"^\+\+\+ b/(\S+)", re.M)


def parse_mutant(path: Path, text: Optional[str] = None) -> Mutant:
    """One catalogue entry; MutantError (one line) if it is malformed."""
    path = Path(path)
    text = path.read_text() if text is None else text
    lines = text.splitlines(keepends=True)
    header, body_start = [], len(lines)
    for i, line in enumerate(lines):
        if line.startswith("#"):
            header.append(line[1:].strip())
            continue
        if line.strip() and not line.startswith(("--- ", "diff ")):
            raise MutantError(f"{_rel(path)}:{i + 1}: expected '# ...' header lines, then the diff")
        if line.strip():
            body_start = i
            break
    patch = "".join(lines[body_start:])
    files = tuple(_FILE_HEADER.findall(patch))
    if not files or "\n@@ " not in "\n" + patch:
        raise MutantError(f"{_rel(path)}: no diff (a '--- a/FILE', '+++ b/FILE', '@@' hunk) after the header")
    if not header or header[0].partition(":")[0].strip().lower() in _KEYS:
        raise MutantError(f"{_rel(path)}: the first line must say what the bug is ('# <description>')")
    values: dict[str, str] = {}
    for line in header[1:]:
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in _KEYS:
            raise MutantError(f"{_rel(path)}: unknown header line '# {line}' (known: "
                              + ", ".join(f"'# {k}: ...'" for k in _KEYS) + ")")
        if not value.strip():
            raise MutantError(f"{_rel(path)}: '# {key}:' needs a value")
        values[key] = value.strip()
    return Mutant(name=path.name[:-len(".patch")] if path.name.endswith(".patch") else path.stem,
                  path=path, what=header[0], patch=patch, files=files,
                  tests=tuple(values.get("tests", "").split()), equivalent=values.get("equivalent", ""))


def load_catalogue(directory: Path = MUTANTS_DIR) -> list[Mutant]:
    directory = Path(directory)
    if not directory.is_dir():
        raise MutantError(f"no mutant catalogue at {_rel(directory)}")
    mutants = [parse_mutant(p) for p in sorted(directory.glob("*.patch"))]
    if not mutants:
        raise MutantError(f"no mutants (*.patch) in {_rel(directory)}")
    return mutants


def select(mutants: Sequence[Mutant], only: str = "") -> list[Mutant]:
    """The mutants matching ``only``: comma-separated globs on the name; a word without
    wildcards is an area (``vm`` = ``vm-*``) or a whole name."""
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    if not patterns:
        return list(mutants)
    chosen, unmatched = [], []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = [m for m in mutants if fnmatch.fnmatchcase(m.name, pattern)]
        else:
            hits = [m for m in mutants if m.name == pattern or m.area == pattern]
        if not hits:
            unmatched.append(pattern)
        chosen += [m for m in hits if m not in chosen]
    if unmatched:
        areas = sorted({m.area for m in mutants})
        raise MutantError(f"no mutant matches {', '.join(repr(p) for p in unmatched)} "
                          f"(areas: {', '.join(areas)}; or a glob on the names, see --list)")
    return [m for m in mutants if m in chosen]        # catalogue order


# ---------------------------------------------------------------------------
# Outcomes and the report (pure)


@dataclass
class Outcome:
    name: str
    status: str                     # killed | survived | equivalent
    what: str = ""
    seconds: float = 0.0
    killer: str = ""                # the first failing test (or 'timeout ...')
    ran: str = ""                   # named | full | named+full
    note: str = ""
    flaky: list[str] = field(default_factory=list)   # failures that did not reproduce alone

    @property
    def survived(self) -> bool:
        return self.status == "survived"


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    baseline_failures: list[str] = field(default_factory=list)
    baseline_seconds: float = 0.0
    seconds: float = 0.0
    jobs: int = 1
    tree: str = ""

    def counts(self) -> dict[str, int]:
        out = {"total": len(self.outcomes), "killed": 0, "survived": 0, "equivalent": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out

    @property
    def score(self) -> float:
        """Killed over the mutants that can be killed (equivalent ones left out), in percent."""
        c = self.counts()
        judged = c["killed"] + c["survived"]
        return 100.0 * c["killed"] / judged if judged else 100.0

    @property
    def survivors(self) -> list[str]:
        return [o.name for o in self.outcomes if o.survived]

    def to_json(self) -> dict:
        return {"tree": self.tree, "jobs": self.jobs, "seconds": round(self.seconds, 1),
                "baseline": {"seconds": round(self.baseline_seconds, 1),
                             "failures_deselected": self.baseline_failures},
                "counts": self.counts(), "score": round(self.score, 1), "survivors": self.survivors,
                "mutants": [asdict(o) | {"seconds": round(o.seconds, 1)} for o in self.outcomes]}

    def write(self, path: Path = REPORT) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def summary(self) -> str:
        c = self.counts()
        text = (f"score: {c['killed']}/{c['killed'] + c['survived']} killed ({self.score:.1f} %), "
                f"{c['equivalent']} equivalent, {c['total']} mutants in {self.seconds:.0f} s")
        if self.survivors:
            text += "\nsurvivors: " + ", ".join(self.survivors)
        return text


_RAN = {"named": "its named tests", "full": "the whole suite", "named+full": "named tests, then the whole suite"}


def format_outcome(o: Outcome) -> str:
    label = {"killed": "killed", "survived": "SURVIVED", "equivalent": "equivalent"}[o.status]
    by = f" by {o.killer}" if o.killer else ""
    note = f"; {o.note}" if o.note else ""
    return f"{label:<10} {o.name:<34} {o.seconds:4.0f} s  {_RAN.get(o.ran, o.ran)}{by}{note}"


# ---------------------------------------------------------------------------
# The scratch copy


def tree_files(root: Path) -> list[Path]:
    """Files of the tree as git sees them (tracked, or untracked and not ignored)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
        names = [Path(n) for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [p.relative_to(root) for p in root.rglob("*")
                 if p.is_file() and not _SKIP_DIRS & set(p.relative_to(root).parts)]
    return [n for n in names if not _SKIP_DIRS & set(n.parts) and (root / n).is_file()]


class Scratch:
    """A copy of the tree with its own build/ and its own toolchain package."""

    def __init__(self, source: Path, directory: Path) -> None:
        self.source, self.dir = Path(source), Path(directory)
        # pytest's tmp_path outside the copy: a test's files under ROOT would be shown relative to it
        self.tmp = self.dir.with_name(self.dir.name + "-tmp")
        for rel in tree_files(self.source):
            dest = self.dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.source / rel, dest)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.dir)] + (
            [self.env["PYTHONPATH"]] if self.env.get("PYTHONPATH") else []))
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env.pop("REVENANT_LINUX_VMLINUZ", None)
        self.proc: Optional[subprocess.Popen] = None
        self.cancelled = threading.Event()

    def check_imports(self) -> None:
        """The copy's tests must import the copy's toolchain, not the one the venv points at."""
        probe = ("import toolchain, toolchain.paths, toolchain.pytest_plugin as p;"
                 "print(toolchain.__file__); print(toolchain.paths.BUILD); print(p.__file__)")
        out = subprocess.run([sys.executable, "-c", probe], cwd=self.dir, env=self.env,
                             capture_output=True, text=True)
        seen = out.stdout.split()
        if out.returncode != 0 or len(seen) != 3 or not all(Path(s).is_relative_to(self.dir) for s in seen):
            raise MutantError(f"the scratch copy {self.dir} imports toolchain from "
                              f"{seen[0] if seen else out.stderr.strip().splitlines()[-1:]}, not from itself")

    def git_apply(self, mutant: Mutant, *, reverse: bool = False, check: bool = False) -> None:
        cmd = ["git", "apply", "--whitespace=nowarn"] + (["-R"] if reverse else []) + \
              (["--check"] if check else []) + ["-"]
        out = subprocess.run(cmd, cwd=self.dir, input=mutant.patch, capture_output=True, text=True)
        if out.returncode != 0:
            detail = (out.stderr.strip().splitlines() or ["git apply failed"])[-1]
            what = "cannot be reverted" if reverse else "no longer applies"
            raise MutantError(f"{_rel(mutant.path)} {what} ({detail.removeprefix('error: ')}):"
                              f" regenerate it against the current {', '.join(mutant.files)}")

    def pytest(self, args: Sequence[str], *, stop_first: bool, timeout: float) -> tuple[list[str], str]:
        """Run pytest here; (failed node ids in order, '' or 'timeout after N s')."""
        record = self.dir / ".mutate-failures"
        record.unlink(missing_ok=True)
        if self.cancelled.is_set():
            raise MutantError("interrupted")
        env = dict(self.env, **{FAILURES_ENV: str(record)})
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "toolchain.mutate",
               f"--basetemp={self.tmp}"]
        cmd += (["-x"] if stop_first else []) + list(args)
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        timed_out = ""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = f"timeout after {timeout:.0f} s"
        finally:
            self.stop()
        failures = record.read_text().splitlines() if record.exists() else []
        if not failures and not timed_out and self.proc.returncode not in (0, 5):
            failures = [f"pytest exit status {self.proc.returncode}"]   # e.g. an internal error
        return failures, timed_out

    def cancel(self) -> None:
        """No new pytest runs here; the one running now is stopped."""
        self.cancelled.set()
        self.stop()

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


# pytest hooks, active when the runner loads this module with -p toolchain.mutate

def pytest_runtest_logreport(report) -> None:
    if report.failed:
        _record_failure(report.nodeid)


def pytest_collectreport(report) -> None:
    if report.failed:
        _record_failure(report.nodeid or "(collection)")


def _record_failure(nodeid: str) -> None:
    target = os.environ.get(FAILURES_ENV)
    if target:
        with open(target, "a") as f:
            f.write(nodeid + "\n")


# ---------------------------------------------------------------------------
# The run


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _deselect(ids: Iterable[str]) -> list[str]:
    return [f"--deselect={i}" for i in ids if "::" in i or i.endswith(".py")]


def run(only: str = "", jobs: int = 1, quick: bool = False, catalogue: Path = MUTANTS_DIR,
        out: Path = REPORT, timeout: float = 0.0, keep: bool = False,
        echo: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    mutants = select(load_catalogue(catalogue), only)
    for m in mutants:
        for t in m.tests:
            if not (ROOT / t.split("::", 1)[0]).exists():
                raise MutantError(f"{_rel(m.path)}: '# tests:' names {t}, which does not exist")
    jobs = max(1, min(int(jobs), len(mutants)))
    workdir = Path(tempfile.mkdtemp(prefix="revenant-mutate-"))
    scratches: list[Scratch] = []
    report = Report(jobs=jobs, tree=str(ROOT))
    try:
        first = Scratch(ROOT, workdir / "job0")
        scratches.append(first)
        first.check_imports()
        for m in mutants:                               # every patch must apply before anything runs
            first.git_apply(m, check=True)
        full = not quick or any(not m.tests for m in mutants)
        base_args = [] if full else sorted({t for m in mutants for t in m.tests})
        echo(f"mutate: {len(mutants)} mutant(s), {jobs} job(s), scratch copies in {workdir}")
        echo(f"mutate: baseline: {'the whole suite' if full else ' '.join(base_args)} on the unmutated copy")
        t0 = time.monotonic()
        report.baseline_failures, timed_out = first.pytest(base_args, stop_first=False,
                                                           timeout=timeout or 3600)
        report.baseline_seconds = time.monotonic() - t0
        if timed_out:
            raise MutantError(f"the baseline run did not finish ({timed_out})")
        if any("::" not in f and not f.endswith(".py") for f in report.baseline_failures):
            raise MutantError("the suite does not even run on the unmutated copy: "
                              + ", ".join(report.baseline_failures))
        echo(f"mutate: baseline {report.baseline_seconds:.0f} s; "
             + (f"{len(report.baseline_failures)} test(s) fail without any mutant, deselected: "
                + ", ".join(report.baseline_failures) if report.baseline_failures else "all pass"))
        per_run = timeout or max(300.0, 3 * report.baseline_seconds)
        for n in range(1, jobs):
            scratches.append(Scratch(ROOT, workdir / f"job{n}"))
        deselect = _deselect(report.baseline_failures)

        pool: "queue.Queue[Scratch]" = queue.Queue()
        for s in scratches:
            pool.put(s)
        lock = threading.Lock()

        def one(m: Mutant) -> Outcome:
            scratch = pool.get()
            try:
                outcome = _run_mutant(scratch, m, deselect, per_run, confirm=not quick)
            finally:
                pool.put(scratch)
            with lock:
                echo(format_outcome(outcome))
            return outcome

        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            futures = [ex.submit(one, m) for m in mutants]
            try:
                report.outcomes = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                for s in scratches:
                    s.cancel()
                raise
    finally:
        for s in scratches:
            s.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report.seconds = time.monotonic() - started
    report.write(out)
    return report


REPRODUCE_TRIES = 3     # flaky kills tolerated per mutant before its run counts as killed anyway


def _killing_run(scratch: Scratch, args: list[str], deselect: list[str], timeout: float,
                 flaky: list[str]) -> tuple[str, str]:
    """``pytest -x`` with the mutant applied; ('', '') if it survives, else (killer, how).

    A kill must reproduce: the failing test is run again, alone, still with the mutant. If
    it passes then, it failed by chance (a timing test on a loaded machine), not because of
    the mutant: it goes to ``flaky`` and the run goes on without it."""
    skip = list(deselect)
    for _ in range(REPRODUCE_TRIES):
        failures, timed_out = scratch.pytest(skip + args, stop_first=True, timeout=timeout)
        if timed_out:
            return timed_out, "timeout"
        if not failures:
            return "", ""
        killer = failures[0]
        if "::" not in killer:
            return killer, "failed"                 # a collection error or pytest itself
        again, again_timed_out = scratch.pytest([killer], stop_first=True, timeout=timeout)
        if again or again_timed_out:
            return killer, "failed"
        flaky.append(killer)
        skip.append(f"--deselect={killer}")
    return flaky[-1], "failed"


def _run_mutant(scratch: Scratch, m: Mutant, deselect: list[str], timeout: float, confirm: bool) -> Outcome:
    t0 = time.monotonic()
    flaky: list[str] = []
    note = ""
    scratch.git_apply(m)
    try:
        ran = "named" if m.tests else "full"
        killer, _ = _killing_run(scratch, list(m.tests), deselect, timeout, flaky)
        if not killer and m.tests and confirm:
            ran = "named+full"
            killer, _ = _killing_run(scratch, [], deselect, timeout, flaky)
            if killer:
                note = "its named tests missed it: add the killer's file to '# tests:'"
    finally:
        scratch.git_apply(m, reverse=True)
    if killer and m.equivalent:
        note = "marked equivalent but killed: drop the '# equivalent:' line"
    status = "killed" if killer else ("equivalent" if m.equivalent else "survived")
    if status == "equivalent":
        note = m.equivalent
    if flaky:
        note = "; ".join(filter(None, [note, "did not reproduce alone (ignored): " + ", ".join(flaky)]))
    return Outcome(m.name, status, m.what, time.monotonic() - t0, killer=killer, ran=ran, note=note,
                   flaky=flaky)
