"""The boot-to-verdict contract, each test booting the real kernel in a real QEMU."""
from __future__ import annotations

import re

import pytest

from toolchain.errors import GuestFailure, NoOutputTimeout


def test_it_boots_prints_its_banner_and_powers_off_with_status_33(boot):
    machine = boot("")
    machine.expect(re.compile(r'^Revenant kernel booting \(cmdline: ""\)$'), timeout=30)
    result = machine.wait_poweroff(timeout=60)
    assert result.status == 33, result.description
    assert "revenant: poweroff status=0" in machine.console.text()


def test_a_kernel_page_fault_report_names_the_faulting_function_and_line(boot):
    machine = boot("crash=pagefault")
    with pytest.raises(GuestFailure) as failure:
        machine.wait_poweroff(timeout=60)
    report = failure.value.report
    assert "PANIC: page fault" in report
    frame0 = next(line for line in report.splitlines() if line.strip().startswith("#0"))
    assert "crash_pagefault+" in frame0, report
    assert re.search(r"\(kernel/crash\.c:\d+\)", frame0), report
    assert machine.wait(timeout=10).status == 35


@pytest.mark.parametrize("crash, headline", [
    ("divzero", "PANIC: divide error"),
    ("assert", "assertion failed"),
])
def test_other_kernel_crashes_panic_with_a_backtrace_and_exit_35(boot, crash, headline):
    machine = boot(f"crash={crash}")
    with pytest.raises(GuestFailure) as failure:
        machine.wait_poweroff(timeout=60)
    assert headline in failure.value.report
    assert re.search(r"#1 0x[0-9a-f]{16} (crash|kmain)\+0x", failure.value.report), failure.value.report
    assert machine.wait(timeout=10).status == 35


def test_a_silent_hang_is_stopped_by_the_no_output_timeout_and_keeps_the_log(boot):
    machine = boot("crash=hang")
    machine.expect("revenant: ready", timeout=30)
    with pytest.raises(NoOutputTimeout) as timeout:
        machine.wait_poweroff(timeout=60, idle_timeout=1.5)
    message = str(timeout.value)
    assert "no output" in message.lower()
    assert str(machine.log_path) in message
    assert machine.log_path.is_file()
    assert "revenant: ready" in machine.log_path.read_text()


HEARTBEAT = re.compile(r"^heartbeat (\d+)$")


def last_heartbeat(machine) -> int:
    """The highest heartbeat the console has (call on a stopped, drained machine)."""
    beats = [int(m.group(1)) for m in map(HEARTBEAT.match, machine.console.lines()) if m]
    assert beats, f"no heartbeat yet; log: {machine.log_path}"
    return beats[-1]


def test_heartbeats_go_back_to_the_saved_number_after_snapshot_load(boot, tmp_path):
    machine = boot("heartbeat=50", qmp=True, disk=tmp_path / "snap.qcow2")
    qmp = machine.qmp
    machine.expect(re.compile(r"^heartbeat 5$"), timeout=60)
    qmp.snapshot_save("s1")              # while running: stops, saves, resumes
    # The save froze the counter at some S >= 5; bound it from above without guessing
    # host latencies: stop now, take every byte already written, read the counter.
    qmp.stop()
    machine.drain_serial()
    latest = last_heartbeat(machine)     # S <= latest
    qmp.cont()
    later = latest + 10
    machine.expect(re.compile(rf"^heartbeat {later}$"), timeout=60)
    qmp.stop()
    machine.drain_serial()
    machine.console.seek()               # from here on, only the restored machine's output
    qmp.snapshot_load("s1")              # loads and resumes
    restored = int(machine.expect(HEARTBEAT, timeout=30).group(1))
    assert 6 <= restored <= latest + 1, \
        f"restored machine continued at heartbeat {restored}; saved between 5 and {latest}, left at {later}"


def test_an_idle_kernel_dirties_few_pages_so_its_snapshot_stays_small(boot, tmp_path):
    # The frame allocator must not write free frames (a free list threaded through
    # them once made every snapshot of a 128 MiB guest ~128 MiB and ~2 s to save).
    machine = boot("heartbeat=50", qmp=True, disk=tmp_path / "small.qcow2", memory="128M")
    machine.expect(re.compile(r"^heartbeat 2$"), timeout=60)
    machine.qmp.snapshot_save("idle")
    (snap,) = [s for s in machine.qmp.snapshots() if s.name == "idle"]
    assert snap.vm_state_size < 16 * 2**20, f"vm state {snap.vm_state_size / 2**20:.1f} MiB"
