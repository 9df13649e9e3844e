"""`invoke experiment NAME`: the long versions of the suite's experiments, with a large N.

The test suite runs each of these with a small N so it stays fast; here N is yours. Every run
boots the real kernel, keeps its serial log, checks the program's own verdict lines, and writes
a JSON record to build/experiments/<name>-<timestamp>.json.

- leak:    act_stress with N preemptions (deterministic tick under -icount shift=0); at the end
           every checksum is exact and the kernel's free-record count equals the pool size.
- chained: act_stress at a high tick rate until the kernel has re-delivered N records
           (interrupts that landed inside the restore sequence); checksums still exact.
- fuzz:    N fuzz runs of 100,000 random syscalls each, from fresh random seeds; the kernel
           survives every one (each seed is recorded, to replay one: run=fuzz:SEED).
- restart: the producer/consumer ring (two environments, a shared region, futexes) under
           in-place restarts every millisecond until the producer has seen N of them; no
           message lost, doubled or corrupted, and the consumer's checksum is the expected one.
- upgrade: N trials: a workload checkpointed under this build is killed (SIGKILL) after a
           seeded number of checkpoints and restored under build B (toolchain/persist/upgrade.py:
           struct env padded, another tick rate, a system call more); it finishes with the
           uninterrupted run's final line.
- powercut: N trials: SIGKILL at a seeded random instant of a checkpointed run, a restore, the
           run finishes; lost / doubled / repeated lines counted (toolchain/persist/powercut.py).
- loadvm:  QMP snapshot-save at a random instant, snapshot-load into a fresh QEMU, an in-place
           restart at a random delay after it, the same final line (toolchain/loadvm.py; its
           own options: --trials --seed --workload --trial --jobs).
"""
from __future__ import annotations

import json
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import paths
from . import restart as restarts
from .errors import RevenantError
from .machine import Machine, MachineConfig

ICOUNT = ["-icount", "shift=0"]
STATS = re.compile(r"^act: env \d+ \(act_stress\) stats (.*)$")


@dataclass
class ExperimentResult:
    name: str
    n: int
    ok: bool
    seconds: float
    figures: dict = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    json_path: str = ""

    def render(self) -> str:
        lines = [f"experiment {self.name} n={self.n}: {'OK' if self.ok else 'FAILED'} "
                 f"in {self.seconds:.1f} s"]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines += [f"  log: {log}" for log in self.logs]
        lines.append(f"  json: {self.json_path}")
        return "\n".join(lines)


