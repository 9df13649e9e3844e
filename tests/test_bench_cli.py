"""`invoke bench`: a line per section as it runs (and before the one-time Linux download), a
verdict per figure against its target, exit 1 on a miss, an error for an unknown section."""
from __future__ import annotations

import json

import pytest

from test_cli import assert_one_clear_error, invoke
from toolchain import bench


def test_verdicts_judge_every_ratio_against_its_target():
    met = bench.Section("syscall", {"ratio_instructions": 0.3, "ratio_tsc_cycles": 0.45, "target_ratio_max": 0.5})
    missed = bench.Section("uswitch", {"ratio_instructions": 0.2, "ratio_tsc_cycles": 0.05, "target_ratio_max": 0.1,
                                       "cond_ratio_instructions": 0.9})
    assert [v.ok for v in met.verdicts()] == [True, True] and met.ok
    assert [(v.figure, v.ok) for v in missed.verdicts()] == [("ratio_instructions", False), ("ratio_tsc_cycles", True)]
    report = bench.BenchReport([met, missed, bench.Section("boot", {"runs": 3})])
    assert not report.ok
    text = report.render()
    assert "ratio_instructions: 0.2   <- MISSED: 0.2 vs target <= 0.1" in text, text
    assert "ratio_instructions: 0.3   <- ok: 0.3 vs target <= 0.5" in text, text
    assert "verdict: 1 of 4 figures missed their target: uswitch.ratio_instructions 0.2 > 0.1" in text, text


def test_a_failed_section_is_not_ok():
    assert not bench.BenchReport([bench.Section("snapshot", error="QMP gone")]).ok


def test_progress_lines_come_before_each_section_and_before_the_linux_download(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "_linux_cached", lambda: False)
    monkeypatch.setattr(bench, "bench_syscall", lambda iters: bench.Section(
        "syscall", {"ratio_instructions": 0.7, "target_ratio_max": 0.5}))
    report = bench.run_all(quick=True, out=str(tmp_path / "b.json"), only=["syscall"], progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("bench: the Linux baseline is not cached yet: fetching"), err
    assert err[1] == "bench: [1/1] syscall: getpid round trip vs Linux ...", err
    assert err[2].startswith("bench: [1/1] syscall: done in ") and "MISSED" in err[2], err
    assert not report.ok
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["syscall"]["verdicts"]["ratio_instructions"] == {"value": 0.7, "target_max": 0.5, "ok": False}


@pytest.mark.parametrize("only", ["bogus", "boot,nope", ","])
def test_an_unknown_section_is_one_error(only):
    assert_one_clear_error(invoke("bench", "--only", only), "--only", "boot,harness,snapshot")


def test_the_bench_task_prints_progress_and_a_verdict(tmp_path):
    proc = invoke("bench", "--quick", "--only", "harness", "--out", str(tmp_path / "b.json"), timeout=300)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert "bench: [1/1] harness: boot-to-poweroff" in proc.stderr, out
    assert "ratio_harness_over_bare" in proc.stdout and "target <= 1.3" in proc.stdout, out
    assert proc.returncode == (0 if "verdict: the one figure with a target met it" in proc.stdout else 1), out
    # and the report of the ratios against their targets beside the JSON (toolchain/experiments/report.py)
    png = (tmp_path / "bench-ratios.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, len(png)
    assert "| harness.ratio_harness_over_bare |" in (tmp_path / "bench.md").read_text()
