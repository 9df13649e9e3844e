"""The virtio-blk driver (kernel/virtio_blk.c) on a real qcow2 disk in a real QEMU: the KTAP
suite `blk`, data that survives a reboot and is really in the image (read by the host with
qemu-img), bytes the host changes are seen by the guest, and a machine without a disk."""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from toolchain import ktap
from toolchain.ktap import Status
from toolchain.machine import Machine, MachineConfig, create_disk, disk_args

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None,
                                reason="qemu-system-x86_64 / qemu-img not installed (run ci/bootstrap)")

SECTOR = 512
DISK_SECTORS = 64 * 1024 * 1024 // SECTOR
BLKTEST_SECTORS = 256                       # kernel/blktest.h
BLKTEST_FIRST = DISK_SECTORS - BLKTEST_SECTORS
MASK = (1 << 64) - 1


def blktest_word(sector: int, i: int) -> int:
    """kernel/blktest.c's pattern, word ``i`` of ``sector``."""
    return (((sector * 64 + i) * 0x9E3779B97F4A7C15) & MASK) ^ 0x5245564E414E5421


def raw_image(disk: Path, tmp: Path) -> bytes:
    raw = tmp / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True,
                   capture_output=True)
    return raw.read_bytes()


def boot_to_end(boot, append: str, disk, **config):
    machine = boot(append, disk=disk, timeout=120, **config)
    result = machine.wait(110)
    return machine, result, machine.console.lines()


def test_the_disk_goes_to_the_guest_as_virtio_blk_on_the_snapshot_node():
    assert disk_args("/x/d,1.qcow2") == [
        "-blockdev", "driver=file,filename=/x/d,,1.qcow2,node-name=f0",
        "-blockdev", "driver=qcow2,file=f0,node-name=d0",
        "-device", "virtio-blk-pci,drive=d0,id=blk0"]
    assert "-device" not in disk_args("/x/d.qcow2", attach=False)
    replay = disk_args("/x/d.qcow2", replay=True)
    assert replay[-4:] == ["-blockdev", "driver=blkreplay,image=d0,node-name=r0",
                           "-device", "virtio-blk-pci,drive=r0,id=blk0"]
    argv = Machine(MachineConfig(disk=Path("/x/d.qcow2"))).argv()
    assert "virtio-blk-pci,drive=d0,id=blk0" in argv


def test_the_ktap_suite_passes_on_a_fresh_disk(boot, tmp_path):
    machine, result, lines = boot_to_end(boot, "test=blk", tmp_path / "d.qcow2")
    assert "blk: virtio-blk 64 MiB, flush" in lines, machine.log_path
    run = ktap.parse("\n".join(lines))
    suite = run.find("blk")
    assert suite is not None and suite.subtests, f"no blk suite; log: {machine.log_path}"
    not_passed = [(c.name, c.status.value, c.reason, c.diagnostics) for c in suite.subtests
                  if c.status is not Status.PASS]
    assert not not_passed, f"{not_passed}; log: {machine.log_path}"
    assert len(suite.subtests) >= 6 and result.status == 33, (result, machine.log_path)
    assert any("blk: sequential write" in line for line in lines)


def test_a_pattern_survives_a_reboot_and_is_in_the_image(boot, tmp_path):
    disk = tmp_path / "d.qcow2"
    machine, result, lines = boot_to_end(boot, "blktest=write", disk)
    assert f"blktest: wrote 256 sectors at {BLKTEST_FIRST}, flushed" in lines and result.status == 33, \
        machine.log_path
    # The host reads the bytes out of the qcow2 with QEMU off: they are on disk.
    data = raw_image(disk, tmp_path)
    assert len(data) == DISK_SECTORS * SECTOR
    for sector in (BLKTEST_FIRST, BLKTEST_FIRST + 77, DISK_SECTORS - 1):
        words = struct.unpack_from("<64Q", data, sector * SECTOR)
        assert list(words) == [blktest_word(sector, i) for i in range(64)], f"sector {sector}"
    assert data[:BLKTEST_FIRST * SECTOR].count(0) == BLKTEST_FIRST * SECTOR, "wrote outside its area"
    machine, result, lines = boot_to_end(boot, "blktest=verify", disk)
    assert f"blktest: verified 256 sectors at {BLKTEST_FIRST}" in lines and result.status == 33, \
        machine.log_path


def test_verify_sees_what_the_host_changed_on_disk(boot, tmp_path):
    disk = tmp_path / "d.qcow2"
    _m, result, _lines = boot_to_end(boot, "blktest=write", disk)
    assert result.status == 33
    victim = BLKTEST_FIRST + 130
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0xa5 {victim * SECTOR + 16} 8", str(disk)],
                   check=True, capture_output=True)
    machine, result, lines = boot_to_end(boot, "blktest=verify", disk)
    want = (f"blktest: sector {victim} word 2 is 0xa5a5a5a5a5a5a5a5, "
            f"expected 0x{blktest_word(victim, 2):016x}")
    assert want in lines and result.status == 35, machine.log_path


