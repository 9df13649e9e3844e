"""Tests of toolchain.linuxpeer: pure parsing on a recorded log, plus one real boot (slow)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from toolchain import linuxpeer as lp
from toolchain.errors import RevenantError, ToolMissing

# Recorded from a real `-icount shift=0` run (Debian 6.1.0-56-cloud-amd64, QEMU 7.2 TCG).
ICOUNT_LOG = """\
# qemu-system-x86_64 -M pc -accel tcg -cpu max -m 256M -smp 1 -display none ... -icount shift=0
PEER start bench=getpid,signal,alarm,futex,calib iters=20000
INFO clocksource=tsc-early
INFO meltdown=Not_affected
INFO spectre_v2=Mitigation:_Retpolines;_STIBP:_disabled;_RSB_filling;_PBRSB-eIBRS:_Not_affected;_BHI:_Not_affected
RESULT name=calib iters=1000000 tsc_per_iter=2.000 ns_per_iter=2.000 tsc_total=2000012 ns_total=2000092 insns=2000000 min_tsc=2000012 min_ns=2000092 empty_tsc=7 empty_ns=89
RESULT name=getpid iters=20000 tsc_per_iter=322.006 ns_per_iter=322.046 mean_tsc_per_iter=322.325 mean_ns_per_iter=322.329 chunks=10 tsc_total=6446497 ns_total=6446578
RESULT name=signal iters=20000 tsc_per_iter=4233.498 ns_per_iter=4233.539 mean_tsc_per_iter=4233.705 mean_ns_per_iter=4233.709 chunks=10 tsc_total=84674106 ns_total=84674187 delivered=20000
RESULT name=alarm iters=2000 tsc_per_iter=4497 ns_per_iter=4497.001 mean_tsc_per_iter=4490.850 mean_ns_per_iter=4490.851 min_tsc=4374 step_tsc=10 interval_us=200 other_gaps=100 other_mean_tsc=2818.1 multi=0 tsc_total=400003964 ns_total=400004045
RESULT name=futex iters=20000 tsc_per_iter=5037.641 ns_per_iter=5037.661 mean_tsc_per_iter=5050.198 mean_ns_per_iter=5050.200 chunks=10 tsc_total=202007910 ns_total=202007991 round_trips=20000 main_ctxt_switches=20003
DONE
[    2.329031] reboot: Power down
# exit status 0, 8.803 s
"""

PANIC_LOG = """\
PEER start bench=getpid iters=100
[    1.234567] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
[    1.234999] ---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b ]---
"""


def test_result_lines_of_a_recorded_peer_log_parse_to_typed_fields():
    res = lp.parse_results(ICOUNT_LOG)
    assert set(res) == {"calib", "getpid", "signal", "alarm", "futex"}
    g = res["getpid"]
    assert g["iters"] == 20000 and isinstance(g["iters"], int)
    assert g["tsc_per_iter"] == pytest.approx(322.006)
    assert g["tsc_total"] == 6446497
    assert res["futex"]["main_ctxt_switches"] == 20003
    assert res["signal"]["delivered"] == 20000
    # calib checks the icount claim: 2 instructions per loop iteration, exactly
    assert res["calib"]["tsc_per_iter"] == pytest.approx(2.0)
    assert res["calib"]["min_tsc"] - res["calib"]["insns"] < 20


def test_only_lines_starting_with_result_count_and_crlf_is_ignored():
    log = "junk RESULT name=x iters=1 tsc_per_iter=1 ns_per_iter=1\r\nRESULT name=y iters=3 tsc_per_iter=2.5 ns_per_iter=1e3\r\n"
    res = lp.parse_results(log)
    assert list(res) == ["y"]                    # only lines that start with RESULT
    assert res["y"]["ns_per_iter"] == 1000.0


def test_info_lines_parse_to_key_value():
    info = lp.parse_info(ICOUNT_LOG)
    assert info["clocksource"] == "tsc-early"
    assert info["meltdown"] == "Not_affected"


def test_under_icount_a_result_is_instructions_and_under_tcg_cycles():
    res = lp.results_from_log(ICOUNT_LOG, icount=True, boot_seconds=2.0, log_path="x.log")
    g = res["getpid"]
    assert g.instructions == pytest.approx(322.006)
    assert g.tsc_cycles is None
    assert g.fields["mean_tsc_per_iter"] == pytest.approx(322.325)
    assert "tsc_per_iter" not in g.fields
    assert g.to_dict()["instructions"] == pytest.approx(322.006)
    tcg = lp.results_from_log(ICOUNT_LOG, icount=False)["futex"]
    assert tcg.instructions is None and tcg.tsc_cycles == pytest.approx(5037.641)


def test_a_result_line_without_its_figures_is_a_malformed_error():
    with pytest.raises(lp.LinuxPeerError, match="malformed"):
        lp.results_from_log("RESULT name=getpid iters=10\n", icount=True)


def test_a_linux_panic_or_error_line_is_reported():
    assert lp.parse_errors(ICOUNT_LOG) == []
    errs = lp.parse_errors(PANIC_LOG)
    assert errs and "Kernel panic" in errs[0]
    assert lp.parse_errors("ERROR name=futex msg=pthread_create\n") == ["ERROR name=futex msg=pthread_create"]


def test_peer_errors_are_revenant_errors_so_tasks_print_one_line():
    assert issubclass(lp.LinuxPeerError, RevenantError)


def _newc_members(data: bytes):
    """Minimal newc reader: [(name, mode, filesize, devmajor, devminor)]."""
    out, off = [], 0
    while True:
        assert data[off:off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[off + 110: off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        off += filesize
        off += -off % 4
        if name == "TRAILER!!!":
            assert off == len(data)
            return out
        out.append((name, f[1], filesize, f[9], f[10]))


def test_write_newc_lays_out_members_like_the_newc_format():
    data = lp.write_newc([("dev", 0o040755, b"", 0, 0), ("dev/console", 0o020600, b"", 5, 1),
                          ("init", 0o100755, b"\x7fELF" + b"x" * 5, 0, 0)])
    assert len(data) % 4 == 0
    assert _newc_members(data) == [("dev", 0o040755, 0, 0, 0), ("dev/console", 0o020600, 0, 5, 1),
                                   ("init", 0o100755, 9, 0, 0)]


@pytest.mark.skipif(not shutil.which("cpio"), reason="cpio not installed")
def test_write_newc_output_is_readable_by_cpio():
    data = lp.write_newc([("init", 0o100755, b"hello", 0, 0)])
    out = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True)
    assert out.returncode == 0 and out.stdout.decode().split() == ["init"]


def test_the_kernel_package_is_resolved_from_versioned_depends_once(monkeypatch):
    calls = []

    def fake_run(cmd, what, timeout=600, cwd=None):
        calls.append(cmd)
        return ("Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\n"
                "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n")

    monkeypatch.setattr(lp, "_run", fake_run)
    monkeypatch.setattr(lp, "_resolved", {})
    monkeypatch.delenv("REVENANT_LINUX_PACKAGE", raising=False)
    assert lp.resolve_kernel_package() == ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")
    assert lp.resolve_kernel_package() == ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")
    assert len(calls) == 1                       # memoized


def test_a_cached_kernel_is_used_without_apt(monkeypatch, tmp_path):
    monkeypatch.delenv("REVENANT_LINUX_VMLINUZ", raising=False)
    monkeypatch.setattr(lp, "CACHE", tmp_path)
    monkeypatch.setattr(lp, "resolve_kernel_package", lambda: ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2"))
    cached = tmp_path / "linux-image-6.1.0-56-cloud-amd64_6.1.192-2" / "vmlinuz"
    cached.parent.mkdir()
    cached.write_bytes(b"kernel")

    def no_network(*a, **k):
        raise AssertionError("a cached kernel must not be fetched again")

    monkeypatch.setattr(lp, "_run", no_network)
    assert lp.fetch_kernel() == cached


def test_missing_apt_is_a_one_line_tool_missing_error(monkeypatch, tmp_path):
    monkeypatch.delenv("REVENANT_LINUX_VMLINUZ", raising=False)
    monkeypatch.setattr(lp, "CACHE", tmp_path)
    monkeypatch.setattr(lp, "_resolved", {})
    monkeypatch.setattr(lp.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissing) as exc:
        lp.fetch_kernel()
    assert "\n" not in str(exc.value) and "apt-cache" in str(exc.value)


def test_an_unknown_bench_name_is_rejected():
    with pytest.raises(lp.LinuxPeerError, match="unknown"):
        lp.run_linux_benches(["nope"], 10, True)


def _have_kernel() -> bool:
    if os.environ.get("REVENANT_LINUX_VMLINUZ"):
        return True
    return any(lp.CACHE.glob("linux-image-*/vmlinuz"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (_have_kernel() or os.environ.get("REVENANT_NETWORK")),
    reason="no cached Debian vmlinuz under build/cache/linux/ and REVENANT_NETWORK unset: "
           "the first run downloads a ~27 MB kernel package with apt-get; set REVENANT_NETWORK=1 to allow it",
)
@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed")
def test_linux_getpid_under_icount_counts_a_plausible_number_of_instructions():
    r = lp.run_linux_bench("getpid", 2000, icount=True, timeout=180)
    assert r.name == "getpid" and r.icount and r.iters == 2000
    # Linux 6.1 getpid under TCG -cpu max is ~322 instructions; allow for other kernel builds
    assert 100 < r.instructions < 3000
    assert r.tsc_cycles is None
    assert r.boot_seconds is not None and r.boot_seconds < 120
    assert os.path.isfile(r.log_path)
    with open(r.log_path) as f:
        assert "DONE" in f.read()
