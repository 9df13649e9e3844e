"""loadvm: snapshot a running workload at a random instant, load the snapshot into a fresh QEMU,
restart the kernel in place at a random delay after the load, and check that the workload still
ends with exactly the final line it must end with.

One trial, every choice drawn from its seed (``plan``):

1. *original*: QEMU starts paused (``-S``) with a QMP socket and a qcow2 disk of its own; QMP
   ``cont`` is instant 0. At ``save_ms`` (uniform in the workload's save window): QMP ``stop``,
   ``snapshot-save`` (tag ``trial``, vmstate and device ``d0``), ``cont``. The original runs on
   to its end; its final line is recorded and must be the expected one (the save must not
   disturb it).
2. *loaded*: a second QEMU with the same argv (and the same disk) starts paused; QMP
   ``snapshot-load`` of ``trial``, ``cont``; at ``restart_ms`` after the load (uniform in the
   workload's restart window; counted from init's ``init: <program> is env`` line if the
   snapshot was taken before it: the NMI is aimed at the workload, and an NMI before the
   kernel's IDT would even reset the machine) QMP ``inject-nmi``: the kernel drops every wait at
   its next safe point and every blocked call reruns (docs/restart.md). It runs to its end; its
   final line must equal the expected one too, and it must not have booted again.

Verdicts: ``ok``; ``wrong`` (a final line missing or different, a failing exit, a reboot);
``late`` (the original ended before the save instant: nothing was tested; not a failure);
``error`` (the harness or QEMU failed; the message says how). A failing trial keeps its disk
(the snapshot is in it) and both serial logs (engine: --keep).

The campaign JSON holds, once, the exact QEMU argv (with ``{disk}`` and ``{qmp}`` for the
per-trial paths), the disk's qemu-img command and the QMP steps of a trial (``setup``) and the
expected final line: any QMP client can repeat a trial without this toolkit (docs/toolkit.md).
The expected line comes from a reference run (no snapshot, no NMI) once per workload and build.
"""
from __future__ import annotations

import random
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import paths
from ..errors import RevenantError, UsageError
from ..machine import Machine, MachineConfig, create_disk
from ..restart import kernel_restarts
from .engine import RR, TrialPlan, TrialResult, build_id, trial_seed

TAG = "trial"
NODE = "d0"
BANNER = "Revenant kernel booting"
DISK_CREATE = ["qemu-img", "create", "-f", "qcow2", "{disk}", "64M"]


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


def instants(seed: int, w: Workload) -> tuple:
    """(save_ms, restart_ms) of a trial: a pure function of its seed and the workload."""
    rng = random.Random(seed)
    return round(rng.uniform(*w.save_ms), 3), round(rng.uniform(*w.restart_ms), 3)


def workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise UsageError(f"--workload: unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")
    return WORKLOADS[name]


@dataclass
class Trial:
    """What one trial saw, before it becomes a TrialResult."""

    save_ms: float
    restart_ms: float
    why: str = ""
    late: bool = False
    final_original: Optional[str] = None
    final_loaded: Optional[str] = None
    started_at_save: bool = False       # the workload's start line came before the save
    restarted: bool = False             # the loaded run printed a `restart <n>: ... by nmi` line
    dropped_futex: int = 0              # futex waiters that restart dropped (their calls reran)
    save_job_ms: Optional[float] = None
    load_job_ms: Optional[float] = None


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
    from ..bench import _drop_pidfile

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


def _config(w: Workload, name: str, disk: Path, log_dir: Path) -> MachineConfig:
    return MachineConfig(name=name, append=w.append, qmp=True, disk=disk, create_disk=False, paused=True,
                         log_dir=log_dir, symbolize=False)


def _final_line(w: Workload, lines: List[str]) -> Optional[str]:
    final = re.compile(w.final)
    return next((m.group(0) for line in lines if (m := final.match(line))), None)


