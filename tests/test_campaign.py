"""The campaign engine (toolchain/experiments/engine.py) on the cheapest real experiment: fuzz
boots of 2,000 random system calls (a quarter of a second each). Two jobs in parallel; shards
merged back equal the unsharded campaign; merge refuses what is not one campaign's shards; the
keep policy; the plots and report.md."""
from __future__ import annotations

import json
import shutil
import struct
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from test_restart import invoke
from toolchain.errors import UsageError
from toolchain.experiments import engine, fuzz, get, report

qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                          reason="qemu-system-x86_64 not installed (run ci/bootstrap)")
SIZE = {"size": 2000}
SEED = 7
N = 5


class Concurrency:
    """The real fuzz experiment, counting how many of its trials run at once."""

    def __init__(self) -> None:
        self.inner = fuzz.EXPERIMENT
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def run(self, plan, workdir, rr):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return self.inner.run(plan, workdir, rr)
        finally:
            with self.lock:
                self.now -= 1


def campaign(tmp: Path, **kw) -> engine.Campaign:
    # one job unless the test is about two: the suite's other workers boot QEMUs too
    args = dict(seed=SEED, trials=N, options=SIZE, jobs=1, progress=False, out_root=tmp)
    return engine.run_campaign(kw.pop("exp", fuzz.EXPERIMENT), **{**args, **kw})


def verdicts(c: engine.Campaign) -> List[tuple]:
    return [(r.index, r.seed, r.params, r.verdict) for r in c.results]


@pytest.fixture(scope="module")
def whole(kernel_elf, tmp_path_factory):
    """The unsharded campaign, run with two jobs and its concurrency counted."""
    counted = Concurrency()
    c = campaign(tmp_path_factory.mktemp("whole"), exp=counted, jobs=2)
    return c, counted.most


