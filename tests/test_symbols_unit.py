"""The symbolizer, on a tiny ELF built here with gcc -g (no kernel needed)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from toolchain.errors import KernelImageError
from toolchain.symbols import Symbol, Symbolizer, symbolize_report, symbolizer

SOURCE = """\
__attribute__((noinline)) int helper(int x) {
    return x * 3;
}

int main(void) {
    int y = helper(4);
    return y;
}
"""
HELPER_LINE, RETURN_LINE, MAIN_LINE, CALL_LINE = 1, 2, 5, 6

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("nm") is None,
                                reason="gcc/binutils not installed (run ci/bootstrap)")


class Tiny:
    """The compiled program and the addresses binutils (not our code) reports for it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        (directory / "two.c").write_text(SOURCE)
        subprocess.run(["gcc", "-g", "-O0", "-o", "two", "two.c"], cwd=directory, check=True)
        self.elf = directory / "two"
        nm = subprocess.run(["nm", str(self.elf)], check=True, capture_output=True, text=True).stdout
        self.addr = {fields[2]: int(fields[0], 16)
                     for fields in (line.split() for line in nm.splitlines()) if len(fields) == 3}
        dump = subprocess.run(["objdump", "-d", str(self.elf)], check=True, capture_output=True,
                              text=True).stdout.splitlines()
        call = next(i for i, line in enumerate(dump) if re.search(r"call.*<helper>", line))
        self.return_address = int(dump[call + 1].split(":")[0], 16)  # the instruction after the call


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Tiny:
    return Tiny(tmp_path_factory.mktemp("tiny"))


def test_a_function_address_names_the_function_and_its_first_line(tiny):
    sym = Symbolizer(tiny.elf, root=tiny.dir).lookup(tiny.addr["helper"])
    assert sym == Symbol(tiny.addr["helper"], "helper", 0, "two.c", HELPER_LINE)
    assert str(sym) == f"helper+0x0 (two.c:{HELPER_LINE})"


def test_an_address_inside_a_function_has_an_offset(tiny):
    sym = Symbolizer(tiny.elf, root=tiny.dir).lookup(tiny.addr["main"] + 1)
    assert (sym.function, sym.offset, sym.line) == ("main", 1, MAIN_LINE)


def test_a_return_address_is_attributed_to_the_call_site(tiny):
    s = Symbolizer(tiny.elf, root=tiny.dir)
    sym = s.lookup(tiny.return_address, return_address=True)
    assert (sym.function, sym.file, sym.line) == ("main", "two.c", CALL_LINE)
    assert sym.offset == tiny.return_address - tiny.addr["main"]


def test_files_outside_the_root_keep_their_absolute_path(tiny):
    sym = Symbolizer(tiny.elf, root="/nonexistent").lookup(tiny.addr["helper"])
    assert sym.file == str(tiny.dir / "two.c")


def test_an_address_outside_every_function_is_unknown(tiny):
    sym = Symbolizer(tiny.elf).lookup(0x10)
    assert not sym.known and str(sym) == "?? (??)"


def test_the_shared_symbolizer_is_cached_until_the_file_changes(tiny, tmp_path):
    copy = tmp_path / "copy"
    shutil.copy(tiny.elf, copy)
    first = symbolizer(copy)
    assert symbolizer(copy) is first
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert symbolizer(copy) is not first


def test_symbolize_report_annotates_rip_and_frames_and_nothing_else(tiny):
    helper, ret = tiny.addr["helper"], tiny.return_address
    report = "\n".join([
        "PANIC: assertion failed: x != 4",
        f"  rax=0x{4:016x} rbx=0x{0:016x}",
        f"  rip=0x{helper + 4:016x} rsp=0x{0x7ff0:016x}",
        "backtrace:",
        f"  #0 0x{helper + 4:016x}",
        f"  #1 0x{ret:016x}",
        "end of panic",
    ])
    lines = symbolize_report(report, tiny.elf).split("\n")
    rel = str(tiny.dir / "two.c")
    assert lines[0] == "PANIC: assertion failed: x != 4"
    assert lines[1] == f"  rax=0x{4:016x} rbx=0x{0:016x}"
    assert lines[2].endswith(f"  helper+0x4 ({rel}:{HELPER_LINE})")
    assert lines[4] == f"  #0 0x{helper + 4:016x} helper+0x4 ({rel}:{HELPER_LINE})"
    assert lines[5] == f"  #1 0x{ret:016x} main+{ret - tiny.addr['main']:#x} ({rel}:{CALL_LINE})"
    assert lines[3] == "backtrace:" and lines[6] == "end of panic"
    assert symbolize_report("\n".join(lines), tiny.elf).split("\n") == lines  # idempotent


def test_symbolize_report_takes_several_elves_and_the_one_that_knows_the_address_wins(tiny, tmp_path):
    (tmp_path / "user.c").write_text("int user_main(void) { return 1; }\nint main(void) { return user_main(); }\n")
    subprocess.run(["gcc", "-g", "-no-pie", "-o", "user", "user.c"], cwd=tmp_path, check=True)
    user_main = Symbolizer(tmp_path / "user").function_at  # non-PIE: far from the tiny PIE's addresses
    assert user_main(tiny.addr["helper"]) is None
    text = f"  #0 0x{tiny.addr['helper']:016x}"
    assert "helper+0x0" in symbolize_report(text, [tmp_path / "user", tiny.elf])


def test_a_missing_elf_is_a_kernel_image_error(tmp_path):
    with pytest.raises(KernelImageError, match="no such ELF file"):
        Symbolizer(tmp_path / "kernel.elf")
    with pytest.raises(KernelImageError):
        symbolize_report("  #0 0x0000000000001000", tmp_path / "kernel.elf")


def test_a_file_that_is_not_an_elf_is_a_kernel_image_error(tmp_path):
    bogus = tmp_path / "kernel.elf"
    bogus.write_text("#!/bin/sh\n")
    with pytest.raises(KernelImageError, match="not an ELF file"):
        Symbolizer(bogus)


def test_a_truncated_elf_is_a_kernel_image_error_not_a_traceback(tiny, tmp_path):
    broken = tmp_path / "broken"
    broken.write_bytes(tiny.elf.read_bytes()[:300])
    with pytest.raises(KernelImageError, match="broken"):
        Symbolizer(broken).lookup(tiny.addr["helper"])
