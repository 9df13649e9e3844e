"""Build driver for the kernel: compile boot/*.S and kernel/**/*.c, link build/kernel.elf.

No Makefile: dependencies come from gcc's own ``-MMD -MP`` files, so a header
change recompiles exactly the objects that include it, and a rebuild with
nothing changed compiles and links nothing.  Objects also depend on the
compile flags (a stamp file per object records the command line), and the
link depends on the object list, the linker script and the link flags.

Usage: ``build(verbose=False) -> BuildResult``, or ``python -m toolchain.build [-v]``.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from toolchain import paths
from toolchain.errors import BuildError, RevenantError, ToolMissing

ROOT = paths.ROOT
OBJ_DIR = (paths.BUILD / "obj").relative_to(ROOT)   # relative: commands run in ROOT
LINKER_SCRIPT = Path("boot/linker.ld")

CC = "gcc"
LD = "ld"

# Why each flag: freestanding kernel code (no libc, no red zone because
# interrupts push onto the current stack, no SSE state to save on entry),
# linked in the top 2 GiB (mcmodel=kernel), frame pointers for the panic
# backtrace, debug info for the toolkit's symbolizer.
KERNEL_CFLAGS = [
    "-std=gnu11", "-ffreestanding",
    "-mno-red-zone", "-mcmodel=kernel", "-fno-omit-frame-pointer",
    "-mno-sse", "-mno-sse2", "-mno-mmx", "-mno-80387",
    "-fno-pic", "-fno-pie", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
    "-fno-optimize-sibling-calls",  # keep every caller in the panic backtrace
    "-fcf-protection=none", "-nostdlib",
    "-O2", "-g", "-Wall", "-Wextra", "-Werror",
    "-Ikernel",
]
ASFLAGS = KERNEL_CFLAGS + ["-D__ASSEMBLY__"]
LDFLAGS = ["-nostdlib", "-z", "max-page-size=0x1000", "-z", "noexecstack", "--no-warn-rwx-segments"]

WORKERS = 2


@dataclass
class BuildResult:
    elf: Path
    compiled: List[str] = field(default_factory=list)
    linked: bool = False
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return not self.compiled and not self.linked


@dataclass
class Unit:
    """One translation unit: source (relative to ROOT) -> object.

    The object and depfile paths are read back from the command's ``-o`` and
    ``-MF`` (toolchain/userbuild.py builds its own commands with this class).
    """

    source: Path
    command: List[str]

    def _arg(self, flag: str) -> Optional[Path]:
        cmd = self.command
        return Path(cmd[cmd.index(flag) + 1]) if flag in cmd[:-1] else None

    @property
    def obj(self) -> Path:
        return self._arg("-o") or object_path(self.source)

    @property
    def depfile(self) -> Path:
        return self._arg("-MF") or self.obj.with_name(self.obj.name[:-2] + ".d")

    @property
    def stamp(self) -> Path:
        return self.obj.with_name(self.obj.name[:-2] + ".cmd")


def object_path(source: Path) -> Path:
    """build/obj/<source>.o, keeping the source suffix: foo.c and foo.S may coexist."""
    return OBJ_DIR / source.with_name(source.name + ".o")


def _require_tools(tools: Iterable[str]) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} not found: run ci/bootstrap (or apt-get install gcc binutils)")


def _sources() -> List[Path]:
    """Boot assembly first (the image starts with the entry code), then the kernel, sorted."""
    boot = sorted(p.relative_to(ROOT) for p in (ROOT / "boot").glob("*.S"))
    kernel = sorted(p.relative_to(ROOT) for p in (ROOT / "kernel").rglob("*.[cS]"))
    return boot + kernel


def _units() -> List[Unit]:
    units = []
    for src in _sources():
        flags = ASFLAGS if src.suffix == ".S" else KERNEL_CFLAGS
        obj = object_path(src)
        depfile = obj.with_name(obj.name[:-2] + ".d")
        cmd = [CC, *flags, "-MMD", "-MP", "-MF", str(depfile), "-c", str(src), "-o", str(obj)]
        units.append(Unit(src, cmd))
    return units


def _parse_depfile(text: str) -> List[Path]:
    """Prerequisites of the first rule in a gcc .d file (the -MP phony rules add nothing)."""
    text = text.replace("\\\n", " ")
    first_rule = text.split("\n", 1)[0]
    _, _, deps = first_rule.partition(":")
    # Paths with spaces are escaped as '\ '; none are expected, but keep them intact.
    words = deps.replace("\\ ", "\0").split()
    return [Path(w.replace("\0", " ")) for w in words]


def _needs_compile(unit: Unit) -> bool:
    """Stale if the object, its depfile or its flag stamp is missing or older than any input."""
    try:
        obj_mtime = (ROOT / unit.obj).stat().st_mtime_ns
        depfile = (ROOT / unit.depfile).read_text()
        stamp = (ROOT / unit.stamp).read_text()
    except FileNotFoundError:
        return True
    if stamp != _command_text(unit.command):
        return True
    for dep in _parse_depfile(depfile) or [unit.source]:
        try:
            if (ROOT / dep).stat().st_mtime_ns > obj_mtime:
                return True
        except FileNotFoundError:
            return True     # a header went away: recompile to find out
    return False


def _command_text(cmd: Sequence[str]) -> str:
    return "\n".join(cmd) + "\n"


def _run(cmd: Sequence[str], verbose: bool) -> subprocess.CompletedProcess:
    if verbose:
        print(" ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ToolMissing(f"{cmd[0]} not found: run ci/bootstrap") from exc


def _fail(message: str, output: str) -> BuildError:
    err = BuildError(message)
    err.output = output  # the compiler's full diagnostics, for tasks that want to show them
    return err


def _compile(unit: Unit, verbose: bool) -> str:
    """Compile one unit; returns its output (warnings) or raises BuildError."""
    (ROOT / unit.obj).parent.mkdir(parents=True, exist_ok=True)
    proc = _run(unit.command, verbose)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        (ROOT / unit.stamp).unlink(missing_ok=True)
        first = next((line for line in output.splitlines() if "error" in line), "")
        raise _fail(f"compiling {unit.source} failed: {first.strip() or 'see output'}", output)
    (ROOT / unit.stamp).write_text(_command_text(unit.command))
    return output


def _link_command(objs: Sequence[Path], elf: Path) -> List[str]:
    return [LD, *LDFLAGS, "-T", str(LINKER_SCRIPT), "-o", str(elf.relative_to(ROOT)),
            *(str(o) for o in objs)]


def _needs_link(cmd: Sequence[str], objs: Sequence[Path], elf: Path, stamp: Path) -> bool:
    try:
        elf_mtime = elf.stat().st_mtime_ns
        if stamp.read_text() != _command_text(cmd):
            return True     # objects added/removed or flags changed
    except FileNotFoundError:
        return True
    inputs = [ROOT / o for o in objs] + [ROOT / LINKER_SCRIPT]
    return any(p.stat().st_mtime_ns > elf_mtime for p in inputs)


def build(verbose: bool = False) -> BuildResult:
    """Bring build/kernel.elf up to date. Raises BuildError or ToolMissing.

    Concurrent callers (parallel test workers) are serialized by a lock file,
    so the second one finds everything up to date instead of racing.
    """
    start = time.monotonic()
    _require_tools([CC, LD, "as"])
    paths.BUILD.mkdir(parents=True, exist_ok=True)
    with open(paths.BUILD / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = _build_locked(verbose)
    result.seconds = time.monotonic() - start
    return result


def _build_locked(verbose: bool) -> BuildResult:
    elf = paths.KERNEL_ELF
    result = BuildResult(elf=elf)

    units = _units()
    if not units:
        raise BuildError(f"no kernel sources found under {ROOT / 'kernel'}")
    stale = [u for u in units if _needs_compile(u)]
    if stale:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [(u, pool.submit(_compile, u, verbose)) for u in stale]
            errors = []
            for unit, fut in futures:
                try:
                    warnings = fut.result()
                    result.compiled.append(str(unit.source))
                    if warnings and verbose:
                        print(warnings, end="", file=sys.stderr)
                except BuildError as err:
                    errors.append(err)
            if errors:
                first = errors[0]
                output = "".join(getattr(e, "output", "") for e in errors)
                raise _fail(first.message if len(errors) == 1
                            else f"{first.message} (and {len(errors) - 1} more)", output)

    objs = [u.obj for u in units]
    link_cmd = _link_command(objs, elf)
    link_stamp = paths.BUILD / "kernel.elf.cmd"
    if _needs_link(link_cmd, objs, elf, link_stamp):
        proc = _run(link_cmd, verbose)
        if proc.returncode != 0:
            link_stamp.unlink(missing_ok=True)
            output = proc.stdout + proc.stderr
            first = next((line for line in output.splitlines() if line.strip()), "")
            raise _fail(f"linking {elf.name} failed: {first.strip()}", output)
        link_stamp.write_text(_command_text(link_cmd))
        result.linked = True

    return result


def describe(result: BuildResult) -> str:
    """One line for humans: 'up to date', 'compiled 3 file(s), linked', 'relinked'."""
    if result.up_to_date:
        what = "up to date"
    elif result.compiled:
        what = f"compiled {len(result.compiled)} file(s){', linked' if result.linked else ''}"
    else:
        what = "relinked"
    return f"{what} ({result.seconds:.2f}s)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.build", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every command")
    args = parser.parse_args(argv)
    try:
        result = build(verbose=args.verbose)
    except RevenantError as err:
        print(f"error: {err}", file=sys.stderr)
        output = getattr(err, "output", "")
        if output:
            print(output, end="" if output.endswith("\n") else "\n", file=sys.stderr)
        return 1
    print(f"{os.path.relpath(result.elf)}: {describe(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
