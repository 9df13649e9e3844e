"""Well-known paths of the Revenant tree (see docs/toolkit.md)."""
from __future__ import annotations

from pathlib import Path

ROOT: Path = Path(__file__).resolve().parent.parent
BUILD: Path = ROOT / "build"
KERNEL_ELF: Path = BUILD / "kernel.elf"
LOGS: Path = BUILD / "logs"
QMP_SOCK: Path = BUILD / "qmp.sock"
SNAPSHOT_DISK: Path = BUILD / "snapshots.qcow2"

__all__ = ["ROOT", "BUILD", "KERNEL_ELF", "LOGS", "QMP_SOCK", "SNAPSHOT_DISK"]
