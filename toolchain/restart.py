"""In-place restarts (docs/restart.md): asking a running machine for one, and reading what a
restart run printed.

* ``request(socket)``: QMP ``inject-nmi`` to a machine started by ``invoke run --qmp`` (the
  socket of ``toolchain.snapshot``); the kernel counts the NMI and restarts at its next safe
  point, printing one ``restart <n>: ...`` line.
* ``kernel_restarts(lines)``: those lines, parsed.
* ``ring_verdict(lines)``: the ``ring`` program's producer and consumer lines, parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

from .snapshot import execute_once

RESTART_LINE = re.compile(
    r"^restart (?P<n>\d+): dropped (?P<dropped>\d+) waiters \((?P<futex>\d+) futex, "
    r"(?P<sleep>\d+) sleep, (?P<child>\d+) child\); (?P<upcalls>\d+) restarted upcalls, "
    r"(?P<pending>\d+) pending; by (?P<by>\w+); (?P<ns>\d+) ns$")
CONSUMER = re.compile(r"^ring: consumer (.*)$")
PRODUCER = re.compile(r"^ring: producer (.*)$")


@dataclass(frozen=True)
class Restart:
    """One ``restart <n>: ...`` line of the kernel."""

    n: int
    dropped: int
    futex: int
    sleep: int
    child: int
    upcalls: int
    pending: int
    by: str             # "timer" (restart_every=), "instant" (restart_at=) or "nmi" (the host)
    ns: int             # what the restart itself took (guest time, printing excluded)


@dataclass(frozen=True)
class RestartRequest:
    socket: Path
    ms: float


def request(socket: Union[str, Path, None] = None) -> RestartRequest:
    """Send one NMI to the machine listening on ``socket`` (default build/qmp.sock)."""
    return RestartRequest(*execute_once(socket, "inject-nmi"))


def kernel_restarts(lines: List[str]) -> List[Restart]:
    out = []
    for line in lines:
        m = RESTART_LINE.match(line)
        if m:
            d = m.groupdict()
            out.append(Restart(**{k: (v if k == "by" else int(v)) for k, v in d.items()}))
    return out


def _pairs(text: str) -> Dict[str, str]:
    return dict(re.findall(r"(\w+)=([0-9a-f]+)", text))


def ring_verdict(lines: List[str]) -> Optional[Dict[str, object]]:
    """The consumer's counts (checksums as hex strings) and the producer's, or None if the
    consumer never reported."""
    consumer = next((_pairs(m.group(1)) for line in lines if (m := CONSUMER.match(line))), None)
    if consumer is None:
        return None
    producer = next((_pairs(m.group(1)) for line in lines if (m := PRODUCER.match(line))), {})
    out: Dict[str, object] = {k: v if k.startswith("checksum") else int(v) for k, v in consumer.items()}
    out["sent"] = int(producer.get("sent", "0"))
    out["producer_restarts"] = int(producer.get("restarts", "0"))
    out["fails"] = sum(1 for line in lines if line.startswith("ring: FAIL"))
    return out


def ring_exact(v: Optional[Dict[str, object]]) -> bool:
    """Every message arrived once, intact, in order, and no call broke its contract."""
    return (v is not None and v["lost"] == 0 and v["doubled"] == 0 and v["corrupt"] == 0
            and v["fails"] == 0 and v["checksum_expected"] == v["checksum_got"]
            and v["got"] == v["sent"])