@pytest.fixture(scope="module")
def shards(whole, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    return [campaign(tmp, shard=engine.Shard(i, 2)) for i in (1, 2)]


@qemu
def test_two_jobs_run_trials_at_once_and_the_json_holds_every_trial(whole):
    c, most = whole
    assert most == 2 and c.run["jobs"] == 2, (most, c.run)
    assert c.ok and [r.index for r in c.results] == list(range(N)), c.results
    assert [r.seed for r in c.results] == [engine.trial_seed("fuzz", SEED, k) for k in range(N)]
    assert [r.params for r in c.results] == [fuzz.EXPERIMENT.plan(SEED, k, SIZE).params for k in range(N)]
    assert c.build["id"] == engine.build_id() and c.summary["counts"]["ok"] == N
    assert all(r.artifacts == {} for r in c.results)         # --keep failing: nothing failed
    assert not (Path(c.dir) / "artifacts").exists()
    again = engine.load(c.json_path)
    assert again.to_json() == c.to_json()
    assert json.loads(c.json_path.read_text())["argv"][-1] == "run=fuzz:0:2000,hello"


@qemu
def test_two_shards_merged_equal_the_unsharded_campaign(whole, shards, tmp_path):
    c, _ = whole
    assert [r.index for r in shards[0].results] == [0, 2, 4] and [r.index for r in shards[1].results] == [1, 3]
    merged = engine.merge(shards, tmp_path / "merged")
    assert verdicts(merged) == verdicts(c) and merged.shard is None and merged.ok
    assert engine.load(tmp_path / "merged").to_json()["trials"] == merged.to_json()["trials"]
    assert (tmp_path / "merged" / "outcome.png").is_file()


def _edited(c: engine.Campaign, tmp: Path, name: str, edit) -> engine.Campaign:
    data = c.to_json()
    edit(data)
    path = tmp / name / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return engine.load(path)


@qemu
@pytest.mark.parametrize("what, edit, words", [
    ("build", lambda d: d["build"].update(id="0" * 64), ["different build ids", "0" * 64]),
    ("seed", lambda d: d["campaign"].update(seed=8), ["different campaign seeds", "7", "8"]),
    ("options", lambda d: d["campaign"]["options"].update(size=3000), ["different options"]),
    ("experiment", lambda d: d.update(experiment="leak"), ["different experiments", "fuzz", "leak"]),
    ("trials", lambda d: d["campaign"].update(trials=6), ["different campaign sizes"]),
    ("twice", lambda d: d["shard"].update(index=1), ["shard 1/2 given twice"]),
    ("split", lambda d: d["shard"].update(count=3), ["different splits"]),
    ("unsharded", lambda d: d.update(shard=None), ["is not a shard", "the whole campaign"]),
])
def test_merge_refuses_what_is_not_the_shards_of_one_campaign(shards, tmp_path, what, edit, words):
    other = _edited(shards[1], tmp_path, what, edit)
    with pytest.raises(UsageError) as err:
        engine.merge([shards[0], other], tmp_path / "merged")
    text = str(err.value)
    assert "\n" not in text and all(w in text for w in words), text
    assert not (tmp_path / "merged").exists()


@qemu
def test_merge_refuses_an_incomplete_set_and_a_trial_two_shards_claim(shards, tmp_path):
    as_thirds = [_edited(s, tmp_path, f"third{i}", lambda d: d["shard"].update(count=3))
                 for i, s in enumerate(shards)]
    with pytest.raises(UsageError, match=r"incomplete: shard 3/3 missing"):
        engine.merge(as_thirds)

    def claim_trial_0(d):
        d["trials"][0]["index"] = 0
    with pytest.raises(UsageError, match=r"not exactly 0\.\.4"):
        engine.merge([shards[0], _edited(shards[1], tmp_path, "claims", claim_trial_0)])


@qemu
def test_the_cli_runs_shards_and_merges_them_with_one_clear_refusal(kernel_elf, tmp_path):
    outs = []
    for i in (1, 2):
        proc = invoke("experiment", "fuzz", "--trials", "3", "--size", "2000", "--seed", "3", "--jobs", "1",
                      "--shard", f"{i}/2", timeout=300)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0 and f"shard={i}/2" in output, output
        assert "ETA" not in output and "\x1b[" not in output      # no progress bar without a terminal
        outs.append(next(line.split(":", 1)[1].strip() for line in output.splitlines()
                         if line.strip().startswith("json:")))
    proc = invoke("experiment", "merge", *outs, "--out", str(tmp_path / "m"))
    assert proc.returncode == 0 and "experiment fuzz seed=3 trials=3" in proc.stdout, proc.stdout + proc.stderr
    assert [t["index"] for t in json.loads((tmp_path / "m" / "result.json").read_text())["trials"]] == [0, 1, 2]
    bad = Path(outs[1]).read_text().replace(json.loads(Path(outs[1]).read_text())["build"]["id"], "f" * 64)
    (tmp_path / "bad.json").write_text(bad)
    proc = invoke("experiment", "merge", outs[0], str(tmp_path / "bad.json"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: merge: different build ids") and "f" * 64 in line, line
    for out in outs:
        shutil.rmtree(Path(out).parent)


class HalfFuzz(fuzz.Fuzz):
    """A failing mode: the kernel is asked for half the calls the plan (and the judge) expect."""

    def append(self, fuzz_seed: int, calls: int) -> str:
        return super().append(fuzz_seed, calls // 2)


@qemu
@pytest.mark.parametrize("keep", ["failing", "all", "none"])
def test_the_keep_policy_keeps_the_failing_trials_files(kernel_elf, tmp_path, keep):
    ok = campaign(tmp_path / "ok", trials=2, keep=keep)
    bad = campaign(tmp_path / "bad", trials=2, keep=keep, exp=HalfFuzz())
    assert ok.ok and not bad.ok and {r.verdict for r in bad.results} == {"wrong"}, bad.results
    assert all("no `fuzz: done 2000 calls`" in r.message for r in bad.results)
    for c, kept in ((ok, keep == "all"), (bad, keep != "none")):
        for r in c.results:
            if kept:
                log = Path(c.dir) / r.artifacts["serial"]
                assert not Path(r.artifacts["serial"]).is_absolute() and log.is_file(), r.artifacts
                assert "fuzz: done" in log.read_text()
            else:
                assert r.artifacts == {} and not (Path(c.dir) / "artifacts" / f"trial-{r.index}").exists()
    if keep == "failing":
        assert "trial 0 (seed " in report.render(bad) and "serial artifacts/trial-0/" in report.render(bad)


def png_size(path: Path) -> tuple:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@qemu
def test_the_campaign_writes_plots_and_a_markdown_table_and_report_redraws_them(whole):
    c, _ = whole
    d = Path(c.dir)
    for name in ("outcome.png", "figures.png"):
        width, height = png_size(d / name)
        assert 400 <= width <= 2000 and 250 <= height <= 2000, (name, width, height)
        assert 5_000 < (d / name).stat().st_size < 1_000_000
    md = (d / "report.md").read_text()
    assert "| verdict | trials |" in md and f"| ok | {N} |" in md, md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "| ok |" in line and "fuzz" not in line]
    assert len([r for r in rows if r.split("|")[1].strip().isdigit()]) == N, md
    assert "![outcome](outcome.png)" in md
    (d / "outcome.png").unlink()
    proc = invoke("report", str(c.json_path))
    assert proc.returncode == 0 and "outcome.png" in proc.stdout, proc.stdout + proc.stderr
    png_size(d / "outcome.png")


def test_report_draws_bench_ratios_against_their_targets(tmp_path):
    bench = {"syscall": {"ratio_instructions": 0.3, "target_ratio_max": 0.5,
                         "verdicts": {"ratio_instructions": {"value": 0.3, "target_max": 0.5, "ok": True}}},
             "harness": {"verdicts": {"ratio_harness_over_bare": {"value": 1.6, "target_max": 1.3, "ok": False}}},
             "boot": {"error": "no qemu"}}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    written = report.redraw(path)
    assert written.plots == [tmp_path / "bench-ratios.png"] and png_size(written.plots[0])[0] >= 400
    md = (tmp_path / "bench.md").read_text()
    assert "| syscall.ratio_instructions | 0.3 | 0.5 | ok |" in md
    assert "| harness.ratio_harness_over_bare | 1.6 | 1.3 | MISSED |" in md and "boot: no qemu" in md


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", ["(a JSON list)"]),
    ("{not json", ["not a JSON"]),
    ('{"format": 1, "experiment": "fuzz"}', ["not a campaign result", "KeyError"]),
    ('{"format": 9, "experiment": "fuzz"}', ["format 1", "format 9"]),
    ('{"format": 1, "experiment": "fuzz", "campaign": {"seed": 1, "trials": 2, "options": {}}, "build": {},'
     ' "trials": [{"index": "x", "seed": 1, "params": {}, "verdict": "ok"}]}', ["wrong type"]),
    ('{"format": 1, "experiment": "fuzz", "campaign": {"seed": 1, "trials": 2, "options": {}}, "build": {},'
     ' "trials": [{"index": 0, "seed": 1, "params": {}, "verdict": "fine"}]}', ["unknown verdict"]),
    ('{"format": 1, "experiment": "fuzz", "campaign": {"seed": 1, "trials": 2, "options": {}}, "build": {},'
     ' "trials": [{"index": 0, "seed": 1, "params": {}, "verdict": "ok", "extra": 1}]}', ["TypeError", "extra"]),
])
def test_report_and_merge_refuse_a_file_that_is_not_a_result_in_one_line(tmp_path, text, words):
    path = tmp_path / "x.json"
    path.write_text(text)
    for reader in (report.redraw, engine.load):
        with pytest.raises(UsageError) as err:
            reader(path)
        assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), err.value


