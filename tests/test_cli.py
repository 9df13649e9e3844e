"""Bad input through the command line: one clear `error:` line, no traceback, non-zero exit."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.paths import KERNEL_ELF, ROOT

INVOKE = Path(sys.executable).with_name("invoke")


def invoke(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(INVOKE), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def assert_one_clear_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    for word in words:
        assert word in errors[0], output
    return errors[0]


@pytest.fixture(scope="module", autouse=True)
def invoke_is_installed():
    if not INVOKE.exists():
        pytest.skip(f"{INVOKE} not found: run ci/bootstrap")


def test_a_missing_kernel_image_is_one_clear_error(tmp_path):
    missing = tmp_path / "no-such-kernel.elf"
    assert_one_clear_error(invoke("run", "--kernel", str(missing)), str(missing))


def test_a_corrupt_elf_is_one_clear_error(tmp_path, kernel_elf):
    corrupt = tmp_path / "corrupt.elf"
    data = bytearray(kernel_elf.read_bytes()[:4096])
    data[0x20:0x28] = (0x7FFFFFFF).to_bytes(8, "little")    # e_phoff far beyond the file
    corrupt.write_bytes(bytes(data))
    assert_one_clear_error(invoke("run", "--kernel", str(corrupt)), str(corrupt))


def test_random_bytes_are_not_a_kernel(tmp_path):
    garbage = tmp_path / "garbage.elf"
    garbage.write_bytes(os.urandom(8192))
    assert_one_clear_error(invoke("run", "--kernel", str(garbage)), "ELF")


def test_no_qemu_on_path_is_one_clear_error(tmp_path, kernel_elf):
    bin_dir = tmp_path / "bin"          # a PATH with everything but QEMU
    bin_dir.mkdir()
    for tool in ("sh", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir)}
    error = assert_one_clear_error(invoke("run", "--kernel", str(kernel_elf), env=env), "qemu")
    assert "bootstrap" in error or "apt-get" in error


def test_snapshot_commands_without_a_machine_are_one_clear_error(tmp_path):
    proc = invoke("snapshot", "load", "--name", "x", "--socket", str(tmp_path / "nobody.sock"))
    assert_one_clear_error(proc, "no machine is listening")


def test_the_main_job_boots_runs_programs_and_reports_the_verdict():
    proc = invoke("run", "--append", "run=hello", "--timeout", "60")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "hello, world" in output
    assert "init: all done (0 failed)" in output
    assert "result: " in output and "serial log: " in output


def test_the_main_job_exits_non_zero_when_a_program_fails():
    proc = invoke("run", "--append", "run=exit3", "--timeout", "60")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "init: exit3 exited status=3" in output
    assert "Traceback" not in output


def test_a_killed_program_is_reported_with_its_rip_symbolized_against_its_own_elf():
    proc = invoke("run", "--append", "run=peek", "--timeout", "60")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "user faults, symbolized" in output, output
    assert "at peek+0x" in output and "(userland/progs/peek.c:" in output, output


def test_an_unknown_experiment_is_one_clear_error():
    assert_one_clear_error(invoke("experiment", "no-such-experiment"), "leak", "chained", "fuzz")


def test_the_chained_experiment_reports_redeliveries_and_exact_checksums():
    proc = invoke("experiment", "chained", "--size", "3", timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "experiment chained n=3: OK" in output
    redelivered = int(next(line.split(":")[1] for line in output.splitlines()
                           if line.strip().startswith("redelivered:")))
    assert redelivered >= 3, output
