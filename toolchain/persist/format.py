"""The checkpoint format of kernel/checkpoint_format.h, read from the host.

Every struct there has a dataclass and a ``struct`` layout here, checked
against the C sizes (tests/test_persist_format.py compiles the header and
compares). Everything read from a disk is hostile: each parse function checks
every length, offset and count before it uses it and raises ``FormatError``
with one line that says which field is wrong.

Reading a disk: ``read_disk(path)`` gives a ``Disk`` (raw bytes of a raw image,
or of a qcow2 image through ``qemu-img convert``), ``slots(disk)`` both slot
headers parsed (or why not), ``newest(disk)`` the newest valid checkpoint and
``load(disk, header)`` its manifest.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..errors import RevenantError
from .crc32c import crc32c

MAGIC = 0x4B435652              # "RVCK"
RELEASE_MAGIC = 0x4C455252      # "RREL"
VERSION = 1
BLOCK = 4096
SECTOR = 512
SLOTS = 2
RELEASE_BLOCK = 2
FIRST_DATA_BLOCK = 3
NAME_MAX = 32
FPU_BYTES = 512

FLAG_FULL = 1 << 0
FLAG_OUTCOMMIT = 1 << 1

SEC_ENV, SEC_THREAD, SEC_ACTSLOT, SEC_SHM, SEC_SHMHOLD, SEC_PAGE, SEC_OUTPUT = range(7)
SECTIONS = 7
SECTION_NAMES = ("env", "thread", "actslot", "shm", "shmhold", "page", "output")

ENV_LIVE, ENV_ZOMBIE = 1, 2
ENV_ACT_USED, ENV_OUT_DIRECT = 1 << 0, 1 << 1
FRAME_SYSCALL, FRAME_FRESH, FRAME_UPCALL, FRAME_INTERRUPT = 1, 2, 3, 4
THR_BLOCKED, THR_ACT_DISABLED, THR_RESTART_PENDING, THR_WAKE_PENDING, THR_ACT_IDLE = (1 << i for i in range(5))
SLOT_HELD, SLOT_BLOCKED, SLOT_WOKEN = 1, 2, 3
OWNER_ENV, OWNER_SHM = 1, 2
PAGE_WRITTEN, PAGE_ACT = 1 << 0, 1 << 1

# Layouts, little-endian, no implicit padding ("<").
SECTION_FMT = "<IIIIQQ"                                  # 32
HEADER_FMT = "<IIIIQQQQQQIIIIiiIIQIIQ" + SECTION_FMT[1:] * SECTIONS + "32sII"   # 384
RELEASE_FMT = "<IIQQII"                                  # 32
ENV_FMT = "<iiIi32sIIII8IIIQQ14Q"                         # 232
THREAD_FMT = "<iIIIIi20Q4H512s"                          # 704
ACTSLOT_FMT = "<iIII"                                    # 16
SHM_FMT = "<IIQ"                                         # 16
SHMHOLD_FMT = "<iIIIIIQ"                                 # 32
PAGE_FMT = "<IiQIIQQII"                                  # 48

SIZES = {
    "header": struct.calcsize(HEADER_FMT), "section": struct.calcsize(SECTION_FMT),
    "release": struct.calcsize(RELEASE_FMT), "env": struct.calcsize(ENV_FMT),
    "thread": struct.calcsize(THREAD_FMT), "actslot": struct.calcsize(ACTSLOT_FMT),
    "shm": struct.calcsize(SHM_FMT), "shmhold": struct.calcsize(SHMHOLD_FMT),
    "page": struct.calcsize(PAGE_FMT),
}
RECORD_SIZES = (SIZES["env"], SIZES["thread"], SIZES["actslot"], SIZES["shm"],
                SIZES["shmhold"], SIZES["page"], 1)
CRC_OFFSET = SIZES["header"] - 4        # header_crc is the last field


class FormatError(RevenantError):
    """A checkpoint on disk is not valid: one line naming the field."""


@dataclass(frozen=True)
class Section:
    type: int
    record_size: int
    count: int
    offset: int
    bytes: int


@dataclass(frozen=True)
class Header:
    slot: int
    magic: int
    version: int
    header_size: int
    block_size: int
    generation: int
    disk_blocks: int
    clock_ns: int
    capture_ns: int
    manifest_block: int
    manifest_bytes: int
    manifest_crc: int
    flags: int
    pages_total: int
    pages_written: int
    next_env_id: int
    console_holder: int
    console_give_next: int
    console_ring_size: int
    console_ring_va: int
    console_head: int
    output_seq: int
    sections: tuple[Section, ...]
    header_crc: int

    @property
    def full(self) -> bool:
        return bool(self.flags & FLAG_FULL)

    def section(self, kind: int) -> Section:
        return self.sections[kind]


@dataclass(frozen=True)
class Release:
    generation: int
    released_seq: int


@dataclass(frozen=True)
class Env:
    id: int
    parent: int
    state: int
    status: int
    name: str
    nthreads: int
    flags: int
    pages: int
    blocked: tuple[int, ...]
    act_pool_size: int
    act_seq: int
    act_event_seq: int
    act_stats: tuple[int, ...]


REGISTERS = ("r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rbp", "rdi", "rsi", "rdx",
             "rcx", "rbx", "rax", "rip", "cs", "rflags", "rsp", "ss")


@dataclass(frozen=True)
class Thread:
    env_id: int
    index: int
    frame_kind: int
    flags: int
    wait_kind: int
    act_resuming: int
    regs: dict[str, int]
    seg: tuple[int, int, int, int]
    fpu: bytes


@dataclass(frozen=True)
class ActSlot:
    env_id: int
    index: int
    state: int


@dataclass(frozen=True)
class Shm:
    id: int
    npages: int


@dataclass(frozen=True)
class ShmHold:
    env_id: int
    slot: int
    shm: int
    gen: int
    has_handle: int
    prot: int
    va: int


@dataclass(frozen=True)
class Page:
    owner_kind: int
    owner: int
    va: int
    prot: int
    flags: int
    block: int
    generation: int
    crc: int


@dataclass
class Manifest:
    header: Header
    envs: list[Env] = field(default_factory=list)
    threads: list[Thread] = field(default_factory=list)
    act_slots: list[ActSlot] = field(default_factory=list)
    shms: list[Shm] = field(default_factory=list)
    holds: list[ShmHold] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    output: bytes = b""


# ------------------------------------------------------------------ parsing


def _check_sections(sections: tuple[Section, ...], manifest_bytes: int) -> None:
    for i, s in enumerate(sections):
        name = SECTION_NAMES[i]
        if s.type != i:
            raise FormatError(f"section {i} ({name}): type {s.type}, expected {i}")
        if s.record_size != RECORD_SIZES[i]:
            raise FormatError(f"section {name}: record_size {s.record_size}, expected {RECORD_SIZES[i]}")
        if s.bytes != s.count * s.record_size:
            raise FormatError(f"section {name}: bytes {s.bytes} != count {s.count} * {s.record_size}")
        if s.offset % 8 or s.offset > manifest_bytes or s.bytes > manifest_bytes - s.offset:
            raise FormatError(f"section {name}: offset {s.offset} + {s.bytes} bytes outside the "
                              f"{manifest_bytes}-byte manifest")


def parse_header(raw: bytes, slot: int, disk_blocks: int) -> Header:
    """The header in the first bytes of a slot block, checked field by field."""
    if len(raw) < SIZES["header"]:
        raise FormatError(f"slot {slot}: {len(raw)} bytes, a header needs {SIZES['header']}")
    v = struct.unpack_from(HEADER_FMT, raw)
    (magic, version, header_size, block_size, generation, hdr_blocks, clock_ns, capture_ns,
     manifest_block, manifest_bytes, manifest_crc, flags, pages_total, pages_written,
     next_env_id, console_holder, give_next, ring_size, ring_va, console_head, _res0,
     output_seq) = v[:22]
    sec_vals = v[22:22 + 6 * SECTIONS]
    header_crc = v[-1]
    if magic != MAGIC:
        raise FormatError(f"slot {slot}: no checkpoint (magic {magic:#010x}, expected {MAGIC:#010x})")
    if version != VERSION:
        raise FormatError(f"slot {slot}: version {version}, this reader knows {VERSION}")
    if header_size != SIZES["header"]:
        raise FormatError(f"slot {slot}: header_size {header_size}, expected {SIZES['header']}")
    body = bytearray(raw[:header_size])
    body[CRC_OFFSET:CRC_OFFSET + 4] = b"\0\0\0\0"
    if crc32c(bytes(body)) != header_crc:
        raise FormatError(f"slot {slot}: header checksum {header_crc:#010x} does not match "
                          f"{crc32c(bytes(body)):#010x}")
    if block_size != BLOCK:
        raise FormatError(f"slot {slot}: block_size {block_size}, expected {BLOCK}")
    if generation == 0 or generation % SLOTS != slot:
        raise FormatError(f"slot {slot}: generation {generation} does not belong in slot {slot}")
    if hdr_blocks > disk_blocks:
        raise FormatError(f"slot {slot}: disk_blocks {hdr_blocks} but the disk has {disk_blocks}")
    mblocks = -(-manifest_bytes // BLOCK)
    if manifest_block < FIRST_DATA_BLOCK or manifest_block + mblocks > hdr_blocks:
        raise FormatError(f"slot {slot}: manifest blocks {manifest_block}+{mblocks} outside "
                          f"{FIRST_DATA_BLOCK}..{hdr_blocks}")
    sections = tuple(Section(sec_vals[6 * i], sec_vals[6 * i + 1], sec_vals[6 * i + 2],
                             sec_vals[6 * i + 4], sec_vals[6 * i + 5]) for i in range(SECTIONS))
    _check_sections(sections, manifest_bytes)
    if pages_total != sections[SEC_PAGE].count or pages_written > pages_total:
        raise FormatError(f"slot {slot}: pages_total {pages_total} / pages_written {pages_written} "
                          f"disagree with {sections[SEC_PAGE].count} page records")
    return Header(slot, magic, version, header_size, block_size, generation, hdr_blocks, clock_ns,
                  capture_ns, manifest_block, manifest_bytes, manifest_crc, flags, pages_total,
                  pages_written, next_env_id, console_holder, give_next, ring_size, ring_va,
                  console_head, output_seq, sections, header_crc)


def _records(manifest: bytes, sec: Section, fmt: str):
    return [struct.unpack_from(fmt, manifest, sec.offset + i * sec.record_size) for i in range(sec.count)]


def parse_manifest(header: Header, manifest: bytes) -> Manifest:
    """The records of a manifest whose bytes match the header's checksum."""
    if len(manifest) < header.manifest_bytes:
        raise FormatError(f"generation {header.generation}: manifest cut short "
                          f"({len(manifest)} of {header.manifest_bytes} bytes)")
    manifest = manifest[:header.manifest_bytes]
    if crc32c(manifest) != header.manifest_crc:
        raise FormatError(f"generation {header.generation}: manifest checksum does not match")
    m = Manifest(header)
    for r in _records(manifest, header.section(SEC_ENV), ENV_FMT):
        m.envs.append(Env(r[0], r[1], r[2], r[3], r[4].rstrip(b"\0").decode("latin-1"), r[5], r[6],
                          r[7], tuple(r[9:17]), r[17], r[19], r[20], tuple(r[21:35])))
    for r in _records(manifest, header.section(SEC_THREAD), THREAD_FMT):
        m.threads.append(Thread(r[0], r[1], r[2], r[3], r[4], r[5], dict(zip(REGISTERS, r[6:26])),
                                tuple(r[26:30]), r[30]))
    m.act_slots = [ActSlot(r[0], r[1], r[2]) for r in _records(manifest, header.section(SEC_ACTSLOT), ACTSLOT_FMT)]
    m.shms = [Shm(r[0], r[1]) for r in _records(manifest, header.section(SEC_SHM), SHM_FMT)]
    m.holds = [ShmHold(*r) for r in _records(manifest, header.section(SEC_SHMHOLD), SHMHOLD_FMT)]
    m.pages = [Page(*r[:8]) for r in _records(manifest, header.section(SEC_PAGE), PAGE_FMT)]
    out = header.section(SEC_OUTPUT)
    m.output = bytes(manifest[out.offset:out.offset + out.bytes])
    _check_pages(m)
    return m


