"""Machine / QMP / snapshot tests against a real qemu-system-x86_64.

Two kernels are used:
* ``fake_kernel``: a 100-line PVH stand-in assembled here (needs gcc + ld) that speaks
  the console contract; it makes harness failures (panic, triple fault, second
  banner, silence) reproducible without depending on the real kernel;
* ``build/kernel.elf``: the real kernel, for the heartbeat snapshot round trip; built by the
  session fixture ``kernel_elf`` (so these tests run, not skip, on a fresh clone).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from toolchain import paths, snapshot
from toolchain.errors import GuestFailure, KernelImageError, NoOutputTimeout, QMPError, ToolMissing
from toolchain.machine import Machine, MachineConfig, check_kernel_image, reap_stale

HAVE_QEMU = shutil.which("qemu-system-x86_64") is not None
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64 not installed")

HEARTBEAT = re.compile(r"^heartbeat (\d+)$")

FAKE_KERNEL_S = r"""
/* PVH stand-in kernel speaking the Revenant console contract (harness tests only).
   The first character of the command line picks the behaviour. */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4, 8, 18
        .asciz "Xen"
        .balign 4
        .quad pvh_start
        .balign 4

        .section .text, "ax"
        .code32
        .globl pvh_start
pvh_start:
        mov $stack_top, %esp
        mov 24(%ebx), %edi            /* hvm_start_info.cmdline_paddr */
        mov %edi, cmdline
        mov $s_banner, %esi; call puts
        mov cmdline, %esi; test %esi, %esi; jz 1f; call puts
1:      mov $s_banner_end, %esi; call puts
        mov cmdline, %esi
        xor %eax, %eax
        test %esi, %esi; jz 2f
        movzbl (%esi), %eax
2:      cmp $'c', %al; je do_panic
        cmp $'h', %al; je do_heartbeat
        cmp $'t', %al; je do_triple
        cmp $'s', %al; je do_silent
        cmp $'r', %al; je do_rebanner
        cmp $'f', %al; je do_fail
        mov $s_ready, %esi; call puts
        mov $s_poweroff0, %esi; call puts
        mov $0x10, %al; mov $0xf4, %dx; outb %al, %dx
        hlt
do_fail:
        mov $s_ready, %esi; call puts
        mov $s_poweroff1, %esi; call puts
        mov $0x11, %al; mov $0xf4, %dx; outb %al, %dx
        hlt
do_panic:
        mov $s_panic, %esi; call puts
        mov $1, %al; mov $0x505, %dx; outb %al, %dx
        mov $0x11, %al; mov $0xf4, %dx; outb %al, %dx
        hlt
do_triple:
        lidt idt0
        int3
        hlt
do_silent:
        mov $s_ready, %esi; call puts
3:      hlt
        jmp 3b
do_rebanner:
        mov $s_ready, %esi; call puts
        mov $s_banner, %esi; call puts
        mov $s_banner_end, %esi; call puts
        jmp do_silent
do_heartbeat:
        mov $s_ready, %esi; call puts
4:      mov $20000000, %ecx
5:      dec %ecx; jnz 5b
        incl counter
        mov $s_hb, %esi; call puts
        mov counter, %eax; call putdec
        mov $10, %al; call putc
        jmp 4b
putc:   push %edx
        mov $0x3f8, %dx
        outb %al, %dx
        pop %edx
        ret
puts:   push %eax
6:      lodsb
        test %al, %al; jz 7f
        call putc; jmp 6b
7:      pop %eax
        ret
putdec: push %ebx; push %ecx; push %edx
        mov $10, %ebx; xor %ecx, %ecx
8:      xor %edx, %edx; div %ebx
        push %edx; inc %ecx
        test %eax, %eax; jnz 8b
9:      pop %eax; add $'0', %al; call putc
        loop 9b
        pop %edx; pop %ecx; pop %ebx
        ret

        .section .data
        .balign 8
idt0:   .word 0
        .long 0
