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
           "list_offline", "check_name", "command",
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
    socket: Path                # the QMP socket, or the disk for an offline listing
    ms: float
    offline: bool = False


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
    return QMP().connect(sock, timeout=timeout)     # its error names the socket and says what to run


def execute_once(socket: Union[str, Path, None], command: str, args: Optional[dict] = None) -> tuple[Path, float]:
    """One QMP command to the machine on ``socket`` (default build/qmp.sock): the socket and the ms it took."""
    t0 = time.perf_counter()
    q = open_qmp(socket)
    try:
        q.execute(command, args) if args is not None else q.execute(command)
    finally:
        q.close()
    return Path(socket) if socket else DEFAULT_SOCKET, (time.perf_counter() - t0) * 1000


def _op(kind: str, name: str, socket: Union[str, Path, None], timeout: float, resume: Optional[bool]) -> SnapshotOp:
    if not name:
        raise QMPError(f"snapshot {kind} needs a name")
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
                raise QMPError(f"no snapshot named {name!r} (`invoke snapshot list` lists them)")
            timing = q.snapshot_load(name, timeout=timeout, resume=True if resume is None else resume)
        else:
            if name not in {s.name for s in q.snapshots()}:
                raise QMPError(f"no snapshot named {name!r} (`invoke snapshot list` lists them)")
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


def list_offline(disk: Union[str, Path]) -> SnapshotList:
    """The snapshots stored in a qcow2 file, read with ``qemu-img info`` (no machine needed).

    ``-U`` (force-share) lets it read a disk a running QEMU holds open.
    """
    import datetime
    import json
    import subprocess

    from .machine import QEMU_IMG, find_tool

    path = Path(disk)
    if not path.is_file():
        raise QMPError(f"no snapshot disk {path} (a machine started by `invoke run --qmp` creates it)")
    t0 = time.perf_counter()
    proc = subprocess.run([find_tool(QEMU_IMG), "info", "-U", "--output=json", str(path)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["unreadable"]
        raise QMPError(f"cannot read the snapshots of {path}: {why[0]}")
    info = json.loads(proc.stdout)
    if info.get("format") != "qcow2":
        raise QMPError(f"{path} is a {info.get('format', '?')} image, not qcow2: it holds no snapshots")
    snaps = [SnapshotInfo(str(s.get("id", "")), s.get("name", ""), "", int(s.get("vm-state-size", 0)),
                          datetime.datetime.fromtimestamp(int(s.get("date-sec", 0))),
                          int(s.get("vm-clock-sec", 0)) * 1_000_000_000 + int(s.get("vm-clock-nsec", 0)))
             for s in info.get("snapshots", [])]
    return SnapshotList(snaps, path, (time.perf_counter() - t0) * 1000, offline=True)


def format_list(result: SnapshotList) -> str:
    """A small table for ``invoke snapshot list``."""
    where = f"disk {result.socket}, read offline" if result.offline else f"machine at {result.socket}"
    if not result.snapshots:
        return f"no snapshots ({where})"
    rows = [("ID", "NAME", "VM STATE", "DATE", "VM CLOCK")]
    for s in result.snapshots:
        clock = s.vm_clock_ns / 1e9
        rows.append((s.id, s.name, f"{s.vm_state_size / 1024:.0f} KiB", s.date.strftime("%Y-%m-%d %H:%M:%S"),
                     f"{clock:.3f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    return f"{table}\n({len(result.snapshots)} snapshot{'s' if len(result.snapshots) != 1 else ''}, {where})"


MAX_NAME = 127


def check_name(name: str) -> None:
    """``UsageError`` for a name QEMU cannot use as a snapshot tag (or would confuse with another)."""
    from .errors import UsageError

    why = ""
    if not name:
        why = "it is empty"
    elif any(c.isspace() or not c.isprintable() for c in name):
        why = "it holds white space or control characters (qemu-img's listing cannot show it)"
    elif "," in name:
        why = "it holds a comma (QEMU's option syntax splits at commas)"
    elif name.isdigit():
        why = "it is all digits: QEMU and qemu-img also look snapshots up by ID, and would take it for one"
    elif name.startswith("-"):
        why = "it starts with '-' (qemu-img would read it as an option)"
    elif len(name.encode()) > MAX_NAME:
        why = f"it is longer than {MAX_NAME} bytes"
    if why:
        raise UsageError(f"bad snapshot name {name!r}: {why}")


def _socket_alive(sock: Path) -> bool:
    import socket as _socket
    if not sock.is_socket():
        return False
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(sock))
        return True
    except OSError:
        return False
    finally:
        s.close()


def command(action: str, name: str = "", socket: Union[str, Path, None] = None,
            disk: Union[str, Path, None] = None) -> str:
    """``invoke snapshot ACTION [NAME]``: what to print, or one ``RevenantError``."""
    import dataclasses
    import fnmatch

    from .errors import UsageError

    name = name or ""
    if action == "list":
        pattern = name or "*"
        sock = Path(socket) if socket else DEFAULT_SOCKET
        if disk:
            listing = list_offline(disk)
        elif socket or _socket_alive(sock):
            listing = list_snapshots(sock)
        elif DEFAULT_DISK.is_file():
            listing = list_offline(DEFAULT_DISK)       # no machine runs: the disk still has them
        else:
            raise QMPError(f"no machine is listening on {sock} and there is no snapshot disk {DEFAULT_DISK} "
                           f"(`invoke run --qmp` starts a machine; `--disk QCOW2` lists another disk)")
        if pattern not in ("all", "*"):
            listing = dataclasses.replace(
                listing, snapshots=[s for s in listing.snapshots if fnmatch.fnmatch(s.name, pattern)])
        return format_list(listing)
    operations = {"save": save, "load": load, "delete": delete}
    if action not in operations:
        raise UsageError(f"unknown snapshot action {action!r}: use save, load, delete or list")
    if not name:
        raise UsageError(f"snapshot {action} needs a name: `invoke snapshot {action} NAME` "
                         f"(`invoke snapshot list` lists them)")
    if disk:
        raise UsageError(f"--disk is for `snapshot list` (read offline); snapshot {action} acts on the "
                         f"machine at --socket")
    if action == "save":
        check_name(name)
    op = operations[action](name, socket)
    return (f"{op.op} {op.name}: {op.ms:.1f} ms (with stop/cont {op.total_ms:.1f} ms), "
            f"machine {op.status_after}")
