"""The same kernel.elf boots through real GRUB from an ISO (multiboot2), not only through PVH."""
from __future__ import annotations

import shutil

import pytest

from toolchain.iso import make_iso

pytestmark = pytest.mark.skipif(shutil.which("grub-mkrescue") is None,
                                reason="grub-mkrescue not installed (run ci/bootstrap)")


def test_grub_boots_the_kernel_through_multiboot2_and_passes_the_command_line(boot, kernel_elf, tmp_path):
    iso = make_iso(cmdline="test=printf*", out=tmp_path / "revenant.iso")
    machine = boot(iso=iso)
    machine.expect("boot: protocol multiboot2", timeout=60)
    result = machine.wait_poweroff(timeout=60)
    assert result.status == 33
    text = machine.console.text()
    assert 'Revenant kernel booting (cmdline: "test=printf*")' in text
    assert "ok 1 printf" in text
