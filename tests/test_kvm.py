"""A KVM that cannot run the kernel must fail the run with one line, never hang it.

Nested KVM here reports `KVM internal error. Suberror: 1 ... emulation failure` on the kernel's
`clac` (QEMU's stderr only) and leaves the guest paused forever; with `-cpu max` QEMU 7.2 aborts
on MSR 0x10a instead.  A fake QEMU that prints the real dump and then sleeps stands for the first
case on any host; the real `--kvm` run and `invoke doctor` are tried when /dev/kvm exists."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from test_cli import invoke
from toolchain.errors import GuestFailure
from toolchain.machine import Machine, MachineConfig

DUMP = r"""KVM internal error. Suberror: 1
extra data[0]: 0x0000000000000001
extra data[1]: 0x65e68948ca010f0f
emulation failure
RAX=000000000043c000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
RIP=ffffffff80102169 RFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
EFER=0000000000000d01
Code=d8 48 25 ff ef ff ff 0f 22 d8 fc 80 3d b9 d4 2f 00 00 74 03 <0f> 01 ca 48 89 e6 65 48 8b 3c 25
"""


@pytest.fixture
def paused_qemu(tmp_path: Path) -> Path:
    """A `qemu-system-x86_64` that prints the banner, then QEMU's internal-error dump, then hangs."""
    script = tmp_path / "bin" / "qemu-system-x86_64"
    script.parent.mkdir()
    (tmp_path / "dump.txt").write_text(DUMP)
    script.write_text("#!/bin/sh\n"
                      "echo 'Revenant kernel booting (cmdline: \"run=hello\")'\n"
                      f"cat {tmp_path / 'dump.txt'} >&2\n"
                      "exec sleep 600\n")
    script.chmod(0o755)
    return script


def test_the_internal_error_state_fails_the_run_at_once_with_one_line(paused_qemu, kernel_elf, tmp_path):
    cfg = MachineConfig(qemu=str(paused_qemu), kernel=kernel_elf, accel="kvm", append="run=hello",
                        log_dir=tmp_path / "logs", name="kvm")
    t0 = time.monotonic()
    with Machine(cfg) as m:
        with pytest.raises(GuestFailure) as info:
            m.wait_poweroff(timeout=60)
        assert not m.wait(10).ok
    assert time.monotonic() - t0 < 20, "the paused guest was waited for, not detected"
    summary = info.value.summary
    assert "KVM internal error (emulation failure)" in summary, summary
    assert "rip 0xffffffff80102169" in summary and "(clac)" in summary and "without --kvm" in summary, summary
    assert "KVM internal error. Suberror: 1" in m.stderr_path.read_text()          # nothing lost


def test_invoke_run_kvm_on_such_a_host_ends_with_one_verdict_line(paused_qemu, kernel_elf, tmp_path):
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm: `run --kvm` is refused before QEMU starts (tests/test_cli_input.py)")
    env = {**os.environ, "PATH": f"{paused_qemu.parent}:{os.environ['PATH']}"}
    t0 = time.monotonic()
    proc = invoke("run", "--kvm", "--kernel", str(kernel_elf), "--append", "run=hello", env=env, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output
    assert time.monotonic() - t0 < 30, output
    results = [line for line in output.splitlines() if line.startswith("result: ")]
    assert len(results) == 1 and "KVM cannot run this kernel here" in results[0], output


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="no /dev/kvm")
def test_a_real_kvm_run_ends_by_itself_either_way(kernel_elf):
    proc = invoke("run", "--kvm", "--kernel", str(kernel_elf), "--append", "run=hello", "--timeout", "60",
                  timeout=90)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "still running after" not in output, output
    result = [line for line in output.splitlines() if line.startswith("result: ")]
    assert len(result) == 1, output
    if proc.returncode != 0:
        assert "KVM" in result[0] or "--kvm" in result[0], output


def test_doctor_says_whether_kvm_works_and_whether_build_is_writable(kernel_elf):
    proc = invoke("doctor")
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert "build/ writable" in output, output
    kvm = [line for line in output.splitlines() if line.split()[1:2] == ["KVM"]]
    assert kvm, output
    if os.path.exists("/dev/kvm"):
        assert "works: boot to poweroff" in output or "KVM cannot run the kernel here" in output, output
