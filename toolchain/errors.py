"""Errors raised by the Revenant toolkit.

Every error is a ``RevenantError``.  Tasks print ``error: <str(exc)>`` and exit 1
without a traceback.  ``summary`` is always one line; for ToolMissing,
KernelImageError, QMPError and BuildError the whole message is that one line.
BootTimeout and GuestFailure messages start with the one-line summary and go on
with the (symbolized) panic report, the log tail and the log path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class RevenantError(Exception):
    """Base class of every toolkit error."""

    def __init__(self, message: str, *, log_path: Optional[PathLike] = None) -> None:
        self.message = str(message).rstrip()
        self.log_path = Path(log_path) if log_path is not None else None
        super().__init__(self.message)

    @property
    def summary(self) -> str:
        """The first line of the message."""
        return self.message.split("\n", 1)[0]

    def __str__(self) -> str:
        return self.message


class ToolMissing(RevenantError):
    """A host tool (qemu, gcc, ld, ...) is not installed / not on PATH."""


class KernelImageError(RevenantError):
    """The kernel image is missing, not an ELF64 x86-64 file, or corrupt."""


class BuildError(RevenantError):
    """Building the kernel failed."""


class BootTimeout(RevenantError):
    """The guest did not produce the expected output in time (message includes the log path)."""


class NoOutputTimeout(BootTimeout):
    """The guest printed nothing for longer than the idle timeout."""


class OverallTimeout(BootTimeout):
    """The overall deadline passed before the expected output appeared."""


class GuestFailure(RevenantError):
    """The guest failed: panic, unexpected reset / triple fault, bad exit status.

    ``report`` holds the (symbolized) panic report when there is one, ``exit_status``
    the QEMU exit status when QEMU had exited.
    """

    def __init__(self, message: str, *, log_path: Optional[PathLike] = None, report: str = "",
                 exit_status: Optional[int] = None) -> None:
        super().__init__(message, log_path=log_path)
        self.report = report
        self.exit_status = exit_status


class QMPError(RevenantError):
    """A QMP command or snapshot job failed, or no QEMU is listening on the socket."""


class UsageError(RevenantError):
    """A task was given a bad option value, a bad name, or a kernel command line it knows is wrong."""


__all__ = [
    "RevenantError", "ToolMissing", "KernelImageError", "BuildError", "BootTimeout",
    "NoOutputTimeout", "OverallTimeout", "GuestFailure", "QMPError", "UsageError",
]
