"""`invoke run`: boot with the serial console on the terminal and exit when the guest does."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

from .console import ExitResult
from .errors import GuestFailure, RevenantError
from .machine import Machine, MachineConfig
from .snapshot import snapshot_machine_config


def interactive_config(append: str = "", qmp: bool = False, disk: Optional[str] = None,
                       kvm: bool = False, iso: bool = False,
                       kernel: Optional[str] = None, socket: Optional[str] = None) -> MachineConfig:
    """The machine `invoke run` starts: serial echoed, QMP at build/qmp.sock (or `socket`) with --qmp."""
    if qmp:
        cfg = snapshot_machine_config(append=append)
        if disk:
            cfg.disk = Path(disk)
        if socket:
            cfg.qmp_socket = Path(socket)
    else:
        cfg = MachineConfig(append=append, disk=Path(disk) if disk else None)
    cfg.echo = True
    cfg.name = "run"
    if kernel:
        cfg.kernel = Path(kernel)
    if kvm:
        cfg.accel = "kvm"
        cfg.cpu = "max"
    if iso:
        from .iso import make_iso
        cfg.iso = make_iso(cmdline=append)
    return cfg


def run_interactive(append: str = "", qmp: bool = False, disk: Optional[str] = None,
                    timeout: float = 0.0, kvm: bool = False, iso: bool = False,
                    kernel: Optional[str] = None, socket: Optional[str] = None) -> ExitResult:
    """Boot, stream the console, wait for the guest to power off (or `timeout` seconds)."""
    cfg = interactive_config(append, qmp, disk, kvm, iso, kernel, socket)
    with Machine(cfg) as machine:
        if qmp:
            print(f"QMP socket: {machine.qmp_socket} (try `invoke snapshot save NAME`)",
                  file=sys.stderr)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        try:
            while machine.running:
                if deadline is not None and time.monotonic() > deadline:
                    machine.kill()
                    raise RevenantError(f"guest still running after {timeout:g} s; stopped it "
                                        f"(log: {machine.log_path})")
                time.sleep(0.05)
        except KeyboardInterrupt:
            machine.kill()
            print(f"\nserial log: {machine.log_path}", file=sys.stderr)
            raise
        result = machine.wait(timeout=5)
        _report_failure(machine)
        print(f"serial log: {machine.log_path}", file=sys.stderr)
        return result


def _report_failure(machine: Machine) -> None:
    """Print the symbolized panic report and user faults (the raw ones already scrolled by)."""
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
