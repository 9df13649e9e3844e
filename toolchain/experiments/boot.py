"""What the single-boot experiments (leak, chained, fuzz, restart) share: one boot of the real
kernel with its serial log in the trial's directory, and the ``-icount`` arguments (with QEMU
record/replay when the engine asks for it: rr.py's ``rr_args``)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..machine import Machine, MachineConfig
from .engine import RR


@dataclass
class Boot:
    lines: List[str]
    log: Path
    status: int                         # QEMU's exit status; -1 if it had none


def icount(shift: int, rr: Optional[RR]) -> List[str]:
    """``-icount shift=N``; under record/replay, rr.py's arguments for the same shift."""
    if rr is None:
        return ["-icount", f"shift={shift}"]
    from .rr import rr_args           # the rr owner's helper (issue 10 contract)

    return list(rr_args(rr, shift))


def boot(name: str, append: str, timeout: float, workdir: Path, extra_args: Optional[List[str]] = None) -> Boot:
    cfg = MachineConfig(name=name, append=append, extra_args=list(extra_args or []), log_dir=workdir,
                        symbolize=False)
    with Machine(cfg) as m:
        result = m.wait(timeout=timeout)
        return Boot(m.console.lines(), m.log_path, result.status if result.status is not None else -1)


def fields(text: str) -> Dict[str, int]:
    """``a=1 b=2`` -> {"a": 1, "b": 2}."""
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def argv_template(append: str, extra_args: Optional[List[str]] = None) -> List[str]:
    """The QEMU argv of a boot (for the campaign JSON), without starting it."""
    from ..bench import _drop_pidfile

    m = Machine(MachineConfig(name="describe", append=append, extra_args=list(extra_args or []),
                              symbolize=False))
    return _drop_pidfile(m.argv())
