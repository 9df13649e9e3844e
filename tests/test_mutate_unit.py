"""`invoke mutate`'s pure parts: the catalogue format, selection, the report; and the
catalogue itself (every patch parses, applies to today's tree, names real tests)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from toolchain import mutate
from toolchain.mutate import Mutant, MutantError, Outcome, Report, parse_mutant, select
from toolchain.paths import ROOT

DIFF = """\
--- a/kernel/syscall.c
+++ b/kernel/syscall.c
@@ -1,3 +1,3 @@
 a
-b
+c
 d
"""


def entry(tmp_path: Path, text: str, name: str = "syscall-demo") -> Path:
    path = tmp_path / f"{name}.patch"
    path.write_text(text)
    return path


def test_a_patch_with_its_header_parses_into_a_mutant(tmp_path):
    m = parse_mutant(entry(tmp_path, "# Off-by-one: the bound.\n# tests: tests/a.py tests/b.py::t\n"
                                     "# equivalent: nothing can tell\n" + DIFF))
    assert (m.name, m.area, m.what) == ("syscall-demo", "syscall", "Off-by-one: the bound.")
    assert m.tests == ("tests/a.py", "tests/b.py::t") and m.equivalent == "nothing can tell"
    assert m.files == ("kernel/syscall.c",) and m.patch == DIFF


def test_without_tests_and_equivalent_lines_the_whole_suite_must_kill_it(tmp_path):
    m = parse_mutant(entry(tmp_path, "# A bug.\n" + DIFF))
    assert m.tests == () and m.equivalent == ""


@pytest.mark.parametrize("text, words", [
    (DIFF, "first line must say what the bug is"),
    ("# tests: tests/a.py\n" + DIFF, "first line must say what the bug is"),
    ("# A bug.\n# test: tests/a.py\n" + DIFF, "unknown header line '# test: tests/a.py'"),
    ("# A bug.\n# equivalent:\n" + DIFF, "'# equivalent:' needs a value"),
    ("# A bug.\n", "no diff"),
    ("# A bug.\nstray words\n" + DIFF, ":2: expected '# ...' header lines"),
    ("# A bug.\n--- a/x\n+++ b/x\n", "no diff"),
])
def test_a_malformed_entry_is_one_line_naming_the_file(tmp_path, text, words):
    with pytest.raises(MutantError) as info:
        parse_mutant(entry(tmp_path, text))
    assert words in str(info.value) and "syscall-demo.patch" in str(info.value)
    assert "\n" not in str(info.value)


def mutants(*names: str) -> list[Mutant]:
    return [Mutant(n, Path(f"{n}.patch"), "bug", DIFF, ("kernel/x.c",)) for n in names]


def test_only_takes_areas_names_globs_and_lists_in_catalogue_order():
    ms = mutants("vm-a", "vm-b", "pmm-a", "syscall-no-rewind", "vmx-c")
    names = lambda only: [m.name for m in select(ms, only)]
    assert names("") == [m.name for m in ms]
    assert names("vm") == ["vm-a", "vm-b"]                 # an area, not a prefix of 'vmx'
    assert names("syscall-no-rewind") == ["syscall-no-rewind"]
    assert names("*-a") == ["vm-a", "pmm-a"]
    assert names("pmm, vm-b,vm") == ["vm-a", "vm-b", "pmm-a"]


def test_an_unknown_pattern_is_one_line_listing_the_areas():
    with pytest.raises(MutantError) as info:
        select(mutants("vm-a", "pmm-a"), "vm,nosuch*,zzz")
    assert str(info.value) == ("no mutant matches 'nosuch*', 'zzz' (areas: pmm, vm; "
                               "or a glob on the names, see --list)")


def test_the_score_leaves_equivalent_mutants_out_and_the_json_says_everything(tmp_path):
    report = Report(outcomes=[Outcome("a-1", "killed", killer="tests/t.py::x", ran="named"),
                              Outcome("a-2", "killed"), Outcome("a-3", "killed"),
                              Outcome("b-1", "survived", ran="named+full"),
                              Outcome("c-1", "equivalent", note="why")],
                    baseline_failures=["tests/t.py::flaky"], jobs=2, seconds=12.34)
    assert report.counts() == {"total": 5, "killed": 3, "survived": 1, "equivalent": 1}
    assert report.score == 75.0 and report.survivors == ["b-1"]
    data = json.loads(report.write(tmp_path / "out" / "mutate.json").read_text())
    assert data["score"] == 75.0 and data["survivors"] == ["b-1"] and data["jobs"] == 2
    assert data["baseline"]["failures_deselected"] == ["tests/t.py::flaky"]
    assert data["mutants"][0] == {"name": "a-1", "status": "killed", "what": "", "seconds": 0.0,
                                  "killer": "tests/t.py::x", "ran": "named", "note": "", "flaky": []}
    assert report.summary().splitlines() == [
        "score: 3/4 killed (75.0 %), 1 equivalent, 5 mutants in 12 s", "survivors: b-1"]


def test_an_outcome_line_says_what_killed_it():
    line = mutate.format_outcome(Outcome("vm-a", "killed", seconds=3.2, killer="tests/t.py::x", ran="named"))
    assert line.split() == ["killed", "vm-a", "3", "s", "its", "named", "tests", "by", "tests/t.py::x"]
    assert mutate.format_outcome(Outcome("vm-b", "survived", ran="named+full")).startswith("SURVIVED")


class ScriptedScratch:
    """Stands in for a Scratch: each pytest call pops the next (failures, timed_out)."""

    def __init__(self, *answers) -> None:
        self.answers, self.calls = list(answers), []

    def pytest(self, args, *, stop_first, timeout):
        self.calls.append(list(args))
        return self.answers.pop(0)


def test_a_kill_counts_only_if_the_killer_fails_again_alone():
    flaky: list[str] = []
    s = ScriptedScratch((["tests/t.py::x"], ""), (["tests/t.py::x"], ""))
    assert mutate._killing_run(s, ["tests/t.py"], ["--deselect=tests/t.py::base"], 60, flaky) == \
        ("tests/t.py::x", "failed")
    assert s.calls == [["--deselect=tests/t.py::base", "tests/t.py"], ["tests/t.py::x"]] and flaky == []


def test_a_failure_that_does_not_reproduce_is_deselected_and_the_run_goes_on():
    flaky: list[str] = []
    s = ScriptedScratch((["tests/t.py::timing"], ""), ([], ""), ([], ""))
    assert mutate._killing_run(s, ["tests/t.py"], [], 60, flaky) == ("", "")
    assert flaky == ["tests/t.py::timing"]
    assert s.calls[-1] == ["--deselect=tests/t.py::timing", "tests/t.py"]


def test_a_timeout_or_a_collection_error_kills_without_a_rerun():
    assert mutate._killing_run(ScriptedScratch(([], "timeout after 9 s")), [], [], 9, []) == \
        ("timeout after 9 s", "timeout")
    assert mutate._killing_run(ScriptedScratch((["tests/t.py"], "")), [], [], 9, []) == ("tests/t.py", "failed")


# -- the catalogue in tests/mutants ---------------------------------------------

CATALOGUE = mutate.load_catalogue()
ISSUE_SURVIVORS = {"syscall-no-rewind", "syscall-sleep-returns-at-once", "syscall-sleep-one-tick-early",
                   "env-wait-reaps-before-copyout", "syscall-write-checks-first-chunk",
                   "syscall-cmdline-one-past", "vm-act-last-page-mappable", "symbols-no-addr-minus-1",
                   "elf-total-size-unchecked"}


def test_the_catalogue_covers_every_area():
    assert len(CATALOGUE) >= 30
    assert ISSUE_SURVIVORS <= {m.name for m in CATALOGUE}
    assert {"activation", "syscall", "usercopy", "vm", "pti", "kernmap", "trapasm", "pmm", "sched", "elf",
            "ktap", "console", "symbols"} <= {m.area for m in CATALOGUE}
    touched = {f for m in CATALOGUE for f in m.files}
    assert {"kernel/syscall.c", "kernel/syscallasm.S", "kernel/pti.c", "kernel/kernmap.c",
            "kernel/trapasm.S", "toolchain/ktap.py", "toolchain/console.py", "toolchain/symbols.py"} <= touched


@pytest.mark.skipif(bool(os.environ.get(mutate.FAILURES_ENV)),
                    reason="inside `invoke mutate` the tree carries one of these patches on purpose")
@pytest.mark.parametrize("m", CATALOGUE, ids=lambda m: m.name)
def test_each_mutant_applies_to_this_tree_and_names_real_tests(m):
    """A patch that no longer applies is regenerated: edit the file, `git diff > ...patch`, re-add the header."""
    out = subprocess.run(["git", "apply", "--check", "-"], cwd=ROOT, input=m.patch, capture_output=True, text=True)
    assert out.returncode == 0, f"{m.path.name} no longer applies: {out.stderr.strip()}"
    for test in m.tests:
        assert (ROOT / test.split("::")[0]).is_file(), f"{m.path.name} names {test}"


def test_a_scratch_copy_imports_its_own_toolchain_and_has_no_build(tmp_path):
    scratch = mutate.Scratch(ROOT, tmp_path / "job0")
    scratch.check_imports()
    assert (scratch.dir / "toolchain" / "mutate.py").is_file() and (scratch.dir / "kernel").is_dir()
    assert not (scratch.dir / "build").exists() and not (scratch.dir / ".venv").exists()
    assert not (scratch.dir / ".git").exists()
