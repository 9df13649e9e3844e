"""`invoke bench`: measured numbers, written as JSON, each compared with a baseline from the same run.

Sections:
- boot:      process start to the banner line, and to poweroff (TCG).
- harness:   the same boot-to-poweroff run bare (`subprocess.run(argv)`) and through `Machine`;
             the ratio is the harness overhead (target <= 1.3).
- snapshot:  QMP snapshot-save / snapshot-load job times on a running guest.
- syscall:   null syscall (getpid) round trip in Revenant vs. Linux in the same QEMU, counted in
             guest instructions (-icount shift=0, where one instruction is one TSC tick) and in
             rdtsc cycles under plain TCG; ratio Revenant/Linux (target <= 0.5).
- activation: the activation round trip (timer interrupt, upcall into the user-level scheduler,
             act_resume of the same thread; userland/progs/bench_act.c) vs. Linux's SIGALRM round
             trip (interrupt, signal delivery, handler, sigreturn; linuxpeer `alarm`). Both are the
             median gap in a back-to-back rdtsc loop, same two units (target <= 0.5).
- uswitch:   a user-level thread switch (thread_yield between two threads; bench_uswitch.c) vs. a
             Linux thread switch (futex ping-pong between two pthreads; linuxpeer `futex`), per
             switch (target <= 0.1). `uswitch_cond` (a mutex + condition-variable handoff, the
             closer analogue of the futex loop) is reported beside it.
- ipc:       a request/response round trip through a server environment (ipc_call in a client
             environment, ipc_receive + ipc_answer in the server; bench_ipc.c) vs. Linux's pipe
             ping-pong between two processes (linuxpeer `pipe`), per round trip (target <= 0.3).
- futex:     a futex handoff between two environments (the kernel's futex_wait / futex_wake on
             a word in a shared region; bench_ipc.c `futex_pp`) vs. Linux's futex ping-pong
             between two threads (linuxpeer `futex`), per switch; no target.
- restart:   one in-place restart with every other environment blocked (62 children in
             futex_wait and init in wait: 63 blocked vprocs, 64 environments; bench_restart.c),
             the extra gap it makes in a TSC loop over a plain tick's, and the kernel's own
             drop + upcalls figure, vs. Linux waking 63 futex waiters at once until all wait
             again (linuxpeer `wakeall`); no target. The blocked upcall (many blocked threads
             in one environment) is not in this branch.
- disk:      the virtio-blk driver (KTAP case blk.sequential_write_cost on a fresh qcow2): 30
             sequential 128 KiB writes, a flush, 64 one-sector writes; per request in host time
             (TCG) and in guest instructions (-icount shift=0, polls of the used ring included),
             the write rate and the flush; no baseline, no target (docs/persistence.md).
Numbers are medians over repeated runs.  Every ratio of a section that has a target
(``target_ratio_max``) gets a verdict, printed beside it and kept in the JSON; `invoke bench`
exits 1 when a figure misses its target or a section fails.  A line per section goes to stderr
as it starts and ends, and one before the one-time download of the Linux baseline.
"""
from __future__ import annotations

import functools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import paths
from .errors import RevenantError, UsageError
from .machine import Machine, MachineConfig

SECTIONS = ("boot", "harness", "snapshot", "syscall", "activation", "uswitch", "ipc", "futex", "restart",
            "disk", "checkpoint")
NEEDS_LINUX = ("syscall", "activation", "uswitch", "ipc", "futex", "restart")
JUDGED = ("ratio_harness_over_bare", "ratio_instructions", "ratio_tsc_cycles")   # against target_ratio_max


