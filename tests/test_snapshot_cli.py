"""`invoke snapshot` as a user types it: list without a name, list a disk offline, names QEMU
cannot use refused, a stale socket reported once."""
from __future__ import annotations

import re
import socket

import pytest

from test_cli import assert_one_clear_error, invoke
from toolchain import snapshot
from toolchain.machine import Machine, MachineConfig


@pytest.fixture(scope="module")
def disk_with_snapshots(tmp_path_factory, kernel_elf):
    """A qcow2 file holding snapshots s1 and other, and the machine (still running) that saved them."""
    tmp = tmp_path_factory.mktemp("snap")
    disk, sock = tmp / "d.qcow2", tmp / "q.sock"
    cfg = MachineConfig(kernel=kernel_elf, append="heartbeat=50", qmp=True, qmp_socket=sock, disk=disk,
                        log_dir=tmp / "logs", name="snapcli")
    with Machine(cfg) as m:
        m.expect(re.compile(r"^heartbeat 2$"), timeout=60)
        snapshot.save("s1", sock)          # connect, save, disconnect: QEMU serves one QMP client
        snapshot.save("other", sock)
        yield disk, sock


def test_list_without_a_name_lists_every_snapshot_of_the_running_machine(disk_with_snapshots):
    _disk, sock = disk_with_snapshots
    proc = invoke("snapshot", "list", "--socket", str(sock))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " s1 " in f" {proc.stdout} " and " other " in f" {proc.stdout} ", proc.stdout
    assert "2 snapshots, machine at" in proc.stdout, proc.stdout
    only = invoke("snapshot", "list", "s*", "--socket", str(sock))
    assert " s1 " in f" {only.stdout} " and " other " not in f" {only.stdout} ", only.stdout


def test_list_reads_a_disk_offline_even_while_its_machine_runs(disk_with_snapshots):
    disk, _sock = disk_with_snapshots
    proc = invoke("snapshot", "list", "--disk", str(disk))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " s1 " in f" {proc.stdout} " and " other " in f" {proc.stdout} ", proc.stdout
    assert f"disk {disk}, read offline" in proc.stdout, proc.stdout


def test_list_of_a_disk_that_does_not_exist_or_is_not_qcow2_is_one_error(tmp_path):
    assert_one_clear_error(invoke("snapshot", "list", "--disk", str(tmp_path / "none.qcow2")), "no snapshot disk")
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 4096)
    assert_one_clear_error(invoke("snapshot", "list", "--disk", str(raw)), "not qcow2")


@pytest.mark.parametrize("name, why", [
    ("1", "all digits"),
    ("a b", "white space"),
    ("a,b", "comma"),
    ("-x", "starts with '-'"),
    ("x" * 200, "longer than 127"),
])
def test_save_refuses_a_name_qemu_cannot_use_before_connecting(name, why, tmp_path):
    proc = invoke("snapshot", "save", name, "--socket", str(tmp_path / "nobody.sock"))
    assert_one_clear_error(proc, "bad snapshot name", why)


def test_a_stale_socket_is_reported_once(tmp_path):
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()                               # the file stays, nobody listens
    error = assert_one_clear_error(invoke("snapshot", "load", "s1", "--socket", str(stale)),
                                   "no machine is listening")
    assert error.count("no machine is listening") == 1 and error.count("invoke run --qmp") == 1, error


def test_disk_goes_only_with_list(tmp_path):
    assert_one_clear_error(invoke("snapshot", "save", "s1", "--disk", str(tmp_path / "d.qcow2")),
                           "--disk is for `snapshot list`")


def test_run_refuses_a_disk_another_machine_holds_before_the_qmp_hint(disk_with_snapshots, tmp_path):
    disk, _sock = disk_with_snapshots
    proc = invoke("run", "--qmp", "--socket", str(tmp_path / "q.sock"), "--disk", str(disk))
    assert_one_clear_error(proc, str(disk), "in use by another QEMU")
    assert "QMP socket" not in proc.stdout + proc.stderr
