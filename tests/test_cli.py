"""The command line: bad input is one clear `error:` line with no traceback and a non-zero exit;
Ctrl-C leaves no QEMU behind; `invoke test` and `invoke doctor` exit statuses."""
from __future__ import annotations

import json

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from toolchain.paths import ROOT

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


def test_checkpoint_without_a_machine_or_with_a_bad_action_is_one_clear_error(tmp_path):
    assert_one_clear_error(invoke("checkpoint", "--socket", str(tmp_path / "nobody.sock")),
                           "no machine is listening")
    assert_one_clear_error(invoke("checkpoint", "sideways"), "unknown action")


def test_snapshot_commands_without_a_machine_are_one_clear_error(tmp_path):
    proc = invoke("snapshot", "load", "x", "--socket", str(tmp_path / "nobody.sock"))
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
    assert "experiment chained seed=1 trials=1 size=3: OK" in output, output
    (json_path,) = [line.split(":", 1)[1].strip() for line in output.splitlines()
                    if line.strip().startswith("json:")]
    (trial,) = json.loads(Path(json_path).read_text())["trials"]
    assert trial["verdict"] == "ok" and trial["figures"]["redelivered"] >= 3, trial
    assert trial["figures"]["threads_exact"] == 8 and trial["figures"]["pool_whole"] == 1, trial


def test_a_snapshot_command_with_an_unknown_action_is_one_clear_error():
    assert_one_clear_error(invoke("snapshot", "frob", "x"), "unknown snapshot action 'frob'")


def test_a_snapshot_command_without_a_name_says_so_without_a_traceback():
    proc = invoke("snapshot", "save")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in output, output
    assert "name" in output, output


def test_snapshot_tasks_save_list_and_load_a_machine_started_by_run_qmp(tmp_path):
    """`invoke run --qmp` in one process, `invoke snapshot ...` from others, as a user would."""
    sock = tmp_path / "qmp.sock"       # not build/qmp.sock: a developer's own machine may be there
    runner = subprocess.Popen([str(INVOKE), "run", "--qmp", "--socket", str(sock),
                               "--disk", str(tmp_path / "d.qcow2"),
                               "--append", "heartbeat=50", "--timeout", "120"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        saved = invoke("snapshot", "save", "s1", "--socket", str(sock))
        assert saved.returncode == 0 and "save s1:" in saved.stdout, saved.stdout + saved.stderr
        listed = invoke("snapshot", "list", "all", "--socket", str(sock))
        assert listed.returncode == 0 and " s1 " in f" {listed.stdout} ", listed.stdout + listed.stderr
        filtered = invoke("snapshot", "list", "nomatch*", "--socket", str(sock))
        assert " s1 " not in f" {filtered.stdout} ", filtered.stdout
        loaded = invoke("snapshot", "load", "s1", "--socket", str(sock))
        assert loaded.returncode == 0 and "machine running" in loaded.stdout, loaded.stdout + loaded.stderr
        deleted = invoke("snapshot", "delete", "s1", "--socket", str(sock))
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    finally:
        runner.send_signal(signal.SIGINT)
        try:
            out, _ = runner.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            runner.kill()
            out, _ = runner.communicate()
    assert "heartbeat" in out, out


# -- Ctrl-C: no QEMU survives, the log is kept -----------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ctrl_c_on_invoke_run_mid_boot_kills_qemu_exits_130_and_keeps_the_log(kernel_elf):
    proc = subprocess.Popen([str(INVOKE), "run", "--kernel", str(kernel_elf), "--append", "heartbeat=100"],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    qemu = None
    output = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("heartbeat 1") for line in output):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(output)
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        (qemu,) = [k for k in _children(proc.pid)
                   if b"qemu-system-x86_64" in Path(f"/proc/{k}/cmdline").read_bytes()]
        argv = Path(f"/proc/{qemu}/cmdline").read_bytes().decode().split("\0")
        pidfile = Path(argv[argv.index("-pidfile") + 1])
        log = pidfile.parent.parent / (pidfile.stem + ".log")       # build/logs/<run>.log

        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=30)
        reader.join(timeout=10)
        while not lines.empty():
            output.append(lines.get())
        text = "".join(output)
        assert status == 130, text
        assert "interrupted" in text and "Traceback" not in text, text
        deadline = time.monotonic() + 10
        while _alive(qemu) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(qemu), f"QEMU {qemu} survived Ctrl-C of `invoke run`"
        assert log.is_file() and "heartbeat 1" in log.read_text(), f"log {log} not kept"
        assert f"serial log: {log}" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if qemu is not None and _alive(qemu):
            os.kill(qemu, signal.SIGKILL)


# -- invoke test: arguments pass through, failures give a non-zero status ---------

def test_invoke_test_passes_arguments_after_the_double_dash_and_propagates_pytest_failure(tmp_path):
    module = tmp_path / "test_passthrough.py"
    module.write_text("def test_selected():\n    pass\n\n\ndef test_fails():\n    assert False\n")
    selected = invoke("test", "--", str(module), "-p", "no:cacheprovider", "-n", "0", "-k", "selected")
    assert selected.returncode == 0, selected.stdout + selected.stderr
    assert "1 passed, 1 deselected" in selected.stdout, selected.stdout
    failing = invoke("test", "--", str(module), "-p", "no:cacheprovider", "-n", "0")
    assert failing.returncode == 1, failing.stdout + failing.stderr    # pytest's own "tests failed"
    assert "1 failed, 1 passed" in failing.stdout, failing.stdout
    via_option = invoke("test", "-n", "0", "--args", f"{module} -p no:cacheprovider -k fails")
    assert via_option.returncode == 1 and "1 failed, 1 deselected" in via_option.stdout, via_option.stdout
    assert " workers" not in via_option.stdout, via_option.stdout


def test_invoke_test_with_a_bad_worker_count_or_junit_path_is_one_clear_error(tmp_path):
    assert_one_clear_error(invoke("test", "-n", "many"), "--numprocesses", "'many'")
    assert_one_clear_error(invoke("test", "--junit", str(tmp_path)), "--junit", str(tmp_path))


JUNIT_MODULE = """
from toolchain.pytest_plugin import ktap_suite

selftest = ktap_suite("test=ktap_selftest* selftest_fail")


def test_a_boot_that_fails(run):
    run("run=hello")
    assert False, "failing on purpose"
"""


def test_invoke_test_runs_in_parallel_and_its_junit_xml_has_the_serial_tail_of_each_failing_test(tmp_path, kernel_elf):
    import xml.etree.ElementTree as ET

    module = tmp_path / "test_junit_tails.py"
    module.write_text(JUNIT_MODULE)
    out = tmp_path / "reports" / "junit.xml"
    proc = invoke("test", "--junit", str(out), "--", str(module), "-p", "no:cacheprovider")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert " workers" in proc.stdout, proc.stdout          # parallel by default: xdist's controller wrote it
    cases = {c.get("name"): c for c in ET.parse(out).getroot().iter("testcase")}
    failed = {name: c for name, c in cases.items() if c.find("failure") is not None}
    assert set(failed) == {"test_a_boot_that_fails", "fails_on_purpose"}, sorted(cases)
    boot_tail = "".join(e.text or "" for e in failed["test_a_boot_that_fails"].iter("system-out"))
    assert "| hello: hello, world" in boot_tail and "| init: all done" in boot_tail, boot_tail
    assert "build/logs/" in boot_tail, boot_tail
    ktap_tail = "".join(e.text or "" for e in failed["fails_on_purpose"].iter("system-out"))
    assert "ktap_selftest" in ktap_tail and "build/logs/" in ktap_tail, ktap_tail
    assert all(c.find("system-out") is None for name, c in cases.items() if name not in failed)


# -- invoke doctor: exit status 1 only when something required is missing ----------

DOCTOR_TOOLS = ["qemu-system-x86_64", "qemu-img", "gcc", "as", "ld", "grub-mkrescue", "xorriso", "mformat"]
OPTIONAL_TOOLS = ["gdb", "cpio"]


def _path_with(tmp_path: Path, tools: list[str]) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} not installed (run ci/bootstrap)")
        (bin_dir / tool).symlink_to(found)
    return {**os.environ, "PATH": str(bin_dir)}


