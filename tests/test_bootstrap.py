"""ci/bootstrap: a line per step on the terminal, apt's ~490 lines in a log file, errors visible.

A fake dpkg-query says one package is missing and a fake apt-get talks as much as the real one
(or fails as it does), so nothing is installed; the venv is the one the suite runs in."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.paths import ROOT

FAKE_DPKG_QUERY = """#!/bin/sh
# dpkg-query -W -f='${Status}' PACKAGE: everything is installed but cpio
[ "$3" = cpio ] && exit 1
printf 'install ok installed'
"""

FAKE_APT_GET = """#!/bin/sh
case "$1" in
update) i=0; while [ $i -lt 10 ]; do echo "Get:$i http://deb.debian.org/debian bookworm InRelease"; i=$((i+1)); done ;;
install)
    if [ -n "$FAKE_APT_FAIL" ]; then
        echo "Reading package lists..."; echo "E: Unable to locate package cpio" >&2; exit 100
    fi
    i=0; while [ $i -lt 490 ]; do echo "Setting up fake-package-$i (1.0) ..."; i=$((i+1)); done
    echo "W: a warning apt printed" >&2 ;;
esac
"""


def _bootstrap(tmp_path: Path, fail: bool = False) -> tuple[subprocess.CompletedProcess, Path]:
    if os.geteuid() != 0:
        pytest.skip("ci/bootstrap calls sudo when not root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", FAKE_APT_GET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "bootstrap.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REVENANT_BOOTSTRAP_LOG": str(log),
           "REVENANT_VENV": str(Path(sys.executable).parent.parent)}
    if fail:
        env["FAKE_APT_FAIL"] = "1"
    proc = subprocess.run(["bash", str(ROOT / "ci" / "bootstrap")], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    return proc, log


def test_a_quiet_install_keeps_apt_output_in_the_log(tmp_path):
    proc, log = _bootstrap(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert len(out.splitlines()) <= 8, out
    assert "Setting up" not in out and "bootstrap: installing: cpio" in out and str(log) in out, out
    assert "bootstrap: note: W: a warning apt printed" in out, out          # warnings stay visible
    assert log.read_text().count("Setting up fake-package-") == 490


def test_a_failing_install_shows_the_error_and_stops(tmp_path):
    proc, log = _bootstrap(tmp_path, fail=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 100, out
    assert "bootstrap: apt-get install failed (exit 100)" in out and str(log) in out, out
    assert "E: Unable to locate package cpio" in out, out
    assert "python packages" not in out, out                                # it stopped there
