"""Kernel build B: the same sources with real differences, to restore build A's checkpoints on.

A checkpoint names no kernel address and no kernel struct (docs/persistence.md, "Upgrade"),
so a kernel whose insides differ must restore it. Build B is a copy of the tree
(``build/upgrade-b/``) with these edits, each one checked to apply:

* ``struct env`` starts with 232 bytes of padding: every field of it at another offset, the
  structure in another kmalloc size class;
* the default tick rate is 250 Hz instead of 100;
* a system call more (35, ``build_b``), so the syscall table and ``SYS_COUNT`` differ;
* one boot line more, ``revenant: build B ...``, so a log says which kernel ran.

The copy is synchronized file by file (only what changed is rewritten), so its Ninja build
stays incremental: the first build compiles everything, later ones what changed.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import build as builder
from .. import paths
from ..errors import RevenantError

VARIANT_DIR = paths.BUILD / "upgrade-b"
SOURCES = ("boot", "kernel", "userland")
BANNER = "revenant: build B"


@dataclass(frozen=True)
class Edit:
    path: str
    anchor: str
    replacement: str


EDITS = (
    Edit("kernel/env.h", "struct env {\n",
         "struct env {\n    uint64_t upgrade_pad[29];   // build B: every field at another offset\n"),
    Edit("kernel/cmdline_keys.h", "KEY_ULONG(hz, 1, 1000000, 100,", "KEY_ULONG(hz, 1, 1000000, 250,"),
    Edit("kernel/abi.h", "#define SYS_COUNT       35",
         "#define SYS_build_b     35  // build B only: () -> 2\n#define SYS_COUNT       36"),
    Edit("kernel/syscall.c", "static const syscall_fn syscalls[SYS_COUNT] = {\n",
         "static long sys_build_b(void)\n{\n    return 2;\n}\n\n"
         "static const syscall_fn syscalls[SYS_COUNT] = {\n    CALL(SYS_build_b, sys_build_b),\n"),
    Edit("kernel/main.c", 'kprintf("revenant: ready\\n");',
         'kprintf("revenant: ready\\n");\n'
         f'    kprintf("{BANNER} (upgrade variant: struct env padded, hz 250 by default, '
         'system call 35)\\n");'),
)


class UpgradeError(RevenantError):
    """Build B could not be made (an edit no longer applies: the sources moved on)."""


def _apply(root: Path, edit: Edit, text: str) -> str:
    if text.count(edit.anchor) != 1:
        raise UpgradeError(f"build B: {edit.path} no longer holds {edit.anchor.strip()!r} once")
    return text.replace(edit.anchor, edit.replacement)


def edited_sources(root: Path) -> dict[Path, bytes]:
    """Every file of build B's tree (relative path -> bytes): the sources with EDITS applied."""
    files = {f.relative_to(root): f.read_bytes()
             for name in SOURCES if (root / name).is_dir()
             for f in (root / name).rglob("*") if f.is_file()}
    for e in EDITS:
        rel = Path(e.path)
        files[rel] = _apply(root, e, files[rel].decode()).encode()
    return files


def _sync(files: dict[Path, bytes], dest: Path) -> None:
    """Make dest/ hold exactly these files, rewriting only those whose bytes differ (Ninja
    judges by modification times)."""
    for rel, data in files.items():
        target = dest / rel
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for name in SOURCES:
        for f in (dest / name).rglob("*") if (dest / name).is_dir() else ():
            if f.is_file() and f.relative_to(dest) not in files:
                f.unlink()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".variant.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_b(root: Path = paths.ROOT, directory: Path = VARIANT_DIR) -> Path:
    """Bring build B up to date; its kernel.elf."""
    with _locked(directory):
        _sync(edited_sources(root), directory / "src")
        return builder.build(root=directory / "src", build_dir=directory / "build").elf


# --------------------------------------------------------------------- invoke experiment upgrade

WORKLOAD = "clockwatch:300:2000"
DONE = re.compile(r"^clockwatch: done rounds=\d+ backwards=0 early=0 checksum=([0-9a-f]+) restarts=\d+$")
CHECKPOINT = re.compile(r"^checkpoint \d+: generation (\d+), (\d+) envs")
RESTORED = re.compile(r"^restore: generation (\d+) from slot [AB], ")


def _final_line(machine) -> str:
    """The workload's verdict line without its restarts= count (a restore adds one)."""
    lines = [line.rstrip("\r") for line in machine.console.lines()]
    final = next((line for line in reversed(lines) if line.startswith("clockwatch: done")), "")
    return re.sub(r" restarts=\d+$", "", final)


def experiment(n: int, seed: int = 1):
    """``invoke experiment upgrade --size N``: N trials of checkpoint under build A, a SIGKILL
    after a seeded number of checkpoints, restore under build B, finish. A trial passes when
    B restores and the workload ends with the uninterrupted run's final line. The JSON holds,
    per trial, both QEMU command lines, the disk and that expected line, so that a script can
    repeat it without the toolkit."""
    import random
    import time

    from ..experiment import ExperimentResult
    from ..machine import Machine, MachineConfig
    from ..runlog import RunLog

    t0 = time.monotonic()
    kernel_a, kernel_b = paths.KERNEL_ELF, build_b()
    work = paths.BUILD / "experiments" / f"upgrade-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    with Machine(MachineConfig(kernel=kernel_a, append=f"run={WORKLOAD}", name="upgrade-baseline")) as m:
        RunLog(m, 120)
        expected = _final_line(m)
    rng = random.Random(seed)
    trials, logs = [], []
    append = f"checkpoint_every=20 run={WORKLOAD}"
    for k in range(n):
        disk = work / f"trial-{k}.qcow2"
        cut_at = rng.randint(3, 12)
        with Machine(MachineConfig(kernel=kernel_a, append=append, disk=disk, name=f"upgrade-a{k}")) as a:
            argv_a = a.argv()
            while True:
                hit = a.expect(CHECKPOINT, timeout=120)
                if int(hit.group(1)) >= cut_at and int(hit.group(2)) >= 2:
                    break
            a.kill()
            logs.append(str(a.log_path))
        with Machine(MachineConfig(kernel=kernel_b, append=append, disk=disk, name=f"upgrade-b{k}")) as b:
            argv_b = b.argv()
            r = RunLog(b, 120)
            logs.append(str(b.log_path))
            final = _final_line(b)
        restored = next((int(g.group(1)) for line in r.lines if (g := RESTORED.match(line))), None)
        ok = restored is not None and final == expected and r.status == 33 and \
            any(line.startswith(BANNER) for line in r.lines)
        trials.append({"trial": k, "cut_after_generation": cut_at, "restored_generation": restored,
                       "ok": ok, "final_line": final, "expected_final_line": expected,
                       "disk": str(disk), "argv_a": argv_a, "argv_b": argv_b, "exit_status_b": r.status})
    per_trial = work / "trials.json"
    per_trial.write_text(json.dumps({"kernel_a": str(kernel_a), "kernel_b": str(kernel_b),
                                     "expected_final_line": expected, "trials": trials}, indent=1))
    figures = {"trials": len(trials), "passed": sum(t["ok"] for t in trials), "seed": seed,
               "restored_generations": [t["restored_generation"] for t in trials],
               "expected_final_line": expected, "per_trial": str(per_trial)}
    return ExperimentResult("upgrade", n, all(t["ok"] for t in trials) and bool(expected),
                            time.monotonic() - t0, figures, logs)
