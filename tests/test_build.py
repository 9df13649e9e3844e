"""The build (toolchain/build.py, a generated Ninja file): nothing done twice, exactly what changed
rebuilt, one clear line for a compile error.

Every test builds a private copy of the tree (sources and build directory, mtimes kept), so
touching a header here never rebuilds the kernel that other tests (or another suite in the same
work tree) are booting.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from toolchain import build
from toolchain.errors import BuildError
from toolchain.paths import ROOT

SOURCES = ["boot", "kernel", "userland"]
PRODUCTS = ["obj", "user", "gen", "kernel.elf", "build.ninja", ".ninja_log", ".ninja_deps"]


@pytest.fixture
def tree(kernel_elf, tmp_path) -> Path:
    """A copy of the tree whose build is up to date, like the real one after `invoke build`."""
    root = tmp_path / "tree"
    with build.locked():                    # no build of the real tree half-way through the copy
        for name in SOURCES:
            shutil.copytree(ROOT / name, root / name)
        for name in PRODUCTS:
            src = kernel_elf.parent / name
            if src.is_dir():
                shutil.copytree(src, root / "build" / name)
            else:
                shutil.copy2(src, root / "build" / name)
    return root


def _touch(path: Path) -> None:
    time.sleep(0.01)               # newer than every object, which were all built before
    os.utime(path)


def _build(root: Path) -> build.BuildResult:
    return build.build(root=root)


def test_a_no_op_rebuild_compiles_and_links_nothing(tree):
    elf = tree / "build" / "kernel.elf"
    before = elf.stat().st_mtime_ns
    result = _build(tree)
    assert result.up_to_date, f"compiled {result.compiled}, linked {result.linked}, user {result.user}"
    assert elf.stat().st_mtime_ns == before


def test_touching_a_header_recompiles_exactly_its_includers_then_nothing(tree):
    header = tree / "kernel" / "bitmap.h"
    includers = {str(p.relative_to(tree)) for p in (tree / "kernel").rglob("*.c")
                 if '"bitmap.h"' in p.read_text()}
    assert includers, "bitmap.h has no includers: pick another header"
    _touch(header)
    result = _build(tree)
    compiled = {c for c in result.compiled if c.startswith("kernel/")}
    assert compiled == includers, f"compiled {sorted(compiled)}, includers {sorted(includers)}"
    assert result.linked and not result.user
    assert _build(tree).up_to_date


def test_a_changed_program_is_relinked_its_corrupt_variants_regenerated_and_the_kernel_relinked(tree):
    hello = tree / "userland" / "progs" / "hello.c"
    hello.write_text(hello.read_text() + '\nconst char build_test_marker[] = "changed";\n')
    result = _build(tree)
    assert "userland/progs/hello.c" in result.user and "link hello" in result.user, result
    assert any(step.startswith("corrupt corrupt_") for step in result.user), result
    assert result.compiled == ["build/gen/initrd.S"] and result.linked, result
    assert b"build_test_marker" in (tree / "build" / "kernel.elf").read_bytes()
    assert _build(tree).up_to_date


def test_a_changed_command_line_rebuilds_what_uses_it(tree, monkeypatch):
    monkeypatch.setattr(build, "LDFLAGS", [*build.LDFLAGS, "--build-id=none"])
    result = _build(tree)
    assert result.linked and not result.compiled and not result.user, result
    assert _build(tree).up_to_date


def test_a_compile_error_is_one_line_naming_the_file_with_the_compiler_output_kept(tree):
    source = tree / "kernel" / "glob.c"
    good = source.read_text()
    source.write_text(good + "\nint broken( { return 0; }\n")
    with pytest.raises(BuildError) as err:
        _build(tree)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("compiling kernel/glob.c failed: kernel/glob.c:"), message
    assert "error:" in message
    assert "int broken( {" in err.value.output        # gcc's caret excerpt, for the task to print
    source.write_text(good)
    result = _build(tree)
    assert result.compiled == ["kernel/glob.c"] and result.linked


def test_a_removed_header_is_not_an_error_once_nothing_includes_it(tree):
    (tree / "kernel" / "zz.h").write_text("#define ZZ 1\n")
    zz = tree / "kernel" / "zz.c"
    zz.write_text('#include "zz.h"\nint zz_value = ZZ;\n')
    assert _build(tree).compiled == ["kernel/zz.c"]
    zz.write_text("int zz_value = 1;\n")
    (tree / "kernel" / "zz.h").unlink()
    assert _build(tree).compiled == ["kernel/zz.c"]


def test_compile_commands_json_has_every_kernel_source_with_the_build_flags(tree):
    _build(tree)
    entries = json.loads((tree / "build" / "compile_commands.json").read_text())
    kernel = {e["file"]: e for e in entries if e["output"].startswith("build/obj/kernel/")}
    sources = {str(p.relative_to(tree)) for p in (tree / "kernel").rglob("*.c")}
    assert set(kernel) >= sources
    entry = kernel["kernel/main.c"]
    assert entry["directory"] == str(tree)
    assert entry["arguments"][0] == build.CC
    assert all(flag in entry["arguments"] for flag in build.KERNEL_CFLAGS)
