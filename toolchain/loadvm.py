"""`invoke experiment loadvm`: snapshot a running workload at a random instant, load the
snapshot into a fresh QEMU, restart the kernel in place at a random delay after the load, and
check that the workload still ends with exactly the final line it must end with.

One trial, every choice drawn from its seed (``trial_seed(run_seed, k)``):

1. *original*: QEMU starts paused (``-S``) with a QMP socket and a qcow2 disk of its own; QMP
   ``cont`` is instant 0. At ``save_ms`` (uniform in the workload's save window): QMP ``stop``,
   ``snapshot-save`` (tag ``trial``, vmstate and device ``d0``), ``cont``. The original runs on
   to its end; its final line is recorded and must be the expected one (the save must not
   disturb it).
2. *loaded*: a second QEMU with the same argv (and the same disk) starts paused; QMP
   ``snapshot-load`` of ``trial``, ``cont``; at ``restart_ms`` after the load (uniform in the
   workload's restart window; counted from init's ``init: <program> is env`` line if the
   snapshot was taken before it: the NMI is aimed at the workload, and an NMI before the
   kernel's IDT would even reset the machine) QMP ``inject-nmi``:
   the kernel drops every wait at its next safe
   point and every blocked call reruns (docs/restart.md). It runs to its end; its final line
   must equal the expected one too, and it must not have booted again.

Verdicts: ``ok``; ``wrong`` (a final line missing or different, a failing exit, a reboot);
``late`` (the original ended before the save instant: nothing was tested; not a failure);
``error`` (the harness or QEMU failed; the message says how). A trial that is not ``ok`` or
``late`` keeps its disk (the snapshot is in it) and both serial logs; ``--trial K`` runs trial
K of the same seed again. Trials run in parallel (``--jobs``, default: the cores).

The JSON (build/experiments/loadvm-<stamp>.json) holds, once, the exact QEMU argv (with
``{disk}`` and ``{qmp}`` for the per-trial paths), the QMP steps of a trial and the expected
final line, and for every trial its seed, instants, verdict, final lines and log paths: any QMP
client can repeat a trial without this toolkit (docs/toolkit.md).
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import random
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from . import paths
from .errors import RevenantError, UsageError
from .machine import Machine, MachineConfig, create_disk
from .restart import kernel_restarts

TAG = "trial"
NODE = "d0"
BANNER = "Revenant kernel booting"


@dataclass(frozen=True)
class Workload:
    """A run whose last line of interest is a pure function of its arguments."""

    name: str
    append: str
    final: str                  # regex; the text it matches (group 0) is the verdict line
    save_ms: tuple              # the save instant is uniform in [lo, hi] ms after `cont`
    restart_ms: tuple           # the NMI comes uniform in [lo, hi] ms after the load's `cont`
    about: str

    @property
    def start(self) -> str:
        """init's line for the workload's program: restart_ms counts from it if the save came
        before it."""
        return f"init: {self.append.split('run=')[1].split(':')[0].split(',')[0]} is env"


WORKLOADS = {w.name: w for w in [
    Workload("reqresp", "hz=1000 run=reqresp:2000:2:2:16:4", r"^reqresp: final .*$", (0, 140), (0, 60),
             "request/response: 2 client environments x 2 threads, a server, 2,000 requests"),
    Workload("ring", "hz=1000 run=ring:8000",
             r"^ring: consumer got=\d+ lost=\d+ doubled=\d+ corrupt=\d+ checksum_expected=\S+ checksum_got=\S+",
             (0, 120), (0, 50), "producer/consumer ring in a shared region, 8,000 messages"),
    Workload("futex_count", "hz=1000 run=futex_count:8:50000:2", r"^futex_count: total=\d+ want=\d+$",
             (0, 80), (0, 40), "8 threads in 2 environments count to 400,000 under one fmutex"),
]}


def trial_seed(run_seed: int, k: int) -> int:
    """Trial k's seed: a pure function of the run's seed and k."""
    return random.Random(f"loadvm/{run_seed}/{k}").getrandbits(32)


def instants(seed: int, w: Workload) -> tuple:
    """(save_ms, restart_ms) of a trial: a pure function of its seed and the workload."""
    rng = random.Random(seed)
    return round(rng.uniform(*w.save_ms), 3), round(rng.uniform(*w.restart_ms), 3)


@dataclass
class Trial:
    k: int
    seed: int
    save_ms: float
    restart_ms: float
    verdict: str = "error"
    why: str = ""
    final_original: Optional[str] = None
    final_loaded: Optional[str] = None
    started_at_save: bool = False       # the workload's start line came before the save
    restarted: bool = False             # the loaded run printed a `restart <n>: ... by nmi` line
    dropped_futex: int = 0              # futex waiters that restart dropped (their calls reran)
    save_job_ms: Optional[float] = None
    load_job_ms: Optional[float] = None
    seconds: float = 0.0
    log_original: str = ""
    log_loaded: str = ""
    disk: Optional[str] = None          # kept for a trial that is not ok


@dataclass
class LoadvmResult:
    workload: str
    seed: int
    trials: int
    jobs: int
    ok: bool = False
    seconds: float = 0.0
    trials_per_minute: float = 0.0
    counts: dict = field(default_factory=dict)
    expected_final_line: str = ""
    qemu_argv: list = field(default_factory=list)
    disk_create: list = field(default_factory=lambda: ["qemu-img", "create", "-f", "qcow2", "{disk}", "64M"])
    qmp_steps: dict = field(default_factory=dict)
    run_dir: str = ""
    results: list = field(default_factory=list)
    json_path: str = ""

    def render(self) -> str:
        c = self.counts
        lines = [f"experiment loadvm workload={self.workload} seed={self.seed} trials={self.trials}: "
                 f"{'OK' if self.ok else 'FAILED'} in {self.seconds:.1f} s "
                 f"({self.trials_per_minute:.0f} trials/min, {self.jobs} jobs)",
                 f"  ok: {c.get('ok', 0)}  wrong: {c.get('wrong', 0)}  late: {c.get('late', 0)}  "
                 f"error: {c.get('error', 0)}  restart landed: {c.get('restarted', 0)} "
                 f"(dropping futex waiters: {c.get('restarted_with_futex_waiters', 0)})",
                 f"  expected: {self.expected_final_line}"]
        for t in self.results:
            if t["verdict"] not in ("ok", "late"):
                lines.append(f"  trial {t['k']} (seed {t['seed']}): {t['verdict']}: {t['why']}; "
                             f"disk {t['disk']}; logs {t['log_original']} {t['log_loaded']}")
        lines.append(f"  json: {self.json_path}")
        return "\n".join(lines)


class Experiment:
    def __init__(self, workload: Workload, run_dir: Path, kernel: Optional[Path] = None) -> None:
        self.w = workload
        self.run_dir = run_dir
        self.kernel = kernel or paths.KERNEL_ELF
        self.final = re.compile(workload.final)
        self.template = run_dir / "empty.qcow2"
        create_disk(self.template, "64M")

    def config(self, name: str, disk: Path) -> MachineConfig:
        return MachineConfig(name=name, kernel=self.kernel, append=self.w.append, qmp=True,
                             disk=disk, create_disk=False, paused=True, log_dir=self.run_dir,
                             symbolize=False)

    def final_line(self, lines: List[str]) -> Optional[str]:
        return next((m.group(0) for line in lines if (m := self.final.match(line))), None)

    def reference(self) -> tuple:
        """Boot once without snapshots: the expected final line and the exact argv."""
        disk = self.run_dir / "reference.qcow2"
        shutil.copyfile(self.template, disk)
        with Machine(self.config("reference", disk)) as m:
            argv = m.argv()
            m.qmp.cont()
            result = m.wait(120)
            line = self.final_line(m.console.lines())
        disk.unlink(missing_ok=True)
        if result.status != 33 or line is None:
            raise RevenantError(f"loadvm: the reference run of {self.w.name} failed ({result}); "
                                f"log: {m.log_path}")
        return line, portable_argv(argv, disk, m.qmp_socket)

    def trial(self, k: int, seed: int, expected: str) -> Trial:
        save_ms, restart_ms = instants(seed, self.w)
        t = Trial(k, seed, save_ms, restart_ms)
        disk = self.run_dir / f"trial-{k}.qcow2"
        t0 = time.monotonic()
        try:
            shutil.copyfile(self.template, disk)
            before = self._original(t, disk)
            if t.verdict != "late":
                self._loaded(t, disk, before)
                t.verdict, t.why = judge(t, expected)
        except RevenantError as err:
            t.verdict, t.why = "error", err.summary
        except Exception as err:    # a QMP library error or the like: one trial, not the run
            t.verdict, t.why = "error", f"{type(err).__name__}: {err}"
        t.seconds = round(time.monotonic() - t0, 3)
        if t.verdict in ("ok", "late"):
            disk.unlink(missing_ok=True)
        else:
            t.disk = str(disk)
        return t

    def _original(self, t: Trial, disk: Path) -> str:
        """Run the original, saving it at t.save_ms; the serial text it had shown by then."""
        with Machine(self.config(f"trial-{t.k}-original", disk)) as m:
            t.log_original = str(m.log_path)
            m.qmp.cont()
            if m.wait_until_exit(t.save_ms / 1000):
                t.verdict, t.why = "late", f"the original ended before {t.save_ms} ms"
                return ""
            try:
                m.qmp.stop()
                m.drain_serial()
                before = m.console.text()
                t.started_at_save = self.w.start in before
                t.save_job_ms = round(m.qmp.snapshot_save(TAG, resume=True).job_ms, 3)
            except RevenantError as err:
                if m.wait_until_exit(2.0):
                    t.verdict, t.why = "late", (f"the original ended during the save at {t.save_ms} ms "
                                                f"({err.summary})")
                    return ""
                raise
            result = m.wait(120)
            t.final_original = self.final_line(m.console.lines())
            if result.status != 33:
                t.why = f"original: {result}"
            return before

    def _loaded(self, t: Trial, disk: Path, before: str) -> None:
        with Machine(self.config(f"trial-{t.k}-loaded", disk)) as m:
            t.log_loaded = str(m.log_path)
            t.load_job_ms = round(m.qmp.snapshot_load(TAG).job_ms, 3)
            # Aim the NMI at the workload, not at the boot (an NMI before the kernel has its
            # IDT even resets the machine: measured, docs/toolkit.md): count from the workload's
            # start line when the snapshot predates it (that line may be cut by the save).
            deadline = time.monotonic() + 60
            while self.w.start not in before + m.console.text() and time.monotonic() < deadline:
                if m.wait_until_exit(0.001):
                    break
            if not m.wait_until_exit(t.restart_ms / 1000):
                try:
                    m.qmp.execute("inject-nmi")
                except RevenantError:
                    if not m.wait_until_exit(2.0):
                        raise           # not the guest's end racing the command
            result = m.wait(120)
            lines = m.console.lines()
            # What the original showed before the save and what the loaded one showed after it
            # are one boot's output (a line may be cut in two, the final line may precede the
            # save): the final line is looked for in both, and one banner means no reboot.
            whole = before + m.console.text()
            t.final_loaded = self.final_line(whole.splitlines())
            nmi = [r for r in kernel_restarts(lines) if r.by == "nmi"]
            t.restarted = bool(nmi)
            t.dropped_futex = sum(r.futex for r in nmi)
            banners = whole.count(BANNER)
            if banners != 1:
                t.why = f"the kernel's banner came {banners} times: the loaded machine booted again"
            elif result.status != 33:
                t.why = (t.why + "; " if t.why else "") + f"loaded: {result}"


def judge(t: Trial, expected: str) -> tuple:
    if t.why:
        return "wrong", t.why
    for phase, line in (("original", t.final_original), ("loaded", t.final_loaded)):
        if line is None:
            return "wrong", f"the {phase} run printed no final line"
        if line != expected:
            return "wrong", f"the {phase} run ended with {line!r}"
    return "ok", ""


def portable_argv(argv: List[str], disk: Path, qmp_socket: Optional[Path]) -> List[str]:
    """The argv with {disk} and {qmp} for the per-trial paths, without the harness's -pidfile."""
    from .bench import _drop_pidfile

    out = []
    for a in _drop_pidfile(argv):
        a = a.replace(str(disk).replace(",", ",,"), "{disk}")
        if qmp_socket is not None:
            a = a.replace(str(qmp_socket), "{qmp}")
        out.append(a)
    return out