def parse_only(only: str) -> Optional[list[str]]:
    """``--only boot,syscall`` as a list (None: every section); ``UsageError`` for an unknown one."""
    names = [s.strip() for s in (only or "").split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise UsageError(f"--only: unknown section{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"the sections are {','.join(SECTIONS)}")
    if only and not names:
        raise UsageError(f"--only: no section named; the sections are {','.join(SECTIONS)}")
    return names or None


def out_path(out: str) -> Path:
    """Where the JSON goes, checked before hours of benchmarks: a writable, existing directory
    (build/ is created)."""
    path = Path(out) if Path(out).is_absolute() else paths.ROOT / out
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file path")
    if not parent.is_dir() and paths.BUILD not in path.parents:
        raise UsageError(f"--out {out}: directory {parent} does not exist")
    probe = parent if parent.is_dir() else paths.BUILD if paths.BUILD.is_dir() else paths.ROOT
    if not os.access(probe, os.W_OK):
        raise UsageError(f"--out {out}: {probe} is not writable")
    return path


@dataclass
class Verdict:
    figure: str
    value: float
    target_max: float

    @property
    def ok(self) -> bool:
        return self.value <= self.target_max

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'MISSED'}: {self.value:.4g} vs target <= {self.target_max:g}"


@dataclass
class Section:
    name: str
    figures: dict = field(default_factory=dict)
    error: Optional[str] = None

    def verdicts(self) -> list[Verdict]:
        target = self.figures.get("target_ratio_max")
        if not isinstance(target, (int, float)):
            return []
        judged = self.figures.get("judged", JUDGED)      # a section may name its own
        return [Verdict(k, float(self.figures[k]), float(target)) for k in judged
                if isinstance(self.figures.get(k), (int, float))]

    @property
    def ok(self) -> bool:
        return self.error is None and all(v.ok for v in self.verdicts())


@dataclass
class BenchReport:
    sections: list[Section] = field(default_factory=list)
    out: Optional[Path] = None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sections)

    def render(self) -> str:
        lines = []
        for s in self.sections:
            lines.append(f"[{s.name}]")
            if s.error:
                lines.append(f"  error: {s.error}")
            judged = {v.figure: v for v in s.verdicts()}
            for k, v in s.figures.items():
                if isinstance(v, float):
                    v = f"{v:.4g}"
                verdict = f"   <- {judged[k]}" if k in judged else ""
                lines.append(f"  {k}: {v}{verdict}")
        verdicts = [(s.name, v) for s in self.sections for v in s.verdicts()]
        missed = [f"{name}.{v.figure} {v.value:.4g} > {v.target_max:g}" for name, v in verdicts if not v.ok]
        failed = [s.name for s in self.sections if s.error]
        if missed:
            lines.append(f"verdict: {len(missed)} of {len(verdicts)} figures missed their target: "
                         f"{'; '.join(missed)}")
        elif verdicts:
            lines.append("verdict: the one figure with a target met it" if len(verdicts) == 1 else
                         f"verdict: all {len(verdicts)} figures with a target met it")
        if failed:
            lines.append(f"verdict: section{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed "
                         f"(error above)")
        if self.out:
            lines.append(f"JSON: {self.out}")
        return "\n".join(lines)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_boot(runs: int) -> Section:
    banner, poweroff = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        with Machine(MachineConfig(name="bench-boot", append="")) as m:
            m.expect("Revenant kernel booting", timeout=30)
            banner.append(time.monotonic() - t0)
            m.wait_poweroff(timeout=60)
            poweroff.append(time.monotonic() - t0)
    return Section("boot", {"runs": runs, "boot_to_banner_ms": _median(banner) * 1e3,
                            "boot_to_poweroff_ms": _median(poweroff) * 1e3})


def bench_harness(runs: int) -> Section:
    """Alternate bare QEMU and Machine runs of the same argv so host noise hits both."""
    bare, harness = [], []
    argv = _drop_pidfile(Machine(MachineConfig(name="bench-bare")).argv())
    for _ in range(runs):
        t0 = time.monotonic()
        # The serial goes to a pipe that is read, as with the harness: QEMU's stdio
        # chardev on /dev/null was measured to stall some runs by 100-300 ms.
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        bare.append(time.monotonic() - t0)
        if proc.returncode != 33:
            raise RevenantError(f"bare QEMU run exited {proc.returncode}, expected 33")
        t0 = time.monotonic()
        with Machine(MachineConfig(name="bench-harness")) as m:
            m.wait_poweroff(timeout=60)
        harness.append(time.monotonic() - t0)
    b, h = _median(bare), _median(harness)
    return Section("harness", {"runs": runs, "bare_ms": b * 1e3, "harness_ms": h * 1e3,
                               "ratio_harness_over_bare": h / b, "target_ratio_max": 1.3})