cmdline: .long 0
counter: .long 0
s_banner:     .asciz "Revenant kernel booting (cmdline: \""
s_banner_end: .asciz "\")\n"
s_ready:      .asciz "revenant: ready\n"
s_poweroff0:  .asciz "revenant: poweroff status=0\n"
s_poweroff1:  .asciz "revenant: poweroff status=1\n"
s_hb:         .asciz "heartbeat "
s_panic:      .ascii "PANIC: fake kernel panic\n"
              .ascii "  rax=0x0000000000000000 rbx=0x0000000000000000\n"
              .ascii "  rip=0x0000000000100000\n"
              .ascii "backtrace:\n"
              .ascii "  #0 0x0000000000100000\n"
              .asciz "end of panic\n"
        .section .bss
        .balign 16
        .space 4096
stack_top:
"""

FAKE_KERNEL_LD = """
ENTRY(pvh_start)
SECTIONS {
  . = 0x100000;
  .note.Xen : { *(.note.Xen) }
  .text : { *(.text) }
  .data : { *(.data) }
  .bss : { *(.bss) }
}
"""


@pytest.fixture(scope="session")
def fake_kernel(tmp_path_factory) -> Path:
    if not (shutil.which("gcc") and shutil.which("ld")):
        pytest.skip("gcc/ld needed to assemble the stand-in kernel")
    d = tmp_path_factory.mktemp("fakekernel")
    (d / "fake.S").write_text(FAKE_KERNEL_S)
    (d / "fake.ld").write_text(FAKE_KERNEL_LD)
    subprocess.run(["gcc", "-c", "fake.S", "-o", "fake.o"], cwd=d, check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-T", "fake.ld", "-o", "fake.elf", "fake.o"], cwd=d, check=True,
                   stderr=subprocess.DEVNULL)
    return d / "fake.elf"


@pytest.fixture
def logs(tmp_path) -> Path:
    return tmp_path / "logs"


def cfg(kernel: Path, logs: Path, append: str = "", **kw) -> MachineConfig:
    return MachineConfig(kernel=kernel, append=append, log_dir=logs, name="t", **kw)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------- image checks
def test_a_missing_kernel_image_is_a_one_line_error_before_qemu_starts(tmp_path, logs):
    with pytest.raises(KernelImageError) as info:
        Machine(cfg(tmp_path / "nope.elf", logs)).start()
    msg = str(info.value)
    assert "\n" not in msg and "does not exist" in msg and "nope.elf" in msg


def test_random_bytes_are_refused_as_not_an_elf(tmp_path, logs):
    bad = tmp_path / "random.elf"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(KernelImageError) as info:
        Machine(cfg(bad, logs)).start()
    assert "\n" not in str(info.value) and "not an ELF" in str(info.value)


def test_an_elf_truncated_anywhere_is_refused_as_corrupt(tmp_path, fake_kernel):
    data = fake_kernel.read_bytes()
    for cut in (40, 80, 4200):     # in the ELF header, in the program headers, in a segment
        bad = tmp_path / f"cut{cut}.elf"
        bad.write_bytes(data[:cut])
        with pytest.raises(KernelImageError) as info:
            check_kernel_image(bad)
        assert "\n" not in str(info.value)
        assert "not an ELF" in str(info.value) or "truncated" in str(info.value), str(info.value)


def test_a_32_bit_or_non_x86_elf_is_refused(tmp_path, fake_kernel):
    data = bytearray(fake_kernel.read_bytes())
    elf32 = tmp_path / "c32.elf"
    elf32.write_bytes(bytes(data[:4]) + b"\x01" + bytes(data[5:]))
    with pytest.raises(KernelImageError, match="not a 64-bit ELF"):
        check_kernel_image(elf32)
    arm = bytearray(data)
    arm[18:20] = (183).to_bytes(2, "little")       # EM_AARCH64
    (tmp_path / "arm.elf").write_bytes(bytes(arm))
    with pytest.raises(KernelImageError, match="not x86-64"):
        check_kernel_image(tmp_path / "arm.elf")


def test_the_real_kernel_image_passes_the_check(kernel_elf):
    check_kernel_image(kernel_elf)


pytest_plugins = ["pytester"]


@needs_qemu
def test_on_a_fresh_clone_the_real_kernel_tests_build_the_kernel_instead_of_skipping(pytester, monkeypatch):
    """This module, imported where build/kernel.elf does not exist yet, still runs them."""
    class NotYetBuilt(type(paths.KERNEL_ELF)):      # what a fresh clone sees at import time
        def exists(self, *args, **kwargs):
            return False

    monkeypatch.setattr(paths, "KERNEL_ELF", NotYetBuilt(paths.KERNEL_ELF))
    pytester.makepyfile(test_fresh=Path(__file__).read_text())
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-rs", "-k", "real_kernel_image or real_kernel_powers_off")
    result.assert_outcomes(passed=2)


def test_no_qemu_on_path_is_a_one_line_error_with_the_install_hint(monkeypatch, tmp_path, fake_kernel, logs):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissing) as info:
        Machine(cfg(fake_kernel, logs)).start()
    msg = str(info.value)
    assert "\n" not in msg and "qemu-system-x86_64" in msg and "ci/bootstrap" in msg


# ------------------------------------------------------------ boot verdicts
@needs_qemu
def test_a_clean_poweroff_is_exit_33_and_the_log_is_kept(fake_kernel, logs):
    with Machine(cfg(fake_kernel, logs, "ok")) as m:
        r = m.wait_poweroff(timeout=20)
    assert r.ok and r.status == 33
    assert m.log_path.parent == logs and m.log_path.name.endswith("-t-%d-%s.log" % (os.getpid(), m.run_id.rsplit("-", 1)[1]))
    assert 'Revenant kernel booting (cmdline: "ok")' in m.log_path.read_text()
    assert not m.pidfile.exists()
    assert "-kernel" in m.argv() and "isa-debug-exit,iobase=0xf4,iosize=0x04" in m.argv()


@needs_qemu
@pytest.mark.parametrize("append,kind,text", [
    ("fail", "failure", "exit 35"),
    ("crash", "failure", "guest panic: fake kernel panic"),
    ("triple", "reset", "triple fault"),
])
def test_exit_35_a_panic_and_a_triple_fault_are_failures_naming_the_log(fake_kernel, logs, append, kind, text):
    with Machine(cfg(fake_kernel, logs, append)) as m:
        with pytest.raises(GuestFailure) as info:
            m.wait_poweroff(timeout=20)
        assert m.wait(5).kind == kind
    assert text in info.value.summary
    assert str(m.log_path) in str(info.value)


@needs_qemu
def test_the_whole_panic_report_goes_through_the_symbolizer(fake_kernel, logs):
    c = cfg(fake_kernel, logs, "crash", symbolizer=lambda t: t.replace("#0 0x0000000000100000", "#0 pvh_start+0x0"))
    with Machine(c) as m:
        with pytest.raises(GuestFailure) as info:
            m.expect("heartbeat 1", timeout=20)
    assert "pvh_start+0x0" in info.value.report
    assert info.value.report.rstrip().endswith("end of panic")


@needs_qemu
def test_a_second_banner_is_an_unexpected_reset_and_qemu_is_gone(fake_kernel, logs):
    with Machine(cfg(fake_kernel, logs, "rebanner")) as m:
        with pytest.raises(GuestFailure, match="unexpected reset"):
            m.expect("never", timeout=20)
    assert not pid_alive(m.pid)


@needs_qemu
def test_an_idle_timeout_names_the_log_and_the_exception_kills_qemu(fake_kernel, logs):
    with pytest.raises(NoOutputTimeout) as info:
        with Machine(cfg(fake_kernel, logs, "silent")) as m:
            m.expect("revenant: ready", timeout=20)
            m.expect("never", timeout=20, idle_timeout=0.3)
    assert str(m.log_path) in str(info.value)
    assert not pid_alive(m.pid)
    assert m.result is not None and m.result.kind == "killed"


@needs_qemu
def test_a_keyboard_interrupt_in_the_with_block_kills_qemu(fake_kernel, logs):
    with pytest.raises(KeyboardInterrupt):
        with Machine(cfg(fake_kernel, logs, "silent")) as m:
            m.expect("revenant: ready", timeout=20)
            raise KeyboardInterrupt
    assert not pid_alive(m.pid)


ORPHAN_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from toolchain.machine import Machine, MachineConfig
    m = Machine(MachineConfig(kernel=Path(sys.argv[1]), append="silent", log_dir=Path(sys.argv[2]), name="orphan"))
    m.start()
    m.expect("revenant: ready", timeout=20)
    print(m.pid, flush=True)
    time.sleep(60)
""")


