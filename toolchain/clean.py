"""`invoke clean`: remove what the build and the runs left in build/, but nothing that is in use.

Kept: build/cache (the downloaded Linux peer: a network fetch to get back) and, unless
``everything``, build/snapshots.qcow2 (saved machine states are data, not build output).
Refused while a machine started by this tree runs (`invoke run`, a test, a benchmark): its
serial log, pidfile and QMP socket are in build/.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import paths
from .errors import RevenantError
from .machine import RUN_DIR_NAME, live_machines

KEEP = ("cache",)


def running_machines(build: Path = paths.BUILD) -> list[int]:
    """Pids of the QEMUs started from this tree that are running now."""
    run_dir = build / "logs" / RUN_DIR_NAME
    return [pid for pid, _ppid, _pidfile in live_machines(run_dir)] if run_dir.is_dir() else []


def clean(everything: bool = False, build: Path = paths.BUILD) -> str:
    """Delete build/'s contents but the kept ones; the one-line summary."""
    if not build.exists():
        return f"nothing to clean: {build} does not exist"
    live = running_machines(build)
    if live:
        pids = ", ".join(map(str, live))
        raise RevenantError(f"a machine is running (QEMU pid {pids}); its log, pidfile and QMP socket "
                            f"are in {build}: stop it first (Ctrl-C in its terminal), then clean")
    keep = set(KEEP) | (set() if everything else {paths.SNAPSHOT_DISK.name})
    removed = 0
    for child in sorted(build.iterdir()):
        if child.name in keep:
            continue
        try:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        except OSError as err:
            where = err.filename or child
            raise RevenantError(f"cannot remove {where}: {err.strerror} "
                                f"({removed} entries of {build} removed before it)") from None
        removed += 1
    kept = [name for name in sorted(keep) if (build / name).exists()]
    kept_text = f" (kept {', '.join('build/' + k for k in kept)})" if kept else ""
    hint = "; `invoke clean --all` also deletes the saved snapshots" if paths.SNAPSHOT_DISK.name in kept else ""
    return f"cleaned {build}{kept_text}{hint}"
