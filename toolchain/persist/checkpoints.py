"""Checkpoints from the host: asking a running machine for one, and reading the kernel's lines.

* ``request(socket)``: QMP ``send-key`` of F12 to a machine started by ``invoke run --qmp``. The
  kernel's PS/2 keyboard driver (kernel/kbd.c) notes the key and takes a checkpoint at its next
  safe point, printing one ``checkpoint <n>: ...`` line (docs/persistence.md, "Triggers").
* ``kernel_checkpoints(lines)``: those lines, parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from ..snapshot import execute_once

CHECKPOINT_KEY = "f12"          # kernel/kbd.h KBD_CHECKPOINT_SCANCODE (0x58, set 1)

CHECKPOINT_LINE = re.compile(
    r"^checkpoint (?P<n>\d+): generation (?P<generation>\d+), (?P<envs>\d+) envs, (?P<pages>\d+) pages "
    r"\((?P<dirty>\d+) dirty\), (?P<kib>\d+) KiB written, (?P<ms>\d+\.\d{3}) ms(?P<full>, full)?; "
    r"by (?P<by>\w+)$")
CUT_LINE = re.compile(r"^checkpoint: cut after step (?P<step>\d) \((?P<what>.+)\)$")


@dataclass(frozen=True)
class Checkpoint:
    """One ``checkpoint <n>: ...`` line of the kernel."""

    n: int              # committed this boot
    generation: int
    envs: int
    pages: int          # pages the checkpoint names
    dirty: int          # of those, written by it
    kib: int            # KiB written: changed pages plus the manifest
    ms: float           # guest time from the capture to the commit (the pause)
    full: bool
    by: str             # timer, syscall, host, output (a writer waited for the held buffer)


@dataclass(frozen=True)
class CheckpointRequest:
    socket: Path
    ms: float


def request(socket: Union[str, Path, None] = None) -> CheckpointRequest:
    """Press F12 on the machine listening on ``socket`` (default build/qmp.sock)."""
    return CheckpointRequest(*execute_once(socket, "send-key",
                                           {"keys": [{"type": "qcode", "data": CHECKPOINT_KEY}]}))


def kernel_checkpoints(lines: List[str]) -> List[Checkpoint]:
    out = []
    for line in lines:
        m = CHECKPOINT_LINE.match(line)
        if m:
            d = m.groupdict()
            out.append(Checkpoint(int(d["n"]), int(d["generation"]), int(d["envs"]), int(d["pages"]),
                                  int(d["dirty"]), int(d["kib"]), float(d["ms"]), d["full"] is not None,
                                  d["by"]))
    return out


def cut_step(lines: List[str]) -> Optional[int]:
    """The step after which ``checkpoint_cut=`` powered the machine off, if it did."""
    for line in lines:
        m = CUT_LINE.match(line)
        if m:
            return int(m.group("step"))
    return None
