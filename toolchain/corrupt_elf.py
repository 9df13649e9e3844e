"""Deliberately broken variants of a valid user program, for the ELF loader tests.

Each variant breaks exactly one thing in a copy of a small valid program
(``build/user/hello.elf``) and is written as ``build/user/corrupt_<name>.elf``;
the build embeds them in the initrd like any program, so a test can ask init
to spawn ``corrupt_<name>`` and expect the loader's rejection:

    elf: corrupt_<name>: rejected: <reason>

``variants(data)`` returns ``{name: (bytes, reason)}`` where ``reason`` is the
exact text kernel/elf.c prints; tests import it from here, so the generator
and the expectations cannot drift apart.  Segment numbers in the reasons are
indices into the program header table, as the kernel counts them.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")   # e_ident .. e_shstrndx
PHDR = struct.Struct("<IIQQQQQQ")            # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP = 0, 1, 2, 3
PF_X, PF_W = 1, 2

# kernel/abi.h
USER_BASE = 0x400000
USER_STACK_TOP = 0x00007FFFFFFF0000
ACT_SEGMENT = 0x3FE00000
# kernel/elf.h
ELF_MAX_MEMSZ = 64 << 20


class Image:
    """A mutable ELF64 image with named access to the header and program headers."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        fields = EHDR.unpack_from(self.data, 0)
        (self.ident, self.e_type, self.e_machine, self.e_version, self.e_entry, self.e_phoff,
         self.e_shoff, self.e_flags, self.e_ehsize, self.e_phentsize, self.e_phnum,
         self.e_shentsize, self.e_shnum, self.e_shstrndx) = fields
        self.ph = [list(PHDR.unpack_from(self.data, self.e_phoff + i * self.e_phentsize))
                   for i in range(self.e_phnum)]

    def load_index(self, want_flags: int, avoid_flags: int = 0) -> int:
        for i, p in enumerate(self.ph):
            if p[0] == PT_LOAD and p[1] & want_flags == want_flags and not p[1] & avoid_flags:
                return i
        raise ValueError(f"no PT_LOAD segment with flags {want_flags:#x}")

    @property
    def text(self) -> int:
        return self.load_index(PF_X)

    @property
    def data_seg(self) -> int:
        return self.load_index(PF_W)

    def bytes(self) -> bytes:
        out = bytearray(self.data)
        EHDR.pack_into(out, 0, self.ident, self.e_type, self.e_machine, self.e_version, self.e_entry,
                       self.e_phoff, self.e_shoff, self.e_flags, self.e_ehsize, self.e_phentsize,
                       self.e_phnum, self.e_shentsize, self.e_shnum, self.e_shstrndx)
        for i, p in enumerate(self.ph):
            off = self.e_phoff + i * PHDR.size      # the original table position
            if off + PHDR.size <= len(out):
                PHDR.pack_into(out, off, *p)
        return bytes(out)


# p[] indices
TYPE, FLAGS, OFFSET, VADDR, PADDR, FILESZ, MEMSZ, ALIGN = range(8)


def _ident(img: Image, index: int, value: int) -> None:
    ident = bytearray(img.ident)
    ident[index] = value
    img.ident = bytes(ident)


def _bad_magic(img: Image) -> str:
    img.ident = b"\x7fELG" + img.ident[4:]
    return "bad magic"


def _class32(img: Image) -> str:
    _ident(img, 4, 1)
    return "not ELFCLASS64"


def _big_endian(img: Image) -> str:
    _ident(img, 5, 2)
    return "not little-endian"


def _version(img: Image) -> str:
    img.e_version = 2                       # EV_CURRENT is 1
    return "unknown ELF version"


def _huge_memsz(img: Image) -> str:
    i = img.data_seg
    img.ph[i][MEMSZ] = 1 << 40              # a length the loader must not trust
    return f"segment {i} larger than {ELF_MAX_MEMSZ >> 20} MiB"


def _total_memsz(img: Image) -> str:
    i = img.data_seg
    img.ph[i][MEMSZ] = ELF_MAX_MEMSZ        # allowed alone; with the other segments over the total
    return f"segments larger than {ELF_MAX_MEMSZ >> 20} MiB in total"


def _machine(img: Image) -> str:
    img.e_machine = 3                       # EM_386
    return "e_machine is not x86-64"


def _type(img: Image) -> str:
    img.e_type = 3                          # ET_DYN
    return "e_type is not ET_EXEC"


def _phentsize(img: Image) -> str:
    img.e_phentsize = 32
    return "e_phentsize is not 56"


def _phoff(img: Image) -> str:
    img.e_phoff = len(img.data) + 64
    return "program headers outside the file"


def _phnum(img: Image) -> str:
    img.e_phnum = 0xFFFF
    img.ph = img.ph[:0]                     # leave the table bytes alone
    return "e_phnum too large"


def _offset(img: Image) -> str:
    i = img.text
    img.ph[i][OFFSET] = len(img.data) - 8
    return f"segment {i}: p_offset+p_filesz beyond the file"


