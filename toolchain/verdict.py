"""One specific line saying why a run failed, read from its serial lines and QEMU's exit.

QEMU's status alone says little (35 is "failure or panic", docs/toolkit.md); the console says
which: the programs init reports as failed (``exit3 exited status 3``, ``spawn nosuchprog:
ENOENT``, ``crasher killed: divide error at main+0x1c (userland/progs/crasher.c:20)``), the KTAP
summary (``KTAP: 1 of 120 cases failed: ktap_selftest.fails_on_purpose``), or where the kernel
panicked.  ``Console`` uses ``exit_verdict`` for every failing exit, so test failures and
``invoke run`` say the same thing.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Optional

_SPAWN_FAILED = re.compile(r"^init: spawn (\S+) failed: (\S+)$")
EXITED = re.compile(r"^init: (\S+) exited status=(-?\d+)$")
IS_ENV = re.compile(r"^init: (\S+) is env (\d+)$")
_KILLED = re.compile(r"^env (\d+) \(([^)]+)\) killed: (.*?)(?: \(vector \d+\) rip=0x([0-9a-f]{16}).*)?$")
_FRAME0 = re.compile(r"^\s*#0 0x[0-9a-fA-F]{16}\s+(\S.*)$")
_INIT_TROUBLE = re.compile(r"^(init: (?:wait|cmdline) failed: .*|revenant: (?:no init|cannot start init).*)$")


def _user_symbol(name: str, rip: str) -> str:
    try:
        from .paths import BUILD
        from .symbols import symbolizer
        return str(symbolizer(BUILD / "user" / f"{name}.elf").lookup(int(rip, 16)))
    except Exception:
        return f"0x{rip}"


def program_failures(lines: List[str]) -> List[str]:
    """What init reported as failed, one phrase per program, in the order it happened."""
    env_of = {}                                 # env id -> argv[0] as init named it
    for line in lines:
        m = IS_ENV.match(line)
        if m:
            env_of[m.group(2)] = m.group(1)
    killed = {}
    for line in lines:
        m = _KILLED.match(line)
        if m:
            how = m.group(3)
            if m.group(4):
                how += f" at {_user_symbol(m.group(2), m.group(4))}"
            killed[env_of.get(m.group(1), m.group(2))] = how
    out: List[str] = []
    for line in lines:
        m = _SPAWN_FAILED.match(line)
        if m:
            out.append(f"spawn {m.group(1)}: {m.group(2)}")
            continue
        m = EXITED.match(line)
        if m and m.group(2) != "0":
            prog = m.group(1)
            if prog in killed:
                out.append(f"{prog} killed: {killed.pop(prog)}")
                continue
            phrase = f"{prog} exited status {m.group(2)}"
            said = _last_own_line(lines, prog)
            if said:
                phrase += f" ({said})"
            out.append(phrase)
        elif _INIT_TROUBLE.match(line):
            out.append(line)
    out += [f"{prog} killed: {how}" for prog, how in killed.items()]
    return out


def _last_own_line(lines: List[str], prog: str) -> str:
    """The program's last line of its own (``prog: ...``), if it said something."""
    prefix = f"{prog}: "
    for line in reversed(lines):
        if line.startswith(prefix):
            return line
    return ""


def ktap_verdict(lines: List[str]) -> Optional[str]:
    """``KTAP: 1 of 120 cases failed: suite.case`` when the log holds KTAP output with failures."""
    if not any("TAP version" in line for line in lines):
        return None
    from . import ktap

    result = ktap.parse("\n".join(lines))
    if not result.found:
        return None
    leaves = result.flatten()
    if not leaves:
        note = " ".join(d for d in result.diagnostics if d) or "no test case ran"
        return f"KTAP: no case ran ({note})"
    failed = [(name, case) for name, case in leaves if case.failed]
    if not failed:
        if result.errors:
            return f"KTAP: {result.errors[0]}"
        return None
    names = ", ".join(name + (" (crashed)" if case.status is ktap.Status.CRASHED else "")
                      for name, case in failed[:5])
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    return f"KTAP: {len(failed)} of {len(leaves)} cases failed: {names}{more}"


def panic_location(report: str) -> str:
    """``crash_pagefault+0x14 (kernel/crash.c:21)`` from a symbolized panic report's frame 0."""
    for line in report.splitlines():
        m = _FRAME0.match(line)
        if m:
            return m.group(1).strip()
    return ""


def exit_verdict(lines: Iterable[str], description: str, status: Optional[int]) -> str:
    """The one line for a failing exit: specific when the console says more than the status."""
    lines = [line.rstrip("\r") for line in lines]
    suffix = f" (exit {status})" if status is not None else ""
    if status == 35:
        found = ktap_verdict(lines)
        if found:
            return found + suffix
        failures = program_failures(lines)
        if failures:
            return "; ".join(failures) + suffix
    return description


__all__ = ["exit_verdict", "program_failures", "ktap_verdict", "panic_location"]
