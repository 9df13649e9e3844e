"""The serial console of a Revenant guest: a line buffer with expect() and failure markers.

A ``Console`` is fed raw serial bytes (by ``Machine``'s reader thread, or by a test
with recorded text) and closed with the QEMU exit status when the process ends.
Every completed line is checked for the failure markers of the console contract
(docs/boot.md):

* ``PANIC: ...`` starts a panic report, which ends at ``end of panic`` (or after
  ``panic_grace`` seconds, or at end of output).  The report is passed to the
  optional ``symbolizer`` callable (``text -> text``) and raised as ``GuestFailure``.
* a second ``Revenant kernel booting`` banner means the machine reset under us.
* QEMU exiting with status 0 means an unexpected reset (triple fault with
  ``-no-reboot``); 35 means the guest reported failure.

Waiting never polls: readers block on a condition variable that ``feed``/``close``
notify, with a timeout computed from the overall and idle deadlines.
"""
from __future__ import annotations

import codecs
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Pattern, Union

from .errors import GuestFailure, NoOutputTimeout, OverallTimeout

BANNER = "Revenant kernel booting"
PANIC_START = "PANIC:"
PANIC_END = "end of panic"

EXIT_POWEROFF_OK = 33
EXIT_FAILURE = 35
EXIT_RESET = 0

PatternLike = Union[str, Pattern[str]]
Symbolizer = Callable[[str], str]


@dataclass(frozen=True)
class ExitResult:
    """How QEMU ended.

    ``kind`` is one of ``poweroff-ok`` (33), ``failure`` (35), ``reset`` (0: unexpected
    reset / triple fault), ``qemu-error`` (1: QEMU refused to start or died),
    ``signal`` (killed by a signal we did not send), ``killed`` (the harness killed it),
    ``quit`` (exit 0 after the harness sent QMP ``quit``),
    ``other`` (any other status).  Only ``poweroff-ok`` is ``ok``.
    """

    status: Optional[int]
    kind: str
    description: str
    signal: Optional[int] = None
    duration_s: float = 0.0
    log_path: Optional[Path] = None

    @property
    def ok(self) -> bool:
        return self.kind == "poweroff-ok"

    def __str__(self) -> str:
        return self.description


def decode_exit(status: Optional[int], *, killed_by_harness: bool = False, quit_requested: bool = False,
                duration_s: float = 0.0,
                log_path: Optional[Path] = None, stderr_hint: str = "") -> ExitResult:
    """Decode a ``subprocess`` return code of qemu-system-x86_64 into an ``ExitResult``."""
    def make(kind: str, desc: str, sig: Optional[int] = None) -> ExitResult:
        return ExitResult(status, kind, desc, sig, duration_s, log_path)

    if status is None:
        return make("other", "still running")
    if status < 0:
        sig = -status
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if killed_by_harness:
            return make("killed", f"killed by the harness ({name})", sig)
        hint = f": {stderr_hint}" if stderr_hint else ""
        return make("signal", f"QEMU killed by {name}{hint}", sig)
    if status == EXIT_POWEROFF_OK:
        return make("poweroff-ok", "poweroff ok (exit 33)")
    if status == EXIT_FAILURE:
        return make("failure", "guest reported failure or panic (exit 35)")
    if status == EXIT_RESET and quit_requested:
        return make("quit", "QEMU quit on request (QMP quit)")
    if status == EXIT_RESET:
        return make("reset", "unexpected reset (triple fault?): QEMU exited 0 under -no-reboot")
    if status == 1:
        hint = f": {stderr_hint}" if stderr_hint else ""
        return make("qemu-error", f"QEMU failed (exit 1){hint}")
    if status & 1:
        return make("other", f"guest wrote {status >> 1:#x} to isa-debug-exit (exit {status})")
    return make("other", f"QEMU exited with unexpected status {status}")


@dataclass(frozen=True)
class Match:
    """One ``expect`` hit: the matched text, its whole line and line index."""

    text: str
    line: str
    index: int
    groups: tuple = ()
    re_match: Optional["re.Match[str]"] = field(default=None, compare=False, repr=False)

    def group(self, n: Union[int, str] = 0) -> Optional[str]:
        if self.re_match is None:
            if n == 0:
                return self.text
            raise IndexError("literal pattern has no groups")
        return self.re_match.group(n)


@dataclass
class _Failure:
    kind: str            # "panic" | "reset" | "exit" | "qemu"
    line_index: int      # first line that is not a valid expect() hit any more
    since: float         # monotonic time the marker was seen
    summary: str
    report_lines: List[str] = field(default_factory=list)
    complete: bool = False


