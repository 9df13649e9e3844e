"""`invoke debug`: QEMU paused with its gdbstub, gdb attached with the kernel's symbols."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

from . import paths
from .machine import Machine, MachineConfig


def gdb_command(port: int) -> list[str]:
    """The gdb invocation that attaches to the paused machine and stops at kmain."""
    return ["gdb", "-q", str(paths.KERNEL_ELF),
            "-ex", f"target remote localhost:{port}",
            "-ex", "hbreak kmain",
            "-ex", "continue"]


def debug(append: str = "", port: int = 1234) -> None:
    cfg = MachineConfig(append=append, paused=True, gdb=f"tcp::{port}", echo=True, name="debug")
    with Machine(cfg) as machine:
        command = gdb_command(port)
        print(f"QEMU is paused with its gdbstub on port {port}; serial log: {machine.log_path}",
              file=sys.stderr)
        if not shutil.which("gdb"):
            print("gdb is not installed (apt-get install -y gdb). Attach with:", file=sys.stderr)
            print("  " + shlex.join(command), file=sys.stderr)
            print("Press Ctrl-C to stop the machine.", file=sys.stderr)
            try:
                while machine.running:
                    machine.wait(timeout=3600)
            except KeyboardInterrupt:
                pass
            return
        try:
            subprocess.run(command)
        except KeyboardInterrupt:
            pass
