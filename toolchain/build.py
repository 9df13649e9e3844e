"""The build: ``build/build.ninja`` generated from Python, run by Ninja (the ``ninja`` in the venv).

The generator lists every source (``boot/*.S``, ``kernel/**/*.{c,S}``, the user
library and programs, see toolchain/userbuild.py), writes one edge per object,
program, corrupt-ELF set and kernel image, writes ``build/gen/initrd.S`` and
``build/compile_commands.json``, and runs ``ninja``:

* header dependencies come from gcc's own depfiles (``-MMD``, ``deps = gcc``):
  a header change recompiles exactly its includers;
* Ninja remembers every command line (``build/.ninja_log``): a changed flag
  rebuilds what it is used for, and nothing else;
* the user programs, ``corrupt_*.elf`` (toolchain/corrupt_elf.py) and the
  initrd object that embeds them are edges like any other: a changed program
  is relinked, the initrd reassembled and the kernel relinked;
* jobs in parallel (Ninja's default: cores + 2); ``-k 0``: every failing
  compile is reported, not just the first.

Files are rewritten only when their content changes, so a build with nothing
changed runs no command. ``.venv/bin/ninja -f build/build.ninja`` works too
(it regenerates the file itself when a source directory changes).

Usage: ``build(verbose=False) -> BuildResult``, or ``python -m toolchain.build [-v] [-j N]``.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

from toolchain import paths, userbuild
from toolchain.errors import BuildError, RevenantError, ToolMissing

ROOT = paths.ROOT
OBJ_DIR = (paths.BUILD / "obj").relative_to(ROOT)   # relative: commands run in ROOT
LINKER_SCRIPT = Path("boot/linker.ld")
MANIFEST = "build.ninja"                # in the build directory
COMPDB = "compile_commands.json"        # in the build directory, for clangd and editors

CC = "gcc"
LD = "ld"

# Why each flag: freestanding kernel code (no libc, no red zone because
# interrupts push onto the current stack, no SSE state to save on entry),
# linked in the top 2 GiB (mcmodel=kernel), frame pointers for the panic
# backtrace, debug info for the toolkit's symbolizer. kernel/lib (headers
# included as "string.h", "format.h") is the part user programs share.
KERNEL_CFLAGS = [
    "-std=gnu11", "-ffreestanding",
    "-mno-red-zone", "-mcmodel=kernel", "-fno-omit-frame-pointer",
    "-mno-sse", "-mno-sse2", "-mno-mmx", "-mno-80387",
    "-fno-pic", "-fno-pie", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
    "-fno-optimize-sibling-calls",  # keep every caller in the panic backtrace
    "-fcf-protection=none", "-nostdlib",
    "-O2", "-g", "-Wall", "-Wextra", "-Werror",
    "-Ikernel", "-Ikernel/lib",
]
ASFLAGS = KERNEL_CFLAGS + ["-D__ASSEMBLY__"]
LDFLAGS = ["-nostdlib", "-z", "max-page-size=0x1000", "-z", "noexecstack", "--no-warn-rwx-segments"]

# What Ninja prints before each finished edge; failures are read back from it.
STATUS = "[%f/%t] "


@dataclass
class BuildResult:
    elf: Path
    compiled: List[str] = field(default_factory=list)   # kernel-image sources compiled
    linked: bool = False                                 # build/kernel.elf relinked
    seconds: float = 0.0
    user: List[str] = field(default_factory=list)   # user programs / initrd steps

    @property
    def up_to_date(self) -> bool:
        return not self.compiled and not self.linked and not self.user


def object_path(source: Path, obj_dir: Path = OBJ_DIR) -> Path:
    """build/obj/<source>.o, keeping the source suffix: foo.c and foo.S may coexist."""
    return obj_dir / source.with_name(source.name + ".o")


# --------------------------------------------------------------------------- the graph

@dataclass
class Edge:
    rule: str                       # cc | ld | corrupt
    outputs: List[str]
    inputs: List[str]
    implicit: List[str] = field(default_factory=list)
    flags: str = ""                 # the name of a flag variable (cc, ld)
    what: str = ""                  # for messages: the source, "kernel.elf", a program name
    kind: str = ""                  # kernel | user | link-kernel | link-user | corrupt


@dataclass
class Tree:
    """A source tree and its build directory (a test may build a private copy)."""

    root: Path
    build: Path

    @classmethod
    def of(cls, root: Optional[Path] = None, build_dir: Optional[Path] = None) -> "Tree":
        root = Path(root).resolve() if root else ROOT
        build = Path(build_dir).resolve() if build_dir else root / "build"
        return cls(root, build)

    def rel(self, path: Path) -> Path:
        """``path`` as the commands (run in ``root``) name it."""
        path = Path(path)
        try:
            return path.relative_to(self.root)
        except ValueError:
            return path

    @property
    def obj_dir(self) -> Path:
        return self.rel(self.build / "obj")

    @property
    def elf(self) -> Path:
        return self.build / "kernel.elf"

    @property
    def initrd_s(self) -> Path:
        return self.build / "gen" / "initrd.S"

    @property
    def user_dir(self) -> Path:
        return self.build / "user"


def _kernel_sources(tree: Tree) -> List[Path]:
    """Boot assembly first (the image starts with the entry code), then the kernel, sorted."""
    boot = sorted(p.relative_to(tree.root) for p in (tree.root / "boot").glob("*.S"))
    kernel = sorted(p.relative_to(tree.root) for p in (tree.root / "kernel").rglob("*.[cS]"))
    return boot + kernel


def _cc(tree: Tree, src: Path, flags: str, kind: str, obj: Optional[Path] = None) -> Edge:
    obj = obj or object_path(src, tree.obj_dir)
    return Edge("cc", [str(obj)], [str(src)], flags=flags, what=str(src), kind=kind)


def graph(tree: Tree) -> tuple[List[Edge], List[str]]:
    """Every edge of the build, and the ELFs the initrd embeds (paths as commands see them)."""
    kernel_srcs = _kernel_sources(tree)
    if not kernel_srcs:
        raise BuildError(f"no kernel sources found under {tree.root / 'kernel'}")
    progs = userbuild.programs(tree.root)
    if not progs:
        raise BuildError(f"no user programs under {tree.root / userbuild.PROGS_DIR}")
    lib = userbuild.library_sources(tree.root)
    if not lib:
        raise BuildError(f"no {userbuild.LIB_DIR}/crt0.S")

    edges: List[Edge] = []

    def user_cc(src: Path) -> str:
        # A shared source has a kernel object already: the user one goes apart.
        under = src if src.parts[0] == userbuild.USER_DIR.name else Path("user") / src
        edge = _cc(tree, src, "user_asflags" if src.suffix == ".S" else "user_cflags", "user",
                   object_path(under, tree.obj_dir))
        edges.append(edge)
        return edge.outputs[0]

    lib_objs = [user_cc(src) for src in lib]
    user_dir = tree.rel(tree.user_dir)
    elves = []
    for name, srcs in progs.items():
        objs = [user_cc(src) for src in srcs]
        elf = str(user_dir / f"{name}.elf")
        edges.append(Edge("ld", [elf], [lib_objs[0], *objs, *lib_objs[1:]],
                          implicit=[str(userbuild.USER_LD)], flags="user_ldflags",
                          what=name, kind="link-user"))
        elves.append(elf)

    from toolchain import corrupt_elf
    corrupt = [str(user_dir / f"{n}.elf") for n in corrupt_elf.names()]
    base = str(user_dir / f"{userbuild.CORRUPT_BASE}.elf")
    if base not in elves:
        raise BuildError(f"no user program {userbuild.CORRUPT_BASE!r} for the corrupt ELF variants")
    edges.append(Edge("corrupt", corrupt, [base], implicit=[_toolkit_file(tree, "corrupt_elf.py")],
                      what="corrupt ELF variants", kind="corrupt"))
    embedded = sorted(elves + corrupt, key=lambda p: Path(p).name)

    kernel_objs = []
    for src in kernel_srcs:
        edge = _cc(tree, src, "kernel_asflags" if src.suffix == ".S" else "kernel_cflags", "kernel")
        edges.append(edge)
        kernel_objs.append(edge.outputs[0])
    initrd = _cc(tree, tree.rel(tree.initrd_s), "kernel_asflags", "kernel")
    initrd.implicit = embedded           # .incbin: the assembler reads them, gcc's depfile does not say so
    edges.append(initrd)
    kernel_objs.append(initrd.outputs[0])
    edges.append(Edge("ld", [str(tree.rel(tree.elf))], kernel_objs, implicit=[str(LINKER_SCRIPT)],
                      flags="kernel_ldflags", what=tree.elf.name, kind="link-kernel"))
    return edges, embedded


def _toolkit_file(tree: Tree, name: str) -> str:
    return str(tree.rel(Path(__file__).resolve().with_name(name)))


def _flag_sets() -> Dict[str, List[str]]:
    return {
        "kernel_cflags": KERNEL_CFLAGS, "kernel_asflags": ASFLAGS,
        "user_cflags": userbuild.USER_CFLAGS, "user_asflags": userbuild.USER_ASFLAGS,
        "kernel_ldflags": [*LDFLAGS, "-T", str(LINKER_SCRIPT)], "user_ldflags": userbuild.USER_LDFLAGS,
    }


def compile_arguments(edge: Edge, flag_sets: Dict[str, List[str]]) -> List[str]:
    """The argv of a compile edge, exactly as ``rule cc`` in build.ninja spells it."""
    out = edge.outputs[0]
    return [CC, *flag_sets[edge.flags], "-MMD", "-MF", f"{out}.d", "-c", edge.inputs[0], "-o", out]


# ------------------------------------------------------------------- writing the files

def _path(p: str) -> str:
    return p.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def _words(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(w) for w in words).replace("$", "$$")


def _regen_inputs(tree: Tree, edges: Sequence[Edge]) -> List[str]:
    """What build.ninja is made from: the generator and every source directory."""
    built = str(tree.rel(tree.build)) + os.sep
    dirs = {os.path.dirname(e.inputs[0]) for e in edges if e.rule == "cc"}
    dirs |= {"boot", "kernel", str(userbuild.LIB_DIR), str(userbuild.PROGS_DIR)}
    dirs = {d for d in dirs if not (d + os.sep).startswith(built) and os.path.isdir(tree.root / d)}
    tools = [_toolkit_file(tree, n) for n in ("build.py", "userbuild.py", "corrupt_elf.py")]
    return tools + sorted(dirs)


def manifest(tree: Tree, edges: Sequence[Edge], regen_inputs: Optional[List[str]] = None) -> str:
    """The text of build/build.ninja."""
    builddir = tree.rel(tree.build)
    out = [
        "# Generated by toolchain/build.py (`invoke build`); edits are overwritten.",
        "ninja_required_version = 1.10",
        f"builddir = {_path(str(builddir))}",
        f"cc = {_words([CC])}",
        f"ld = {_words([LD])}",
        f"python = {_words([sys.executable])}",
    ]
    out += [f"{name} = {_words(flags)}" for name, flags in _flag_sets().items()]
    out += [
        "",
        "rule cc",
        "  command = $cc $flags -MMD -MF $out.d -c $in -o $out",
        "  depfile = $out.d",
        "  deps = gcc",
        "  description = CC $in",
        "rule ld",
        "  command = $ld $flags -o $out $in",
        "  description = LD $out",
        "rule corrupt",
        "  command = $python -m toolchain.corrupt_elf $in $outdir",
        "  restat = 1",
        "  description = CORRUPT $outdir/corrupt_*.elf",
        "rule configure",
        "  command = $python -m toolchain.build --configure --root $root --build-dir $builddir",
        "  generator = 1",
        "  description = CONFIGURE $out",
        "",
    ]
    for e in edges:
        line = f"build {' '.join(map(_path, e.outputs))}: {e.rule} {' '.join(map(_path, e.inputs))}"
        if e.implicit:
            line += " | " + " ".join(map(_path, e.implicit))
        out.append(line)
        if e.flags:
            out.append(f"  flags = ${e.flags}")
        if e.rule == "corrupt":
            out.append(f"  outdir = {_path(str(tree.rel(tree.user_dir)))}")
    regen = " ".join(map(_path, regen_inputs or _regen_inputs(tree, edges)))
    out += ["", f"build {_path(str(builddir / MANIFEST))}: configure | {regen}",
            f"  root = {_words([str(tree.root)])}",
            "", f"default {_path(str(tree.rel(tree.elf)))}", ""]
    return "\n".join(out)


def compile_commands(tree: Tree, edges: Sequence[Edge]) -> str:
    """build/compile_commands.json: one entry per compile (kernel/lib twice: kernel and user flags)."""
    import json

    flag_sets = _flag_sets()
    entries = [{"directory": str(tree.root), "file": e.inputs[0], "output": e.outputs[0],
                "arguments": compile_arguments(e, flag_sets)}
               for e in sorted((e for e in edges if e.rule == "cc"), key=lambda e: e.kind != "kernel")]
    return json.dumps(entries, indent=1) + "\n"


def _write_if_changed(path: Path, text: str) -> bool:
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


@dataclass
class Configured:
    tree: Tree
    edges: List[Edge]
    initrd_written: bool


def configure(tree: Optional[Tree] = None, touch: bool = False) -> Configured:
    """Write build.ninja, initrd.S and compile_commands.json if their content changed.

    ``touch``: also when unchanged, make build.ninja newer than its inputs (the
    ``configure`` edge Ninja runs when a source directory changed).
    """
    tree = tree or Tree.of()
    edges, embedded = graph(tree)
    initrd_written = _write_if_changed(tree.initrd_s, userbuild.initrd_source(embedded))
    ninja_file = tree.build / MANIFEST
    regen_inputs = _regen_inputs(tree, edges)
    written = _write_if_changed(ninja_file, manifest(tree, edges, regen_inputs))
    if not written:
        newest = max(os.stat(os.path.join(tree.root, p)).st_mtime_ns for p in regen_inputs)
        if touch or ninja_file.stat().st_mtime_ns < newest:
            os.utime(ninja_file)
    _write_if_changed(tree.build / COMPDB, compile_commands(tree, edges))
    expected = {Path(o).name for e in edges if e.kind in ("link-user", "corrupt") for o in e.outputs}
    for stale in tree.user_dir.glob("*.elf"):
        if stale.name not in expected:        # a program was removed or renamed
            stale.unlink()
    return Configured(tree, edges, initrd_written)


# ------------------------------------------------------------------------- running ninja

def ninja_binary() -> str:
    """The ninja of the project venv (PyPI package ``ninja``), else one on PATH."""
    beside = Path(sys.executable).with_name("ninja")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("ninja")
    if found is None:
        raise ToolMissing("ninja not found: run ci/bootstrap (it installs the `ninja` package into .venv)")
    return found


def _require_tools(tools: Iterable[str]) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} not found: run ci/bootstrap (or apt-get install gcc binutils)")


def _mtimes(paths_: Iterable[Path]) -> Dict[Path, int]:
    out = {}
    for p in paths_:
        try:
            out[p] = p.stat().st_mtime_ns
        except FileNotFoundError:
            out[p] = 0
    return out


@dataclass
class _Block:
    """What Ninja printed for one finished edge."""

    status: str
    failed: List[str] = field(default_factory=list)   # outputs, if it failed
    output: List[str] = field(default_factory=list)


def _parse_ninja_output(lines: Sequence[str]) -> tuple[List[_Block], List[str]]:
    """Ninja's blocks (one per finished edge) and its own ``ninja: ...`` lines."""
    blocks: List[_Block] = []
    messages: List[str] = []
    skip_command = False
    for line in lines:
        if _NINJA_STATUS.match(line):
            blocks.append(_Block(line))
        elif line.startswith("FAILED: ") and blocks:
            words = line[len("FAILED: "):].split()
            blocks[-1].failed = [w for w in words if not w.startswith("[code=")]
            skip_command = True                  # the next line is the command line
        elif skip_command:
            skip_command = False
        elif line.startswith("ninja: "):
            messages.append(line[len("ninja: "):])
        elif blocks:
            blocks[-1].output.append(line)
        else:
            messages.append(line)
    return blocks, messages


