"""`invoke run`: boot with the serial console on the terminal and exit when the guest does.

Everything the toolkit can refuse is refused before the build and the boot (``RunOptions.check``):
a command line the kernel would reject, ``--socket`` without ``--qmp``, a disk that
is not qcow2 or whose directory does not exist, ``--kvm`` without /dev/kvm.  The terminal shows
the kernel's lines in plain words (toolchain/narrate.py; ``--raw`` shows them as they are), then
what the run showed, the serial log's path and one specific verdict line.

What is typed goes to the guest's serial port (``InputForwarder``): a line at a time from a
terminal, which stays in its ordinary mode (it echoes what is typed, Ctrl-C still ends the
run); whatever a pipe or file on stdin holds; nothing from /dev/null, a closed stdin or a
terminal this process does not have in the foreground.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import cmdline, paths
from .console import ExitResult
from .errors import GuestFailure, RevenantError, UsageError
from .machine import Machine, MachineConfig, find_tool, QEMU_IMG

RUN_ISO = paths.BUILD / "run.iso"       # `run --iso` boots its own image: build/revenant.iso stays


@dataclass
class RunOptions:
    append: str = ""
    qmp: bool = False
    disk: Optional[str] = None
    timeout: float = 0.0
    kvm: bool = False
    iso: bool = False
    kernel: Optional[str] = None
    socket: Optional[str] = None
    raw: bool = False

    def check(self) -> None:
        """``UsageError`` for anything wrong that can be known before building and booting."""
        cmdline.check(self.append)
        if self.socket and not self.qmp:
            raise UsageError("--socket goes with --qmp (it is where the QMP socket goes); add --qmp")
        if self.iso and self.kernel:
            raise UsageError("--iso boots build/kernel.elf through GRUB; it cannot go with --kernel")
        if self.timeout < 0:
            raise UsageError(f"--timeout takes a number of seconds of at least 0, not {self.timeout:g}")
        if self.kvm:
            check_kvm()
        if self.disk:
            check_disk(Path(self.disk))
        if self.socket:
            sock = Path(self.socket)
            if not sock.parent.is_dir():
                raise UsageError(f"--socket {sock}: directory {sock.parent} does not exist")
            if sock.exists() and not sock.is_socket():
                raise UsageError(f"--socket {sock}: exists and is not a socket; choose another path")


def check_kvm() -> None:
    if not os.path.exists("/dev/kvm"):
        raise UsageError("--kvm: /dev/kvm does not exist (no KVM on this host); run without --kvm (TCG)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise UsageError("--kvm: /dev/kvm is not readable and writable for this user "
                         "(add yourself to group kvm); or run without --kvm")


def check_disk(disk: Path) -> None:
    """The disk (the guest's virtio-blk disk, and QMP's snapshot store) must be a qcow2 image,
    or not exist yet in an existing directory (it is then created)."""
    if disk.is_dir():
        raise UsageError(f"--disk {disk} is a directory; give the path of a qcow2 file")
    if not disk.exists():
        if not disk.parent.is_dir():
            raise UsageError(f"--disk {disk}: directory {disk.parent} does not exist "
                             f"(the disk is created, its directory is not)")
        if not os.access(disk.parent, os.W_OK):
            raise UsageError(f"--disk {disk}: directory {disk.parent} is not writable")
        return
    proc = subprocess.run([find_tool(QEMU_IMG), "info", "--output=json", str(disk)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).strip()
        why = text.splitlines()[-1:] or ["unreadable"]
        if "lock" in text or "another process" in text:
            raise UsageError(f"--disk {disk} is in use by another QEMU (qemu-img cannot lock it); "
                             f"stop that machine or give another disk")
        raise UsageError(f"--disk {disk} is not a usable qcow2 image: {why[0]}")
    fmt = json.loads(proc.stdout).get("format", "?")
    if fmt != "qcow2":
        raise UsageError(f"--disk {disk} is a {fmt} image, not qcow2: QEMU keeps snapshots only in qcow2 "
                         f"(give a new path and it is created)")


def interactive_config(options: RunOptions) -> MachineConfig:
    """The machine `invoke run` starts: serial echoed, QMP at build/qmp.sock (or `socket`) with --qmp;
    the disk (``--disk``, else build/snapshots.qcow2 with --qmp) attached as the guest's virtio-blk disk."""
    if options.qmp:
        from .snapshot import snapshot_machine_config   # QMP (asyncio) only when asked for

        cfg = snapshot_machine_config(append=options.append)
        if options.disk:
            cfg.disk = Path(options.disk)
        if options.socket:
            cfg.qmp_socket = Path(options.socket)
    else:
        cfg = MachineConfig(append=options.append, disk=Path(options.disk) if options.disk else None)
    cfg.name = "run"
    if options.kernel:
        cfg.kernel = Path(options.kernel)
    if options.kvm:
        cfg.accel = "kvm"
        cfg.cpu = "max"
    if options.iso:
        from .iso import make_iso
        cfg.iso = make_iso(cmdline=options.append, out=RUN_ISO)
    return cfg


