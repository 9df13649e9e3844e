"""Console input that survives restarts (docs/restart.md, "Input is state too").

The host types into the guest's serial port (``Machine.send``); the kernel appends every byte
received to a ring in the reading program's own memory, never to a kernel buffer, and holds
bytes back in the UART (flow control) while there is no room.  ``echo`` (userland/progs/echo.c)
prints every line with its number; ``console_hostile`` attacks its own ring.  Every test boots
the real kernel, except that ``invoke run``'s tests go through the command line.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from typing import List

import pytest

from test_cli import INVOKE, invoke
from test_restart import kernel_without_the_rewind
from toolchain import paths
from toolchain.errors import GuestFailure, OverallTimeout, RevenantError
from toolchain.restart import kernel_restarts
from toolchain.runlog import EXIT_FAIL, EXIT_OK, RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

LINES = 200
ECHOED = re.compile(r"^echo: (\d+) (.*)$")


def numbered(k: int) -> List[str]:
    """k lines of different lengths (1 to 45 bytes of payload): with a 64-byte ring, a line
    often does not fit beside the previous one, so the reader waits, the kernel holds bytes
    back in the UART, and restarts catch the reader in its wait."""
    return [f"line {i:04d} " + "abcdefghijklmnopqrstuvwxyz0123456789"[: i % 37] for i in range(1, k + 1)]


def type_lines(machine, lines: List[str], batch: int = 10, pause: float = 0.01) -> None:
    """Send in batches with pauses, so restarts fall while input is still arriving."""
    for i in range(0, len(lines), batch):
        machine.send("".join(line + "\n" for line in lines[i:i + batch]))
        time.sleep(pause)


def echoed(r: RunLog) -> List[tuple]:
    return [(int(m.group(1)), m.group(2)) for m in r.matching(ECHOED.pattern)]


def assert_echoed_exactly(r: RunLog, lines: List[str]) -> None:
    got = echoed(r)
    want = list(enumerate(lines, 1))
    fails = [m.string for m in r.matching(r"^echo: FAIL")]
    assert not fails and got == want, (
        f"{len(got)} lines echoed for {len(lines)} typed; first difference: "
        f"{next(((g, w) for g, w in zip(got, want) if g != w), None)}\n" + "\n".join(fails) + f"\n{r.where()}")


# ------------------------------------------------------------------ echo, restarted

def echo_across_restarts(boot, **config):
    m = boot(f"restart_every=2 run=echo:{LINES}:64", timeout=90, **config)
    lines = numbered(LINES)
    try:
        # Inside the try: a broken kernel may fail init's own wait before echo attaches.
        m.expect("echo: attached ring=64", timeout=30)
        type_lines(m, lines)
    except (GuestFailure, OverallTimeout):
        pass                    # the guest ended early: the verdict below says why
    return RunLog(m, 60), lines


def test_typed_lines_are_echoed_once_in_order_across_restarts_every_2ms(boot):
    r, lines = echo_across_restarts(boot)
    r.assert_sane()
    assert_echoed_exactly(r, lines)
    # Restarts fell while the input arrived (between the first and the last echo), and
    # caught echo waiting in console_wait (a futex waiter on its ring's head): dropped,
    # rerun, and nothing lost or doubled.
    first = next(i for i, line in enumerate(r.lines) if ECHOED.match(line))
    last = max(i for i, line in enumerate(r.lines) if ECHOED.match(line))
    during = kernel_restarts(r.lines[first:last])
    assert len(during) >= 20, f"only {len(during)} restarts during the input; {r.where()}"
    assert sum(x.futex for x in during) >= 10, f"echo's wait was dropped {sum(x.futex for x in during)} times"
    done = r.fields(r"^echo: done ")
    assert done["lines"] == LINES and done["blocked"] > 0, done
    assert r.status == EXIT_OK


def test_without_the_rewind_the_echo_test_fails(boot, kernel_elf):
    # The same run on a kernel whose dispatcher never moves rip back onto `syscall`: a
    # console_wait that blocked and is woken (a byte, or a restart) "returns" its own number.
    patched = kernel_without_the_rewind(kernel_elf, paths.BUILD / "kernel-norewind-console.elf")
    r, lines = echo_across_restarts(boot, kernel=patched)
    # The call that surfaces broken is whichever the reader blocked in: console_wait itself,
    # or (with blocked upcalls) the runtime's act_wait while echo's thread is parked.
    assert r.matching(r"^(echo: FAIL console_wait broke its contract: returned 33 "
                      r"|thread: FAIL kernel act_wait returned 22,)"), r.where()
    assert echoed(r) != list(enumerate(lines, 1))
    assert r.status == EXIT_FAIL


def test_each_line_wakes_the_reader_without_any_restart(boot):
    # No restarts to rerun a forgotten wait: only the receive interrupt's wake gets echo going.
    m = boot("run=echo:3", timeout=60)
    m.expect("echo: attached", timeout=30)
    for n, text in enumerate(["one", "two", "three"], 1):
        m.send(text + "\n")
        m.expect(f"echo: {n} {text}", timeout=10)
    r = RunLog(m, 30)
    r.assert_sane()
    assert r.status == EXIT_OK


# ------------------------------------------------------------ before the reader

def test_input_typed_before_the_reader_attaches_waits_for_it(boot):
    # echo sleeps 300 ms before it attaches its ring; the lines are typed at once, while
    # restarts come every 2 ms. They wait in the UART, QEMU and the pipe (flow control:
    # the kernel takes a byte only when a ring has room for it), not in the kernel.
    m = boot("restart_every=2 run=echo:20:16:300", timeout=60)
    lines = numbered(20)
    m.send("".join(line + "\n" for line in lines))
    assert not any(line.startswith("echo: attached") for line in m.console.lines()), \
        "the ring was attached before the input was typed: the test proves nothing"
    r = RunLog(m, 30)
    r.assert_sane()
    assert_echoed_exactly(r, lines)
    assert r.status == EXIT_OK


def test_without_a_reader_the_guest_takes_no_input_and_the_sender_is_told(boot):
    # No program holds a ring: the kernel never reads the UART, QEMU stops reading its
    # stdin, the pipe fills and send() times out (nothing was dropped to make room).
    m = boot("heartbeat=1000", timeout=60)
    with pytest.raises(OverallTimeout, match=r"the guest took \d+ of 300000 bytes"):
        m.send(b"x" * 300_000, timeout=1.0)


def test_send_needs_a_running_machine(boot):
    m = boot("run=hello", timeout=60)
    RunLog(m, 30)
    with pytest.raises(RevenantError):
        m.send("too late\n", timeout=2)


# ----------------------------------------------------------------- hostile rings

def pattern(i: int) -> int:
    return 33 + (i * 7 + i // 89) % 94        # console_hostile.c: the same


def test_a_hostile_reader_hurts_only_itself(boot):
    # Bad ring addresses and sizes, then its own ring attacked while input arrives (head and
    # size overwritten, impossible tails, a full ring, the ring's region unmapped under the
    # kernel), with guard bytes around it; then the console handed down two generations and
    # back to init. A second program that never holds the console gets -EPERM throughout.
    m = boot("hz=1000 restart_every=3 run=console_hostile:400,console_hostile:other", timeout=90)
    n = int(m.expect(re.compile(r"^console_hostile: send (\d+)$"), timeout=30).group(1))
    m.send(bytes(pattern(i) for i in range(n)))
    r = RunLog(m, 60)
    r.assert_sane()
    fails = r.matching(r"^console_hostile: FAIL")
    assert not fails, "\n".join(f.string for f in fails) + f"\n{r.where()}"
    assert r.has(f"console_hostile: received {n} bytes, 0 wrong"), r.where()
    oks = r.matching(r"^console_hostile: ok ")
    assert len(oks) >= 80, f"only {len(oks)} checks ran; {r.where()}"
    assert r.has("console_hostile: 0 failed") and r.status == EXIT_OK


# ------------------------------------------------------------------- invoke run

def test_invoke_run_forwards_piped_input_to_the_guest():
    proc = subprocess.run([str(INVOKE), "run", "--raw", "--timeout", "60", "--append", "run=echo:2"],
                          cwd=paths.ROOT, input="piped in\nsecond line\n", capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "echo: 1 piped in" in out and "echo: 2 second line" in out, out


def test_invoke_run_with_stdin_at_dev_null_runs_as_before():
    proc = invoke("run", "--raw", "--timeout", "60", "--append", "run=hello")
    assert proc.returncode == 0 and "hello, world" in proc.stdout, proc.stdout + proc.stderr


def test_invoke_run_on_a_terminal_forwards_typed_lines_and_ctrl_c_still_ends_it():
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:                                    # the child: invoke run on the terminal
        os.chdir(paths.ROOT)
        os.execv(str(INVOKE), [str(INVOKE), "run", "--raw", "--append", "run=echo"])
    out = b""

    def read_until(needle: bytes, seconds: float) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while needle not in out and time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return

    try:
        read_until(b"echo: attached", 60)
        os.write(fd, b"typed at a terminal\n")
        read_until(b"echo: 1 typed at a terminal", 30)
        os.write(fd, b"\x03")                       # Ctrl-C
        read_until(b"interrupted", 30)
        status = None
        for _ in range(100):                        # it ends right after saying so
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.close(fd)
    text = out.decode(errors="replace")
    assert "echo: 1 typed at a terminal" in text, text
    assert status is not None and os.waitstatus_to_exitcode(status) == 130 and "interrupted" in text, text
