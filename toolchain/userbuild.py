"""Build the user programs and the initrd that embeds them in the kernel.

Called by ``toolchain.build.build()`` before the kernel is compiled:

1. every ``userland/lib/*.{c,S}``, the library shared with the kernel
   (``kernel/lib/*.c``: string functions and the printf formatter, compiled
   again here into ``build/obj/user/``), and each program --
   ``userland/progs/<name>.c`` or a directory ``userland/progs/<name>/`` of
   sources -- is compiled with USER_CFLAGS and linked with
   ``userland/user.ld`` into ``build/user/<name>.elf`` (static ELF64 at
   USER_BASE);
2. ``toolchain.corrupt_elf`` writes the deliberately broken variants of one
   small program, ``build/user/corrupt_<field>.elf``, for the ELF loader tests;
3. ``build/gen/initrd.S`` is generated: one ``.incbin`` per ELF plus the
   table that ``kernel/initrd.c`` serves (``initrd_find`` and friends).

Everything is incremental in the same way as the kernel: objects through the
kernel build's depfile/stamp machinery, links through a command stamp, and the
generated files are rewritten only when their content changes. initrd.S
carries a hash of every ELF it embeds, so a changed program changes initrd.S
and the kernel relinks; an unchanged build touches nothing.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence

from toolchain import paths
from toolchain.errors import BuildError

ROOT = paths.ROOT
USER_DIR = Path("userland")
LIB_DIR = USER_DIR / "lib"
SHARED_LIB_DIR = Path("kernel/lib")            # pure code the kernel links too
PROGS_DIR = USER_DIR / "progs"
USER_LD = USER_DIR / "user.ld"
OUT_DIR = paths.BUILD / "user"                 # build/user/<name>.elf
GEN_DIR = paths.BUILD / "gen"
INITRD_S = GEN_DIR / "initrd.S"
CORRUPT_BASE = "hello"                         # the program the corrupt variants start from

# Why each flag:
# * freestanding, static, no PIC: the loader maps segments at their link
#   addresses and does no relocation;
# * no SSE/x87: the kernel saves only the general registers of a user thread
#   (struct trapframe), so FPU/SSE state would leak between environments;
# * -mno-red-zone: the activation restore sequence (kernel/actrestore.S)
#   writes the resumed thread's rip and rflags just below its rsp and leaves
#   with `popfq; ret`; without a red zone nothing lives there. It costs a few
#   stack adjustments in leaf functions, nothing more;
# * frame pointers and -g: kill reports symbolize against build/user/<name>.elf.
USER_CFLAGS = [
    "-std=gnu11", "-ffreestanding", "-nostdlib", "-static",
    "-fno-pic", "-fno-pie", "-mno-red-zone",
    "-mno-sse", "-mno-sse2", "-mno-mmx", "-mno-80387",
    "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
    "-fno-omit-frame-pointer", "-fno-builtin",
    "-O2", "-g", "-Wall", "-Wextra", "-Werror",
    f"-I{USER_DIR / 'include'}",
]
USER_ASFLAGS = USER_CFLAGS + ["-D__ASSEMBLY__"]
USER_LDFLAGS = ["-nostdlib", "-static", "-z", "max-page-size=0x1000", "-z", "noexecstack",
                "--no-warn-rwx-segments", "-T", str(USER_LD)]


def _kbuild():
    # Imported late: toolchain.build imports this module.
    from toolchain import build
    return build


def _unit(src: Path):
    kb = _kbuild()
    flags = USER_ASFLAGS if src.suffix == ".S" else USER_CFLAGS
    # A shared source has a kernel object already: the user one goes apart.
    obj = kb.object_path(src if src.parts[0] == USER_DIR.name else Path("user") / src)
    depfile = obj.with_name(obj.name[:-2] + ".d")
    cmd = [kb.CC, *flags, "-MMD", "-MP", "-MF", str(depfile), "-c", str(src), "-o", str(obj)]
    return kb.Unit(src, cmd)


def _rel_sources(directory: Path) -> List[Path]:
    return sorted(p.relative_to(ROOT) for p in (ROOT / directory).glob("*.[cS]"))


def programs() -> Dict[str, List[Path]]:
    """Program name -> its sources (relative to ROOT)."""
    progs: Dict[str, List[Path]] = {}
    for entry in sorted((ROOT / PROGS_DIR).iterdir()) if (ROOT / PROGS_DIR).is_dir() else []:
        if entry.is_file() and entry.suffix == ".c":
            progs[entry.stem] = [entry.relative_to(ROOT)]
        elif entry.is_dir():
            srcs = _rel_sources(entry.relative_to(ROOT))
            if srcs:
                progs[entry.name] = srcs
    return progs


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def _compile_all(units, verbose: bool) -> List[str]:
    """Compile the stale units in parallel; all errors reported together."""
    kb = _kbuild()
    stale = [u for u in units if kb._needs_compile(u)]
    if not stale:
        return []
    with ThreadPoolExecutor(max_workers=kb.WORKERS) as pool:
        futures = [(u, pool.submit(kb._compile, u, verbose)) for u in stale]
        errors = []
        for unit, fut in futures:
            try:
                fut.result()
            except BuildError as err:
                errors.append(err)
    if errors:
        output = "".join(getattr(e, "output", "") for e in errors)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise kb._fail(f"{errors[0].message}{more}", output)
    return [str(u.source) for u in stale]


def _link(name: str, objs: Sequence[Path], verbose: bool) -> bool:
    """Link build/user/<name>.elf if stale; True if it was linked."""
    kb = _kbuild()
    elf = OUT_DIR / f"{name}.elf"
    cmd = [kb.LD, *USER_LDFLAGS, "-o", str(elf.relative_to(ROOT)), *(str(o) for o in objs)]
    stamp = OUT_DIR / f"{name}.elf.cmd"
    stale = True
    try:
        if stamp.read_text() == kb._command_text(cmd):
            mtime = elf.stat().st_mtime_ns
            stale = any((ROOT / p).stat().st_mtime_ns > mtime for p in [*objs, USER_LD])
    except FileNotFoundError:
        pass
    if not stale:
        return False
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    proc = kb._run(cmd, verbose)
    if proc.returncode != 0:
        stamp.unlink(missing_ok=True)
        output = proc.stdout + proc.stderr
        raise kb._fail(f"linking user program {name} failed: {kb.first_diagnostic(output)}", output)
    stamp.write_text(kb._command_text(cmd))
    return True


def initrd_source(elves: Sequence[Path]) -> str:
    """The assembly that embeds ``elves`` and the ``struct user_image`` table (kernel/initrd.h)."""
    lines = [
        "// Generated by toolchain/userbuild.py: the user programs the kernel can spawn.",
        "// struct user_image { const char *name; const uint8_t *data; uint64_t len; }",
        '    .section .rodata.initrd, "a"',
    ]
    for i, elf in enumerate(elves):
        digest = hashlib.sha256(elf.read_bytes()).hexdigest()[:16]
        lines += [
            f"// {elf.stem}: sha256 {digest}",
            "    .balign 16",
            f"initrd_data_{i}:",
            f'    .incbin "{elf.relative_to(ROOT)}"',
            f"initrd_data_{i}_end:",
            f'initrd_name_{i}: .asciz "{elf.stem}"',
        ]
    lines += ["    .balign 8", "    .globl initrd_images", "initrd_images:"]
    for i in range(len(elves)):
        lines.append(f"    .quad initrd_name_{i}, initrd_data_{i}, initrd_data_{i}_end - initrd_data_{i}")
    lines += ["    .globl initrd_nimages", "initrd_nimages:", f"    .quad {len(elves)}",
              '    .section .note.GNU-stack, "", @progbits', ""]
    return "\n".join(lines)


def build_user(verbose: bool = False) -> List[str]:
    """Bring build/user/*.elf and build/gen/initrd.S up to date; returns what was done."""
    kb = _kbuild()
    progs = programs()
    if not progs:
        raise BuildError(f"no user programs under {ROOT / PROGS_DIR}")
    lib = [_unit(s) for s in _rel_sources(LIB_DIR) + _rel_sources(SHARED_LIB_DIR)]
    crt0 = [u for u in lib if u.source.stem == "crt0"]
    if not crt0:
        raise BuildError(f"no {LIB_DIR}/crt0.S")
    lib = crt0 + [u for u in lib if u.source.stem != "crt0"]    # _start first in .text
    prog_units = {name: [_unit(s) for s in srcs] for name, srcs in progs.items()}
    done = _compile_all(lib + [u for us in prog_units.values() for u in us], verbose)
    for name, units in prog_units.items():
        if _link(name, [lib[0].obj] + [u.obj for u in units] + [u.obj for u in lib[1:]], verbose):
            done.append(f"link {name}")

    from toolchain import corrupt_elf
    base = OUT_DIR / f"{CORRUPT_BASE}.elf"
    done += [f"corrupt {p.stem}" for p in corrupt_elf.generate(base, OUT_DIR)]
    expected = {f"{name}.elf" for name in progs} | {f"{n}.elf" for n in corrupt_elf.names()}
    for stale in OUT_DIR.glob("*.elf"):
        if stale.name not in expected:        # a program was removed or renamed
            stale.unlink()
    elves = sorted(OUT_DIR / n for n in expected)
    if _write_if_changed(INITRD_S, initrd_source(elves).encode()):
        done.append("generate initrd.S")
    return done
