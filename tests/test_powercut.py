"""The powercut and upgrade experiments (toolchain/experiments/powercut.py, upgrade.py), small N.

What tests/test_checkpoint.py and tests/test_restore.py already cover is not repeated here:
test_checkpoint cuts after each of the 7 write steps and reads the disk (no boot after);
test_restore SIGKILLs after a few commits and boots again (clockwatch, the ring, build B).
Here each of the 7 steps is cut and the machine booted again on that disk until the workload
ends, and the verdict is the experiment's: every program line of the uninterrupted run, once,
in order, over all boots, the same checksum, and repeats only inside the documented release
window (step 6: the output is on the console, its release mark not yet on the disk). Under
-icount the kernel cut lands at the same point of the workload on every run, so each
expectation below is exact. The verdict logic itself is tested without QEMU on made-up logs.
"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain import paths
from toolchain.experiments import engine, get
from toolchain.experiments.powercut import STEPS, Boot, judge

QEMU = shutil.which("qemu-system-x86_64") is not None and shutil.which("qemu-img") is not None
needs_qemu = pytest.mark.skipif(not QEMU, reason="qemu-system-x86_64 / qemu-img not installed (run ci/bootstrap)")
SIZE = 24                       # work units per trial: a boot is a few seconds under -icount
BY_HAND = paths.ROOT / "ci" / "powercut-by-hand.py"


# ------------------------------------------------------------ the verdict, on made-up logs
def unit(k: int, s: str = "") -> str:
    return f"powerwork: unit {k} sum {s or format(k * 7919, '016x')}"


EXPECTED = [unit(k) for k in range(4)] + ["powerwork: done units=4 checksum=00000000000059c4"]


def boots(*outputs, windows=(), cut_last=False) -> list:
    """One Boot per list of program lines; every boot but the last was cut."""
    out = []
    for i, lines in enumerate(outputs):
        last = i == len(outputs) - 1
        lines = list(lines) + (["revenant: poweroff status=0"] if last and not cut_last else [])
        b = Boot(lines, f"boot{i}.log", 33 if last else 37, None if last and not cut_last else "step")
        b.window = list(windows[i]) if i < len(windows) else []
        out.append(b)
    return out


def test_an_uninterrupted_looking_run_across_a_cut_is_ok():
    v = judge(boots(EXPECTED[:2], EXPECTED[2:]), EXPECTED, 4)
    assert v.verdict == "ok", v.message
    assert (v.figures["lost"], v.figures["doubled"], v.figures["repeated_lines"]) == (0, 0, 0)
    assert v.figures["cuts"] == 1 and v.figures["boots"] == 2


def test_a_unit_shown_twice_is_doubled_and_one_never_shown_is_lost():
    v = judge(boots(EXPECTED[:3], EXPECTED[2:]), EXPECTED, 4)
    assert v.verdict == "wrong" and v.figures["doubled"] == 1 and v.figures["repeated_lines"] == 1, v
    v = judge(boots(EXPECTED[:1], EXPECTED[2:]), EXPECTED, 4)
    assert v.verdict == "wrong" and v.figures["lost"] == 1, v


def test_a_repeat_inside_the_release_window_is_counted_apart_and_only_once():
    # Boot 1 showed unit 2, the disk's held output past the release mark still holds it: the
    # restore shows it again. Allowed once; a third copy is a double.
    ok = judge(boots(EXPECTED[:3], EXPECTED[2:], windows=[[EXPECTED[2]]]), EXPECTED, 4)
    assert ok.verdict == "ok" and ok.figures["window_repeats"] == 1 and ok.figures["doubled"] == 0, ok
    bad = judge(boots(EXPECTED[:3], [EXPECTED[2]] + EXPECTED[2:], windows=[[EXPECTED[2]]]), EXPECTED, 4)
    assert bad.verdict == "wrong" and bad.figures["doubled"] == 1, bad
    # A window of a unit the cut boot never showed allows nothing.
    bad = judge(boots(EXPECTED[:2], EXPECTED[1:], windows=[[EXPECTED[2]]]), EXPECTED, 4)
    assert bad.verdict == "wrong" and bad.figures["window_repeats"] == 0, bad


def test_another_sum_another_final_line_or_no_clean_poweroff_is_wrong():
    other = [unit(0), unit(1, "ffffffffffffffff")] + EXPECTED[2:]
    assert "another sum" in judge(boots(other[:2], other[2:]), EXPECTED, 4).message
    assert "final line" in judge(boots(EXPECTED[:2], EXPECTED[2:4]), EXPECTED, 4).message
    v = judge(boots(EXPECTED[:2], EXPECTED[2:], cut_last=False)[:1] + [Boot(EXPECTED[2:], "b", 0)], EXPECTED, 4)
    assert "power off cleanly" in v.message, v


def test_out_of_order_units_are_wrong_and_a_run_never_cut_is_late():
    v = judge(boots([EXPECTED[1], EXPECTED[0]], EXPECTED[2:]), EXPECTED, 4)
    assert v.verdict == "wrong" and "order" in v.message, v
    v = judge(boots(EXPECTED), EXPECTED, 4)
    assert v.verdict == "late", v


def test_a_torn_line_must_be_part_of_the_release_window():
    b = boots(EXPECTED[:2], EXPECTED[2:], windows=[[EXPECTED[2]]])
    b[0].torn = EXPECTED[2][:20]
    assert judge(b, EXPECTED, 4).verdict == "ok"
    b[0].window = []
    assert "tore a line" in judge(b, EXPECTED, 4).message


def test_plans_are_pure_and_steps_mode_cycles_through_every_step():
    exp = get("powercut")
    opts = {"size": SIZE, "cuts": "steps"}
    plans = [exp.plan(9, k, opts) for k in range(STEPS)]
    assert plans == [exp.plan(9, k, opts) for k in range(STEPS)]
    assert [p.params["cuts"][0]["step"] for p in plans] == list(range(1, STEPS + 1))
    mixed = [exp.plan(9, k, {"size": 120, "cuts": "mixed"}) for k in range(2 * STEPS)]
    assert sorted(p.params["cuts"][0]["step"] for p in mixed[::2]) == list(range(1, STEPS + 1))
    assert all(p.params["cuts"][0]["kind"] == "kill" for p in mixed[1::2])


# ------------------------------------------------------------ real QEMU, real disks
@pytest.fixture(scope="module")
def steps_campaign(kernel_elf, tmp_path_factory) -> engine.Campaign:
    """powercut, one kernel cut per trial at step K+1 (K = 0..6), booted again until the end."""
    return engine.run_campaign(get("powercut"), seed=2026, trials=STEPS, options={"size": SIZE, "cuts": "steps"},
                               jobs=2, keep="all", out_root=tmp_path_factory.mktemp("powercut"),
                               progress=False, report=False)


@needs_qemu
def test_a_cut_after_each_write_step_then_a_boot_on_the_same_disk_loses_and_doubles_nothing(steps_campaign):
    camp = steps_campaign
    assert camp.ok, [(r.index, r.verdict, r.message) for r in camp.results]
    for r in camp.results:
        step = r.index + 1
        f = r.figures
        assert r.verdict == "ok", (step, r.message)
        assert (f["lost"], f["doubled"], f["repeated_lines"]) == (0, 0, 0), (step, f)
        assert f["cuts"] == f["step_cuts"] == 1, (step, f)
        log = (Path(camp.dir) / r.artifacts["serial_boot1"]).read_text()
        assert f"checkpoint: cut after step {step} " in log, step
        # Every cut comes after at least one commit: the next boot restores, never boots clean.
        assert f["restores"] == 1 and f["clean_boots"] == 0, (step, f)
        # Only a cut between the console and the release mark (after step 6) shows held output
        # again; after step 7 the mark is on the disk and the restore shows nothing twice.
        assert (f["window_repeats"] > 0) == (step == 6), (step, f)
    summary = camp.summary["figures"]
    assert summary["lost"]["total"] == summary["doubled"]["total"] == summary["repeated_lines"]["total"] == 0


@needs_qemu
def test_the_json_lets_a_plain_script_repeat_a_trial_with_qemu_and_kill(steps_campaign, tmp_path):
    data = json.loads(camp_json(steps_campaign).read_text())
    assert "{disk}" in " ".join(data["argv"]) and "{append}" in data["argv"] and "{kernel}" in data["argv"]
    assert data["expected"].startswith(f"powerwork: done units={SIZE} checksum=")
    assert data["setup"]["disk_create"][:3] == ["qemu-img", "create", "-f"]
    # Kernel cuts as the campaign ran them: after step 5, and after step 6 (the release window:
    # the script allows, from the logs alone, what the next boot's restore shows again).
    for k in (4, 5):
        out = by_hand(camp_json(steps_campaign), k)
        assert out.returncode == 0 and f"trial {k}: ok: 1 cut(s)" in out.stdout, out.stdout + out.stderr
    # A SIGKILL from the script itself.
    killed = copy.deepcopy(data)
    killed["trials"][0]["params"]["cuts"] = [{"kind": "kill", "after": 3, "step": 0, "delay_ms": 0.0}]
    path = tmp_path / "killed.json"
    path.write_text(json.dumps(killed))
    out = by_hand(path, 0)
    assert out.returncode == 0 and "trial 0: ok: 1 cut(s)" in out.stdout, out.stdout + out.stderr
    # The script can say no: an expected line the workload never prints.
    wrong = copy.deepcopy(data)
    wrong["expected"] = "powerwork: done units=1 checksum=0"
    path.write_text(json.dumps(wrong))
    out = by_hand(path, 0)
    assert out.returncode == 1 and "WRONG" in out.stdout, out.stdout


def camp_json(camp: engine.Campaign) -> Path:
    return Path(camp.dir) / "result.json"


def by_hand(result: Path, k: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BY_HAND), str(result), "--trial", str(k)],
                          capture_output=True, text=True, timeout=300)


@needs_qemu
def test_upgrade_checkpoints_under_build_a_and_finishes_under_build_b(kernel_elf, tmp_path):
    # Two trials: a cut after step 1 and after step 2 of a checkpoint under A; B restores the
    # older one, the workload finishes with A's uninterrupted lines.
    camp = engine.run_campaign(get("upgrade"), seed=2026, trials=2, options={"size": SIZE, "cuts": "steps"},
                               jobs=2, keep="all", out_root=tmp_path, progress=False, report=False)
    assert camp.ok, [(r.index, r.verdict, r.message) for r in camp.results]
    assert set(camp.setup["kernels"]) == {"A", "B"} and camp.setup["kernels"]["A"] != camp.setup["kernels"]["B"]
    for r in camp.results:
        assert r.verdict == "ok" and r.figures["restores"] == 1 and r.figures["doubled"] == 0, r
        after = (Path(camp.dir) / r.artifacts["serial_boot2"]).read_text()
        assert "revenant: build B" in after and "tick 250 Hz" in after, after[-2000:]
        before = (Path(camp.dir) / r.artifacts["serial_boot1"]).read_text()
        assert "revenant: build B" not in before and "tick 100 Hz" in before


def test_the_cli_names_the_experiments_and_refuses_their_bad_options():
    proc = subprocess.run([sys.executable, "-m", "invoke", "experiment", "powercut", "--workload", "x"],
                          cwd=paths.ROOT, capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1 and out.count("\n") == 0 and "does not take --workload" in out, out
    proc = subprocess.run([sys.executable, "-m", "invoke", "experiment", "nope"], cwd=paths.ROOT,
                          capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    assert "powercut" in out and "upgrade" in out, out


def test_a_torn_last_line_is_read_from_the_raw_log_not_the_console(tmp_path):
    # The console completes a partial last line at EOF; only the log says the cut tore it.
    from toolchain.experiments.powercut import _ends_a_line
    log = tmp_path / "boot.log"
    log.write_bytes(b"powerwork: unit 1 sum 00\npowerwork: unit 2 su")
    assert not _ends_a_line(log)
    log.write_bytes(b"powerwork: unit 1 sum 00\n")
    assert _ends_a_line(log)


@needs_qemu
def test_a_cut_in_the_power_off_checkpoint_then_a_boot_finds_the_workload_finished(kernel_elf, tmp_path):
    # The last checkpoint of a run is the one its clean power-off takes (nothing running). A cut
    # inside it (after its header is written) leaves a disk whose newest checkpoint says "finished":
    # the next boot shows the held last lines once and is a clean boot; the command line then
    # starts the workload anew, and those lines are not this trial's (after_the_finish).
    from toolchain.experiments.powercut import DISK_SIZE, FINISHED, Cut, workload_append
    from toolchain.machine import create_disk

    exp = get("powercut")
    append = workload_append(SIZE, 10, 1)
    expected = exp.reference(SIZE, kernel_elf)
    whole = exp._boot(kernel_elf, append, create_disk(tmp_path / "whole.qcow2", DISK_SIZE), tmp_path, None, "whole")
    checkpoints = [line for line in whole.lines if line.startswith("checkpoint ")]
    assert checkpoints[-1].endswith("by poweroff"), checkpoints[-3:]
    disk = create_disk(tmp_path / "cut.qcow2", DISK_SIZE)
    first = exp._boot(kernel_elf, append, disk, tmp_path, Cut("step", len(checkpoints) - 1, 4), "boot1")
    assert first.cut == "step" and "checkpoint: cut after step 4 (header written)" in first.lines, first.log
    second = exp._boot(kernel_elf, append, disk, tmp_path, None, "boot2")
    assert any(FINISHED.match(line) for line in second.lines), second.log
    v = judge([first, second], expected, SIZE)
    assert v.verdict == "ok", (v.message, first.log, second.log)
    assert (v.figures["lost"], v.figures["doubled"], v.figures["repeated_lines"]) == (0, 0, 0), v.figures
    assert v.figures["found_finished"] == 1