def test_shards_split_a_campaign_into_disjoint_interleaved_slices():
    for count in range(1, 6):
        slices = [engine.indices(23, engine.Shard(i, count)) for i in range(1, count + 1)]
        assert sorted(k for s in slices for k in s) == list(range(23))
        assert all(k % count == i for i, s in enumerate(slices) for k in s)
    assert engine.parse_shard("2/4") == engine.Shard(2, 4) and engine.parse_shard("") is None
    for bad in ("0/4", "5/4", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(UsageError, match="--shard"):
            engine.parse_shard(bad)


def test_a_plan_is_a_pure_function_of_campaign_seed_and_index():
    for name in ("fuzz", "loadvm", "leak"):
        exp = get(name)
        opts = engine.check_options(exp, {})
        plans = [exp.plan(11, k, opts) for k in range(50)]
        assert plans == [exp.plan(11, k, opts) for k in range(50)]
        assert len({p.seed for p in plans}) == 50 and exp.plan(12, 0, opts).seed != plans[0].seed


def test_the_build_id_changes_with_the_kernel_and_with_any_user_program(tmp_path):
    kernel, user = tmp_path / "kernel.elf", tmp_path / "user"
    user.mkdir()
    kernel.write_bytes(b"k1")
    (user / "hello.elf").write_bytes(b"h1")
    first = engine.build_id(kernel, user)
    assert engine.build_id(kernel, user) == first and len(first) == 64
    (user / "hello.elf").write_bytes(b"h2")
    second = engine.build_id(kernel, user)
    kernel.write_bytes(b"k2")
    assert len({first, second, engine.build_id(kernel, user)}) == 3
    (user / "ring.elf").write_bytes(b"")
    assert engine.build_id(kernel, user) not in (first, second)


def test_an_option_the_experiment_lacks_is_refused_before_anything_runs():
    with pytest.raises(UsageError, match="experiment leak does not take --workload"):
        engine.check_options(get("leak"), {"workload": "ring"})
    with pytest.raises(UsageError, match="--keep takes failing, all, none"):
        engine.run_campaign(get("fuzz"), keep="some")


def test_the_progress_bar_shows_done_failed_and_eta_on_a_terminal(capsys):
    from toolchain.experiments.progress import Progress

    class R:
        failing = True
    with Progress("fuzz", 2, enabled=True) as bar:
        bar.advance(R())
        bar.advance(object())
    err = capsys.readouterr().err
    assert "2/2" in err and "failed: 1" in err and "ETA" in err, err
    with Progress("fuzz", 2) as quiet:             # stderr is not a terminal under pytest
        quiet.advance(R())
    assert capsys.readouterr().err == "" and not sys.stderr.isatty()


class SeesRR(fuzz.Fuzz):
    """The real fuzz trial, noting the RR the engine handed it (rr.py's hook: rr_for)."""

    def __init__(self) -> None:
        self.seen = {}

    def run(self, plan, workdir, rr):
        self.seen[plan.index] = (rr, workdir)
        return super().run(plan, workdir, None)


@qemu
def test_the_engine_hands_each_trial_the_rr_that_rr_for_gives_it(kernel_elf, tmp_path):
    exp = SeesRR()
    c = campaign(tmp_path, trials=2, exp=exp,
                 rr_for=lambda plan, workdir: engine.RR("record", workdir / f"t{plan.index}.rr"))
    assert c.ok and sorted(exp.seen) == [0, 1]
    for k, (rr, workdir) in exp.seen.items():
        assert rr == engine.RR("record", Path(c.dir) / "artifacts" / f"trial-{k}" / f"t{k}.rr"), rr
        assert workdir == Path(c.dir) / "artifacts" / f"trial-{k}"
