"""Turn code addresses into ``function+0xoff (file:line)`` with pyelftools.

``Symbolizer(elf)`` reads the ELF symbol table and the DWARF line table once, on
the first lookup, and is cached per (path, mtime, size): building the kernel
again gives a fresh one.  It works on any ELF: the kernel, or a user program.

``symbolize_report(text, elf)`` annotates a panic report in the docs/boot.md
format: every ``  #N 0x<16 hex>`` backtrace line and the ``rip=0x...`` register
line get the symbol appended; every other line is left alone.
"""
from __future__ import annotations

import bisect
import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Sequence, Union

from toolchain.errors import KernelImageError

try:
    from toolchain.paths import ROOT
except ImportError:  # pragma: no cover - paths.py is another worker's file
    ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:  # pragma: no cover - pyelftools is imported when an ELF is read, not at start-up
    from elftools.elf.elffile import ELFFile

__all__ = ["Symbol", "Symbolizer", "symbolizer", "symbolize_report"]

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Symbol:
    addr: int
    function: Optional[str] = None   # None: no symbol covers the address
    offset: int = 0                  # addr - function start
    file: Optional[str] = None       # relative to the repo root when under it
    line: Optional[int] = None

    @property
    def known(self) -> bool:
        return self.function is not None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else "??"
        what = f"{self.function}+{self.offset:#x}" if self.function else "??"
        return f"{what} ({where})"


@dataclass(frozen=True)
class _Func:
    start: int
    size: int
    name: str


@dataclass(frozen=True)
class _Row:
    addr: int
    end_of_sequence: bool
    file: Optional[str]
    line: int


class Symbolizer:
    """Symbols and line numbers of one ELF file, loaded lazily."""

    def __init__(self, elf_path: PathLike, root: Optional[PathLike] = None) -> None:
        self.path = Path(elf_path)
        self.root = Path(root) if root is not None else ROOT
        self._funcs: Optional[list[_Func]] = None
        self._starts: list[int] = []
        self._rows: Optional[list[_Row]] = None
        self._row_keys: list[tuple[int, int]] = []
        self._check()

    # -- loading -------------------------------------------------------------

    def _check(self) -> None:
        if not self.path.is_file():
            raise KernelImageError(f"{self.path}: no such ELF file (build it first: invoke build)")
        with open(self.path, "rb") as f:
            magic = f.read(4)
        if magic != b"\x7fELF":
            raise KernelImageError(f"{self.path}: not an ELF file")

    def _open(self):
        from elftools.elf.elffile import ELFFile

        stream = open(self.path, "rb")
        try:
            return ELFFile(stream)
        except Exception as e:  # pyelftools raises many kinds on a damaged header
            stream.close()
            raise KernelImageError(f"{self.path}: unreadable ELF ({type(e).__name__}: {e})") from None

    def _load_symbols(self) -> None:
        from elftools.elf.constants import SH_FLAGS

        funcs: dict[int, _Func] = {}
        with self._guard() as elf:
            exec_sections = {i for i, s in enumerate(elf.iter_sections())
                             if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR}
            symtab = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
            for sym in (symtab.iter_symbols() if symtab is not None else ()):
                kind = sym["st_info"]["type"]
                shndx = sym["st_shndx"]
                if not sym.name or kind not in ("STT_FUNC", "STT_NOTYPE") or not isinstance(shndx, int):
                    continue
                if shndx not in exec_sections or sym.name.startswith(".L"):
                    continue
                new = _Func(sym["st_value"], sym["st_size"], sym.name)
                old = funcs.get(new.start)
                # at one address prefer a sized function over a bare label (e.g. _start vs. a section marker)
                if old is None or (old.size == 0 and new.size > 0) or (kind == "STT_FUNC" and old.size == new.size == 0):
                    funcs[new.start] = new
        self._funcs = sorted(funcs.values(), key=lambda f: f.start)
        self._starts = [f.start for f in self._funcs]

    def _load_lines(self) -> None:
        rows: list[_Row] = []
        with self._guard() as elf:
            if elf.has_dwarf_info():
                dwarf = elf.get_dwarf_info()
                for cu in dwarf.iter_CUs():
                    program = dwarf.line_program_for_CU(cu)
                    if program is None:
                        continue
                    comp_dir = _attr_str(cu.get_top_DIE(), "DW_AT_comp_dir")
                    files = _file_table(program, comp_dir)
                    for entry in program.get_entries():
                        state = entry.state
                        if state is None:
                            continue
                        name = files.get(state.file)
                        rows.append(_Row(state.address, state.end_sequence,
                                         self._relative(name) if name else None, state.line))
        # at one address an end-of-sequence sorts first, so the row after it wins
        rows.sort(key=lambda r: (r.addr, 0 if r.end_of_sequence else 1))
        self._rows = rows
        self._row_keys = [(r.addr, 0 if r.end_of_sequence else 1) for r in rows]

    @contextlib.contextmanager
    def _guard(self) -> Iterator[ELFFile]:
        """Open the ELF; any pyelftools failure while reading it is a KernelImageError."""
        elf = self._open()
        try:
            yield elf
        except KernelImageError:
            raise
        except Exception as e:  # ELFError, DWARFError, construct errors, IndexError, ...
            raise KernelImageError(
                f"{self.path}: corrupt ELF or DWARF data ({type(e).__name__}: {e})") from None
        finally:
            elf.stream.close()

    def _relative(self, name: str) -> str:
        path = Path(os.path.normpath(name))
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # -- queries ---------------------------------------------------------------

    def function_at(self, addr: int) -> Optional[tuple[str, int]]:
        """(name, start) of the function containing ``addr``, or None."""
        if self._funcs is None:
            self._load_symbols()
        assert self._funcs is not None
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        func = self._funcs[i]
        if func.size and addr >= func.start + func.size:
            return None
        if not func.size and i + 1 >= len(self._funcs) and addr - func.start > 0x100000:
            return None  # a bare label far behind everything: not a plausible owner
        return func.name, func.start

    def line_at(self, addr: int) -> tuple[Optional[str], Optional[int]]:
        if self._rows is None:
            self._load_lines()
        assert self._rows is not None
        i = bisect.bisect_right(self._row_keys, (addr, 1)) - 1
        if i < 0 or self._rows[i].end_of_sequence or not self._rows[i].file:
            return None, None
        return self._rows[i].file, self._rows[i].line

    def lookup(self, addr: int, return_address: bool = False) -> Symbol:
        """Symbolize ``addr``.  For a return address (a backtrace frame >= 1) the
        function and line are those of ``addr - 1``, the call instruction, while
        the offset stays that of ``addr`` itself (as objdump shows it)."""
        probe = addr - 1 if return_address and addr > 0 else addr
        found = self.function_at(probe)
        file, line = self.line_at(probe)
        if found is None:
            return Symbol(addr, None, 0, file, line)
        name, start = found
        return Symbol(addr, name, addr - start, file, line)