class Console:
    """Serial output of one machine run, with expect() and failure detection.

    Thread-safe: one thread feeds (``feed``/``close``), any thread may wait.
    """

    def __init__(self, *, log_path: Optional[Path] = None, symbolizer: Optional[Symbolizer] = None,
                 panic_grace: float = 1.0, grace: float = 0.2, tail_lines: int = 20) -> None:
        self.log_path = log_path
        self.symbolizer = symbolizer
        self.panic_grace = panic_grace
        self.grace = grace
        self.tail_lines = tail_lines
        self._cond = threading.Condition()
        self._lines: List[str] = []
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cursor = 0                 # next line index expect() looks at
        self._last_output = time.monotonic()
        self._started = self._last_output
        self._banners = 0
        self._failure: Optional[_Failure] = None
        self._exit: Optional[ExitResult] = None
        self._closed = False
        self._raised = False

    # ------------------------------------------------------------------ feeding
    def feed(self, data: bytes) -> None:
        """Add serial bytes (any chunking).  Called by the reader thread."""
        if not data:
            return
        text = self._decoder.decode(data).replace("\r", "")
        with self._cond:
            self._last_output = time.monotonic()
            chunks = (self._partial + text).split("\n")
            self._partial = chunks.pop()
            for line in chunks:
                self._add_line(line)
            self._cond.notify_all()

    def close(self, exit_result: Optional[ExitResult] = None) -> None:
        """End of output; ``exit_result`` is how QEMU ended (None if unknown)."""
        with self._cond:
            self._partial += self._decoder.decode(b"", final=True)
            if self._partial:
                self._add_line(self._partial)
                self._partial = ""
            self._closed = True
            self._exit = exit_result
            if self._failure is not None:
                self._failure.complete = True
            elif exit_result is not None and exit_result.kind in ("reset", "failure", "signal", "qemu-error", "other"):
                summary = exit_result.description
                try:            # the reader thread calls close(): a bug here must not lose the exit
                    from .verdict import exit_verdict
                    summary = exit_verdict(self._lines, exit_result.description, exit_result.status)
                except Exception:
                    pass
                self._failure = _Failure("exit", len(self._lines), time.monotonic(), summary, complete=True)
            self._cond.notify_all()

    def _add_line(self, line: str) -> None:
        index = len(self._lines)
        self._lines.append(line)
        fail = self._failure
        if fail is not None:
            if fail.kind == "panic" and not fail.complete:
                fail.report_lines.append(line)
                if line.strip().startswith(PANIC_END):
                    fail.complete = True
            return
        stripped = line.lstrip()
        if stripped.startswith(PANIC_START):
            self._failure = _Failure("panic", index, time.monotonic(), stripped, [line])
        elif stripped.startswith(BANNER):
            self._banners += 1
            if self._banners > 1:
                self._failure = _Failure("reset", index, time.monotonic(),
                                         "unexpected reset: the kernel banner appeared a second time")

    def fail(self, summary: str) -> None:
        """Fail the run from outside the serial stream (QEMU's own error state): waits raise at once."""
        with self._cond:
            if self._failure is None:
                self._failure = _Failure("qemu", len(self._lines), time.monotonic(), summary, complete=True)
            self._cond.notify_all()

    # ---------------------------------------------------------------- accessors
    def lines(self) -> List[str]:
        """All complete lines so far (plus an unterminated last line, if any)."""
        with self._cond:
            return self._lines + ([self._partial] if self._partial else [])

    def text(self) -> str:
        with self._cond:
            return "".join(line + "\n" for line in self._lines) + self._partial

    def tail(self, n: int = 20) -> List[str]:
        return self.lines()[-n:] if n > 0 else []

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def exit_result(self) -> Optional[ExitResult]:
        return self._exit

    @property
    def cursor(self) -> int:
        """Line index where the next expect() starts looking."""
        return self._cursor

    def seek(self, index: Optional[int] = None) -> None:
        """Move the expect() cursor (default: to the end, i.e. only look at new output)."""
        with self._cond:
            self._cursor = len(self._lines) if index is None else max(0, index)

    # -------------------------------------------------------------------- waits
    def expect(self, pattern: PatternLike, timeout: float = 30.0, idle_timeout: Optional[float] = None) -> Match:
        """Wait for a complete line matching ``pattern`` at or after the cursor.

        A ``str`` is a literal substring; a compiled ``re.Pattern`` is searched in each
        line (so ``^``/``$`` anchor to the line).  The cursor moves past the matching
        line.  Raises ``GuestFailure`` on a panic / reset / bad exit seen before the
        match, ``OverallTimeout`` after ``timeout`` seconds, ``NoOutputTimeout`` after
        ``idle_timeout`` seconds without any output.
        """
        desc = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                fail = self._failure
                limit = fail.line_index if fail is not None else len(self._lines)
                for i in range(self._cursor, limit):
                    m = self._match(pattern, self._lines[i], i)
                    if m is not None:
                        self._cursor = i + 1
                        return m
                self._cursor = max(self._cursor, limit)
                if fail is not None:
                    self._wait_failure_complete_locked(deadline)
                    raise self._failure_error(f"while waiting for {desc!r}")
                if self._closed:
                    raise GuestFailure(self._message(
                        f"output ended before {desc!r} appeared ({self._exit_desc()})"),
                        log_path=self.log_path, exit_status=self._exit.status if self._exit else None)
                self._wait_locked(deadline, idle_timeout, f"waiting for {desc!r}", timeout)

    def wait_exit(self, timeout: float = 30.0, idle_timeout: Optional[float] = None) -> ExitResult:
        """Wait until output ends (QEMU exited) and return its ``ExitResult``.

        Raises ``GuestFailure`` for a panic, an unexpected reset or a failing exit status,
        and the timeouts like ``expect``.  Returns only for a clean poweroff (33).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                fail = self._failure
                if fail is not None:
                    self._wait_failure_complete_locked(deadline)
                    raise self._failure_error("before poweroff")
                if self._closed:
                    if self._exit is None:
                        raise GuestFailure(self._message("output ended, QEMU exit status unknown"),
                                           log_path=self.log_path)
                    return self._exit
                self._wait_locked(deadline, idle_timeout, "waiting for the machine to power off", timeout)

    def wait_banner(self, timeout: Optional[float] = 30.0) -> None:
        """Return once the kernel's banner line has appeared (at any time: the cursor does not
        move); the failures and timeouts of ``expect``.  ``timeout`` None: no limit."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._banners == 0:
                if self._failure is not None:
                    self._wait_failure_complete_locked(time.monotonic() + self.panic_grace)
                    raise self._failure_error(f"while waiting for {BANNER!r}")
                if self._closed:
                    raise GuestFailure(self._message(f"output ended before {BANNER!r} appeared "
                                                     f"({self._exit_desc()})"), log_path=self.log_path)
                if deadline is None:
                    self._cond.wait()
                else:
                    self._wait_locked(deadline, None, f"waiting for {BANNER!r}", timeout or 0.0)

    def check(self) -> None:
        """Raise the pending failure (if any) without waiting."""
        with self._cond:
            if self._failure is not None:
                self._wait_failure_complete_locked(time.monotonic() + self.panic_grace)
                raise self._failure_error("")

    def describe(self, head: str) -> str:
        """``head`` followed by the last console lines and the log path (for error messages)."""
        with self._cond:
            return self._message(head)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _match(pattern: PatternLike, line: str, index: int) -> Optional[Match]:
        if isinstance(pattern, str):
            pos = line.find(pattern)
            if pos < 0:
                return None
            return Match(pattern, line, index)
        m = pattern.search(line)
        if m is None:
            return None
        return Match(m.group(0), line, index, m.groups(), m)

    def _wait_locked(self, deadline: float, idle_timeout: Optional[float], what: str, timeout: float) -> None:
        now = time.monotonic()
        if now >= deadline:
            raise OverallTimeout(self._message(
                f"timed out after {timeout:g} s {what}"), log_path=self.log_path)
        wait = deadline - now
        if idle_timeout is not None:
            idle_deadline = self._last_output + idle_timeout
            if idle_deadline <= now:
                raise NoOutputTimeout(self._message(
                    f"no output for {now - self._last_output:.1f} s {what}"), log_path=self.log_path)
            wait = min(wait, idle_deadline - now)
        self._cond.wait(wait)

    def _wait_failure_complete_locked(self, deadline: float) -> None:
        """After a marker: collect the rest of the panic report, then a short grace for late output."""
        fail = self._failure
        assert fail is not None
        if fail.kind == "panic":
            end = fail.since + self.panic_grace
            while not fail.complete and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        end = time.monotonic() + self.grace
        while not self._closed:
            left = end - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)

    def _failure_error(self, context: str) -> GuestFailure:
        fail = self._failure
        assert fail is not None
        report = ""
        if fail.kind == "panic":
            report = "\n".join(fail.report_lines)
            if self.symbolizer is not None:
                try:
                    report = self.symbolizer(report)
                except Exception as exc:  # a broken symbolizer must not hide the panic
                    report += f"\n(symbolizer failed: {exc})"
            head = f"guest panic: {fail.summary[len(PANIC_START):].strip()}"
            from .verdict import panic_location
            where = panic_location(report)
            if where and not where.startswith("??"):
                head += f" in {where}"
        elif fail.kind == "reset":
            head = fail.summary
        else:
            head = fail.summary
        if context:
            head += f" ({context})"
        status = self._exit.status if self._exit is not None else None
        body = [report] if report else []
        return GuestFailure(self._message(head, body), log_path=self.log_path, report=report,
                            exit_status=status)

    def _exit_desc(self) -> str:
        return self._exit.description if self._exit is not None else "QEMU exited"

    def _message(self, head: str, body: Optional[List[str]] = None) -> str:
        parts = [head.replace("\n", " ")]
        parts += body or []
        tail = self._lines[-self.tail_lines:] + ([self._partial] if self._partial else [])
        where = f"log: {self.log_path}" if self.log_path else "log: (not saved)"
        if tail:
            parts.append(f"last {len(tail)} console lines ({where}):")
            parts += ["  | " + line for line in tail]
        else:
            parts.append(f"no console output ({where})")
        return "\n".join(parts)



__all__ = ["Console", "Match", "ExitResult", "decode_exit", "BANNER", "PANIC_START", "PANIC_END",
           "EXIT_POWEROFF_OK", "EXIT_FAILURE", "EXIT_RESET"]
