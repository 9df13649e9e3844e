"""The build driver: incremental from gcc's own dependency files, nothing done twice."""
from __future__ import annotations

import os
import time

from toolchain import build
from toolchain.paths import ROOT


def _touch(path):
    time.sleep(0.01)               # newer than every object, which were all built before
    os.utime(path)


def test_a_no_op_rebuild_compiles_and_links_nothing(kernel_elf):
    before = kernel_elf.stat().st_mtime_ns
    result = build.build()
    assert result.up_to_date, f"compiled {result.compiled}, linked {result.linked}, user {result.user}"
    assert kernel_elf.stat().st_mtime_ns == before


def test_touching_a_header_recompiles_exactly_its_includers_then_nothing(kernel_elf):
    header = ROOT / "kernel" / "bitmap.h"
    includers = {str(p.relative_to(ROOT)) for p in (ROOT / "kernel").rglob("*.c")
                 if '"bitmap.h"' in p.read_text()}
    assert includers, "bitmap.h has no includers: pick another header"
    _touch(header)
    result = build.build()
    compiled = {c for c in result.compiled if c.startswith("kernel/")}
    assert compiled == includers, f"compiled {sorted(compiled)}, includers {sorted(includers)}"
    assert result.linked
    assert build.build().up_to_date
