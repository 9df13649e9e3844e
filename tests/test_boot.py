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


def test_heartbeats_go_back_to_the_saved_number_after_snapshot_load(boot, tmp_path):
    machine = boot("heartbeat=50", qmp=True, disk=tmp_path / "snap.qcow2")
    machine.expect(re.compile(r"^heartbeat 5$"), timeout=60)
    machine.qmp.snapshot_save("s1")           # stops, saves, resumes: the guest is at 5 or just after
    machine.expect(re.compile(r"^heartbeat 15$"), timeout=60)
    machine.qmp.snapshot_load("s1")
    machine.console.seek()
    # Lines still in the pipe from before the load count on from 15; the first one below 15
    # comes from the restored machine and must continue from where the save was taken.
    for _ in range(20):
        number = int(machine.expect(re.compile(r"^heartbeat (\d+)$"), timeout=30).group(1))
        if number < 15:
            break
    else:
        pytest.fail("the heartbeat counter never went back after snapshot-load")
    assert 6 <= number <= 8, f"restored machine continued at heartbeat {number}, saved near 5"