def test_doctor_exits_0_when_only_optional_tools_are_missing(tmp_path):
    proc = invoke("doctor", env=_path_with(tmp_path, DOCTOR_TOOLS))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "MISSING" not in output, output
    for tool in OPTIONAL_TOOLS:
        assert re.search(rf"^absent +{tool} ", output, re.M), output
    assert "apt-get install -y gdb" in output, output


def test_doctor_exits_1_and_prints_the_install_command_when_qemu_is_missing(tmp_path):
    proc = invoke("doctor", env=_path_with(tmp_path, [t for t in DOCTOR_TOOLS if t != "qemu-system-x86_64"]))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert re.search(r"^MISSING qemu-system-x86_64 ", output, re.M), output
    assert "apt-get install -y qemu-system-x86" in output and "Traceback" not in output, output


# ------------------------------------------------------------------- mutate

def test_mutate_list_shows_the_catalogue():
    proc = invoke("mutate", "--list", "--only", "vm,elf-total-size-unchecked")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 1} mutant(s)" and len(lines) > 5
    assert all(line.startswith(("vm-", "elf-total-size-unchecked ")) for line in lines[:-1])


def test_mutate_with_an_unknown_pattern_is_one_clear_error():
    assert_one_clear_error(invoke("mutate", "--only", "nosuch"), "no mutant matches 'nosuch'", "areas: ")


def test_mutate_with_a_patch_that_no_longer_applies_is_one_clear_error(tmp_path):
    (tmp_path / "vm-stale.patch").write_text(
        "# A bug against code that changed since.\n--- a/kernel/vm.c\n+++ b/kernel/vm.c\n"
        "@@ -1,2 +1,2 @@\n-this line is not in vm.c\n+nor this one\n context\n")
    error = assert_one_clear_error(invoke("mutate", "--catalogue", str(tmp_path), "--out", str(tmp_path / "m.json")),
                                   "vm-stale.patch no longer applies", "kernel/vm.c")
    assert not (tmp_path / "m.json").exists(), error


def test_mutate_with_a_malformed_patch_is_one_clear_error(tmp_path):
    (tmp_path / "vm-bad.patch").write_text("# tests: tests/test_userland.py\n")
    assert_one_clear_error(invoke("mutate", "--catalogue", str(tmp_path)), "vm-bad.patch")
