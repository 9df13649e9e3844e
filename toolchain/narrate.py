"""`invoke run` on a terminal: the kernel's lines in plain words, and what the run showed.

The serial log keeps every raw line (``build/logs/<run>.log``); only the terminal copy is
translated, line by line as it arrives:

* ``act: env 3 (threads_fair) stats pool=64 free=64 delivered=107 ...`` becomes a sentence
  about interrupts delivered as upcalls and activation records returned;
* ``rewind: env 1 (init) rewound=2 wait=2 sleep=0`` one about blocking calls rewound and rerun;
* the memory map (one line per region) shrinks to one line.

``summary`` reads the finished run back and says, in a few lines, what it showed.
``invoke run --raw`` turns the translation off.
"""
from __future__ import annotations

import re
import sys
import textwrap
from typing import IO, List, Optional

from .verdict import EXITED as _EXITED, IS_ENV as _SPAWNED

WIDTH = 100                     # the summary wraps here

_ACT = re.compile(r"^act: env (\d+) \((\S+)\) stats (.*)$")
_REWIND = re.compile(r"^rewind: env (\d+) \((\S+)\) rewound=(\d+) wait=(\d+) sleep=(\d+)$")
_REGION = re.compile(r"^memory: 0x[0-9a-f]+-0x[0-9a-f]+ \S+$")
_USABLE = re.compile(r"^memory: (\d+) KiB usable(.*)$")
_FRAMES = re.compile(r"^memory: (\d+) frames free for the allocator$")
_PTI = re.compile(r"^pti: on: user page tables map (\d+) kernel pages \(entry area\)$")
_FAIR = re.compile(r"^fair: total \d+ threads (\d+)$")


def _fields(text: str) -> dict:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def upcall_sentence(counts: List[tuple], note: dict | None = None) -> str:
    """One sentence for every program's `act:` counters: (name, stats) pairs."""
    note = note or {}
    total = sum(st.get("delivered", 0) + st.get("redelivered", 0) for _n, st in counts)
    ranked = sorted(counts, key=lambda c: -(c[1].get("delivered", 0) + c[1].get("redelivered", 0)))
    parts = [f"{name} {st.get('delivered', 0) + st.get('redelivered', 0)}{note.get(name, '')}"
             for name, st in ranked]
    leaked = [(name, st["pool"] - st["free"]) for name, st in counts if st.get("free") != st.get("pool")]
    text = (f"upcalls: the timer interrupted programs {_times(total)} ({', '.join(parts)}); each interrupt "
            f"reached the program's own thread scheduler as an upcall")
    again = sum(st.get("redelivered", 0) for _n, st in counts)
    if again:
        text += f" ({again} delivered again, having landed mid-resume)"
    if leaked:
        text += "; but " + ", ".join(f"{n} records of {name} never came back (leaked)" for name, n in leaked)
    else:
        text += ", and every activation record came back"
    return text


def rewind_sentence(name: str, rewound: int, wait: int, sleep: int) -> str:
    calls = " and ".join(f"{what}() {_times(n)}" for what, n in (("wait", wait), ("sleep_until", sleep)) if n)
    each = "each time " if rewound > 1 else ""
    return (f"rewind: {name} blocked in {calls}; {each}the kernel kept nothing but its registers, "
            f"rewound it onto its syscall instruction and ran the call again from scratch once woken")