def test_verify_on_a_fresh_disk_fails(boot, tmp_path):
    machine, result, lines = boot_to_end(boot, "blktest=verify", tmp_path / "d.qcow2")
    assert any(line.startswith(f"blktest: sector {BLKTEST_FIRST} word 0 is 0x0000000000000000")
               for line in lines) and result.status == 35, machine.log_path


def test_without_a_disk_the_kernel_says_none_and_boots_clean(boot):
    machine, result, lines = boot_to_end(boot, "", None)
    assert "blk: none" in lines and result.status == 33, machine.log_path
    machine, result, lines = boot_to_end(boot, "blktest=write", None)
    assert "blktest: no disk" in lines and result.status == 35, machine.log_path


def test_a_snapshot_disk_kept_from_the_guest_is_not_seen(boot, tmp_path):
    machine, result, lines = boot_to_end(boot, "", tmp_path / "d.qcow2", attach_disk=False)
    assert "blk: none" in lines and result.status == 33, machine.log_path


def test_a_disk_without_flush_is_never_called_durable(boot, tmp_path):
    # write-cache=off (and no config-wce, which would offer it anyway): QEMU writes through and offers no FLUSH; the kernel says so, and
    # blktest (which needs a flush) fails rather than claiming the data is safe.
    disk = create_disk(tmp_path / "d.qcow2")
    extra = disk_args(disk, attach=False) + ["-device", "virtio-blk-pci,drive=d0,write-cache=off,config-wce=off"]
    machine = boot("blktest=write", timeout=120, extra_args=extra)
    result = machine.wait(110)
    lines = machine.console.lines()
    assert "blk: virtio-blk 64 MiB, no flush: writes are not durable" in lines, machine.log_path
    assert "blktest: flush failed (-5)" in lines and result.status == 35, machine.log_path


# -- invoke run --disk, as a user types it ----------------------------------------------

def test_run_disk_creates_the_image_and_keeps_it_across_boots(tmp_path):
    from test_cli import invoke
    from toolchain.paths import KERNEL_ELF
    disk = tmp_path / "mine.qcow2"
    kernel = ("--kernel", str(KERNEL_ELF))
    first = invoke("run", *kernel, "--raw", "--disk", str(disk), "--append", "blktest=write", "--timeout", "60")
    assert first.returncode == 0 and "blktest: wrote 256 sectors" in first.stdout, first.stdout + first.stderr
    assert "blk: virtio-blk 64 MiB, flush" in first.stdout and disk.is_file()
    second = invoke("run", *kernel, "--raw", "--disk", str(disk), "--append", "blktest=verify", "--timeout", "60")
    assert second.returncode == 0 and "blktest: verified 256 sectors" in second.stdout, \
        second.stdout + second.stderr


def test_run_disk_refuses_bad_paths_with_one_line(tmp_path):
    from test_cli import assert_one_clear_error, invoke
    assert_one_clear_error(invoke("run", "--disk", str(tmp_path / "no" / "d.qcow2")), "does not exist")
    assert_one_clear_error(invoke("run", "--disk", str(tmp_path)), "is a directory")
    raw = tmp_path / "d.raw"
    raw.write_bytes(b"\0" * 4096)
    assert_one_clear_error(invoke("run", "--disk", str(raw)), "not qcow2")


# -- a device that fails, and one that never answers -----------------------------------

def _stack(disk: Path, middle: list[str], top: str) -> list[str]:
    """The disk as file node f0, qcow2 node d0 over ``middle``, the guest's device on ``top``."""
    return (["-blockdev", f"driver=file,filename={disk},node-name=f0"] + middle +
            ["-device", f"virtio-blk-pci,drive={top}"])


def _errors_on(event: str, disk: Path) -> list[str]:
    # blkdebug between the qcow2 and its file fails every host I/O after `event`: the device
    # answers the guest with VIRTIO_BLK_S_IOERR.
    return _stack(disk, ["-blockdev", f"driver=blkdebug,image=f0,node-name=b0,inject-error.0.event={event},"
                                      f"inject-error.0.errno=5",
                         "-blockdev", "driver=qcow2,file=b0,node-name=d0"], "d0")


@pytest.mark.parametrize("mode, event, line", [
    ("write", "write_aio", f"blktest: write at sector {BLKTEST_FIRST} failed (-5)"),
    ("write", "flush_to_disk", "blktest: flush failed (-5)"),
    ("verify", "read_aio", f"blktest: read at sector {BLKTEST_FIRST} failed (-5)")])