def _filesz(img: Image) -> str:
    i = img.text
    img.ph[i][FILESZ] = img.ph[i][MEMSZ] + 1
    return f"segment {i}: p_filesz > p_memsz"


def _kernel_half(img: Image) -> str:
    i = img.data_seg
    img.ph[i][VADDR] = 0xFFFF800000000000
    return f"segment {i} outside user space"


def _below_base(img: Image) -> str:
    i = img.text
    img.ph[i][VADDR] = 0x1000
    return f"segment {i} below USER_BASE"


def _wrap(img: Image) -> str:
    i = img.data_seg
    img.ph[i][VADDR] = 0xFFFFFFFFFFFFF000
    img.ph[i][MEMSZ] = max(img.ph[i][MEMSZ], 0x2000)
    return f"segment {i} wraps around the address space"


def _overlap(img: Image) -> str:
    t, d = img.text, img.data_seg
    img.ph[d][VADDR] = img.ph[t][VADDR]
    return f"segment {min(t, d)} overlaps segment {max(t, d)}"


def _act_area(img: Image) -> str:
    i = img.data_seg
    img.ph[i][VADDR] = ACT_SEGMENT + 0x1000
    return f"segment {i} overlaps the activation area"


def _stack(img: Image) -> str:
    i = img.data_seg
    img.ph[i][VADDR] = USER_STACK_TOP - 0x1000
    return f"segment {i} overlaps the stack"


def _wx(img: Image) -> str:
    i = img.text
    img.ph[i][FLAGS] |= PF_W
    return f"segment {i} is writable and executable"


def _entry(img: Image) -> str:
    img.e_entry = img.ph[img.data_seg][VADDR]
    return "entry not in an executable segment"


def _noload(img: Image) -> str:
    for p in img.ph:
        if p[TYPE] == PT_LOAD:
            p[TYPE] = PT_NULL
    return "no loadable segment"


def _interp(img: Image) -> str:
    i = img.load_index(0, PF_X | PF_W)      # the read-only segment
    img.ph[i][TYPE] = PT_INTERP
    return f"segment {i}: PT_INTERP (dynamic programs are not supported)"


def _dynamic(img: Image) -> str:
    i = img.load_index(0, PF_X | PF_W)      # the read-only segment
    img.ph[i][TYPE] = PT_DYNAMIC
    return f"segment {i}: PT_DYNAMIC (dynamic programs are not supported)"


MUTATIONS: Dict[str, Callable[[Image], str]] = {
    "bad_magic": _bad_magic, "class32": _class32, "big_endian": _big_endian,
    "machine": _machine, "type": _type, "phentsize": _phentsize, "phoff": _phoff,
    "phnum": _phnum, "version": _version, "offset": _offset, "filesz": _filesz,
    "huge_memsz": _huge_memsz, "total_memsz": _total_memsz, "kernel_half": _kernel_half,
    "below_base": _below_base, "wrap": _wrap, "overlap": _overlap, "act_area": _act_area,
    "stack": _stack, "wx": _wx, "entry": _entry, "noload": _noload, "interp": _interp,
    "dynamic": _dynamic,
}
TRUNCATED_LEN = 48                          # shorter than the 64-byte ELF header
TRUNCATED_REASON = "file too short for the ELF header"


def names() -> List[str]:
    """Program names of all variants (``corrupt_<field>``)."""
    return [f"corrupt_{n}" for n in [*MUTATIONS, "truncated"]]


def variants(data: bytes) -> Dict[str, Tuple[bytes, str]]:
    """``{"corrupt_<field>": (image bytes, reason the kernel prints)}`` from a valid image."""
    out: Dict[str, Tuple[bytes, str]] = {}
    for name, mutate in MUTATIONS.items():
        img = Image(data)
        reason = mutate(img)
        out[f"corrupt_{name}"] = (img.bytes(), reason)
    out["corrupt_truncated"] = (bytes(data[:TRUNCATED_LEN]), TRUNCATED_REASON)
    return out


def expected_reasons(base: Path) -> Dict[str, str]:
    """Variant name -> the kernel's rejection reason, for a built base program."""
    return {name: reason for name, (_, reason) in variants(Path(base).read_bytes()).items()}


def generate(base: Path, out_dir: Path) -> List[Path]:
    """Write every variant of ``base`` into ``out_dir``; returns the files that changed."""
    changed = []
    for name, (blob, _) in variants(Path(base).read_bytes()).items():
        path = Path(out_dir) / f"{name}.elf"
        try:
            if path.read_bytes() == blob:
                continue
        except FileNotFoundError:
            pass
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        changed.append(path)
    return changed


def main(argv: List[str]) -> int:
    """``python -m toolchain.corrupt_elf BASE OUT_DIR`` (a build edge: toolchain/build.py)."""
    if len(argv) != 2:
        print("usage: python -m toolchain.corrupt_elf BASE.elf OUT_DIR", file=sys.stderr)
        return 2
    generate(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
