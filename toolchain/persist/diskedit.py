"""Editing a checkpoint disk from the host, as a hostile hand would (tests/test_restore.py).

``edit(qcow2, change)`` converts the image to raw (``qemu-img convert``), lets ``change``
rewrite the bytes, and converts it back in place. The helpers name what they break:
``set_header_field`` writes one field of a slot header (and, unless told not to, seals the
header again with a correct CRC32C, so that the field itself is what a reader must refuse),
``flip_bit`` flips one bit anywhere, ``page_block`` finds where a page of a checkpoint lives.
"""
from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Union

from ..errors import RevenantError
from . import format as fmt
from .crc32c import crc32c

# (name, struct code) of every ckpt_header field, in order (kernel/checkpoint_format.h).
_HEAD = [("magic", "I"), ("version", "I"), ("header_size", "I"), ("block_size", "I"),
         ("generation", "Q"), ("disk_blocks", "Q"), ("clock_ns", "Q"), ("capture_ns", "Q"),
         ("manifest_block", "Q"), ("manifest_bytes", "Q"), ("manifest_crc", "I"), ("flags", "I"),
         ("pages_total", "I"), ("pages_written", "I"), ("next_env_id", "i"),
         ("console_holder", "i"), ("console_give_next", "I"), ("console_ring_size", "I"),
         ("console_ring_va", "Q"), ("console_head", "I"), ("reserved0", "I"), ("output_seq", "Q")]
_SECTION = [("type", "I"), ("record_size", "I"), ("count", "I"), ("reserved", "I"),
            ("offset", "Q"), ("bytes", "Q")]
_TAIL = [("reserved", "32s"), ("reserved1", "I"), ("header_crc", "I")]


def _layout() -> dict[str, tuple[int, str]]:
    fields = list(_HEAD)
    for i, name in enumerate(fmt.SECTION_NAMES):
        fields += [(f"section[{name}].{f}", code) for f, code in _SECTION]
    fields += _TAIL
    out, off = {}, 0
    for name, code in fields:
        out[name] = (off, code)
        off += struct.calcsize("<" + code)
    assert off == fmt.SIZES["header"], off
    return out


HEADER_FIELDS = _layout()


class DiskEditError(RevenantError):
    """qemu-img failed, or the edit named something the disk does not hold."""


def _qemu_img(*args: str) -> None:
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DiskEditError(f"qemu-img {args[0]}: {(proc.stderr or proc.stdout).strip()}")


def edit(disk: Union[str, Path], change: Callable[[bytearray], None]) -> None:
    """Rewrite the qcow2 ``disk``'s bytes with ``change`` (through a raw copy)."""
    disk = Path(disk)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "disk.raw"
        _qemu_img("convert", "-O", "raw", str(disk), str(raw))
        data = bytearray(raw.read_bytes())
        change(data)
        raw.write_bytes(bytes(data))
        out = Path(tmp) / "disk.qcow2"
        _qemu_img("convert", "-O", "qcow2", str(raw), str(out))
        out.replace(disk)


def seal(data: bytearray, slot: int) -> None:
    """Give slot ``slot``'s header the CRC32C its bytes have now."""
    base = slot * fmt.BLOCK
    off, _ = HEADER_FIELDS["header_crc"]
    data[base + off:base + off + 4] = b"\0\0\0\0"
    crc = crc32c(bytes(data[base:base + fmt.SIZES["header"]]))
    data[base + off:base + off + 4] = struct.pack("<I", crc)


def set_header_field(data: bytearray, slot: int, name: str, value: object, reseal: bool = True) -> None:
    """Write ``value`` into header field ``name`` of slot ``slot`` (then seal it again)."""
    if name not in HEADER_FIELDS:
        raise DiskEditError(f"no header field {name!r}")
    off, code = HEADER_FIELDS[name]
    base = slot * fmt.BLOCK + off
    packed = struct.pack("<" + code, value)
    data[base:base + len(packed)] = packed
    if reseal and name != "header_crc":
        seal(data, slot)


def header_field(data: bytes, slot: int, name: str) -> object:
    off, code = HEADER_FIELDS[name]
    return struct.unpack_from("<" + code, data, slot * fmt.BLOCK + off)[0]


def flip_bit(data: bytearray, offset: int, bit: int = 0) -> None:
    data[offset] ^= 1 << bit


# Byte offsets of the record fields the tests forge (kernel/checkpoint_format.h).
THREAD_RIP, THREAD_CS = 24 + 15 * 8, 24 + 16 * 8
PAGE_VA = 8
ENV_ID, ENV_PARENT = 0, 4


def set_record_field(data: bytearray, slot: int, section: int, index: int, offset: int, code: str,
                     value: object) -> None:
    """Forge one field of record ``index`` of a section of slot ``slot``'s manifest, then give
    the manifest and the header the CRC32Cs their bytes have now: only the field's own value
    can make a reader refuse it."""
    h = fmt.parse_header(bytes(data[slot * fmt.BLOCK:slot * fmt.BLOCK + fmt.SECTOR]), slot,
                         len(data) // fmt.BLOCK)
    sec = h.section(section)
    if index >= sec.count:
        raise DiskEditError(f"slot {slot}: section {fmt.SECTION_NAMES[section]} has {sec.count} records")
    base = h.manifest_block * fmt.BLOCK
    packed = struct.pack("<" + code, value)
    at = base + sec.offset + index * sec.record_size + offset
    data[at:at + len(packed)] = packed
    set_header_field(data, slot, "manifest_crc", crc32c(bytes(data[base:base + h.manifest_bytes])))


def manifest_of(data: bytes, slot: int) -> fmt.Manifest:
    """The parsed manifest of the (valid) checkpoint in slot ``slot``."""
    disk = fmt.Disk(Path("<raw>"), bytes(data))
    header = fmt.parse_header(disk.block(slot)[:fmt.SECTOR], slot, disk.blocks)
    return fmt.load(disk, header)


def page_block(data: bytes, slot: int, *, env_id: int, shared: bool = False) -> fmt.Page:
    """A page record of slot ``slot``'s checkpoint: one of env ``env_id``'s own pages, or
    (``shared``) a shared region's; the one whose block this checkpoint wrote, if any."""
    m = manifest_of(data, slot)
    kind = fmt.OWNER_SHM if shared else fmt.OWNER_ENV
    pages = [p for p in m.pages if p.owner_kind == kind and (shared or p.owner == env_id)]
    if not pages:
        raise DiskEditError(f"slot {slot}: no {'shared' if shared else f'env {env_id}'} page")
    return max(pages, key=lambda p: (p.generation, -p.va))