@needs_qemu
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_qemu_dies_when_its_harness_is_killed_or_terminated(fake_kernel, logs, sig):
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT, str(fake_kernel), str(logs)],
                            stdout=subprocess.PIPE, text=True, cwd=paths.ROOT)
    try:
        qemu_pid = int(proc.stdout.readline())
        assert pid_alive(qemu_pid)
        proc.send_signal(sig)
        proc.wait(10)
        assert wait_dead(qemu_pid), f"QEMU {qemu_pid} survived {sig.name} of its harness"
    finally:
        proc.kill()
        proc.wait()
    reap_stale(logs / "run")


# --------------------------------------------------------------------- QMP
@needs_qemu
def test_qmp_stop_cont_and_snapshot_jobs_with_their_errors_on_a_paused_machine(fake_kernel, logs, tmp_path):
    c = cfg(fake_kernel, logs, "heartbeat", qmp=True, paused=True, disk=tmp_path / "snap.qcow2")
    with Machine(c) as m:
        q = m.qmp
        assert q.status() == "prelaunch"
        m.drain_serial()
        assert m.console.text() == "", "a paused (-S) machine printed something"
        q.cont()
        assert q.status() == "running"
        m.expect(HEARTBEAT, timeout=20)
        q.stop()
        assert q.wait_event("STOP", timeout=5)["event"] == "STOP"
        assert q.status() == "paused"
        save = q.snapshot_save("p1")
        assert save.job_ms > 0 and q.status() == "paused"      # was paused: stays paused
        assert [s.name for s in q.snapshots()] == ["p1"]
        with pytest.raises(QMPError, match="already exists"):
            q.snapshot_save("p1")
        with pytest.raises(QMPError, match="p2"):
            q.snapshot_load("p2")
        q.snapshot_load("p1", resume=False)
        assert q.status() == "paused"
        q.snapshot_delete("p1")
        assert q.snapshots() == []
        with pytest.raises(QMPError, match="unknown-command"):
            q.execute("unknown-command")
        r = m.quit()
    assert r.kind == "quit" and not pid_alive(m.pid)