class InputForwarder:
    """Forward what arrives on ``fd`` (stdin) to ``machine.send`` until end of input, the
    machine's end, or ``stop()``.  A thread of its own, reading with ``os.read`` (not
    ``sys.stdin``, whose lock a daemon thread would hold at exit), and woken by a pipe."""

    def __init__(self, machine: Machine, fd: int = 0) -> None:
        self.machine = machine
        self.fd = fd
        self.forwarded = 0
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="stdin-forward", daemon=True)

    def readable(self) -> bool:
        """stdin is open, and is not a terminal whose foreground is some other process group
        (reading it from the background would stop this process with SIGTTIN)."""
        try:
            os.fstat(self.fd)
            return not os.isatty(self.fd) or os.tcgetpgrp(self.fd) == os.getpgrp()
        except OSError:
            return False

    def start(self) -> "InputForwarder":
        if self.readable():
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                data = os.read(self.fd, 4096)
                if not data:
                    return                  # end of input: Ctrl-D, /dev/null, the pipe's end
                self.machine.send(data, timeout=None)
                self.forwarded += len(data)
        except (OSError, ValueError, RevenantError):
            return                          # the machine ended (or stdin went away)

    def stop(self) -> None:
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        if not self._thread.is_alive():
            for fd in (self._stop_r, self._stop_w):
                os.close(fd)


def run_interactive(options: RunOptions) -> ExitResult:
    """Boot, stream the console, wait for the guest to power off (or `timeout` seconds)."""
    from .narrate import Narrator, summary

    cfg = interactive_config(options)
    narrator = Narrator(sys.stdout, raw=options.raw)
    cfg.echo = narrator                  # type: ignore[assignment]
    if cfg.iso is not None:
        print(f"booting {cfg.iso} through GRUB (kernel command line: {options.append!r})", file=sys.stderr)
    with Machine(cfg) as machine:
        if options.qmp:
            _announce_qmp(machine)
        forwarder = InputForwarder(machine).start()
        deadline = time.monotonic() + options.timeout if options.timeout > 0 else None
        try:
            while not machine.wait_until_exit(0.5 if deadline is None else min(0.5, deadline - time.monotonic())):
                if deadline is not None and time.monotonic() >= deadline:
                    machine.kill()
                    narrator.close()
                    raise RevenantError(f"guest still running after {options.timeout:g} s; stopped it "
                                        f"(log: {machine.log_path})")
        except KeyboardInterrupt:
            machine.kill()
            narrator.close()
            print(f"\nserial log: {machine.log_path}", file=sys.stderr)
            raise
        finally:
            forwarder.stop()
        result = machine.wait(timeout=5)
        narrator.close()
        verdict = _report_failure(machine, result)
        if options.kvm and result.kind in ("signal", "qemu-error", "other"):
            verdict += " (this host's KVM cannot run it: run without --kvm, TCG; `invoke doctor` tries KVM)"
        if result.ok or result.kind == "failure":
            for line in summary(machine.console.lines()):
                print(line, file=sys.stderr)
        print(f"serial log: {machine.log_path} (every raw kernel line)", file=sys.stderr)
        print(f"result: {verdict}", file=sys.stderr)
        return result


def _announce_qmp(machine: Machine) -> None:
    """The snapshot hint, once QEMU listens (not for a QEMU that refused to start)."""
    sock = machine.qmp_socket
    deadline = time.monotonic() + 10
    while machine.running and sock is not None and not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if machine.running and sock is not None and sock.exists():
        print(f"QMP socket: {sock} (try `invoke snapshot save NAME`; "
              f"`invoke snapshot list` lists)", file=sys.stderr)


def _report_failure(machine: Machine, result: ExitResult) -> str:
    """Print the symbolized panic report and user faults; the one-line verdict."""
    from .symbols import symbolize_user_faults

    faults = symbolize_user_faults(machine.console.lines())
    if faults:
        print("\n--- user faults, symbolized ---", file=sys.stderr)
        print("\n".join(faults), file=sys.stderr)
    try:
        machine.console.check()
    except GuestFailure as failure:
        if failure.report:
            print("\n--- symbolized panic report ---", file=sys.stderr)
            print(failure.report, file=sys.stderr)
        return failure.summary
    return result.description
