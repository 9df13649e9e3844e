"""A finished boot of `init` with programs, read back from its serial lines.

The line formats are the kernel's and init's (docs/abi.md): `init: <prog> is env <id>`,
`env <id> (<name>) exited status=<n>`, `env <id> (<name>) killed: ...`, `act: env <id> ... stats`.
Tests use it through the `run` fixture of the pytest plugin.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from .paths import BUILD

EXIT_OK, EXIT_FAIL = 33, 35

KILLED = re.compile(r"^env (\d+) \((\S+)\) killed: (.+) \(vector (\d+)\) rip=0x([0-9a-f]{16}) "
                    r"addr=0x([0-9a-f]{16}) err=0x([0-9a-f]+)$")


@dataclass
class Kill:
    """One `env <id> (<name>) killed: <exception> (vector <n>) rip=... addr=...` line."""

    env: int
    name: str
    exception: str
    vector: int
    rip: int
    addr: int

    def function(self) -> Optional[str]:
        """The function of build/user/<name>.elf that rip falls in."""
        from .symbols import symbolizer

        return symbolizer(BUILD / "user" / f"{self.name}.elf").lookup(self.rip).function


class RunLog:
    """The serial lines of a finished boot, how QEMU exited, and how long the wait took."""

    def __init__(self, machine: Any, timeout: float) -> None:
        t0 = time.monotonic()
        self.result = machine.wait(timeout)
        self.seconds = time.monotonic() - t0
        self.lines: List[str] = [line.rstrip("\r") for line in machine.console.lines()]
        self.log: Path = machine.log_path

    @property
    def status(self) -> Optional[int]:
        return self.result.status

    def has(self, line: str) -> bool:
        return line in self.lines

    def matching(self, pattern: str) -> List[re.Match]:
        rx = re.compile(pattern)
        return [m for m in map(rx.match, self.lines) if m]

    def env_ids(self, prog: str) -> List[int]:
        """Env ids init gave `prog`, in spawn order."""
        return [int(m.group(1)) for m in self.matching(rf"^init: {re.escape(prog)} is env (\d+)$")]

    def env_id(self, prog: str) -> int:
        """The env id of the one `prog` init started (fails the test if it started none)."""
        found = self.env_ids(prog)
        assert found, f"init did not start {prog}; log: {self.log}"
        return found[0]

    def exit_status(self, env: int) -> Optional[int]:
        found = self.matching(rf"^env {env} \(\S+\) exited status=(\d+)$")
        return int(found[0].group(1)) if found else None

    def kills(self) -> Dict[int, Kill]:
        out = {}
        for m in self.matching(KILLED.pattern):
            out[int(m.group(1))] = Kill(int(m.group(1)), m.group(2), m.group(3), int(m.group(4)),
                                        int(m.group(5), 16), int(m.group(6), 16))
        return out

    def fields(self, pattern: str) -> Dict[str, int]:
        """key=value pairs (integers) of the first line matching `pattern`."""
        found = self.matching(pattern)
        assert found, f"no line matching {pattern!r}; log: {self.log}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[0].string)}

    def kernel_stats(self, env: int) -> Dict[str, int]:
        """The kernel's `act:` counters for an env that was interrupted at least once."""
        return self.fields(rf"^act: env {env} \(\S+\) stats ")

    def assert_no_panic(self) -> None:
        assert not any(line.startswith("PANIC:") for line in self.lines), f"kernel panic; log: {self.log}"

    def assert_sane(self) -> None:
        """No panic, no reset, init finished and powered off, and every wait() of init
        returned one of its children (init reports anything else: a broken kernel)."""
        self.assert_no_panic()
        assert self.status in (EXIT_OK, EXIT_FAIL), f"QEMU: {self.result}; log: {self.log}"
        assert self.matching(r"^init: all done \(\d+ failed\)$"), f"init did not finish; log: {self.log}"
        odd = [m.string for m in self.matching(r"^init: (wait returned|giving up) ")]
        assert not odd, "\n".join(odd + [f"log: {self.log}"])

    def where(self) -> str:
        return f"log: {self.log}"