@needs_qemu
def test_a_snapshot_without_a_qcow2_disk_is_a_clear_qmp_error(fake_kernel, logs):
    with Machine(cfg(fake_kernel, logs, "silent", qmp=True)) as m:
        with pytest.raises(QMPError, match="no qcow2 disk"):
            m.qmp.snapshot_save("x")


def test_snapshot_functions_without_a_machine_say_nobody_is_listening(tmp_path):
    with pytest.raises(QMPError) as info:
        snapshot.list_snapshots(tmp_path / "qmp.sock")
    assert "no machine is listening" in str(info.value) and "invoke run --qmp" in str(info.value)
    (tmp_path / "stale.sock").write_text("")
    with pytest.raises(QMPError, match="no machine is listening"):
        snapshot.save("s1", tmp_path / "stale.sock")


@needs_qemu
def test_snapshot_save_replaces_load_resumes_and_delete_removes(fake_kernel, logs, tmp_path):
    sock = tmp_path / "qmp.sock"
    c = snapshot.snapshot_machine_config(kernel=fake_kernel, append="heartbeat", log_dir=logs,
                                         qmp_socket=sock, disk=tmp_path / "snap.qcow2")
    with Machine(c) as m:
        m.expect(HEARTBEAT, timeout=20)
        s = snapshot.save("a", sock)
        assert s.status_after == "running" and s.ms > 0
        s2 = snapshot.save("a", sock)                      # replaces
        assert [x.name for x in snapshot.list_snapshots(sock).snapshots] == ["a"]
        assert "a" in snapshot.format_list(snapshot.list_snapshots(sock))
        ld = snapshot.load("a", sock)
        assert ld.status_after == "running"
        with pytest.raises(QMPError, match="no snapshot named 'zz'"):
            snapshot.load("zz", sock)
        snapshot.delete("a", sock)
        assert snapshot.list_snapshots(sock).snapshots == []
        assert s2.op == "save"


