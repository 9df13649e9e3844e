"""`invoke doctor`: what is installed, what is missing, and the command that installs it."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field


@dataclass
class Check:
    name: str
    found: str | None          # version or path when present, None when missing
    needed_for: str
    install: str               # the exact command that installs it
    required: bool = True


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.found for c in self.checks if c.required)

    def render(self) -> str:
        lines = []
        for c in self.checks:
            mark = "ok     " if c.found else ("MISSING" if c.required else "absent ")
            lines.append(f"{mark} {c.name:<22} {c.found or '-':<40} ({c.needed_for})")
        missing = [c for c in self.checks if not c.found]
        if missing:
            lines.append("")
            lines.append("to install what is missing:")
            for cmd in dict.fromkeys(c.install for c in missing):
                lines.append(f"  {cmd}")
        else:
            lines.append("\neverything is installed.")
        return "\n".join(lines)


APT = "apt-get install -y"


def _version(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return shutil.which(cmd[0])
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0][:40] if text else shutil.which(cmd[0])


def _tool(name: str, package: str, needed_for: str, required: bool = True, args=("--version",)) -> Check:
    return Check(name, _version([name, *args]), needed_for, f"{APT} {package}", required)


def _module(name: str, needed_for: str) -> Check:
    found = None
    if importlib.util.find_spec(name.split(".")[0]) is not None:
        try:
            found = "python module " + name if importlib.util.find_spec(name) else None
        except ModuleNotFoundError:
            found = None
    return Check(name, found, needed_for, "bash ci/bootstrap   # installs into .venv", True)


def examine() -> Report:
    checks = [
        _tool("qemu-system-x86_64", "qemu-system-x86", "boot the kernel"),
        _tool("qemu-img", "qemu-utils", "qcow2 disks for snapshots"),
        _tool("gcc", "gcc", "compile kernel and userland"),
        _tool("as", "binutils", "assemble entry stubs"),
        _tool("ld", "binutils", "link kernel.elf"),
        _tool("grub-mkrescue", "grub-common grub-pc-bin", "invoke iso"),
        _tool("xorriso", "xorriso", "invoke iso", args=("-version",)),
        _tool("mformat", "mtools", "invoke iso", args=("--version",)),
        _tool("gdb", "gdb", "invoke debug (optional: prints the command otherwise)", required=False),
        _tool("cpio", "cpio", "Linux peer initramfs for invoke bench", required=False),
        _module("qemu.qmp", "QMP: stop/cont/snapshots"),
        _module("elftools", "symbolize crashes"),
        _module("invoke", "tasks"),
        _module("pytest", "tests"),
    ]
    kvm = Check("/dev/kvm", "/dev/kvm" if os.path.exists("/dev/kvm") else None,
                "optional --kvm (TCG is the default)", "not needed", required=False)
    checks.append(kvm)
    return Report(checks)


if __name__ == "__main__":
    report = examine()
    print(report.render())
    raise SystemExit(0 if report.ok else 1)
