"""`invoke doctor`: what is installed, what is missing, and the one command that installs it.

Besides tools and Python modules it checks that build/ is writable (every run writes its serial
log there) and, when /dev/kvm exists and the kernel is built, boots the kernel under KVM for a few
seconds to say whether `invoke run --kvm` can work on this host.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import paths


@dataclass
class Check:
    name: str
    found: Optional[str]       # version or path when present, None when missing
    needed_for: str
    install: str               # apt package(s) that provide it, or "" (see `fix`)
    required: bool = True
    fix: str = ""              # what to do when it is not an install (permissions, bootstrap)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.found for c in self.checks if c.required)

    def install_command(self) -> str:
        """One command for everything missing: the apt packages, then ci/bootstrap for Python."""
        missing = [c for c in self.checks if not c.found]
        packages = list(dict.fromkeys(p for c in missing for p in c.install.split()))
        parts = []
        if packages:
            sudo = "" if os.geteuid() == 0 else "sudo "
            parts.append(f"{sudo}apt-get install -y {' '.join(packages)}")
        if any(c.fix == BOOTSTRAP for c in missing):
            parts.append(BOOTSTRAP)
        return " && ".join(parts)

    def render(self) -> str:
        lines = []
        width = max(len(c.name) for c in self.checks)
        for c in self.checks:
            mark = "ok     " if c.found else ("MISSING" if c.required else "absent ")
            lines.append(f"{mark} {c.name:<{width}}  {c.found or '-'}  ({c.needed_for})")
        missing = [c for c in self.checks if not c.found]
        command = self.install_command()
        if command:
            lines.append("")
            lines.append("to install everything missing:")
            lines.append(f"  {command}")
        fixes = [c for c in missing if c.fix and c.fix != BOOTSTRAP]
        if fixes:
            lines.append("")
            lines += [f"{c.name}: {c.fix}" for c in fixes]
        if not missing:
            lines.append("\neverything is installed.")
        return "\n".join(lines)


APT = "apt-get install -y"
BOOTSTRAP = "bash ci/bootstrap"


def _version(cmd: list[str]) -> Optional[str]:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return shutil.which(cmd[0])
    text = [line.strip() for line in (out.stdout or out.stderr).splitlines() if line.strip()]
    return text[0] if text else shutil.which(cmd[0])


def _tool(name: str, package: str, needed_for: str, required: bool = True, args=("--version",)) -> Check:
    return Check(name, _version([name, *args]), needed_for, package, required)


def _module(name: str, dist: str, needed_for: str) -> Check:
    found = None
    try:
        if importlib.util.find_spec(name.split(".")[0]) is not None and importlib.util.find_spec(name):
            try:
                found = f"{dist} {importlib.metadata.version(dist)}"
            except importlib.metadata.PackageNotFoundError:
                found = f"python module {name}"
    except ModuleNotFoundError:
        found = None
    return Check(name, found, needed_for, "", True, fix=BOOTSTRAP)


def build_writable(build: Path = paths.BUILD) -> Check:
    """build/ (or, before the first build, the tree that will hold it) must be writable."""
    where = build if build.exists() else build.parent
    found = None
    if os.access(where, os.W_OK | os.X_OK):
        try:                                # access() says yes to root on a read-only mount
            probe = where / f".doctor-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            found = f"{build} writable" if build.exists() else f"{where} writable (build/ not made yet)"
        except OSError:
            found = None
    owner = ""
    try:
        import pwd
        owner = pwd.getpwuid(where.stat().st_uid).pw_name
    except (KeyError, OSError, ImportError):
        pass
    fix = (f"{where} is not writable for this user (owner: {owner or '?'}): "
           f"sudo chown -R \"$(id -un)\" {where}, or run as its owner")
    return Check("build/ writable", found, "serial logs, the build, snapshots", "", True, fix=fix)


def kvm_check(timeout: float = 15.0) -> Check:
    """Whether KVM can run this kernel: a short boot to poweroff under -accel kvm."""
    name, needed = "KVM", "optional `invoke run --kvm` (TCG is the default)"
    if not os.path.exists("/dev/kvm"):
        return Check(name, None, needed, "", required=False, fix="no /dev/kvm on this host: use TCG (the default)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Check(name, None, needed, "", required=False,
                     fix="/dev/kvm is not readable and writable for this user (group kvm)")
    if not shutil.which("qemu-system-x86_64"):
        return Check(name, "/dev/kvm present (boot not tried: no qemu-system-x86_64)", needed, "",
                     required=False)
    if not paths.KERNEL_ELF.exists():
        return Check(name, "/dev/kvm present (boot not tried: no build/kernel.elf; run `invoke build`)",
                     needed, "", required=False)
    from .errors import RevenantError
    from .machine import Machine, MachineConfig

    t0 = time.monotonic()
    try:
        with Machine(MachineConfig(accel="kvm", cpu="max", append="", name="doctor-kvm")) as m:
            m.wait_poweroff(timeout=timeout, idle_timeout=timeout)
        return Check(name, f"works: boot to poweroff under KVM in {time.monotonic() - t0:.1f} s", needed, "",
                     required=False)
    except RevenantError as err:
        return Check(name, None, needed, "", required=False,
                     fix=f"/dev/kvm is present but KVM cannot run the kernel here: {err.summary}")


def examine(try_kvm: bool = True) -> Report:
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
        _module("qemu.qmp", "qemu.qmp", "QMP: stop/cont/snapshots"),
        _module("elftools", "pyelftools", "symbolize crashes"),
        _module("invoke", "invoke", "tasks"),
        _module("pytest", "pytest", "tests"),
        _module("xdist", "pytest-xdist", "tests in parallel (invoke test -n)"),
        _module("ninja", "ninja", "the build (build/build.ninja)"),
        build_writable(),
    ]
    if try_kvm:
        checks.append(kvm_check())
    return Report(checks)


if __name__ == "__main__":
    report = examine()
    print(report.render())
    raise SystemExit(0 if report.ok else 1)
