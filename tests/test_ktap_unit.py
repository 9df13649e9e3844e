"""The KTAP parser, on serial logs in tests/data/ (two real ones, the others hand-written:
tests/data/README.md says which, and the exact command that regenerates the real ones)
and small inline samples."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from toolchain.ktap import Status, parse
from toolchain.paths import ROOT

DATA = Path(__file__).parent / "data"


def recorded(name: str):
    return parse((DATA / name).read_text())


def statuses(result) -> dict[str, Status]:
    return {name: case.status for name, case in result.flatten()}


def inline(text: str):
    return parse(textwrap.dedent(text).lstrip("\n"))


# -- a passing run ------------------------------------------------------------

def test_a_passing_run_gives_one_entry_per_case_named_suite_dot_case():
    result = recorded("pass.log")
    assert result.found and result.errors == []
    assert statuses(result) == {
        "printf.formats_decimal": Status.PASS,
        "printf.formats_hex": Status.PASS,
        "printf.formats_string": Status.PASS,
        "string.memcpy_copies": Status.PASS,
        "string.strlen_counts": Status.PASS,
    }


def test_suites_are_the_top_level_cases_and_carry_their_plan():
    result = recorded("pass.log")
    assert result.plan == 2
    assert [(s.number, s.name, s.plan, s.status) for s in result.cases] == [
        (1, "printf", 3, Status.PASS), (2, "string", 2, Status.PASS)]


def test_summary_counts_leaf_cases():
    summary = recorded("pass.log").summary()
    assert (summary.total, summary.passed, summary.failed, summary.crashed) == (5, 5, 0, 0)
    assert summary.ok
    assert str(summary).startswith("5 cases, 5 passed, 0 failed")


def test_a_case_log_excerpt_is_its_own_lines():
    result = recorded("pass.log")
    assert result.find("printf.formats_hex").log == ["    ok 2 formats_hex"]
    suite_log = result.find("string").log
    assert suite_log[0] == "    KTAP version 1" and suite_log[-1] == "ok 2 string"


# -- a failing case -----------------------------------------------------------

def test_a_failing_case_keeps_the_diagnostic_lines_printed_before_it():
    result = recorded("fail_diag.log")
    case = result.find("printf.formats_hex")
    assert case.status is Status.FAIL and case.failed
    assert case.diagnostics == ['formats_hex: EXPECTATION FAILED at kernel/printf_test.c:42',
                                'expected "0x2a", got "0x2A"']
    assert result.find("printf.formats_decimal").diagnostics == []
    assert result.find("printf.formats_string").diagnostics == []


def test_a_failing_case_fails_its_suite_and_the_summary():
    result = recorded("fail_diag.log")
    assert result.cases[0].status is Status.FAIL
    summary = result.summary()
    assert (summary.passed, summary.failed) == (2, 1) and not summary.ok
    assert not result.ok and result.errors == []


# -- a crash in the middle of a suite ---------------------------------------

def test_results_missing_from_the_plan_are_crashed_cases_numbered_by_the_plan():
    result = recorded("crash_mid_suite.log")
    vm = result.find("vm")
    assert [(c.number, c.display_name, c.status) for c in vm.subtests] == [
        (1, "maps_page", Status.PASS), (2, "unmaps_page", Status.PASS),
        (3, "walks_table", Status.PASS), (4, "#4", Status.CRASHED), (5, "#5", Status.CRASHED)]


def test_a_suite_without_its_result_line_is_crashed_and_so_are_the_suites_after_it():
    result = recorded("crash_mid_suite.log")
    assert [(s.display_name, s.status) for s in result.cases] == [
        ("printf", Status.PASS), ("vm", Status.CRASHED), ("#3", Status.CRASHED)]
    summary = result.summary()
    assert (summary.passed, summary.crashed) == (5, 3)


def test_a_crashed_case_excerpt_is_the_log_tail_with_the_panic():
    result = recorded("crash_mid_suite.log")
    for name in ("vm.#4", "vm.#5", "#3"):
        tail = result.find(name).log
        assert any(line.startswith("PANIC: page fault") for line in tail), name
        assert tail[-1] == "end of panic"
    assert result.find("vm.#4").log[0] == "PANIC: page fault at 0x0000000000000000 (error 0x2)"


def test_backtrace_frames_are_not_mistaken_for_diagnostics():
    result = recorded("crash_mid_suite.log")
    assert [case.diagnostics for _, case in result.walk() if case.failed] == [[], [], [], []]


def test_a_crash_is_reported_as_a_parse_error_too():
    errors = recorded("crash_mid_suite.log").errors
    assert any("plan 1..5 but only 3 results" in e for e in errors)
    assert any("missing result line for suite 'vm'" in e for e in errors)
    assert any("plan 1..3 but only 2 results" in e for e in errors)


# -- directives ---------------------------------------------------------------

def test_skip_todo_and_xfail_directives_set_status_and_reason():
    result = recorded("directives.log")
    cases = {name: case for name, case in result.flatten()}
    assert cases["features.has_sse"].status is Status.PASS
    assert (cases["features.has_smap"].status, cases["features.has_smap"].reason) == \
        (Status.SKIP, "cpu lacks SMAP")
    assert (cases["features.fpu_state"].status, cases["features.fpu_state"].reason) == \
        (Status.TODO, "not written yet")
    assert cases["features.divide_by_zero_traps"].status is Status.XFAIL
    assert (cases["features.la57"].status, cases["features.la57"].reason) == (Status.SKIP, "")


def test_a_skipped_suite_with_an_empty_plan_is_one_skipped_leaf():
    result = recorded("directives.log")
    acpi = result.find("acpi")
    assert (acpi.status, acpi.reason, acpi.plan, acpi.subtests) == \
        (Status.SKIP, "no ACPI tables under PVH", 0, [])


def test_todo_and_xfail_are_not_failures():
    result = recorded("directives.log")
    summary = result.summary()
    assert (summary.passed, summary.skipped, summary.todo, summary.xfail) == (1, 3, 1, 1)
    assert summary.ok and result.ok


@pytest.mark.parametrize("line, status, reason", [
    ("ok 1 t # TIMEOUT after 5 s", Status.FAIL, "TIMEOUT after 5 s"),
    ("not ok 1 t # ERROR setup failed", Status.FAIL, "ERROR setup failed"),
    ("ok 1 t # skip lower case", Status.SKIP, "lower case"),
    ("ok 1 - t", Status.PASS, ""),
    ("not ok 1 t # a plain comment", Status.FAIL, "a plain comment"),
])
def test_each_result_line_form_gives_its_status_and_reason(line, status, reason):
    case = parse(f"KTAP version 1\n1..1\n{line}\n").cases[0]
    assert (case.name, case.status, case.reason) == ("t", status, reason)


# -- noise and other formats --------------------------------------------------

def test_interleaved_kernel_lines_do_not_disturb_the_structure():
    result = recorded("interleaved.log")
    assert result.errors == []
    assert statuses(result) == {"sched.yields": Status.PASS, "sched.preempts": Status.PASS,
                                "timer.ticks": Status.PASS}
    assert result.find("sched.preempts").diagnostics == ["preempts: waited 3 ticks"]
    assert result.find("sched.yields").log == ["sched: switching to thread 2", "    ok 1 yields"]


def test_two_space_indentation_and_deeper_nesting():
    result = inline("""
        KTAP version 1
        1..1
          KTAP version 1
          # Subtest: outer
          1..2
            KTAP version 1
            # Subtest: inner
            1..1
            ok 1 leaf
          ok 1 inner
          ok 2 sibling
        ok 1 outer
        """)
    assert result.errors == []
    assert statuses(result) == {"outer.inner.leaf": Status.PASS, "outer.sibling": Status.PASS}


def test_a_tap14_log_with_the_subtest_comment_at_the_parent_level():
    result = inline("""
        TAP version 14
        1..2
        # Subtest: math
            1..1
            ok 1 - adds
        ok 1 - math
        ok 2 - standalone
        """)
    assert result.version == "TAP version 14" and result.errors == []
    assert statuses(result) == {"math.adds": Status.PASS, "standalone": Status.PASS}


def test_the_header_indentation_is_the_base_level():
    result = parse("boot\n  KTAP version 1\n  1..1\n  ok 1 t\nok 9 not ours\n")
    assert statuses(result) == {"t": Status.PASS} and result.errors == []


def test_a_log_without_ktap_is_reported_not_raised():
    result = parse("Revenant kernel booting\nPANIC: early\n")
    assert not result.found and not result.ok
    assert result.errors == ["no KTAP version line in the log"]


def test_carriage_returns_are_ignored():
    result = parse("KTAP version 1\r\n1..1\r\nok 1 t\r\n")
    assert statuses(result) == {"t": Status.PASS} and result.errors == []


def test_a_plan_mismatch_with_too_many_results_is_an_error():
    result = parse("KTAP version 1\n1..1\nok 1 a\nok 2 b\n")
    assert any("plan 1..1 but 2 results" in e for e in result.errors)


def test_out_of_order_numbers_are_an_error():
    result = parse("KTAP version 1\n1..2\nok 1 a\nok 3 b\n")
    assert any("expected result 2, got 3" in e for e in result.errors)


def test_a_suite_that_says_ok_over_a_failed_case_is_an_error_and_not_ok():
    result = inline("""
        KTAP version 1
        1..1
            KTAP version 1
            # Subtest: s
            1..2
            ok 1 a
            not ok 2 b
        ok 1 s
        """)
    assert result.errors == ["suite 's' reported ok but has failed cases"]
    assert statuses(result) == {"s.a": Status.PASS, "s.b": Status.FAIL} and not result.ok


def test_a_second_top_level_header_stops_the_parse():
    result = parse("KTAP version 1\n1..1\nok 1 a\nKTAP version 1\n1..1\nnot ok 1 a\n")
    assert statuses(result) == {"a": Status.PASS}
    assert any("second" in e for e in result.errors)


# -- the pytest plugin, replaying recorded logs (no QEMU) ----------------------

pytest_plugins = ["pytester"]

KTAP_MODULE = "from toolchain.pytest_plugin import ktap_suite\nkernel = ktap_suite()\n"


def replay(pytester, log: str, *args: str):
    pytester.makepyfile(test_k=KTAP_MODULE)
    return pytester.runpytest("-v", "-p", "no:cacheprovider", f"--ktap-replay={DATA / log}", *args)


def test_the_plugin_makes_one_pytest_item_per_kernel_case(pytester):
    result = replay(pytester, "pass.log")
    result.stdout.fnmatch_lines([
        "test_k.py::kernel::boot PASSED*",
        "test_k.py::kernel::printf::formats_decimal PASSED*",
        "test_k.py::kernel::printf::formats_hex PASSED*",
        "test_k.py::kernel::printf::formats_string PASSED*",
        "test_k.py::kernel::string::memcpy_copies PASSED*",
        "test_k.py::kernel::string::strlen_counts PASSED*",
    ])
    result.assert_outcomes(passed=6)


def test_a_failing_kernel_case_fails_with_its_diagnostics_and_serial_excerpt(pytester):
    result = replay(pytester, "fail_diag.log")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*_ kernel printf.formats_hex _*",
        "kernel case printf.formats_hex failed",
        "diagnostics:",
        "    formats_hex: EXPECTATION FAILED at kernel/printf_test.c:42",
        '    expected "0x2a", got "0x2A"',
        "serial excerpt (log: *fail_diag.log):",
        "    |     not ok 2 formats_hex",
    ])


def test_crashed_cases_fail_with_the_log_tail_and_the_panic(pytester):
    result = replay(pytester, "crash_mid_suite.log")
    result.assert_outcomes(passed=5, failed=4)
    result.stdout.fnmatch_lines(["test_k.py::kernel::vm::#4 FAILED*", "test_k.py::kernel::vm::#5 FAILED*",
                                 "test_k.py::kernel::#3 FAILED*"])
    result.stdout.fnmatch_lines([
        "*_ kernel vm.#4 _*",
        "kernel case vm.#4 CRASHED: no result line (kernel died?)",
        "panic:",
        "    PANIC: page fault at 0x0000000000000000 (error 0x2)",
        "*",
        "    end of panic",
        "last * serial lines (log: *crash_mid_suite.log):",
    ])
    result.stdout.fnmatch_lines(["*_ kernel boot 'test' _*", "kernel run 'test':", "*KTAP: *plan 1..5 but only 3*"])


def test_skip_todo_and_xfail_map_to_pytest_outcomes(pytester):
    result = replay(pytester, "directives.log", "-rsx")
    result.assert_outcomes(passed=3, skipped=3, xfailed=1)
    result.stdout.fnmatch_lines(["SKIPPED * kernel: cpu lacks SMAP", "XFAIL *fpu_state*kernel TODO: not written yet*"])


def test_kernel_cases_can_be_selected_by_node_id_and_keyword(pytester):
    pytester.makepyfile(test_k=KTAP_MODULE)
    result = pytester.runpytest("-v", f"--ktap-replay={DATA / 'pass.log'}", "test_k.py::kernel::string")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest("-v", f"--ktap-replay={DATA / 'pass.log'}", "-k", "hex")
    result.assert_outcomes(passed=1)


def test_modules_without_a_ktap_suite_are_untouched(pytester):
    pytester.makepyfile(test_plain="def test_x():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_top_level_diagnostics_after_the_last_result_are_kept():
    result = parse('KTAP version 1\n1..0\n# no test matches "nope*"\n')
    assert result.plan == 0 and result.cases == []
    assert result.diagnostics == ['no test matches "nope*"']


def test_a_suite_that_fails_without_a_failing_case_gets_its_own_item(pytester):
    log = pytester.path / "odd.log"
    log.write_text("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..2\n"
                   "    ok 1 a\n    ok 2 a\n    # teardown leaked 3 pages\nnot ok 1 s\n")
    pytester.makepyfile(test_k=KTAP_MODULE)
    result = pytester.runpytest("-v", f"--ktap-replay={log}")
    result.stdout.fnmatch_lines(["test_k.py::kernel::s::a PASSED*", "test_k.py::kernel::s::a[[]2] PASSED*",
                                 "test_k.py::kernel::s::(suite) FAILED*"])
    result.stdout.fnmatch_lines(["kernel case s.(suite) failed", "diagnostics:", "    teardown leaked 3 pages"])


# -- real logs recorded from the kernel (commands: tests/data/README.md) ---------

KTEST_SUITE = re.compile(r"^KTEST_SUITE\((\w+),", re.M)    # not KTEST_SUITE_IF: off in a plain `test`


def test_the_real_test_log_has_every_kernel_suite():
    """real_test.log is what `test` prints today: one top-level result per suite of kernel/tests/."""
    kernel = {m.group(1) for src in (ROOT / "kernel" / "tests").glob("*.c")
              for m in KTEST_SUITE.finditer(src.read_text())}
    logged = {case.name for case in recorded("real_test.log").cases}
    assert kernel and logged == kernel, (
        f"tests/data/real_test.log is stale (missing {sorted(kernel - logged)}, gone {sorted(logged - kernel)}):"
        " regenerate it with the command in tests/data/README.md")


def test_a_real_test_run_parses_cleanly_into_passing_cases():
    result = recorded("real_test.log")
    assert result.found and result.errors == [] and result.ok
    assert result.plan == len(result.cases) and all(c.plan == len(c.subtests) for c in result.cases)
    assert result.summary().passed == result.summary().total > 20
    assert "printf.hex" in dict(result.flatten())


def test_the_real_selftest_run_shows_pass_fail_with_diagnostic_and_skip():
    result = recorded("real_selftest_fail.log")
    assert result.errors == []
    assert [(c.name, c.status, c.reason) for c in result.find("ktap_selftest").subtests] == [
        ("passes", Status.PASS, ""),
        ("fails_on_purpose", Status.FAIL, ""),
        ("skipped", Status.SKIP, "skipped on purpose"),
    ]
    assert result.find("ktap_selftest.fails_on_purpose").diagnostics == [
        "kernel/tests/test_selftest.c:21: expected answer == 42 (42), got 41 (0x29)"]
    assert result.cases[0].status is Status.FAIL


def test_a_build_failure_is_reported_by_the_boot_item_not_as_a_collection_error(pytester, monkeypatch):
    from toolchain.errors import BuildError

    def broken_build(*args, **kwargs):
        raise BuildError("kernel/main.c:1: error: expected ';'")

    monkeypatch.setattr("toolchain.build.build", broken_build)
    pytester.makepyfile(test_k=KTAP_MODULE)
    result = pytester.runpytest_inprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["test_k.py::kernel::boot FAILED*", "*kernel/main.c:1: error: expected ';'*"])
