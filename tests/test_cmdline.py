"""The kernel command line: one table (kernel/cmdline_keys.h) that the kernel and the toolkit share.

The kernel prints a `cmdline: rejected ...` line per word it will not use, naming what it uses
instead; toolchain/cmdline.py predicts exactly those lines from the same table (one boot proves
they agree).  The README documents every key of the table and no other.  `run=` follows "the last
occurrence wins" like every key."""
from __future__ import annotations

import re

import pytest

from toolchain import cmdline
from toolchain.paths import ROOT

BAD = ("bogus=1 hz=0 hz=abc hz=5000000 act_pool=0 act_pool=9000 heartbeat=abc heartbeat=0 pti=maybe pti "
       "crash=bogus selftest_fail=1 run= hz run=hello")


def kernel_rejections(lines: list[str]) -> list[str]:
    return [line[len("cmdline: "):] for line in lines if line.startswith("cmdline: ")]


def test_the_kernel_prints_one_line_per_rejected_word_and_the_toolkit_predicts_each(run):
    r = run(BAD)
    r.assert_sane()
    got = kernel_rejections(r.lines)
    assert got == cmdline.rejections(BAD), f"log: {r.log}"
    assert len(got) == 13, got
    assert "rejected hz=0: out of range 1..1000000; using hz=100" in got      # the bare hz: its default
    assert "rejected bogus=1: unknown key; ignored" in got
    assert "rejected pti=maybe: not one of on|off; using pti=on" in got
    assert "rejected act_pool=0: out of range 1..8176; using act_pool=64" in got
    assert "rejected heartbeat=abc: not a decimal number; using heartbeat=1000" in got
    assert "rejected run=: needs a value; using run=hello" in got
    # ... and uses what it says: the default tick, and the valid run=.
    assert r.matching(r"^timer: .* tick 100 Hz$"), f"log: {r.log}"
    assert r.has("init: hello exited status=0")


def test_the_kernel_uses_the_last_valid_occurrence_and_says_so(run):
    text = "hz=250 hz=0 run=hello"
    r = run(text)
    assert kernel_rejections(r.lines) == ["rejected hz=0: out of range 1..1000000; using hz=250"]
    assert kernel_rejections(r.lines) == cmdline.rejections(text)
    assert r.matching(r"^timer: .* tick 250 Hz$"), f"log: {r.log}"


def test_a_clean_command_line_prints_no_rejection(run):
    r = run("run=hello hz=1000 pti=on act_pool=64")
    assert kernel_rejections(r.lines) == [] == cmdline.rejections("run=hello hz=1000 pti=on act_pool=64")


def test_run_follows_last_occurrence_wins(run):
    r = run("run=exit3 run=hello")
    assert r.status == 33, f"init ran the first run= ({r.result}); log: {r.log}"
    assert r.has("init: hello exited status=0") and not r.env_ids("exit3")


def test_an_overlong_command_line_is_reported_once(run):
    text = "run=hello " + " ".join(f"hz={100 + i}" for i in range(40))
    r = run(text)
    got = kernel_rejections(r.lines)
    assert got == cmdline.rejections(text) and len(got) == 1 and "too long" in got[0], got


def test_the_table_parses_and_matches_the_readme():
    keys = cmdline.keys()
    assert {"crash", "test", "selftest_fail", "hz", "act_pool", "pti", "heartbeat", "run",
            "restart_every", "blktest", "blk_timeout", "checkpoint_every", "checkpoint_full",
            "checkpoint_cut", "checkpoint_cut_after", "page_quota", "outcommit", "restore", "checkpoint_final",
            "restart_at"} == set(keys)
    assert (keys["hz"].min, keys["hz"].max, keys["hz"].default) == (1, 1000000, 100)
    assert keys["pti"].choices == ("on", "off") and keys["pti"].default_word == "on"
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Kernel command line", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)[=`\[ ]", section, re.M))
    assert documented == set(keys), f"README documents {sorted(documented)}, the kernel knows {sorted(keys)}"
    for key in keys.values():
        if key.kind == "ULONG":
            assert f"{key.min}..{key.max}" in section and f"default {key.default}" in section, key


def test_the_table_parser_refuses_a_malformed_entry():
    with pytest.raises(ValueError, match="KEY_ULONG takes 5 arguments"):
        cmdline.parse_table('KEY_ULONG(hz, 1, 100, "help")\n')


@pytest.mark.parametrize("text", ["", "run=hello", "test", "test=cmdline.*", "selftest_fail test",
                                  "crash=hang", "heartbeat", "heartbeat=50", "pti=off run=spin:10"])
def test_valid_command_lines_pass_the_check(text):
    cmdline.check(text)
