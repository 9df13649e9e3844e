"""`invoke iso`: a GRUB rescue ISO that boots build/kernel.elf through multiboot2."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import BuildError, KernelImageError, ToolMissing
from .paths import BUILD, KERNEL_ELF, ROOT

ISO = BUILD / "revenant.iso"
GRUB_CFG = ROOT / "boot" / "grub.cfg"


def _grub_config(cmdline: str) -> str:
    text = GRUB_CFG.read_text()
    if cmdline:
        text = text.replace("multiboot2 /boot/kernel.elf", f"multiboot2 /boot/kernel.elf {cmdline}")
    return text


def make_iso(cmdline: str = "", out: Path = ISO) -> Path:
    """Build the ISO; `cmdline` is baked into grub.cfg (GRUB has no -append)."""
    for tool, package in (("grub-mkrescue", "grub-common grub-pc-bin"), ("xorriso", "xorriso"),
                          ("mformat", "mtools")):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: run `bash ci/bootstrap` or `apt-get install -y {package}`")
    if not KERNEL_ELF.exists():
        raise KernelImageError(f"{KERNEL_ELF} does not exist: run `invoke build` first")
    with tempfile.TemporaryDirectory(prefix="revenant-iso-") as tmp:
        root = Path(tmp)
        (root / "boot" / "grub").mkdir(parents=True)
        shutil.copy(KERNEL_ELF, root / "boot" / "kernel.elf")
        (root / "boot" / "grub" / "grub.cfg").write_text(_grub_config(cmdline))
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["grub-mkrescue", "-o", str(out), str(root)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise BuildError(f"grub-mkrescue failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out
