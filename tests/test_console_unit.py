"""Console unit tests: recorded serial text, no QEMU."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from toolchain.console import Console, decode_exit
from toolchain.errors import GuestFailure, NoOutputTimeout, OverallTimeout

BOOT = (b'Revenant kernel booting (cmdline: "heartbeat=50")\n'
        b"boot: protocol pvh\n"
        b"revenant: ready\n")

PANIC = (b"PANIC: page fault at 0x00000000dead0000 (error 0x2, rip 0xffffffff801008b7)\n"
         b"  rax=0x00000000dead0000 rbx=0xffffffff80113006\n"
         b"  rip=0xffffffff801008b7\n"
         b"backtrace:\n"
         b"  #0 0xffffffff801008b7\n"
         b"  #1 0xffffffff80101275\n"
         b"end of panic\n")

LOG = Path("/build/logs/recorded.log")


def console(**kw) -> Console:
    kw.setdefault("log_path", LOG)
    kw.setdefault("grace", 0.01)
    kw.setdefault("panic_grace", 0.2)
    return Console(**kw)


def test_expect_literal_and_regex_move_the_cursor():
    c = console()
    c.feed(BOOT + b"heartbeat 1\nheartbeat 2\nheartbeat 12\n")
    assert c.expect("revenant: ready", timeout=0.1).index == 2
    m = c.expect(re.compile(r"^heartbeat (\d+)$"), timeout=0.1)
    assert m.group(1) == "1" and m.groups == ("1",)
    assert c.expect(re.compile(r"^heartbeat (\d+)$"), timeout=0.1).group(1) == "2"
    # the cursor moved past heartbeat 1/2: a literal "heartbeat 1" now only matches "heartbeat 12"
    assert c.expect("heartbeat 1", timeout=0.1).line == "heartbeat 12"
    with pytest.raises(OverallTimeout):
        c.expect("heartbeat 1", timeout=0.05)


def test_partial_line_is_not_matched_until_complete():
    c = console()
    c.feed(BOOT + b"heartbeat 1")
    with pytest.raises(OverallTimeout):
        c.expect(re.compile(r"^heartbeat 1$"), timeout=0.05)
    c.feed(b"5\n")
    assert c.expect(re.compile(r"^heartbeat (\d+)$"), timeout=0.1).group(1) == "15"


def test_bytes_fed_one_at_a_time_with_crlf_and_split_utf8_make_whole_lines():
    c = console()
    data = BOOT + "caf\u00e9 \u20ac\r\n".encode()
    for i in range(len(data)):
        c.feed(data[i:i + 1])
    assert c.expect("caf\u00e9 \u20ac", timeout=0.1).line == "caf\u00e9 \u20ac"
    assert c.lines()[-1] == "caf\u00e9 \u20ac"


def test_tail_text_and_lines_include_the_unterminated_last_line():
    c = console()
    c.feed(BOOT + b"".join(b"line %d\n" % i for i in range(30)) + b"partial")
    assert c.tail(2) == ["line 29", "partial"]
    assert len(c.lines()) == 3 + 30 + 1
    assert c.text().endswith("line 29\npartial")
    assert c.tail(0) == []


def test_panic_raises_with_whole_report_and_symbolizer():
    seen = []

    def symbolize(text: str) -> str:
        seen.append(text)
        return text.replace("0xffffffff801008b7", "0xffffffff801008b7 crash_pagefault+0x7")

    c = console(symbolizer=symbolize)
    c.feed(BOOT + PANIC)
    with pytest.raises(GuestFailure) as info:
        c.expect("heartbeat 1", timeout=2)
    err = info.value
    assert err.summary.startswith("guest panic: page fault at 0x00000000dead0000")
    assert err.report.startswith("PANIC: page fault") and err.report.rstrip().endswith("end of panic")
    assert "crash_pagefault+0x7" in err.report and "crash_pagefault+0x7" in str(err)
    assert seen and "#1 0xffffffff80101275" in seen[0]
    assert str(LOG) in str(err)


def test_match_before_panic_is_still_returned():
    c = console()
    c.feed(BOOT + b"heartbeat 1\n" + PANIC)
    assert c.expect("heartbeat 1", timeout=0.1).line == "heartbeat 1"
    with pytest.raises(GuestFailure):
        c.expect("heartbeat 2", timeout=1)


def test_panic_without_end_marker_raises_after_grace():
    c = console(panic_grace=0.1)
    c.feed(BOOT + b"PANIC: assertion failed: x == 1\n  rip=0xffffffff80100000\n")
    t0 = time.monotonic()
    with pytest.raises(GuestFailure) as info:
        c.expect("never", timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert "assertion failed" in info.value.summary
    assert "rip=0xffffffff80100000" in info.value.report


def test_panic_report_arriving_later_is_collected():
    c = console(panic_grace=2.0)
    c.feed(BOOT + PANIC[:60])

    def rest():
        time.sleep(0.05)
        c.feed(PANIC[60:])
    threading.Thread(target=rest).start()
    with pytest.raises(GuestFailure) as info:
        c.expect("never", timeout=5)
    assert info.value.report.rstrip().endswith("end of panic")


def test_broken_symbolizer_does_not_hide_the_panic():
    def boom(text: str) -> str:
        raise RuntimeError("no symbols")
    c = console(symbolizer=boom)
    c.feed(BOOT + PANIC)
    with pytest.raises(GuestFailure) as info:
        c.check()
    assert "symbolizer failed: no symbols" in info.value.report


def test_second_banner_is_an_unexpected_reset():
    c = console()
    c.feed(BOOT + b"heartbeat 1\n" + BOOT)
    with pytest.raises(GuestFailure) as info:
        c.expect("heartbeat 2", timeout=1)
    assert "unexpected reset" in info.value.summary


@pytest.mark.parametrize("status,kind,ok", [
    (33, "poweroff-ok", True), (35, "failure", False), (0, "reset", False), (1, "qemu-error", False),
    (-9, "signal", False), (5, "other", False), (4, "other", False),
])
def test_decode_exit_gives_each_qemu_status_its_verdict(status, kind, ok):
    r = decode_exit(status)
    assert (r.kind, r.ok) == (kind, ok)
    assert decode_exit(-9, killed_by_harness=True).kind == "killed"
    assert decode_exit(0, quit_requested=True).kind == "quit"
    assert "triple fault" in decode_exit(0).description


def test_exit_zero_is_a_failure_not_success():
    c = console()
    c.feed(BOOT)
    c.close(decode_exit(0))
    with pytest.raises(GuestFailure) as info:
        c.wait_exit(timeout=1)
    assert "triple fault" in info.value.summary
    assert info.value.exit_status == 0


def test_poweroff_33_returns_and_poweroff_35_raises():
    c = console()
    c.feed(BOOT + b"revenant: poweroff status=0\n")
    c.close(decode_exit(33))
    assert c.wait_exit(timeout=1).ok
    c2 = console()
    c2.feed(BOOT + b"revenant: poweroff status=1\n")
    c2.close(decode_exit(35))
    with pytest.raises(GuestFailure):
        c2.wait_exit(timeout=1)


def test_output_ending_before_match_is_a_failure():
    c = console()
    c.feed(BOOT + b"revenant: poweroff status=0\n")
    c.close(decode_exit(33))
    with pytest.raises(GuestFailure) as info:
        c.expect("heartbeat 1", timeout=1)
    assert "output ended before 'heartbeat 1'" in info.value.summary


def test_idle_timeout_names_log_and_tail():
    c = console()
    c.feed(BOOT)
    t0 = time.monotonic()
    with pytest.raises(NoOutputTimeout) as info:
        c.expect("heartbeat 1", timeout=5, idle_timeout=0.05)
    assert time.monotonic() - t0 < 1.0
    msg = str(info.value)
    assert "no output for" in info.value.summary and "'heartbeat 1'" in info.value.summary
    assert str(LOG) in msg and "  | revenant: ready" in msg
    assert info.value.log_path == LOG


def test_the_overall_timeout_fires_despite_steady_output():
    c = console()
    c.feed(BOOT)
    stop = threading.Event()

    def chatter():
        n = 0
        while not stop.is_set():
            n += 1
            c.feed(b"tick %d\n" % n)
            time.sleep(0.01)
    t = threading.Thread(target=chatter)
    t.start()
    try:
        # output every 10 ms never lets the 0.3 s idle timeout expire (a margin of 30x
        # for a loaded CI host); the 0.6 s overall timeout must fire anyway
        with pytest.raises(OverallTimeout) as info:
            c.expect("never", timeout=0.6, idle_timeout=0.3)
    finally:
        stop.set()
        t.join()
    assert "timed out after" in info.value.summary
    assert len([l for l in str(info.value).splitlines() if l.startswith("  | ")]) == 20


def test_expect_wakes_up_promptly_on_new_output():
    c = console()

    def later():
        time.sleep(0.05)
        c.feed(b"revenant: ready\n")
    threading.Thread(target=later).start()
    t0 = time.monotonic()
    c.expect("revenant: ready", timeout=5)
    assert time.monotonic() - t0 < 1.0      # woken by feed(), not by the 5 s timeout


def test_seek_to_end_ignores_old_output():
    c = console()
    c.feed(BOOT + b"heartbeat 1\n")
    c.seek()
    with pytest.raises(OverallTimeout):
        c.expect("heartbeat 1", timeout=0.05)