# ---------------------------------------------------- the real kernel, end to end
@needs_qemu
def test_the_real_kernel_powers_off_with_status_33(kernel_elf, logs):
    with Machine(MachineConfig(kernel=kernel_elf, log_dir=logs, name="real")) as m:
        m.expect("revenant: ready", timeout=30)
        assert m.wait_poweroff(timeout=30).ok


@needs_qemu
def test_the_real_kernels_panic_names_the_faulting_function(kernel_elf, logs):
    with Machine(MachineConfig(kernel=kernel_elf, append="crash=pagefault", log_dir=logs, name="real")) as m:
        with pytest.raises(GuestFailure) as info:
            m.wait_poweroff(timeout=30)
    assert "page fault" in info.value.summary
    assert "crash_pagefault" in info.value.report       # toolchain.symbols did its job


def last_beat(m: Machine) -> int:
    """The last heartbeat of a stopped machine, once all its output is in."""
    m.drain_serial()
    beats = [int(x.group(1)) for x in map(HEARTBEAT.match, m.console.lines()) if x]
    assert beats, f"no heartbeat yet; log: {m.log_path}"
    return beats[-1]


@needs_qemu
def test_the_real_kernels_heartbeat_resumes_at_exactly_the_saved_number_after_load(kernel_elf, logs, tmp_path):
    """stop at heartbeat S >= 5, save, run to S+10, load: the next beat is exactly S+1."""
    c = MachineConfig(kernel=kernel_elf, append="heartbeat=50", log_dir=logs, name="snap", qmp=True, disk=tmp_path / "snap.qcow2")
    with Machine(c) as m:
        q = m.qmp                                     # connect before the guest gets far
        m.expect(re.compile(r"^heartbeat 5$"), timeout=30)
        q.stop()
        saved = last_beat(m)                          # QEMU's serial writes are synchronous: exact
        save = q.snapshot_save("s1")
        assert q.status() == "paused"                 # was paused: stays paused
        q.cont()
        m.expect(re.compile(rf"^heartbeat {saved + 10}$"), timeout=30)
        q.stop()
        last_beat(m)
        m.console.seek()                              # only the restored machine's lines from here
        load = q.snapshot_load("s1")
        n = int(m.expect(HEARTBEAT, timeout=30).group(1))
        assert n == saved + 1, f"saved at heartbeat {saved}, restored machine printed {n} next"
        print(f"\nsnapshot save job {save.job_ms:.1f} ms (total {save.total_ms:.1f}), "
              f"load job {load.job_ms:.1f} ms (total {load.total_ms:.1f})")
        q.snapshot_delete("s1")


@needs_qemu
def test_reap_stale_kills_a_qemu_whose_harness_is_gone(fake_kernel, logs):
    """A QEMU whose harness vanished (re-parented) is killed by the next Machine start."""
    run_dir = logs / "run"
    run_dir.mkdir(parents=True)
    pidfile = run_dir / "orphan.pid"
    m = Machine(cfg(fake_kernel, logs, "silent"))
    argv = m.argv()
    i = argv.index("-pidfile")
    argv[i + 1] = str(pidfile)
    # double fork: the shell exits at once, QEMU is re-parented
    subprocess.run(["sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh", *argv], check=True,
                   start_new_session=True)
    end = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.02)
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    assert reap_stale(run_dir) == [pid]
    assert wait_dead(pid)
