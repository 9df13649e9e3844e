"""Record/replay and bisection of experiment trials (toolchain/experiments/rr.py, bisect.py,
experiment instant; docs/toolkit.md "Record and replay").

One small campaign of the deliberately failing workload (tally_buggy: a restart bug that shows
only when the restart lands while the program waits in its sleep) runs once for the module,
every trial recorded under QEMU's rr=record; the tests replay, bisect and refuse on it. The
seed is chosen so that the four trials both pass and fail (trial 1 passes below trial 2, which
fails); the tests only assume that one trial fails and a passing one lies below it.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.errors import RevenantError, UsageError
from toolchain.experiments import engine, get
from toolchain.experiments import rr
from toolchain.experiments.bisect import Contradiction, Probe, search

ROOT = Path(__file__).resolve().parents[1]
INVOKE = Path(sys.executable).with_name("invoke")
SEED = 156


@pytest.fixture(scope="module")
def campaign(kernel_elf, tmp_path_factory):
    root = tmp_path_factory.mktemp("campaigns")
    exp = get("instant")
    camp = engine.run_campaign(exp, seed=SEED, trials=4, options={"workload": "tally_buggy"}, jobs=2,
                               out_root=root, progress=False, report=False, rr_for=rr.recorder(exp))
    return camp


def failing(camp) -> engine.TrialResult:
    """The lowest failing trial with a passing one below it (the one bisect starts from)."""
    ok = [t.params["restart_at"] for t in camp.results if t.verdict == "ok"]
    for t in sorted(camp.results, key=lambda t: t.params["restart_at"]):
        if t.verdict == "wrong" and any(n < t.params["restart_at"] for n in ok):
            return t
    pytest.fail(f"seed {SEED} gave no failing trial above a passing one: "
                f"{[(t.verdict, t.params['restart_at']) for t in camp.results]}")


def test_the_buggy_workload_fails_only_for_some_instants_and_failing_trials_keep_their_recording(campaign):
    verdicts = {t.verdict for t in campaign.results}
    assert {"ok", "wrong"} <= verdicts, [(t.verdict, t.message) for t in campaign.results]
    base = Path(campaign.dir)
    for t in campaign.results:
        if t.verdict == "wrong":
            assert "tally counted 2 steps" in t.message
            assert set(t.artifacts) == {"serial", "rr"}
            assert (base / t.artifacts["rr"]).stat().st_size > 1000
            log = (base / t.artifacts["serial"]).read_text()
            assert log.count("by instant;") == 1 and "restart 2:" not in log
        else:
            assert t.artifacts == {}
            assert not (base / "artifacts" / f"trial-{t.index}").exists()


def test_a_failing_trial_replays_byte_for_byte(campaign):
    t = failing(campaign)
    r = rr.replay(campaign.json_path, t.index)
    assert r.identical, r.render()
    assert r.verdict_replayed == "wrong" and r.recorded_bytes > 500
    assert "tally: steps=2 want=1" in Path(r.replayed_log).read_text()
    assert Path(r.replayed_log) != Path(r.recorded_log)


def test_the_replay_runs_from_the_recording(campaign, tmp_path):
    # A run under -icount shift=0,sleep=off is deterministic by itself, so an identical log
    # alone would not show that the recording was used: cut the recording short and the
    # replay must come apart.
    copy = tmp_path / "camp"
    shutil.copytree(campaign.dir, copy)
    t = failing(campaign)
    rrfile = copy / t.artifacts["rr"]
    rrfile.write_bytes(rrfile.read_bytes()[: rrfile.stat().st_size // 2])
    r = rr.replay(copy / "result.json", t.index)
    assert not r.identical
    assert "error reading the replay data" in r.qemu_error
    assert "DIFFERENT" in r.render()


def test_bisect_narrows_the_failing_instant_to_one_ns(campaign):
    t = failing(campaign)
    b = rr.bisect(campaign.json_path, t.index)
    lo = max(o.params["restart_at"] for o in campaign.results
             if o.verdict == "ok" and o.params["restart_at"] < t.params["restart_at"])
    assert b.start == [lo, t.params["restart_at"]]
    assert lo <= b.passing and b.failing == b.passing + 1 <= t.params["restart_at"]
    ran = {p["ns"]: p for p in b.probes}
    assert not ran[b.passing]["failing"] and ran[b.failing]["failing"]
    assert b.steps == len(b.probes) < 30
    saved = json.loads(Path(b.json_path).read_text())
    assert (saved["passing"], saved["failing"]) == (b.passing, b.failing)
    kept = sorted(p.name for p in Path(b.json_path).parent.iterdir() if p.is_dir())
    assert kept == sorted([f"restart_at-{b.passing}", f"restart_at-{b.failing}"])
    # What the pair means, from the two kept logs: one ns earlier the restart is taken before the
    # program calls sleep_until (during its spin: it passes), one ns later only once it waits in
    # the call (it fails).
    for ns, before in ((b.passing, True), (b.failing, False)):
        log = next((Path(b.json_path).parent / f"restart_at-{ns}").glob("*.log")).read_text()
        taken = int(re.search(rf"^restart: instant {ns} ns taken at (\d+) ns", log, re.M).group(1))
        called = int(re.search(r"^tally: sleep_until from (\d+)", log, re.M).group(1))
        assert (taken < called) is before, (ns, taken, called)


# ------------------------------------------------------------------------------ refusals
def test_a_result_of_another_build_is_refused_naming_both_ids(campaign, tmp_path):
    copy = tmp_path / "camp"
    shutil.copytree(campaign.dir, copy)
    data = json.loads((copy / "result.json").read_text())
    data["build"]["id"] = "ab" * 32
    (copy / "result.json").write_text(json.dumps(data))
    for command in (rr.replay, rr.bisect):
        with pytest.raises(UsageError) as err:
            command(copy / "result.json", failing(campaign).index)
        message = str(err.value)
        assert "\n" not in message and "abababababababab" in message
        assert engine.build_id()[:16] in message


def test_a_trial_the_campaign_does_not_have_is_refused(campaign):
    for command in (rr.replay, rr.bisect):
        with pytest.raises(UsageError, match=r"no trial 99 \(this result has trials 0\.\.3\)"):
            command(campaign.json_path, 99)


def test_a_trial_without_artifacts_is_refused(campaign, tmp_path):
    passed = next(t for t in campaign.results if t.verdict == "ok")
    with pytest.raises(UsageError, match="it passed, and only failing trials keep theirs"):
        rr.replay(campaign.json_path, passed.index)
    with pytest.raises(UsageError, match="did not fail"):
        rr.bisect(campaign.json_path, passed.index)
    copy = tmp_path / "camp"
    shutil.copytree(campaign.dir, copy)
    t = failing(campaign)
    (copy / t.artifacts["rr"]).unlink()
    with pytest.raises(UsageError, match=r"its record/replay file .* is gone"):
        rr.replay(copy / "result.json", t.index)


def edited(campaign, tmp_path, change) -> Path:
    copy = tmp_path / "camp"
    shutil.copytree(campaign.dir, copy)
    data = json.loads((copy / "result.json").read_text())
    change(data, next(t for t in data["trials"] if t["index"] == failing(campaign).index))
    (copy / "result.json").write_text(json.dumps(data))
    return copy / "result.json"


BOTH = (rr.replay, rr.bisect)


@pytest.mark.parametrize("change,words,commands", [
    (lambda d, t: t["params"].update(restart_at="1; poweroff"), "says it ran seed", BOTH),
    (lambda d, t: t["params"].update(restart_at=t["params"]["restart_at"] + 1), "an edited result", BOTH),
    (lambda d, t: t.update(seed=t["seed"] + 1), "an edited result", BOTH),
    (lambda d, t: d["campaign"]["options"].update(workload="nope"), "unknown workload 'nope'", BOTH),
    (lambda d, t: d["campaign"].update(options={}), "make no plan", BOTH),
    (lambda d, t: t["artifacts"].update(rr="../../../../etc/hostname"), "outside the campaign directory",
     (rr.replay,)),             # bisect reruns the plan: it reads no artifact
])
def test_an_edited_result_is_refused_before_anything_runs(campaign, tmp_path, change, words, commands):
    result = edited(campaign, tmp_path, change)
    for command in commands:
        with pytest.raises(UsageError) as err:
            command(result, failing(campaign).index)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_the_replay_task_prints_one_clear_line(campaign):
    proc = subprocess.run([str(INVOKE), "experiment", "replay", str(campaign.json_path), "--trial", "99"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no trial 99" in errors[0], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_instant_checks_its_own_workloads():
    with pytest.raises(UsageError, match="unknown workload 'nope' for experiment instant"):
        get("instant").plan(1, 0, {"workload": "nope"})


# ------------------------------------------------------------------ the search, without QEMU
def fake(boundary: int, taken_error: int = 0, due_error: int = 0, hints: bool = True, safe_every: int = 0):
    """A predicate failing from ``boundary`` on, with the kernel's hints: a failing run's not_due
    is the safe point before its own (one every ``safe_every`` ns; 0: the one just before the
    boundary) off by ``due_error``, a passing run's taken is off by ``taken_error`` (measured:
    0 and 40 to 130)."""
    def run(ns: int) -> Probe:
        fails = ns >= boundary
        if not hints:
            return Probe(ns, fails)
        if fails:
            not_due = boundary - 1 if not safe_every else max(boundary - 1, ns - ns % safe_every - 1)
            return Probe(ns, True, not_due=not_due + due_error)
        return Probe(ns, False, taken=boundary - 1 + taken_error)
    return run


@pytest.mark.parametrize("taken_error,due_error,safe_every", [
    (0, 0, 0), (40, 0, 0), (134, 0, 0), (-40, 7, 0), (7, -5000, 0), (10**6, 10**6, 0), (40, 0, 100), (40, 0, 3)])
def test_search_finds_the_exact_boundary_whatever_the_hints_say(taken_error, due_error, safe_every):
    rng = random.Random(f"{taken_error}/{due_error}/{safe_every}")
    for _ in range(50):
        boundary = rng.randint(1, 2_000_000)
        lo, hi = rng.randint(0, boundary - 1), rng.randint(boundary, 3_000_000)
        found = search(lo, hi, fake(boundary, taken_error, due_error, safe_every=safe_every))
        assert (found.passing, found.failing) == (boundary - 1, boundary)
        ran = {p.ns: p.failing for p in found.probes}
        assert ran[boundary - 1] is False and ran[boundary] is True


def test_good_hints_save_runs_and_bad_ones_cost_at_most_twice_as_many():
    with_hints = search(500_000, 1_969_102, fake(1_000_221, 40)).steps
    without = search(500_000, 1_969_102, fake(1_000_221, hints=False)).steps
    dense = search(500_000, 1_969_102, fake(1_000_221, safe_every=3)).steps
    assert with_hints <= 6 and without >= 24 and dense <= 2 * without, (with_hints, without, dense)


def test_search_refuses_endpoints_that_do_not_behave():
    with pytest.raises(Contradiction):
        search(10, 20, fake(5))          # lo fails
    with pytest.raises(Contradiction):
        search(10, 20, fake(50))         # hi passes
    with pytest.raises(ValueError):
        search(20, 10, fake(15))


def test_rr_args():
    assert rr.rr_args(None, 0) == ["-icount", "shift=0,sleep=off"]
    assert rr.rr_args(engine.RR("record", Path("/a,b/t.rr")), 3) == \
        ["-icount", "shift=3,sleep=off,rr=record,rrfile=/a,,b/t.rr"]
    with pytest.raises(ValueError):
        rr.rr_args(engine.RR("play", Path("x")), 0)


def test_a_replay_that_diverges_stalls_and_says_so_in_one_line(campaign, tmp_path, monkeypatch):
    # Another trial's recording: QEMU replays until the run needs an event the file does not
    # have, then waits forever; the replay's own timeout (shortened here) ends it.
    from toolchain.experiments import instant
    monkeypatch.setattr(instant, "TIMEOUT", 4.0)
    copy = tmp_path / "camp"
    shutil.copytree(campaign.dir, copy)
    wrong = [t for t in campaign.results if t.verdict == "wrong"]
    if len(wrong) < 2:
        pytest.skip("the campaign has one failing trial only")
    a, b = wrong[0], wrong[1]
    shutil.copyfile(copy / b.artifacts["rr"], copy / a.artifacts["rr"])
    with pytest.raises(RevenantError, match="the replay stalled") as err:
        rr.replay(copy / "result.json", a.index)
    assert "\n" not in str(err.value)


def test_keep_all_keeps_a_passing_trial_which_replays_too(kernel_elf, tmp_path):
    # The ring under one restart at a drawn instant (2.44 ms: while messages flow): it passes,
    # and with --keep all its recording is kept and replays byte for byte like a failing one's.
    exp = get("instant")
    camp = engine.run_campaign(exp, seed=4, trials=1, options={"workload": "ring"}, jobs=1, keep="all",
                               out_root=tmp_path, progress=False, report=False, rr_for=rr.recorder(exp))
    t = camp.results[0]
    assert t.verdict == "ok", t.message
    assert "taken_ns" in t.figures and set(t.artifacts) == {"serial", "rr"}
    r = rr.replay(camp.json_path, 0)
    assert r.identical and r.verdict_replayed == "ok", r.render()