_DIAGNOSTIC = re.compile(r"error|undefined reference|multiple definition|cannot find|No such file")
_NINJA_STATUS = re.compile(r"^\[\d+/\d+\] ")       # STATUS as Ninja prints it


def first_diagnostic(output: str) -> str:
    """The line of compiler/linker output that says what went wrong (for one-line errors)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if _DIAGNOSTIC.search(line)), lines[0] if lines else "see output")


def _fail(message: str, output: str) -> BuildError:
    err = BuildError(message)
    err.output = output  # the compiler's full diagnostics, for tasks that want to show them
    return err


def _failure(edges_by_output: Dict[str, Edge], blocks: Sequence[_Block], messages: Sequence[str],
             all_output: str) -> BuildError:
    failed = [(edges_by_output.get(b.failed[0]), b) for b in blocks if b.failed]
    if not failed:
        what = next((m for m in messages if m.startswith("error")), None) or \
            next((m for m in messages if "stopped" not in m), "ninja failed")
        return _fail(f"ninja: {what}", all_output)
    verdicts, outputs = [], []
    for edge, block in failed:
        text = "\n".join(block.output)
        outputs.append(text)
        if edge is None:
            verdicts.append(f"building {block.failed[0]} failed: {first_diagnostic(text)}")
        elif edge.rule == "cc":
            first = next((line for line in block.output if "error" in line), "")
            verdicts.append(f"compiling {edge.what} failed: {first.strip() or 'see output'}")
        elif edge.kind == "link-user":
            verdicts.append(f"linking user program {edge.what} failed: {first_diagnostic(text)}")
        elif edge.kind == "link-kernel":
            verdicts.append(f"linking {edge.what} failed: {first_diagnostic(text)}")
        else:
            last = next((line for line in reversed(block.output) if line.strip()), "see output")
            verdicts.append(f"generating the {edge.what} failed: {last.strip()}")
    more = f" (and {len(verdicts) - 1} more)" if len(verdicts) > 1 else ""
    output = "".join(t if t.endswith("\n") or not t else t + "\n" for t in outputs)
    return _fail(verdicts[0] + more, output)


def _run_ninja(tree: Tree, edges: Sequence[Edge], verbose: bool, jobs: Optional[int]) -> None:
    import subprocess

    argv = [ninja_binary(), "-f", str(tree.rel(tree.build / MANIFEST)), "-k", "0"]
    if jobs:
        argv += ["-j", str(jobs)]
    if verbose:
        argv.append("-v")
        print(shlex.join(argv), flush=True)
    toolkit = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "NINJA_STATUS": STATUS,
           "PYTHONPATH": os.pathsep.join(filter(None, [toolkit, os.environ.get("PYTHONPATH")]))}
    lines: List[str] = []
    try:
        proc = subprocess.Popen(argv, cwd=tree.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", env=env)
    except OSError as exc:
        raise ToolMissing(f"cannot run {argv[0]}: {exc.strerror}; run ci/bootstrap") from None
    with proc:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if verbose:
                print(line, end="", flush=True)
    if proc.returncode != 0:
        blocks, messages = _parse_ninja_output(lines)
        by_output = {o: e for e in edges for o in e.outputs}
        raise _failure(by_output, blocks, messages, "\n".join(lines) + "\n")


def build(verbose: bool = False, *, jobs: Optional[int] = None, root: Optional[Path] = None,
          build_dir: Optional[Path] = None) -> BuildResult:
    """Bring build/kernel.elf (and build/user/*.elf) up to date. Raises BuildError or ToolMissing.

    ``root``/``build_dir`` build another tree (tests build a private copy).
    Concurrent callers (parallel test workers, two suites) are serialized by a
    lock file, so the second one finds everything up to date instead of racing.
    """
    start = time.monotonic()
    _require_tools([CC, LD, "as"])
    tree = Tree.of(root, build_dir)
    with locked(tree):
        result = _build_locked(tree, verbose, jobs)
    result.seconds = time.monotonic() - start
    return result


@contextlib.contextmanager
def locked(tree: Optional[Tree] = None) -> Iterator[Tree]:
    """Hold the build directory's lock (``build/.build.lock``): no build runs meanwhile."""
    import fcntl

    tree = tree or Tree.of()
    tree.build.mkdir(parents=True, exist_ok=True)
    with open(tree.build / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield tree


def _build_locked(tree: Tree, verbose: bool, jobs: Optional[int]) -> BuildResult:
    conf = configure(tree)
    watched = [tree.root / o for e in conf.edges for o in e.outputs]
    before = _mtimes(watched)
    _run_ninja(tree, conf.edges, verbose, jobs)
    after = _mtimes(watched)
    result = BuildResult(elf=tree.elf)
    changed = {str(tree.rel(p)) for p in watched if after[p] != before[p]}
    for e in conf.edges:
        outs = [o for o in e.outputs if o in changed]
        if not outs:
            continue
        if e.kind == "kernel":
            result.compiled.append(e.what)
        elif e.kind == "user":
            result.user.append(e.what)
        elif e.kind == "link-user":
            result.user.append(f"link {e.what}")
        elif e.kind == "corrupt":
            result.user += [f"corrupt {Path(o).stem}" for o in outs]
        elif e.kind == "link-kernel":
            result.linked = True
    if conf.initrd_written:
        result.user.append("generate initrd.S")
    return result


def describe(result: BuildResult) -> str:
    """One line for humans: 'up to date', 'compiled 3 file(s), linked', 'relinked'."""
    if result.up_to_date:
        what = "up to date"
    elif result.user and not result.compiled and not result.linked:
        what = f"{len(result.user)} user step(s)"
    elif result.compiled:
        what = f"compiled {len(result.compiled)} file(s){', linked' if result.linked else ''}"
    else:
        what = "relinked"
    return f"{what} ({result.seconds:.2f}s)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m toolchain.build", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every command")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel jobs (default: Ninja's)")
    parser.add_argument("--configure", action="store_true",
                        help="only write build.ninja, initrd.S and compile_commands.json")
    parser.add_argument("--root", type=Path, default=None, help="the source tree (default: this one)")
    parser.add_argument("--build-dir", type=Path, default=None, help="default: ROOT/build")
    args = parser.parse_args(argv)
    try:
        if args.configure:
            configure(Tree.of(args.root, args.build_dir), touch=True)
            return 0
        result = build(verbose=args.verbose, jobs=args.jobs, root=args.root, build_dir=args.build_dir)
    except RevenantError as err:
        output = getattr(err, "output", "")
        if output:
            print(output, end="" if output.endswith("\n") else "\n", file=sys.stderr)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{os.path.relpath(result.elf)}: {describe(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
