"""One broken image per loader rule: docs/abi.md's table against toolchain/corrupt_elf.py.

tests/test_userland.py boots every variant and expects its reason; this checks that the
variants cover every documented rule (and no undocumented reason), without booting.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolchain import corrupt_elf
from toolchain.paths import ROOT
from toolchain.userbuild import CORRUPT_BASE

ABI = ROOT / "docs" / "abi.md"


def documented_reasons() -> list[str]:
    """The reason column of the loader table in docs/abi.md, in order."""
    text = ABI.read_text()
    table = text[text.index("| rule | reason |"):].split("\n\n", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\|[^|]*\| `([^`]+)` \|$", table, re.M)]


def as_pattern(reason: str) -> re.Pattern:
    """`segment <i> below USER_BASE` matches `segment 0 below USER_BASE`."""
    return re.compile(re.sub(r"<[ij]>", r"\\d+", re.escape(reason)) + "$")


@pytest.fixture(scope="module")
def reasons(kernel_elf) -> dict[str, str]:
    return corrupt_elf.expected_reasons(Path(kernel_elf).parent / "user" / f"{CORRUPT_BASE}.elf")


def test_the_table_is_read():
    rows = documented_reasons()
    assert len(rows) > 20 and "bad magic" in rows and "entry not in an executable segment" in rows


def test_every_documented_rule_has_exactly_one_broken_image(reasons):
    missing, doubled = [], []
    for doc in documented_reasons():
        hits = sorted(name for name, reason in reasons.items() if as_pattern(doc).match(reason))
        if not hits:
            missing.append(doc)
        elif len(hits) > 1:
            doubled.append(f"{doc}: {hits}")
    assert not missing, f"rules of {ABI.name} without a corrupt_<field> variant: {missing}"
    assert not doubled, f"rules with several variants: {doubled}"


def test_every_broken_image_has_a_documented_reason(reasons):
    patterns = [as_pattern(doc) for doc in documented_reasons()]
    stray = {name: r for name, r in reasons.items() if not any(p.match(r) for p in patterns)}
    assert not stray, f"variants whose reason {ABI.name} does not list: {stray}"