def test_a_device_error_is_an_eio_not_a_crash(boot, tmp_path, mode, event, line):
    disk = create_disk(tmp_path / "d.qcow2")
    if event == "read_aio":     # a read of a cluster never written never reaches the file
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 1 {BLKTEST_FIRST * SECTOR} 128k", str(disk)],
                       check=True, capture_output=True)
    machine = boot(f"blktest={mode}", timeout=120, extra_args=_errors_on(event, disk))
    result = machine.wait(110)
    lines = machine.console.lines()
    assert "blk: request failed with device status 1" in lines and line in lines, machine.log_path
    assert lines[-1] == "revenant: poweroff status=1" and result.status == 35, machine.log_path


def test_a_device_that_does_not_answer_is_reset_after_the_timeout(boot, tmp_path):
    # A throttle of 4 KiB/s: a 32 KiB write takes 8 s, the kernel waits 300 ms of guest time.
    disk = create_disk(tmp_path / "d.qcow2")
    extra = ["-object", "throttle-group,id=tg,x-bps-total=4096"] + _stack(
        disk, ["-blockdev", "driver=qcow2,file=f0,node-name=d0",
               "-blockdev", "driver=throttle,throttle-group=tg,file=d0,node-name=t0"], "t0")
    machine = boot("blktest=write blk_timeout=300", timeout=120, extra_args=extra)
    result = machine.wait(110)
    lines = machine.console.lines()
    assert any(line.startswith("virtio: device at io ") and line.endswith(
        "disabled: no completion within the timeout, ms (300)") for line in lines), machine.log_path
    assert any(line.startswith("blktest: write at sector ") and line.endswith("failed (-5)") for line in lines)
    assert lines[-1] == "revenant: poweroff status=1" and result.status == 35, machine.log_path


def test_record_and_replay_with_the_disk_give_the_same_run(boot, tmp_path):
    """``disk_replay``: the blkreplay node ``-icount rr=`` needs; the replay repeats the boot's
    serial output byte for byte, disk reads and flushes included."""
    base = create_disk(tmp_path / "base.qcow2")
    rrfile = tmp_path / "rr.bin"
    logs = []
    for mode in ("record", "replay"):
        disk = tmp_path / f"{mode}.qcow2"
        shutil.copy(base, disk)
        machine = boot("test=blk", timeout=280, disk=disk, disk_replay=True,
                       extra_args=["-icount", f"shift=auto,rr={mode},rrfile={rrfile}"])
        result = machine.wait(270)
        assert result.status == 33, machine.log_path
        logs.append(machine.log_path.read_bytes())
    assert b"ok 1 blk" in logs[0] and logs[0] == logs[1]


def test_a_disk_behind_a_pci_bridge_is_found(boot, tmp_path):
    disk = create_disk(tmp_path / "d.qcow2")
    extra = disk_args(disk, attach=False) + ["-device", "pci-bridge,id=br0,chassis_nr=1",
                                             "-device", "virtio-blk-pci,drive=d0,bus=br0,addr=3"]
    machine = boot("blktest=write", timeout=120, extra_args=extra)
    result = machine.wait(110)
    lines = machine.console.lines()
    assert "blk: virtio-blk 64 MiB, flush" in lines and result.status == 33, machine.log_path


def _on_disk_after_kill(boot, disk: Path, tmp: Path, mode: str) -> int:
    """Boot ``blktest=MODE``, SIGKILL QEMU once the pattern is written, count its sectors in the image."""
    machine = boot(f"blktest={mode}", disk=disk, timeout=120)
    machine.expect("blktest: holding until killed", timeout=100)
    machine.kill()
    machine.wait(30)
    data = raw_image(disk, tmp)
    return sum(1 for s in range(BLKTEST_FIRST, DISK_SECTORS)
               if struct.unpack_from("<Q", data, s * SECTOR)[0] == blktest_word(s, 0))


def test_a_kill_keeps_flushed_writes_and_loses_unflushed_ones_to_fresh_clusters(boot, tmp_path):
    # QEMU's qcow2 keeps the mapping of newly allocated clusters in its own metadata cache until
    # a flush (the guest negotiated FLUSH, so the disk runs write-back): a kill -9 of QEMU, like a
    # power cut, loses completed writes that were never flushed. So every byte a checkpoint
    # relies on must be followed by blk_flush(), and this proves blk_flush() really flushes.
    assert _on_disk_after_kill(boot, tmp_path / "flushed.qcow2", tmp_path, "write_hold") == BLKTEST_SECTORS
    assert _on_disk_after_kill(boot, tmp_path / "unflushed.qcow2", tmp_path, "unflushed_hold") == 0


def test_the_disk_bench_section_reads_the_kernels_figures():
    from toolchain import bench
    section = bench.bench_disk(1)
    f = section.figures
    assert section.ok and f["runs"] == 1 and f["write_mib_s"] > 0 and f["flush_ms"] > 0, f
    # The driver's own work alone is a few hundred instructions (docs/persistence.md).
    assert f["request_1sector_instructions"] >= 100 and f["request_128k_instructions"] >= 1000, f
    assert f["request_128k_polls"] >= 1 and f["request_1sector_polls"] >= 1, f