def _check_pages(m: Manifest) -> None:
    h = m.header
    for i, p in enumerate(m.pages):
        if not FIRST_DATA_BLOCK <= p.block < h.disk_blocks:
            raise FormatError(f"generation {h.generation}: page {i} block {p.block} outside "
                              f"{FIRST_DATA_BLOCK}..{h.disk_blocks}")
        if p.generation > h.generation or p.generation == 0:
            raise FormatError(f"generation {h.generation}: page {i} claims generation {p.generation}")
        if p.va % BLOCK:
            raise FormatError(f"generation {h.generation}: page {i} va {p.va:#x} not page-aligned")


def parse_release(raw: bytes) -> Optional[Release]:
    """The output-release mark, or None if the block holds none (or a damaged one)."""
    if len(raw) < SIZES["release"]:
        return None
    magic, version, generation, released, _res, crc = struct.unpack_from(RELEASE_FMT, raw)
    if magic != RELEASE_MAGIC or version != VERSION or crc32c(raw[:SIZES["release"] - 4]) != crc:
        return None
    return Release(generation, released)


# ------------------------------------------------------------------ disks


@dataclass(frozen=True)
class Disk:
    path: Path
    data: bytes

    @property
    def blocks(self) -> int:
        return len(self.data) // BLOCK

    def block(self, n: int, count: int = 1) -> bytes:
        if n < 0 or n + count > self.blocks:
            raise FormatError(f"{self.path}: block {n}+{count} beyond its {self.blocks} blocks")
        return self.data[n * BLOCK:(n + count) * BLOCK]


