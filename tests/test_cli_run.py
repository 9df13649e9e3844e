"""`invoke run` as a newcomer and an OS hacker see it: the README's first command explained in
plain words on one screen, and one specific verdict line when something fails."""
from __future__ import annotations

import hashlib
import re

import pytest

from test_cli import invoke
from toolchain.paths import BUILD


def results(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("result: ")]


def serial_log(output: str):
    from pathlib import Path
    m = re.search(r"^serial log: (\S+)", output, re.M)
    assert m, output
    return Path(m.group(1))


def test_the_readme_first_command_explains_itself_on_one_screen():
    proc = invoke("run", "--append", "run=hello,threads_fair", "--timeout", "120", timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out
    lines = out.splitlines()
    assert len(lines) <= 50, f"{len(lines)} lines: more than a screen\n{out}"
    # interrupts as upcalls, every record returned: in words, not counters
    assert "act: env" not in out and "delivered=" not in out, out
    assert re.search(r"threads_fair was interrupted \d+ times, each time by an upcall into its own scheduler; "
                     r"every record came back \((\d+) of \1 free\)", out), out
    # a blocking call rewound and rerun
    assert re.search(r"init blocked in wait\(\) (\d+ times|once); .*rewound onto its syscall", out), out
    # the summary says what was shown and where the log is
    summary = out.split("--- what this run showed ---", 1)[1]
    for topic in ("programs:", "upcalls:", "rewind:", "isolation:"):
        assert topic in summary, summary
    words = " ".join(summary.split())   # the summary is wrapped to the terminal: a phrase may span lines
    assert "never yield" in words and "W^X" in words, summary
    assert results(out) == ["result: poweroff ok (exit 33)"], out
    # the log keeps the kernel's own lines
    raw = serial_log(out).read_text()
    assert re.search(r"^act: env \d+ \(threads_fair\) stats pool=64 free=64 delivered=\d+", raw, re.M), raw
    assert re.search(r"^rewind: env 1 \(init\) rewound=\d+ wait=\d+ sleep=0$", raw, re.M), raw
    assert re.search(r"^memory: 0x", raw, re.M), raw


def test_raw_shows_the_kernel_lines_as_they_are():
    proc = invoke("run", "--raw", "--append", "run=threads_fair:2:100", "--timeout", "60")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"^act: env \d+ \(threads_fair\) stats ", out, re.M), out
    assert re.search(r"^memory: 0x", out, re.M), out


@pytest.mark.parametrize("append, verdict", [
    ("run=exit3", "result: exit3 exited status 3 (exit 35)"),
    ("run=hello,nosuchprog", "result: spawn nosuchprog: ENOENT (exit 35)"),
    ("run=act_hostile:foo", "result: act_hostile exited status 2 (act_hostile: unknown mode foo (want one of: cs "),
    ("run=crasher:divzero", "result: crasher killed: divide error at crash_divzero+0x"),
    ("test=ktap_selftest* selftest_fail", "result: KTAP: 1 of 3 cases failed: ktap_selftest.fails_on_purpose (exit 35)"),
    ("crash=pagefault", "in crash_pagefault+0x"),
])
def test_a_failing_run_ends_with_one_specific_verdict(append, verdict):
    proc = invoke("run", "--append", append, "--timeout", "60")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out
    found = results(out)
    assert len(found) == 1 and verdict in found[0], out
    assert "guest reported failure or panic" not in found[0], out


def test_the_panic_verdict_names_the_symbolized_function():
    proc = invoke("run", "--append", "crash=divzero", "--timeout", "60")
    (verdict,) = results(proc.stdout + proc.stderr)
    assert verdict.startswith("result: guest panic: ") and "in crash_divzero+0x" in verdict \
        and "(kernel/crash.c:" in verdict, verdict


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_iso_bakes_its_append_and_run_iso_boots_its_own_image(kernel_elf):
    from toolchain.machine import Machine, MachineConfig

    made = invoke("iso", "--append", "run=exit3", timeout=180)
    assert made.returncode == 0, made.stdout + made.stderr
    iso = BUILD / "revenant.iso"
    with Machine(MachineConfig(iso=iso, name="iso-append")) as m:
        m.expect('Revenant kernel booting (cmdline: "run=exit3")', timeout=60)
    before = _digest(iso)
    proc = invoke("run", "--iso", "--append", "run=hello", "--timeout", "120", timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "hello, world" in out, out
    assert f"booting {BUILD / 'run.iso'}" in out, out
    assert _digest(iso) == before, "run --iso --append rewrote build/revenant.iso"
    invoke("iso", timeout=180)              # leave a plain build/revenant.iso behind, as `invoke iso` makes
