"""The checkpoint format on the host (toolchain/persist/format.py) against kernel/checkpoint_format.h.

The sizes and field offsets come from the C compiler itself (a small program built from the header
and run on the host), so the Python layout cannot drift from the kernel's. The parser is then fed
headers it must refuse, one field at a time: each gives one FormatError line naming the field.
"""
from __future__ import annotations

import struct
import subprocess

import pytest

from toolchain.paths import ROOT
from toolchain.persist import format as fmt
from toolchain.persist.crc32c import crc32c

PROBE = r"""
#include <stddef.h>
#include <stdio.h>
#include "checkpoint_format.h"
#define S(t) printf(#t " %zu\n", sizeof(struct t))
#define O(t, f) printf(#t "." #f " %zu\n", offsetof(struct t, f))
int main(void) {
    S(ckpt_header); S(ckpt_section_desc); S(ckpt_release); S(ckpt_env); S(ckpt_thread);
    S(ckpt_act_slot); S(ckpt_shm); S(ckpt_shm_hold); S(ckpt_page);
    O(ckpt_header, generation); O(ckpt_header, manifest_crc); O(ckpt_header, output_seq);
    O(ckpt_header, section); O(ckpt_header, header_crc); O(ckpt_env, act_pool_size);
    O(ckpt_env, act_stats); O(ckpt_thread, rip); O(ckpt_thread, seg); O(ckpt_thread, fpu);
    O(ckpt_page, block); O(ckpt_page, crc);
    printf("magic %u version %u\n", CKPT_MAGIC, CKPT_VERSION);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict[str, int]:
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(PROBE)
    subprocess.run(["gcc", "-I", str(ROOT / "kernel"), "-o", str(d / "probe"), str(d / "probe.c")], check=True)
    out = subprocess.run([str(d / "probe")], capture_output=True, text=True, check=True).stdout
    lines = out.split("\n")
    layout = {k: int(v) for k, v in (ln.split() for ln in lines[:-2] if ln)}
    words = lines[-2].split()
    layout["magic"], layout["version"] = int(words[1]), int(words[3])
    return layout


def test_sizes_match_the_c_header(c_layout):
    for name in ("header", "release", "env", "thread", "shm", "page"):
        assert fmt.SIZES[name] == c_layout[f"ckpt_{name}"], name
    assert fmt.SIZES["section"] == c_layout["ckpt_section_desc"]
    assert fmt.SIZES["actslot"] == c_layout["ckpt_act_slot"]
    assert fmt.SIZES["shmhold"] == c_layout["ckpt_shm_hold"]
    assert (fmt.MAGIC, fmt.VERSION) == (c_layout["magic"], c_layout["version"])


def test_offsets_match_the_c_header(c_layout):
    # The format strings, cut before a field, give its offset.
    assert struct.calcsize(fmt.HEADER_FMT[:5]) == c_layout["ckpt_header.generation"]
    assert struct.calcsize("<IIIIQQQQQQ") == c_layout["ckpt_header.manifest_crc"]
    assert struct.calcsize("<IIIIQQQQQQIIIIiiIIQII") == c_layout["ckpt_header.output_seq"]
    assert struct.calcsize("<IIIIQQQQQQIIIIiiIIQIIQ") == c_layout["ckpt_header.section"]
    assert fmt.CRC_OFFSET == c_layout["ckpt_header.header_crc"]
    assert struct.calcsize("<iiIi32sIIII8I") == c_layout["ckpt_env.act_pool_size"]
    assert struct.calcsize("<iiIi32sIIII8IIIQQ") == c_layout["ckpt_env.act_stats"]
    assert struct.calcsize("<iIIIIi15Q") == c_layout["ckpt_thread.rip"]
    assert struct.calcsize("<iIIIIi20Q") == c_layout["ckpt_thread.seg"]
    assert struct.calcsize("<iIIIIi20Q4H") == c_layout["ckpt_thread.fpu"]
    assert struct.calcsize("<IiQII") == c_layout["ckpt_page.block"]
    assert struct.calcsize("<IiQIIQQ") == c_layout["ckpt_page.crc"]


def test_crc32c_check_values():
    assert crc32c(b"123456789") == 0xE3069283          # RFC 3720 B.4
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"456789", crc32c(b"123")) == crc32c(b"123456789")


# ------------------------------------------------------------------ a synthetic checkpoint


def _manifest(pages: list[tuple[int, int, int, bytes]]) -> tuple[bytes, list[tuple]]:
    """A manifest with one environment and the given (va, block, gen, data) pages."""
    env = struct.pack(fmt.ENV_FMT, 1, 0, fmt.ENV_LIVE, 0, b"init", 1, 0, len(pages), 0,
                      *([0] * 8), 64, 0, 0, 0, *([0] * 14))
    recs = b"".join(struct.pack(fmt.PAGE_FMT, fmt.OWNER_ENV, 1, va, 3, 0, block, gen, crc32c(data), 0)
                    for va, block, gen, data in pages)
    secs, body = [], b""
    for i, (data, count) in enumerate([(env, 1), (b"", 0), (b"", 0), (b"", 0), (b"", 0),
                                       (recs, len(pages)), (b"hi\n", 3)]):
        body += b"\0" * (-len(body) % 8)
        secs.append((i, fmt.RECORD_SIZES[i], count, 0, len(body), len(data)))
        body += data
    return body, secs


def _header(gen: int, body: bytes, secs, manifest_block: int, disk_blocks: int, npages: int) -> bytes:
    flat = [x for s in secs for x in s]
    vals = [fmt.MAGIC, fmt.VERSION, fmt.SIZES["header"], fmt.BLOCK, gen, disk_blocks, 123, 7,
            manifest_block, len(body), crc32c(body), fmt.FLAG_FULL, npages, npages, 2, 1, 0, 0, 0, 0, 0,
            10, *flat, b"", 0, 0]
    raw = bytearray(struct.pack(fmt.HEADER_FMT, *vals))
    struct.pack_into("<I", raw, fmt.CRC_OFFSET, crc32c(bytes(raw)))
    return bytes(raw)


def _disk(tmp_path, gens: list[int]):
    nblocks = 32
    data = bytearray(nblocks * fmt.BLOCK)
    nxt = fmt.FIRST_DATA_BLOCK
    for gen in gens:
        page = bytes([gen]) * fmt.BLOCK
        data[nxt * fmt.BLOCK:(nxt + 1) * fmt.BLOCK] = page
        body, secs = _manifest([(0x400000, nxt, gen, page)])
        data[(nxt + 1) * fmt.BLOCK:(nxt + 1) * fmt.BLOCK + len(body)] = body
        hdr = _header(gen, body, secs, nxt + 1, nblocks, 1)
        slot = gen % 2
        data[slot * fmt.BLOCK:slot * fmt.BLOCK + len(hdr)] = hdr
        nxt += 2
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(data))
    return path


def test_a_valid_disk_parses(tmp_path):
    disk = fmt.read_disk(_disk(tmp_path, [1, 2]))
    h = fmt.newest(disk)
    assert h is not None and h.generation == 2 and h.slot == 0
    m = fmt.load(disk, h, check_pages=True)
    assert [e.name for e in m.envs] == ["init"] and m.output == b"hi\n"
    assert m.pages[0].va == 0x400000 and fmt.page_bytes(disk, m.pages[0]) == bytes([2]) * fmt.BLOCK


@pytest.mark.parametrize("offset,what", [
    (0, "magic"), (4, "version"), (8, "header_size"), (12, "checksum"), (16, "checksum"),
    (fmt.CRC_OFFSET, "checksum"), (fmt.CRC_OFFSET - 40, "checksum")])
def test_a_flipped_header_byte_falls_back_to_the_older_slot(tmp_path, offset, what):
    path = _disk(tmp_path, [1, 2])
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40                        # slot 0 holds generation 2
    path.write_bytes(bytes(data))
    disk = fmt.read_disk(path)
    states = fmt.slots(disk)
    assert states[0].header is None and what in states[0].error
    assert fmt.newest(disk).generation == 1


def test_a_flipped_page_byte_is_caught(tmp_path):
    path = _disk(tmp_path, [1])
    data = bytearray(path.read_bytes())
    data[fmt.FIRST_DATA_BLOCK * fmt.BLOCK + 100] ^= 1
    path.write_bytes(bytes(data))
    disk = fmt.read_disk(path)
    h = fmt.newest(disk)
    with pytest.raises(fmt.FormatError, match="page 0 .* checksum"):
        fmt.load(disk, h, check_pages=True)


def test_a_section_outside_the_manifest_is_refused():
    body, secs = _manifest([])
    secs[5] = (5, fmt.RECORD_SIZES[5], 1000, 0, 8, 1000 * fmt.RECORD_SIZES[5])
    raw = _header(1, body, secs, fmt.FIRST_DATA_BLOCK, 32, 1000)
    with pytest.raises(fmt.FormatError, match="section page: offset"):
        fmt.parse_header(raw, 1, 32)