QMP_STEPS = {
    "original": ["start argv (it has -S: paused)", "cont", "wait save_ms", "stop",
                 "(note whether the serial console has shown the workload's start line by now)",
                 f"snapshot-save job-id=J tag={TAG} vmstate={NODE} devices=[{NODE}]",
                 "query-jobs until J is concluded (its error must be absent)", "job-dismiss id=J",
                 "cont", "wait for QEMU to exit (status 33); the final line is on the serial console"],
    "loaded": ["start the same argv with the same disk (paused)",
               f"snapshot-load job-id=J tag={TAG} vmstate={NODE} devices=[{NODE}]",
               "query-jobs until J is concluded", "job-dismiss id=J", "cont",
               "if the saved state had not shown the start line yet: wait for that serial line",
               "wait restart_ms",
               "inject-nmi", "wait for QEMU to exit (status 33); compare the final line"],
}


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run(workload: str = "reqresp", trials: int = 20, seed: int = 1, jobs: int = 0,
        only_trial: Optional[int] = None, kernel: Optional[Path] = None,
        progress: Optional[Callable[[str], None]] = None) -> LoadvmResult:
    if workload not in WORKLOADS:
        raise UsageError(f"--workload: unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    if trials < 1:
        raise UsageError(f"--trials takes a whole number of at least 1, not {trials}")
    if only_trial is not None and only_trial < 0:
        raise UsageError(f"--trial takes a whole number of at least 0, not {only_trial}")
    w = WORKLOADS[workload]
    jobs = jobs or default_jobs()
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    out_dir = paths.BUILD / "experiments"
    run_dir = out_dir / f"loadvm-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    exp = Experiment(w, run_dir, kernel)
    expected, argv = exp.reference()
    ks = [only_trial] if only_trial is not None else list(range(trials))
    result = LoadvmResult(workload, seed, len(ks), jobs, expected_final_line=expected, qemu_argv=argv,
                          qmp_steps=QMP_STEPS, run_dir=str(run_dir))
    done: List[Trial] = []
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(k: int) -> Trial:
        t = exp.trial(k, trial_seed(seed, k), expected)
        with lock:
            done.append(t)
            if progress and (t.verdict not in ("ok", "late") or len(done) % 100 == 0):
                progress(f"{len(done)}/{len(ks)} trials; trial {t.k}: {t.verdict} {t.why}".rstrip())
        return t

    if jobs == 1 or len(ks) == 1:
        for k in ks:
            one(k)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, ks))
    result.seconds = round(time.monotonic() - t0, 3)
    result.trials_per_minute = round(len(done) * 60 / result.seconds, 1) if result.seconds else 0.0
    done.sort(key=lambda t: t.k)
    result.results = [asdict(t) for t in done]
    result.counts = {v: sum(1 for t in done if t.verdict == v) for v in ("ok", "wrong", "late", "error")}
    result.counts["restarted"] = sum(1 for t in done if t.restarted)
    result.counts["restarted_with_futex_waiters"] = sum(1 for t in done if t.dropped_futex)
    result.ok = result.counts["wrong"] == 0 and result.counts["error"] == 0 and result.counts["ok"] > 0
    (run_dir / "empty.qcow2").unlink(missing_ok=True)
    out = out_dir / f"loadvm-{stamp}.json"
    result.json_path = str(out)
    out.write_text(json.dumps(asdict(result), indent=2))
    return result