def translate(line: str) -> Optional[str]:
    """The terminal's version of one serial line; None hides it (it stays in the log)."""
    m = _ACT.match(line)
    if m:
        stats = _fields(m.group(3))
        n = stats.get("delivered", 0) + stats.get("redelivered", 0)
        pool, free = stats.get("pool", 0), stats.get("free", 0)
        back = (f"every record came back ({free} of {pool} free)" if free == pool
                else f"{pool - free} of {pool} records never came back (leaked)")
        how = "each time by an upcall" if n > 1 else "by an upcall"
        return f"act: {m.group(2)} was interrupted {_times(n)}, {how} into its own scheduler; {back}"
    m = _REWIND.match(line)
    if m:
        wait, sleep = int(m.group(4)), int(m.group(5))
        calls = " and ".join(f"{what}() {_times(n)}" for what, n in (("wait", wait), ("sleep_until", sleep)) if n)
        each = "each time " if wait + sleep > 1 else ""
        return f"rewind: {m.group(2)} blocked in {calls}; {each}rewound onto its syscall and rerun when woken"
    if _REGION.match(line) or _FRAMES.match(line):
        return None
    m = _USABLE.match(line)
    if m:
        return f"memory: {int(m.group(1)) / 1024:.0f} MiB usable{m.group(2)} (the map is in the serial log)"
    m = _PTI.match(line)
    if m:
        return (f"pti: on: a program's page table maps {m.group(1)} kernel pages (the entry area) "
                f"and nothing else of the kernel")
    return line


class Narrator:
    """A text stream for ``MachineConfig.echo``: complete lines go out translated."""

    def __init__(self, out: IO[str] = sys.stdout, raw: bool = False) -> None:
        self.out = out
        self.raw = raw
        self._partial = ""

    def write(self, text: str) -> int:
        if self.raw:
            self.out.write(text)
            return len(text)
        text = (self._partial + text).replace("\r", "")
        *lines, self._partial = text.split("\n")
        for line in lines:
            shown = translate(line)
            if shown is not None:
                self.out.write(shown + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        if self._partial:
            shown = translate(self._partial)
            if shown is not None:
                self.out.write(shown + "\n")
            self._partial = ""
        self.out.flush()


def summary(lines: List[str]) -> List[str]:
    """What the run showed, in plain words: a few lines for the end of `invoke run`."""
    out: List[str] = []
    programs = [m.group(1) for m in map(_SPAWNED.match, lines) if m]
    statuses = {m.group(1): int(m.group(2)) for m in map(_EXITED.match, lines) if m}
    if programs:
        ok = [p for p in programs if statuses.get(p) == 0]
        text = f"programs: init started {', '.join(programs)}, each in its own address space"
        if len(ok) == len(programs):
            text += "; all exited 0"
        else:
            text += f"; {len(ok)} of {len(programs)} exited 0"
        out.append(text)
    fair = next((int(m.group(1)) for m in map(_FAIR.match, lines) if m), None)
    counts = [(m.group(2), _fields(m.group(3))) for m in map(_ACT.match, lines) if m]
    if counts:
        note = {"threads_fair": f": {fair} threads that never yield"} if fair else {}
        out.append(upcall_sentence(counts, note))
    for m in map(_REWIND.match, lines):
        if m:
            out.append(rewind_sentence(m.group(2), *(int(g) for g in m.group(3, 4, 5))))
    if any("TAP version" in line for line in lines):
        from . import ktap
        result = ktap.parse("\n".join(lines))
        if result.found:
            out.append(f"ktap: in-kernel tests: {result.summary()}")
    for line in lines:
        m = _PTI.match(line)
        if m and not programs:
            continue
        if m:
            out.append(f"isolation: programs ran on page tables that map {m.group(1)} kernel pages (the entry "
                       f"area) and nothing else of the kernel; the kernel itself is W^X")
        elif line.startswith("pti: off"):
            out.append("isolation: off (pti=off): programs ran on the kernel's page tables")
        elif line.startswith("cmdline: rejected "):
            out.append(f"cmdline: {line[len('cmdline: '):]}")
    if not out:
        return []
    width = max(len(line.split(":", 1)[0]) for line in out) + 1
    body: List[str] = []
    for line in out:
        topic, text = line.split(":", 1)
        body += textwrap.wrap(text.strip(), WIDTH, initial_indent=f"  {topic + ':':<{width}} ",
                              subsequent_indent=" " * (width + 3), break_on_hyphens=False)
    return ["", "--- what this run showed ---", *body]


__all__ = ["Narrator", "translate", "summary", "upcall_sentence", "rewind_sentence"]
