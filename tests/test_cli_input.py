"""Bad input to the toolkit: one clear `error: ...` line, never a traceback, nothing lost.

Real `invoke` subprocesses; none of these boots a guest (each is refused first), so the file is
fast.  `--help` shows a placeholder for every option that takes a value."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolchain.paths import ROOT

from test_cli import INVOKE, invoke
from test_cli import assert_one_clear_error as one_error


@pytest.fixture(scope="module", autouse=True)
def invoke_is_installed():
    if not INVOKE.exists():
        pytest.skip(f"{INVOKE} not found: run ci/bootstrap")


@pytest.mark.parametrize("args, words", [
    (["run", "--timeout", "abc"], ["--timeout", "number of seconds", "'abc'"]),
    (["run", "--timeout", "-5"], ["--timeout", "at least 0"]),
    (["run", "--timeout", "nan"], ["--timeout"]),
    (["experiment", "leak", "--size", "abc"], ["--size", "whole number", "'abc'"]),
    (["experiment", "leak", "--size", "-5"], ["--size", "at least 1", "-5"]),
    (["experiment", "leak", "--size", "0"], ["--size", "at least 1"]),
    (["experiment", "nosuch", "--size", "3"], ["unknown experiment 'nosuch'"]),
    (["experiment", "fuzz", "--shard", "3/2"], ["--shard 3/2", "from 1 to N"]),
    (["experiment", "fuzz", "--shard", "half"], ["--shard takes I/N", "'half'"]),
    (["experiment", "fuzz", "--keep", "some"], ["--keep takes failing, all, none", "'some'"]),
    (["experiment", "leak", "--workload", "ring"], ["experiment leak does not take --workload"]),
    (["experiment", "loadvm", "--workload", "nope"], ["unknown workload 'nope'", "reqresp"]),
    (["experiment", "fuzz", "--trial", "1", "--shard", "1/2"], ["--trial K runs one trial", "--shard"]),
    (["experiment", "merge", "only-one.json"], ["at least two shard results"]),
    (["experiment", "replay", "r.json"], ["replay"]),
    (["report", "/nonexistent/result.json"], ["no such file"]),
    (["debug", "--port", "abc"], ["--port", "whole number"]),
    (["debug", "--port", "70000"], ["--port", "65535"]),
    (["bench", "--only", "boot,bogus"], ["bogus", "boot", "uswitch"]),
    (["bench", "--out", "/nonexistent-dir/b.json"], ["--out", "does not exist"]),
])
def test_a_bad_option_value_is_one_error_line_before_anything_runs(args, words):
    one_error(invoke(*args), *words)


def _value_options(task: str) -> list[str]:
    """The options of `task` that take a value: its parameters whose default is not a bool."""
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location("revenant_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = getattr(module, task).body
    while hasattr(body, "__wrapped__"):
        body = body.__wrapped__
    params = list(inspect.signature(body).parameters.values())[1:]      # after the context
    return [p.name.strip("_").replace("_", "-") for p in params
            if p.default is not inspect.Parameter.empty and not isinstance(p.default, bool)]


@pytest.mark.parametrize("task", ["build", "run", "debug", "snapshot", "doctor", "iso", "bench",
                                  "experiment", "report", "clean"])
def test_every_option_that_takes_a_value_shows_a_placeholder_in_help(task):
    proc = invoke(task, "--help")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for option in _value_options(task):
        m = re.search(rf"--{option}=(\S+)", proc.stdout)
        assert m, f"--{option} shows no placeholder:\n{proc.stdout}"
        assert m.group(1) not in ("STRING", "INT"), f"--{option}={m.group(1)}: say what it is"


def test_the_run_timeout_shows_its_placeholder():
    out = invoke("run", "--help").stdout
    assert re.search(r"-t SECONDS, --timeout=SECONDS", out), out


# -- the kernel command line is checked before booting ------------------------------

@pytest.mark.parametrize("word, why", [
    ("bogus=1", "unknown key"),
    ("hz=0", "out of range 1..1000000"),
    ("hz=abc", "not a decimal number"),
    ("hz=5000000", "out of range 1..1000000"),
    ("act_pool=0", "out of range 1..8176"),
    ("heartbeat=abc", "not a decimal number"),
    ("pti=maybe", "not one of on|off"),
    ("crash=bogus", "not one of pagefault|divzero|assert|doublefault|hang"),
    ("selftest_fail=1", "takes no value"),
])
def test_run_refuses_an_append_the_kernel_would_reject(word, why, tmp_path):
    # --kernel: nothing is built; the refusal comes before QEMU even starts.
    error = one_error(invoke("run", "--kernel", str(tmp_path / "none.elf"), "--append", f"run=hello {word}"),
                      "--append", word, why)
    assert "kernel/cmdline_keys.h" in error


def test_debug_and_iso_check_the_command_line_too():
    one_error(invoke("debug", "--append", "hz=0"), "hz=0", "out of range")
    one_error(invoke("iso", "--append", "bogus"), "bogus", "unknown key")


# -- run options that only go together --------------------------------------------

def test_socket_without_qmp_is_an_error(tmp_path):
    one_error(invoke("run", "--socket", str(tmp_path / "q.sock")), "--socket", "--qmp")


def test_a_disk_in_a_missing_directory_is_refused_and_the_directory_is_not_created(tmp_path):
    disk = tmp_path / "no" / "such" / "dir" / "d.qcow2"
    proc = invoke("run", "--qmp", "--socket", str(tmp_path / "q.sock"), "--disk", str(disk))
    one_error(proc, str(disk.parent), "does not exist")
    assert not (tmp_path / "no").exists()
    assert "QMP socket" not in proc.stdout + proc.stderr


def test_a_disk_that_is_not_qcow2_fails_before_the_qmp_hint(tmp_path):
    disk = tmp_path / "raw.img"
    disk.write_bytes(b"\0" * 65536)
    proc = invoke("run", "--qmp", "--socket", str(tmp_path / "q.sock"), "--disk", str(disk))
    one_error(proc, str(disk), "not qcow2")
    assert "QMP socket" not in proc.stdout + proc.stderr
    assert disk.read_bytes() == b"\0" * 65536            # nothing written to it


def test_kvm_without_dev_kvm_is_an_error_not_a_hang(tmp_path):
    if os.path.exists("/dev/kvm"):
        pytest.skip("this host has /dev/kvm (tests/test_kvm.py covers a KVM that cannot run the kernel)")
    one_error(invoke("run", "--kvm", "--kernel", str(tmp_path / "x.elf")), "/dev/kvm")


def test_iso_and_kernel_do_not_go_together(tmp_path):
    one_error(invoke("run", "--iso", "--kernel", str(tmp_path / "k.elf")), "--iso", "--kernel")


# -- snapshot without a name ---------------------------------------------------------

def test_snapshot_save_without_a_name_is_one_error():
    one_error(invoke("snapshot", "save"), "snapshot save needs a name", "NAME")


# -- an unwritable build/ ------------------------------------------------------------

def _as_nobody() -> list[str]:
    setpriv = shutil.which("setpriv")
    if os.getuid() != 0 or not setpriv:
        pytest.skip("needs root and setpriv to run the toolkit as a user who cannot write build/")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _nobody(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*_as_nobody(), str(INVOKE), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)


def test_an_unwritable_build_dir_is_one_error_for_build_run_and_clean(kernel_elf):
    """build/ belongs to root here; user nobody can read the tree but write nothing in it."""
    for args, words in [
        (["build"], ["build"]),                                       # the build lock (or its output)
        (["run", "--kernel", str(kernel_elf), "--append", "run=hello"], ["build"]),   # the serial log
        (["clean"], ["cannot remove"]),
    ]:
        proc = _nobody(*args)
        error = one_error(proc, *words)
        assert "internal error" not in error, error
    assert kernel_elf.exists(), "clean as nobody removed the kernel"


# -- clean ---------------------------------------------------------------------------

def test_clean_refuses_while_a_machine_runs_and_keeps_snapshots_unless_all(tmp_path):
    from toolchain import clean as cleaner

    build = tmp_path / "build"
    (build / "logs" / "run").mkdir(parents=True)
    (build / "cache").mkdir()
    (build / "snapshots.qcow2").write_bytes(b"qcow")
    (build / "kernel.elf").write_bytes(b"elf")
    (build / "logs" / "old.log").write_text("x")
    pidfile = build / "logs" / "run" / "r.pid"
    # Stands for a QEMU: alive, and its argv names its pidfile (as QEMU's -pidfile does).
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(pidfile)])
    pidfile.write_text(str(live.pid))
    deadline = time.monotonic() + 10          # QEMU writes its pidfile once it runs; here, wait for exec
    while str(pidfile).encode() not in Path(f"/proc/{live.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        with pytest.raises(Exception, match="a machine is running"):
            cleaner.clean(build=build)
        assert (build / "kernel.elf").exists() and (build / "logs" / "old.log").exists()
    finally:
        live.kill()
        live.wait()
    out = cleaner.clean(build=build)
    assert "snapshots.qcow2" in out and "--all" in out, out
    assert sorted(p.name for p in build.iterdir()) == ["cache", "snapshots.qcow2"]
    cleaner.clean(everything=True, build=build)
    assert sorted(p.name for p in build.iterdir()) == ["cache"]


def test_the_clean_task_has_an_all_option():
    out = invoke("clean", "--help").stdout
    assert "--all" in out and "snapshots" in out, out


# -- doctor --------------------------------------------------------------------------

def test_doctor_combines_everything_missing_into_one_install_command():
    from toolchain.doctor import BOOTSTRAP, Check, Report

    report = Report([
        Check("qemu-system-x86_64", None, "boot", "qemu-system-x86"),
        Check("grub-mkrescue", None, "iso", "grub-common grub-pc-bin"),
        Check("gdb", None, "debug", "gdb", required=False),
        Check("qemu.qmp", None, "QMP", "", fix=BOOTSTRAP),
        Check("gcc", "gcc (Debian 12.2.0-14+deb12u1) 12.2.0", "build", "gcc"),
    ])
    command = report.install_command()
    assert command.endswith("apt-get install -y qemu-system-x86 grub-common grub-pc-bin gdb && bash ci/bootstrap")
    text = report.render()
    assert text.count("apt-get install") == 1 and "gcc (Debian 12.2.0-14+deb12u1) 12.2.0" in text, text


def test_doctor_prints_whole_version_strings():
    from toolchain import doctor

    check = doctor._tool("qemu-img", "qemu-utils", "disks")
    if check.found is None:
        pytest.skip("qemu-img not installed")
    full = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert check.found == full.strip()


def test_invoke_clean_refuses_while_invoke_run_qmp_runs_and_deletes_nothing(kernel_elf, tmp_path):
    from toolchain.machine import Machine, MachineConfig

    sock = tmp_path / "q.sock"
    with Machine(MachineConfig(kernel=kernel_elf, append="heartbeat=100", qmp=True, qmp_socket=sock,
                               name="clean-guard")) as m:        # its log and pidfile are in build/logs
        m.expect("heartbeat 1", timeout=60)
        proc = invoke("clean")
        one_error(proc, "a machine is running", str(m.pid))
        assert m.running and m.log_path.exists() and kernel_elf.exists()