def _drop_pidfile(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "-pidfile":
            skip = True
            continue
        out.append(a)
    return out


def bench_snapshot(runs: int) -> Section:
    disk = paths.BUILD / "bench-snapshots.qcow2"
    if disk.exists():
        disk.unlink()
    saves, loads = [], []
    with Machine(MachineConfig(name="bench-snapshot", append="heartbeat=20", qmp=True, disk=disk)) as m:
        m.expect(re.compile(r"^heartbeat 3$"), timeout=30)
        for i in range(runs):
            saves.append(m.qmp.snapshot_save(f"b{i}").job_ms)
            m.expect(re.compile(r"^heartbeat \d+$"), timeout=30)
            loads.append(m.qmp.snapshot_load(f"b{i}").job_ms)
        m.kill()
    disk.unlink(missing_ok=True)
    return Section("snapshot", {"runs": runs, "memory": "128M", "save_ms": _median(saves),
                                "load_ms": _median(loads), "save_ms_all": saves, "load_ms_all": loads})


def revenant_results(program: str, args: str, icount: bool, timeout: float = 300,
                     append: str = "") -> dict:
    """Boot `run=program:args` (plus `append`), return its RESULT lines by name."""
    from .linuxpeer import parse_results

    extra = ["-icount", "shift=0"] if icount else []
    cmdline = f"run={program}:{args}" + (f" {append}" if append else "")
    cfg = MachineConfig(name=f"bench-{program}", append=cmdline, extra_args=extra)
    with Machine(cfg) as m:
        m.wait_poweroff(timeout=timeout)
        results = parse_results(m.console.text())
    if not results:
        raise RevenantError(f"{program} printed no RESULT line (log: {m.log_path})")
    return results


def revenant_result(program: str, args: str, icount: bool, timeout: float = 300) -> dict:
    """Boot `run=program:args`, return the fields of its (first) RESULT line."""
    return next(iter(revenant_results(program, args, icount, timeout).values()))


def _isolation_cost(program: str, args: str, key: Optional[str], on_ins: dict, on_tsc: dict,
                    append: str = "") -> dict:
    """The same loop with `pti=off` (user code on the kernel's page tables), and what isolation costs."""
    off = " ".join(filter(None, [append, "pti=off"]))
    ins_runs = revenant_results(program, args, icount=True, append=off)
    tsc_runs = revenant_results(program, args, icount=False, append=off)
    off_ins = ins_runs[key] if key else next(iter(ins_runs.values()))
    off_tsc = tsc_runs[key] if key else next(iter(tsc_runs.values()))
    ins, cyc = float(on_ins["tsc_per_iter"]), float(on_tsc["tsc_per_iter"])
    ins_off, cyc_off = float(off_ins["tsc_per_iter"]), float(off_tsc["tsc_per_iter"])
    return {
        "pti_off_instructions": ins_off, "pti_off_tsc_cycles": cyc_off,
        "pti_cost_instructions": ins - ins_off, "pti_ratio_tsc_cycles": cyc / cyc_off,
    }


def bench_syscall(iters: int) -> Section:
    from . import linuxpeer

    ours_ins = revenant_result("bench_null", str(iters), icount=True)
    ours_tsc = revenant_result("bench_null", str(iters), icount=False)
    linux = linuxpeer.compare_runs(["getpid"], iters)
    lx = linux["results"]["getpid"]
    ins, cyc = float(ours_ins["tsc_per_iter"]), float(ours_tsc["tsc_per_iter"])
    return Section("syscall", {
        "iters": iters,
        "revenant_instructions": ins, "linux_instructions": lx["instructions"],
        "ratio_instructions": ins / lx["instructions"],
        "revenant_tsc_cycles": cyc, "linux_tsc_cycles": lx["tsc_cycles"],
        "ratio_tsc_cycles": cyc / lx["tsc_cycles"],
        **_isolation_cost("bench_null", str(iters), None, ours_ins, ours_tsc),
        "target_ratio_max": 0.5, "linux_kernel": linux["kernel"],
    })


def _versus(ours_ins: dict, ours_tsc: dict, linux: dict, target: float) -> dict:
    """Side-by-side figures: instructions (icount) and TSC cycles (TCG), ratios ours/Linux."""
    ins, cyc = float(ours_ins["tsc_per_iter"]), float(ours_tsc["tsc_per_iter"])
    return {
        "revenant_instructions": ins, "linux_instructions": linux["instructions"],
        "ratio_instructions": ins / linux["instructions"],
        "revenant_tsc_cycles": cyc, "linux_tsc_cycles": linux["tsc_cycles"],
        "ratio_tsc_cycles": cyc / linux["tsc_cycles"],
        "target_ratio_max": target,
    }


ACT_HZ = 10000          # ~100 us between ticks, close to the Linux peer's 200 us itimer


def bench_activation(events: int) -> Section:
    """Timer-interrupt upcall round trip vs. Linux SIGALRM round trip (median event each)."""
    from . import linuxpeer

    args, hz = str(events), f"hz={ACT_HZ}"
    ours_ins = revenant_results("bench_act", args, icount=True, append=hz)["activation"]
    ours_tsc = revenant_results("bench_act", args, icount=False, append=hz)["activation"]
    linux = linuxpeer.compare_runs(["alarm"], events)
    return Section("activation", {
        "events": events, "hz": ACT_HZ,
        **_versus(ours_ins, ours_tsc, linux["results"]["alarm"], 0.5),
        **_isolation_cost("bench_act", args, "activation", ours_ins, ours_tsc, append=hz),
        "revenant_min_instructions": ours_ins.get("min_tsc"),
        "revenant_min_tsc_cycles": ours_tsc.get("min_tsc"),
        "linux_kernel": linux["kernel"],
        "note": "-cpu max: Linux rewrites PKRU per signal, which costs TCG a TLB flush (linuxpeer docstring)",
    })


def bench_uswitch(iters: int) -> Section:
    """User-level thread switch vs. Linux futex thread switch, per switch."""
    from . import linuxpeer

    ours_ins = revenant_results("bench_uswitch", str(iters), icount=True)
    ours_tsc = revenant_results("bench_uswitch", str(iters), icount=False)
    linux = linuxpeer.compare_runs(["futex"], iters)
    futex = linux["results"]["futex"]
    cond = _versus(ours_ins["uswitch_cond"], ours_tsc["uswitch_cond"], futex, 0.1)
    return Section("uswitch", {
        "iters": iters,
        **_versus(ours_ins["uswitch"], ours_tsc["uswitch"], futex, 0.1),
        **_isolation_cost("bench_uswitch", str(iters), "uswitch", ours_ins["uswitch"], ours_tsc["uswitch"]),
        "cond_instructions": cond["revenant_instructions"], "cond_tsc_cycles": cond["revenant_tsc_cycles"],
        "cond_ratio_instructions": cond["ratio_instructions"], "cond_ratio_tsc_cycles": cond["ratio_tsc_cycles"],
        "linux_kernel": linux["kernel"],
    })


@functools.lru_cache(maxsize=4)
def _bench_ipc_runs(iters: int) -> tuple:
    """bench_ipc's RESULT lines under icount and under plain TCG (one pair for ipc and futex)."""
    return (revenant_results("bench_ipc", str(iters), icount=True),
            revenant_results("bench_ipc", str(iters), icount=False))


def bench_ipc(iters: int) -> Section:
    """Request/response through a server environment vs. Linux pipe ping-pong, per round trip."""
    from . import linuxpeer

    ours_ins, ours_tsc = _bench_ipc_runs(iters)
    linux = linuxpeer.compare_runs(["pipe"], iters)
    return Section("ipc", {
        "iters": iters, "unit": "per round trip",
        **_versus(ours_ins["ipc_rr"], ours_tsc["ipc_rr"], linux["results"]["pipe"], 0.3),
        # The goal is on guest instructions; host cycles under TCG are dominated by the two
        # CR3 writes per round trip (a soft-TLB flush each, with PTI), reported unjudged.
        "judged": ["ratio_instructions"],
        "linux_kernel": linux["kernel"],
    })


def bench_futex(iters: int) -> Section:
    """Futex handoff between two environments vs. Linux futex ping-pong, per switch."""
    from . import linuxpeer

    ours_ins, ours_tsc = _bench_ipc_runs(iters)
    linux = linuxpeer.compare_runs(["futex"], iters)["results"]["futex"]
    figures = _versus(ours_ins["futex_pp"], ours_tsc["futex_pp"], linux, 0.0)
    del figures["target_ratio_max"]
    return Section("futex", {"iters": iters, "unit": "per switch", **figures,
                             "note": "Revenant: two environments (two address spaces); Linux: two threads"})


RESTART_CHILDREN = 62


def bench_restart(events: int) -> Section:
    """One in-place restart with 63 blocked vprocs vs. Linux waking 63 futex waiters."""
    from . import linuxpeer
    from .linuxpeer import parse_results
    from .restart import kernel_restarts

    append = "hz=1000 restart_every=5"
    figures: dict = {"events": events, "blocked_vprocs": RESTART_CHILDREN + 1,
                     "environments": RESTART_CHILDREN + 2}
    for unit, icount in (("instructions", True), ("tsc_cycles", False)):
        extra = ["-icount", "shift=0"] if icount else []
        cfg = MachineConfig(name="bench-bench_restart", extra_args=extra,
                            append=f"run=bench_restart:{RESTART_CHILDREN}:{events} {append}")
        with Machine(cfg) as m:
            m.wait_poweroff(timeout=300)
            res = parse_results(m.console.text())
            drops = sorted(r.ns for r in kernel_restarts(m.console.lines()) if r.dropped >= RESTART_CHILDREN)
        gap, tick = float(res["restart_gap"]["tsc_per_iter"]), float(res["tick_gap"]["tsc_per_iter"])
        figures[f"revenant_{unit}"] = gap - tick
        figures[f"revenant_gap_{unit}"] = gap
        figures[f"revenant_tick_{unit}"] = tick
        if icount and drops:        # under icount a guest ns is one instruction
            figures["revenant_drop_and_upcalls_instructions"] = drops[len(drops) // 2]
    linux = linuxpeer.compare_runs(["wakeall"], events)
    lx = linux["results"]["wakeall"]
    figures.update({
        "linux_instructions": lx["instructions"], "linux_tsc_cycles": lx["tsc_cycles"],
        "ratio_instructions": figures["revenant_instructions"] / lx["instructions"],
        "ratio_tsc_cycles": figures["revenant_tsc_cycles"] / lx["tsc_cycles"],
        "linux_kernel": linux["kernel"],
        "note": "63 blocked environments (one vproc each), not 64 blocked threads of one program: "
                "the blocked upcall is not in this branch. Under plain TCG the children's reruns "
                "land inside the measured gap only sometimes: trust the instruction figures",
    })
    return Section("restart", figures)


def bench_checkpoint(quick: bool) -> Section:
    """Workload slowdown under periodic checkpoints; checkpoint pause and size against dirty pages."""
    from .persist import bench as ckpt_bench

    return Section("checkpoint", ckpt_bench.figures(quick))
_DISK_LINES = {
    "write": re.compile(r"# blk: sequential write (\d+) KiB in (\d+) ns: \d+ KiB/s, (\d+) requests, "
                        r"(\d+) ns and (\d+) polls per request"),
    "flush": re.compile(r"# blk: flush (\d+) ns, (\d+) polls"),
    "small": re.compile(r"# blk: \d+ one-sector writes, (\d+) ns and (\d+) polls per request"),
}


def _disk_run(icount: bool, disk: Path) -> dict:
    """One boot of ``test=blk.sequential_write_cost`` on a fresh disk: its ``# blk:`` figures."""
    disk.unlink(missing_ok=True)
    extra = ["-icount", "shift=0"] if icount else []
    with Machine(MachineConfig(name="bench-disk", append="test=blk.sequential_write_cost", disk=disk,
                               extra_args=extra)) as m:
        result = m.wait(300)
        text = "\n".join(m.console.lines())
    disk.unlink(missing_ok=True)
    found = {key: rx.search(text) for key, rx in _DISK_LINES.items()}
    if not result.ok or not all(found.values()):
        raise RevenantError(f"the blk cost case did not report ({result}); log: {m.log_path}")
    kib, ns, _reqs, req_ns, polls = (int(g) for g in found["write"].groups())
    return {"write_mib_s": kib / 1024 / (ns / 1e9), "request_128k": req_ns, "request_128k_polls": polls,
            "flush": int(found["flush"].group(1)), "request_1s": int(found["small"].group(1)),
            "request_1s_polls": int(found["small"].group(2))}


def bench_disk(runs: int) -> Section:
    disk = paths.BUILD / "bench-disk.qcow2"
    tcg = [_disk_run(False, disk) for _ in range(runs)]
    ins = [_disk_run(True, disk) for _ in range(runs)]

    def med(rows: list, key: str) -> float:
        return _median([row[key] for row in rows])
    return Section("disk", {
        "runs": runs, "write_mib_s": med(tcg, "write_mib_s"),
        "request_128k_us": med(tcg, "request_128k") / 1e3, "request_1sector_us": med(tcg, "request_1s") / 1e3,
        "flush_ms": med(tcg, "flush") / 1e6,
        "request_128k_instructions": med(ins, "request_128k"), "request_128k_polls": med(ins, "request_128k_polls"),
        "request_1sector_instructions": med(ins, "request_1s"), "request_1sector_polls": med(ins, "request_1s_polls"),
        "flush_instructions": med(ins, "flush")})


def _guard(name: str, fn: Callable[[], Section]) -> Section:
    try:
        return fn()
    except RevenantError as err:
        return Section(name, error=err.summary)


WHAT = {
    "boot": "boots to the banner and to poweroff",
    "harness": "boot-to-poweroff, bare QEMU vs Machine",
    "snapshot": "QMP snapshot-save/-load on a running guest",
    "syscall": "getpid round trip vs Linux",
    "activation": "timer upcall round trip vs Linux SIGALRM",
    "uswitch": "user-level thread switch vs Linux futex",
    "ipc": "request/response round trip vs Linux pipe ping-pong",
    "futex": "futex handoff between environments vs Linux futex",
    "restart": "one in-place restart, 63 blocked, vs Linux waking 63 futex waiters",
    "checkpoint": "workload slowdown at 20..200 checkpoints/s; pause and size against dirty pages",
    "disk": "virtio-blk writes and flush, host time and guest instructions",
}


def _linux_cached() -> bool:
    from . import linuxpeer
    return bool(os.environ.get("REVENANT_LINUX_VMLINUZ")) or linuxpeer._newest_cached() is not None


def run_all(quick: bool = False, out: str = "build/bench.json",
            only: Optional[list[str]] = None, progress: bool = False) -> BenchReport:
    unknown = [n for n in (only or []) if n not in SECTIONS]
    if unknown:
        raise UsageError(f"unknown bench section {', '.join(unknown)}; the sections are {','.join(SECTIONS)}")
    runs = 3 if quick else 10
    iters = 2000 if quick else 100000
    plan: dict[str, Callable[[], Section]] = {
        "boot": lambda: bench_boot(runs),
        "harness": lambda: bench_harness(runs),
        "snapshot": lambda: bench_snapshot(runs),
        "syscall": lambda: bench_syscall(iters),
        "activation": lambda: bench_activation(500 if quick else 2000),
        "uswitch": lambda: bench_uswitch(iters),
        "ipc": lambda: bench_ipc(iters // 5),
        "futex": lambda: bench_futex(iters // 5),
        "restart": lambda: bench_restart(50 if quick else 200),
        "checkpoint": lambda: bench_checkpoint(quick),
        "disk": lambda: bench_disk(runs),
    }
    chosen = [name for name in plan if not only or name in only]

    def say(text: str) -> None:
        if progress:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    report = BenchReport()
    for i, name in enumerate(chosen, 1):
        if name in NEEDS_LINUX and not _linux_cached():
            say("the Linux baseline is not cached yet: fetching Debian's linux-image-cloud-amd64 once "
                "(about 27 MB, apt-get download) into build/cache/linux/; "
                "REVENANT_LINUX_VMLINUZ=/path/to/vmlinuz uses your own instead")
        say(f"[{i}/{len(chosen)}] {name}: {WHAT[name]} ...")
        t0 = time.monotonic()
        section = _guard(name, plan[name])
        report.sections.append(section)
        outcome = f"error: {section.error}" if section.error else \
            ", ".join(f"{v.figure} {v}" for v in section.verdicts()) or "measured"
        say(f"[{i}/{len(chosen)}] {name}: done in {time.monotonic() - t0:.1f} s ({outcome})")
    path = out_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({s.name: {**s.figures, **({"error": s.error} if s.error else {}),
                                         **({"verdicts": {v.figure: {"value": v.value, "target_max": v.target_max,
                                                                     "ok": v.ok} for v in s.verdicts()}}
                                            if s.verdicts() else {})}
                                for s in report.sections}, indent=2))
    report.out = path
    return report