def _fields(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def _boot(name: str, append: str, timeout: float, icount: bool = False) -> tuple[list[str], Path, int]:
    cfg = MachineConfig(name=f"exp-{name}", append=append, extra_args=ICOUNT if icount else [])
    with Machine(cfg) as m:
        result = m.wait(timeout=timeout)
        return m.console.lines(), m.log_path, result.status if result.status is not None else -1


def _stress_verdict(lines: list[str]) -> dict:
    kernel = next((_fields(m.group(1)) for line in lines if (m := STATS.match(line))), {})
    threads_ok = sum(1 for line in lines if re.match(r"^stress: thread \d+ ok ", line))
    return {
        "threads_exact": threads_ok,
        "done_ok": "stress: done ok" in lines,
        "kernel_stats": kernel,
        "pool_whole": bool(kernel) and kernel.get("free") == kernel.get("pool"),
    }


def leak(n: int, hz: int = 100_000, threads: int = 8) -> ExperimentResult:
    t0 = time.monotonic()
    budget = 60 + n / 20_000              # ~57,000 preemptions/s measured under icount; slack for load
    lines, log, status = _boot("leak", f"run=act_stress:{threads}:10000:0:{n} hz={hz}", budget, icount=True)
    v = _stress_verdict(lines)
    preemptions = v["kernel_stats"].get("delivered", 0) + v["kernel_stats"].get("redelivered", 0)
    ok = (status == 33 and v["done_ok"] and v["pool_whole"] and v["threads_exact"] == threads
          and preemptions >= n)
    return ExperimentResult("leak", n, ok, time.monotonic() - t0,
                            {"preemptions": preemptions, "hz": hz, "exit_status": status, **v}, [str(log)])


def chained(n: int, hz: int = 20_000, threads: int = 8) -> ExperimentResult:
    # 20 kHz: a 10 us tick under plain TCG collapses on a loaded host (tests/test_activations.py).
    t0 = time.monotonic()
    lines, log, status = _boot("chained", f"run=act_stress:{threads}:10000:0:0:{n} hz={hz}",
                               120 + n * 0.1)
    v = _stress_verdict(lines)
    redelivered = v["kernel_stats"].get("redelivered", 0)
    ok = (status == 33 and v["done_ok"] and v["pool_whole"] and v["threads_exact"] == threads
          and redelivered >= n)
    return ExperimentResult("chained", n, ok, time.monotonic() - t0,
                            {"redelivered": redelivered, "hz": hz, "exit_status": status, **v}, [str(log)])


def fuzz(n: int, calls: int = 100_000) -> ExperimentResult:
    t0 = time.monotonic()
    seeds, failed, logs = [], [], []
    for _ in range(n):
        seed = random.randrange(1, 2**31)
        lines, log, status = _boot("fuzz", f"run=fuzz:{seed}:{calls},hello", 120)
        seeds.append(seed)
        logs.append(str(log))
        if status != 33 or f"fuzz: done {calls} calls" not in lines:
            failed.append({"seed": seed, "exit_status": status, "log": str(log)})
    return ExperimentResult("fuzz", n, not failed, time.monotonic() - t0,
                            {"calls_per_run": calls, "seeds": seeds, "failed": failed},
                            logs if failed else logs[:1])


def restart(n: int, every_ms: int = 1, hz: int = 1000) -> ExperimentResult:
    t0 = time.monotonic()
    # ~1 restart per guest ms; plain TCG runs the ring at a few guest seconds per host second
    # on a loaded 2-core host, hence the generous budget.
    lines, log, status = _boot("restart", f"hz={hz} restart_every={every_ms} run=ring:1:16:0:{n}",
                               60 + n * 0.02)
    v = restarts.ring_verdict(lines) or {}
    kernel = restarts.kernel_restarts(lines)
    costs = sorted(r.ns for r in kernel)
    figures = {
        "restarts": len(kernel),
        "restarted_upcalls": v.get("restarts", 0),
        "messages": v.get("got", 0),
        "sent": v.get("sent", 0),
        "lost": v.get("lost"),
        "doubled": v.get("doubled"),
        "corrupt": v.get("corrupt"),
        "checksum_expected": v.get("checksum_expected"),
        "checksum_got": v.get("checksum_got"),
        "futex_waiters_dropped": sum(r.futex for r in kernel),
        "restart_ns_median": costs[len(costs) // 2] if costs else None,
        "restart_ns_max": costs[-1] if costs else None,
        "every_ms": every_ms,
        "hz": hz,
        "exit_status": status,
    }
    ok = status == 33 and restarts.ring_exact(v or None) and v.get("producer_restarts", 0) >= n
    return ExperimentResult("restart", n, ok, time.monotonic() - t0, figures, [str(log)])


EXPERIMENTS: dict[str, tuple[Callable[[int], ExperimentResult], int]] = {
    "leak": (leak, 10_000_000),
    "chained": (chained, 1_000),
    "fuzz": (fuzz, 20),
    "restart": (restart, 10_000),
    "upgrade": (lambda n: _upgrade(n), 5),
    "powercut": (lambda n: _powercut(n), 20),
}


def _powercut(n: int) -> ExperimentResult:
    from .persist import powercut

    return powercut.experiment(n)


def _upgrade(n: int) -> ExperimentResult:
    from .persist import upgrade

    return upgrade.experiment(n)


# Experiments with options of their own, run by their own module (toolchain/loadvm.py).
OWN_OPTIONS = ("loadvm",)


def check_name(name: str) -> None:
    """``RevenantError`` for an experiment that does not exist (before anything is built)."""
    if name not in EXPERIMENTS and name not in OWN_OPTIONS:
        raise RevenantError(f"unknown experiment {name!r}: choose one of "
                            f"{', '.join([*EXPERIMENTS, *OWN_OPTIONS])}")


def run(name: str, n: int = 0) -> ExperimentResult:
    check_name(name)
    if n < 0:
        raise RevenantError(f"experiment {name}: N must be at least 1, not {n}")
    fn, default_n = EXPERIMENTS[name]
    result = fn(n or default_n)
    out_dir = paths.BUILD / "experiments"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result.json_path = str(out)
    out.write_text(json.dumps(asdict(result), indent=2))
    return result