class Loadvm:
    name = "loadvm"
    about = "QMP snapshot-save at a random instant, snapshot-load, an NMI restart after it: same final line"
    defaults = {"workload": "reqresp"}
    default_trials = 20
    instant = "save_ms"
    units = {"save_ms": "ms after cont", "restart_ms": "ms after the load", "save_job_ms": "ms",
             "load_job_ms": "ms", "dropped_futex": "futex waiters the restart dropped",
             "restarted": "1 = the NMI restart landed", "started_at_save": "1 = the workload had started"}

    def __init__(self) -> None:
        self._references: Dict[Tuple[Workload, str], Tuple[str, List[str]]] = {}
        self._lock = threading.Lock()

    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        w = workload(options["workload"])
        seed = trial_seed(self.name, campaign_seed, index)
        save_ms, restart_ms = instants(seed, w)
        return TrialPlan(index, seed, {"workload": w.name, "save_ms": save_ms, "restart_ms": restart_ms})

    def describe(self, options: dict) -> dict:
        expected, argv = self.reference(workload(options["workload"]))
        return {"argv": argv, "expected": expected, "disk_create": DISK_CREATE, "qmp_steps": QMP_STEPS}

    def reference(self, w: Workload) -> Tuple[str, List[str]]:
        """(expected final line, portable argv): one boot without snapshots per workload and build."""
        key = (w, build_id())
        with self._lock:
            if key not in self._references:
                self._references[key] = self._reference_run(w)
            return self._references[key]

    def _reference_run(self, w: Workload) -> Tuple[str, List[str]]:
        paths.BUILD.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="loadvm-reference-", dir=paths.BUILD))
        disk = create_disk(work / "reference.qcow2", "64M")
        with Machine(_config(w, "reference", disk, work)) as m:
            argv = m.argv()
            m.qmp.cont()
            result = m.wait(120)
            line = _final_line(w, m.console.lines())
        if result.status != 33 or line is None:
            raise RevenantError(f"loadvm: the reference run of {w.name} failed ({result}); log: {m.log_path}")
        shutil.rmtree(work, ignore_errors=True)
        return line, portable_argv(argv, disk, m.qmp_socket)

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        if rr is not None:
            raise UsageError("loadvm runs two QEMUs per trial under plain TCG: no record/replay")
        w = workload(plan.params["workload"])
        expected, _ = self.reference(w)
        t = Trial(plan.params["save_ms"], plan.params["restart_ms"])
        disk = create_disk(workdir / "disk.qcow2", "64M")
        logs: Dict[str, str] = {"disk": str(disk)}
        before = self._original(w, t, disk, workdir, logs)
        if t.late:
            verdict, why = "late", t.why
        else:
            self._loaded(w, t, disk, workdir, before, logs)
            verdict, why = judge(t, expected)
        figures = {"restarted": int(t.restarted), "dropped_futex": t.dropped_futex,
                   "started_at_save": int(t.started_at_save)}
        figures.update({k: v for k, v in (("save_job_ms", t.save_job_ms), ("load_job_ms", t.load_job_ms))
                        if v is not None})
        return TrialResult.of_plan(plan, verdict, message=why, figures=figures, artifacts=logs)

    def _original(self, w: Workload, t: Trial, disk: Path, workdir: Path, logs: Dict[str, str]) -> str:
        """Run the original, saving it at t.save_ms; the serial text it had shown by then."""
        with Machine(_config(w, "original", disk, workdir)) as m:
            logs["log_original"] = str(m.log_path)
            m.qmp.cont()
            if m.wait_until_exit(t.save_ms / 1000):
                t.late, t.why = True, f"the original ended before {t.save_ms} ms"
                return ""
            try:
                m.qmp.stop()
                m.drain_serial()
                before = m.console.text()
                t.started_at_save = w.start in before
                t.save_job_ms = round(m.qmp.snapshot_save(TAG, resume=True).job_ms, 3)
            except RevenantError as err:
                if m.wait_until_exit(2.0):
                    t.late, t.why = True, f"the original ended during the save at {t.save_ms} ms ({err.summary})"
                    return ""
                raise
            result = m.wait(120)
            t.final_original = _final_line(w, m.console.lines())
            if result.status != 33:
                t.why = f"original: {result}"
            return before

    def _loaded(self, w: Workload, t: Trial, disk: Path, workdir: Path, before: str,
                logs: Dict[str, str]) -> None:
        with Machine(_config(w, "loaded", disk, workdir)) as m:
            logs["log_loaded"] = str(m.log_path)
            t.load_job_ms = round(m.qmp.snapshot_load(TAG).job_ms, 3)
            # Aim the NMI at the workload, not at the boot (an NMI before the kernel has its
            # IDT even resets the machine: measured, docs/toolkit.md): count from the workload's
            # start line when the snapshot predates it (that line may be cut by the save).
            deadline = time.monotonic() + 60
            while w.start not in before + m.console.text() and time.monotonic() < deadline:
                if m.wait_until_exit(0.001):
                    break
            if not m.wait_until_exit(t.restart_ms / 1000):
                try:
                    m.qmp.execute("inject-nmi")
                except RevenantError:
                    if not m.wait_until_exit(2.0):
                        raise           # not the guest's end racing the command
            result = m.wait(120)
            # What the original showed before the save and what the loaded one showed after it
            # are one boot's output (a line may be cut in two, the final line may precede the
            # save): the final line is looked for in both, and one banner means no reboot.
            whole = before + m.console.text()
            t.final_loaded = _final_line(w, whole.splitlines())
            nmi = [r for r in kernel_restarts(m.console.lines()) if r.by == "nmi"]
            t.restarted = bool(nmi)
            t.dropped_futex = sum(r.futex for r in nmi)
            banners = whole.count(BANNER)
            if banners != 1:
                t.why = f"the kernel's banner came {banners} times: the loaded machine booted again"
            elif result.status != 33:
                t.why = (t.why + "; " if t.why else "") + f"loaded: {result}"


EXPERIMENT = Loadvm()