def _is_qcow2(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"QFI\xfb"


def read_disk(path: Union[str, Path]) -> Disk:
    """The disk's bytes: a raw image as is, a qcow2 image through qemu-img convert."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such disk image")
    if not _is_qcow2(path):
        return Disk(path, path.read_bytes())
    if shutil.which("qemu-img") is None:
        raise FormatError("qemu-img is not installed (apt-get install qemu-utils): cannot read a qcow2 disk")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "disk.raw"
        # -U: the machine may still hold the image open; we only read it.
        proc = subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(path), str(raw)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise FormatError(f"{path}: qemu-img convert failed: {(proc.stderr or proc.stdout).strip()}")
        return Disk(path, raw.read_bytes())


@dataclass(frozen=True)
class SlotState:
    slot: int
    header: Optional[Header]
    error: Optional[str]        # why the slot holds no valid checkpoint


def slots(disk: Disk) -> list[SlotState]:
    """Both slots: each parsed header and its manifest checked, or the one-line reason it is not valid."""
    out = []
    for s in range(SLOTS):
        try:
            h = parse_header(disk.block(s)[:SECTOR], s, disk.blocks)
            load(disk, h)
            out.append(SlotState(s, h, None))
        except FormatError as e:
            out.append(SlotState(s, None, str(e)))
    return out


def newest(disk: Disk) -> Optional[Header]:
    """The header of the newest valid checkpoint, or None."""
    valid = [s.header for s in slots(disk) if s.header is not None]
    return max(valid, key=lambda h: h.generation, default=None)


def load(disk: Disk, header: Header, check_pages: bool = False) -> Manifest:
    """The manifest of a checkpoint; with check_pages every page block's CRC32C too."""
    nblocks = -(-header.manifest_bytes // BLOCK)
    m = parse_manifest(header, disk.block(header.manifest_block, nblocks))
    if check_pages:
        for i, p in enumerate(m.pages):
            if crc32c(disk.block(p.block)) != p.crc:
                raise FormatError(f"generation {header.generation}: page {i} (va {p.va:#x}) "
                                  f"block {p.block} checksum does not match")
    return m


def page_bytes(disk: Disk, page: Page) -> bytes:
    return disk.block(page.block)


def release_mark(disk: Disk) -> Optional[Release]:
    return parse_release(disk.block(RELEASE_BLOCK)[:SIZES["release"]])
