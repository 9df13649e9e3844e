"""The symbolizer on the real build/kernel.elf, checked against binutils.

tests/test_symbols_unit.py uses a tiny program whose call and return address share a
source line, so it cannot tell ``lookup(ret, return_address=True)`` probing ``ret - 1``
(the call) from probing ``ret`` itself.  In the kernel, hundreds of return addresses sit
on another line than their call (or in the next function, after a call to a noreturn
function such as panic): here every one of them must be named like its call site.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from toolchain.paths import ROOT
from toolchain.symbols import Symbolizer

pytestmark = pytest.mark.skipif(shutil.which("objdump") is None or shutil.which("addr2line") is None,
                                reason="binutils not installed (run ci/bootstrap)")

_FUNC = re.compile(r"^([0-9a-f]{16}) <([^>]+)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)")


def call_sites(elf: Path) -> list[tuple[int, int, str, int]]:
    """(call address, return address, function symbol, its start) of every call in the image,
    as objdump disassembles it."""
    dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(elf)], check=True,
                          capture_output=True, text=True).stdout
    sites, pending, func, start = [], None, "", 0
    for line in dump.splitlines():
        head = _FUNC.match(line)
        if head:
            start, func = int(head.group(1), 16), head.group(2)
            continue
        insn = _INSN.match(line)
        if not insn:
            continue
        addr = int(insn.group(1), 16)
        if pending is not None:                 # the instruction after a call: its return address
            sites.append((pending[0], addr, pending[1], pending[2]))
            pending = None
        if insn.group(2).startswith("call"):
            pending = (addr, func, start)
    return sites


def addr2line(elf: Path, addrs: list[int]) -> list[tuple[str, str]]:
    """(file relative to the repo root, line) that binutils gives each address."""
    out = subprocess.run(["addr2line", "-e", str(elf)], input="\n".join(map(hex, addrs)),
                         check=True, capture_output=True, text=True).stdout.splitlines()
    located = []
    for loc in out:
        file, _, line = loc.split(" (discriminator")[0].rpartition(":")
        path = Path(file)
        if path.is_absolute() and path.is_relative_to(ROOT):
            file = str(path.relative_to(ROOT))
        located.append((file, line))
    return located


def test_every_kernel_return_address_is_named_like_its_call_site(kernel_elf):
    sites = call_sites(kernel_elf)
    assert len(sites) > 500, f"only {len(sites)} calls disassembled in {kernel_elf}"
    at_call = addr2line(kernel_elf, [s[0] for s in sites])
    at_return = addr2line(kernel_elf, [s[1] for s in sites])
    symbolizer = Symbolizer(kernel_elf)
    wrong, checked, elsewhere = [], 0, 0
    for (call, ret, func, start), (file, line), after in zip(sites, at_call, at_return):
        if not line.isdigit():                  # no line for the call (hand-written data in .text)
            continue
        checked += 1
        elsewhere += after != (file, line)
        got = symbolizer.lookup(ret, return_address=True)
        if (got.function, got.offset, got.file, got.line) != (func, ret - start, file, int(line)):
            wrong.append(f"return address {ret:#x} (call at {call:#x}): got {got}, "
                         f"want {func}+{ret - start:#x} ({file}:{line})")
    # the test is only as good as the number of return addresses off their call's line
    assert elsewhere > 100, f"only {elsewhere} of {checked} return addresses are on another line"
    assert not wrong, f"{len(wrong)} of {checked} return addresses misnamed:\n" + "\n".join(wrong[:10])
