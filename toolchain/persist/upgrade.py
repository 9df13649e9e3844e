"""Kernel build B: the same sources with real differences, to restore build A's checkpoints on.

A checkpoint names no kernel address and no kernel struct (docs/persistence.md, "Upgrade"),
so a kernel whose insides differ must restore it. Build B is a copy of the tree
(``build/upgrade-b/``) with these edits, each one checked to apply:

* ``struct env`` starts with 232 bytes of padding: every field of it at another offset, the
  structure in another kmalloc size class;
* the default tick rate is 250 Hz instead of 100;
* a system call more (35, ``build_b``), so the syscall table and ``SYS_COUNT`` differ;
* one boot line more, ``revenant: build B ...``, so a log says which kernel ran.

The copy is synchronized file by file (only what changed is rewritten), so its Ninja build
stays incremental: the first build compiles everything, later ones what changed.
"""
from __future__ import annotations

import contextlib
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import build as builder
from .. import paths
from ..errors import RevenantError

VARIANT_DIR = paths.BUILD / "upgrade-b"
SOURCES = ("boot", "kernel", "userland")
BANNER = "revenant: build B"


@dataclass(frozen=True)
class Edit:
    path: str
    anchor: str
    replacement: str


EDITS = (
    Edit("kernel/env.h", "struct env {\n",
         "struct env {\n    uint64_t upgrade_pad[29];   // build B: every field at another offset\n"),
    Edit("kernel/cmdline_keys.h", "KEY_ULONG(hz, 1, 1000000, 100,", "KEY_ULONG(hz, 1, 1000000, 250,"),
    Edit("kernel/abi.h", "#define SYS_COUNT       35",
         "#define SYS_build_b     35  // build B only: () -> 2\n#define SYS_COUNT       36"),
    Edit("kernel/syscall.c", "static const syscall_fn syscalls[SYS_COUNT] = {\n",
         "static long sys_build_b(void)\n{\n    return 2;\n}\n\n"
         "static const syscall_fn syscalls[SYS_COUNT] = {\n    CALL(SYS_build_b, sys_build_b),\n"),
    Edit("kernel/main.c", 'kprintf("revenant: ready\\n");',
         'kprintf("revenant: ready\\n");\n'
         f'    kprintf("{BANNER} (upgrade variant: struct env padded, hz 250 by default, '
         'system call 35)\\n");'),
)


class UpgradeError(RevenantError):
    """Build B could not be made (an edit no longer applies: the sources moved on)."""


def _apply(root: Path, edit: Edit, text: str) -> str:
    if text.count(edit.anchor) != 1:
        raise UpgradeError(f"build B: {edit.path} no longer holds {edit.anchor.strip()!r} once")
    return text.replace(edit.anchor, edit.replacement)


def edited_sources(root: Path) -> dict[Path, bytes]:
    """Every file of build B's tree (relative path -> bytes): the sources with EDITS applied."""
    files = {f.relative_to(root): f.read_bytes()
             for name in SOURCES if (root / name).is_dir()
             for f in (root / name).rglob("*") if f.is_file()}
    for e in EDITS:
        rel = Path(e.path)
        files[rel] = _apply(root, e, files[rel].decode()).encode()
    return files


def _sync(files: dict[Path, bytes], dest: Path) -> None:
    """Make dest/ hold exactly these files, rewriting only those whose bytes differ (Ninja
    judges by modification times)."""
    for rel, data in files.items():
        target = dest / rel
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for name in SOURCES:
        for f in (dest / name).rglob("*") if (dest / name).is_dir() else ():
            if f.is_file() and f.relative_to(dest) not in files:
                f.unlink()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".variant.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_b(root: Path = paths.ROOT, directory: Path = VARIANT_DIR) -> Path:
    """Bring build B up to date; its kernel.elf."""
    with _locked(directory):
        _sync(edited_sources(root), directory / "src")
        return builder.build(root=directory / "src", build_dir=directory / "build").elf
