"""QEMU internal snapshots of a running machine, for ``invoke snapshot save|load|list|delete``.

The machine is one started by ``invoke run --qmp`` (see ``snapshot_machine_config``):
QMP socket at build/qmp.sock, snapshot disk build/snapshots.qcow2 (node d0).  Each
function connects, does one thing, disconnects, and returns a dataclass with timings.
Snapshots live in the qcow2 file, so they outlive the QEMU run that took them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from . import paths
from .errors import QMPError
from .machine import MachineConfig
from .qmp import QMP, SnapshotInfo, SnapshotTiming

DEFAULT_SOCKET: Path = paths.QMP_SOCK
DEFAULT_DISK: Path = paths.SNAPSHOT_DISK

__all__ = ["SnapshotOp", "SnapshotList", "save", "load", "delete", "list_snapshots", "format_list",
           "snapshot_machine_config", "open_qmp", "DEFAULT_SOCKET", "DEFAULT_DISK"]


@dataclass(frozen=True)
class SnapshotOp:
    """One save/load/delete: ``ms`` is the QMP job alone, ``total_ms`` includes connect and stop/cont."""

    op: str
    name: str
    ms: float
    total_ms: float
    status_after: str      # QEMU run state afterwards ("running", "paused", ...)
    socket: Path


@dataclass(frozen=True)
class SnapshotList:
    snapshots: List[SnapshotInfo]
    socket: Path
    ms: float


def snapshot_machine_config(**overrides: object) -> MachineConfig:
    """``MachineConfig`` for ``invoke run --qmp``: QMP at build/qmp.sock, qcow2 disk for snapshots."""
    cfg = MachineConfig(qmp=True, qmp_socket=DEFAULT_SOCKET, disk=DEFAULT_DISK, name="run")
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise TypeError(f"MachineConfig has no field {key!r}")
        setattr(cfg, key, value)
    return cfg


def open_qmp(socket: Union[str, Path, None] = None, timeout: float = 2.0) -> QMP:
    """Connect to the machine listening on ``socket``; one clear ``QMPError`` if there is none."""
    sock = Path(socket) if socket else DEFAULT_SOCKET
    if not sock.exists():
        raise QMPError(f"no machine is listening on {sock} (start one with `invoke run --qmp`)")
    try:
        return QMP().connect(sock, timeout=timeout)
    except QMPError as exc:
        raise QMPError(f"no machine is listening on {sock} ({exc.summary}); start one with `invoke run --qmp`") \
            from None


def _op(kind: str, name: str, socket: Union[str, Path, None], timeout: float, resume: Optional[bool]) -> SnapshotOp:
    _check_name(name)
    t0 = time.perf_counter()
    q = open_qmp(socket)
    try:
        timing: SnapshotTiming
        if kind == "save":
            if name in {s.name for s in q.snapshots()}:
                q.snapshot_delete(name, timeout=timeout)     # QMP snapshot-save refuses to overwrite
            timing = q.snapshot_save(name, timeout=timeout, resume=resume)
        elif kind == "load":
            if name not in {s.name for s in q.snapshots()}:
                raise QMPError(f"no snapshot named {name!r} (see `invoke snapshot list`)")
            timing = q.snapshot_load(name, timeout=timeout, resume=True if resume is None else resume)
        else:
            if name not in {s.name for s in q.snapshots()}:
                raise QMPError(f"no snapshot named {name!r} (see `invoke snapshot list`)")
            timing = q.snapshot_delete(name, timeout=timeout)
        status = q.status()
    finally:
        q.close()
    return SnapshotOp(kind, name, timing.job_ms, (time.perf_counter() - t0) * 1000, status,
                      Path(socket) if socket else DEFAULT_SOCKET)


def save(name: str, socket: Union[str, Path, None] = None, timeout: float = 60.0,
         resume: Optional[bool] = None) -> SnapshotOp:
    """Stop the VM, save snapshot ``name`` (replacing one with that name), resume if it was running."""
    return _op("save", name, socket, timeout, resume)


def load(name: str, socket: Union[str, Path, None] = None, timeout: float = 60.0,
         resume: bool = True) -> SnapshotOp:
    """Stop the VM, load snapshot ``name``, resume (unless ``resume=False``)."""
    return _op("load", name, socket, timeout, resume)


def delete(name: str, socket: Union[str, Path, None] = None, timeout: float = 60.0) -> SnapshotOp:
    """Delete snapshot ``name``."""
    return _op("delete", name, socket, timeout, None)


def list_snapshots(socket: Union[str, Path, None] = None) -> SnapshotList:
    """The snapshots on the machine's snapshot disk."""
    t0 = time.perf_counter()
    q = open_qmp(socket)
    try:
        snaps = q.snapshots()
    finally:
        q.close()
    return SnapshotList(snaps, Path(socket) if socket else DEFAULT_SOCKET, (time.perf_counter() - t0) * 1000)


def format_list(result: SnapshotList) -> str:
    """A small table for ``invoke snapshot list``."""
    if not result.snapshots:
        return f"no snapshots (machine at {result.socket})"
    rows = [("ID", "NAME", "VM STATE", "DATE", "VM CLOCK")]
    for s in result.snapshots:
        clock = s.vm_clock_ns / 1e9
        rows.append((s.id, s.name, f"{s.vm_state_size / 1024:.0f} KiB", s.date.strftime("%Y-%m-%d %H:%M:%S"),
                     f"{clock:.3f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _check_name(name: str) -> None:
    if not name or name.strip() != name or any(c in name for c in ",\n"):
        raise QMPError(f"bad snapshot name {name!r}")