def _attr_str(die, name: str) -> Optional[str]:
    attr = die.attributes.get(name)
    if attr is None:
        return None
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _file_table(program, comp_dir: Optional[str]) -> dict[int, str]:
    """File index -> path, for DWARF 2..5 (5 counts from 0 and lists the CU directory first)."""
    header = program.header
    version = header["version"]
    dirs = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
            for d in header.get("include_directory", [])]
    table: dict[int, str] = {}
    for n, entry in enumerate(header.get("file_entry", [])):
        name = entry.name.decode("utf-8", "replace") if isinstance(entry.name, bytes) else str(entry.name)
        d = entry.dir_index
        if version >= 5:
            directory = dirs[d] if d < len(dirs) else None
            index = n
        else:
            directory = comp_dir if d == 0 else (dirs[d - 1] if d - 1 < len(dirs) else None)
            index = n + 1
        if directory and not os.path.isabs(directory) and comp_dir:
            directory = os.path.join(comp_dir, directory)
        table[index] = os.path.join(directory, name) if directory else name
    return table


_CACHE: dict[tuple[str, int, int], Symbolizer] = {}


def symbolizer(elf_path: PathLike) -> Symbolizer:
    """A shared Symbolizer for this file as it is now (rebuilt when the file changes)."""
    path = Path(elf_path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise KernelImageError(f"{elf_path}: no such ELF file (build it first: invoke build)") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        for old in [k for k in _CACHE if k[0] == key[0]]:
            del _CACHE[old]
        _CACHE[key] = Symbolizer(path)
    return _CACHE[key]


_FRAME = re.compile(r"^(\s*#(\d+)\s+0x([0-9a-fA-F]{16}))\s*$")
_RIP_LINE = re.compile(r"^\s*(?:\w+=0x[0-9a-fA-F]+\s*)+$")
_RIP = re.compile(r"\brip=0x([0-9a-fA-F]+)")


def _best(symbolizers: Sequence[Symbolizer], addr: int, return_address: bool) -> Symbol:
    first: Optional[Symbol] = None
    for s in symbolizers:
        sym = s.lookup(addr, return_address)
        if sym.known:
            return sym
        first = first or sym
    return first if first is not None else Symbol(addr)


def symbolize_report(text: str, elf_path: Union[PathLike, Iterable[PathLike]]) -> str:
    """Annotate the backtrace frames and RIP of a panic report; other text is unchanged.

    ``elf_path`` may be one ELF or several (the kernel and user programs): each
    address is named by the first one that has a symbol for it.
    """
    paths = [elf_path] if isinstance(elf_path, (str, os.PathLike)) else list(elf_path)
    symbolizers = [symbolizer(p) for p in paths]
    out = []
    for line in text.split("\n"):
        frame = _FRAME.match(line)
        if frame:
            number, addr = int(frame.group(2)), int(frame.group(3), 16)
            line = f"{frame.group(1)} {_best(symbolizers, addr, return_address=number > 0)}"
        elif _RIP_LINE.match(line) and (rip := _RIP.search(line)):
            line = f"{line.rstrip()}  {_best(symbolizers, int(rip.group(1), 16), return_address=False)}"
        out.append(line)
    return "\n".join(out)


# `env <id> (<name>) killed: <exception> (vector <n>) rip=0x<16hex> ...` (docs/abi.md)
_USER_FAULT = re.compile(r"^env \d+ \((?P<name>[^)]+)\) killed: .*\brip=0x(?P<rip>[0-9a-fA-F]{16})")


def symbolize_user_faults(lines: Iterable[str], user_dir: Optional[PathLike] = None) -> list[str]:
    """Each user-fault report line, with its RIP named against build/user/<program>.elf.

    A program whose ELF is missing or unreadable keeps its raw line plus a note, so a
    failure report never loses the original text.
    """
    from .paths import BUILD

    where = Path(user_dir) if user_dir is not None else BUILD / "user"
    out = []
    for line in lines:
        m = _USER_FAULT.match(line)
        if not m:
            continue
        elf = where / f"{m.group('name')}.elf"
        try:
            sym = symbolizer(elf).lookup(int(m.group("rip"), 16))
            out.append(f"{line}\n    at {sym}")
        except Exception as err:          # a report must never hide the raw line
            out.append(f"{line}\n    (not symbolized: {err})")
    return out
