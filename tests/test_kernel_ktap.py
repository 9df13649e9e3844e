"""The in-kernel tests, one pytest result per KTAP case, and the KTAP pipeline proven end to end.

``kernel`` below is collected by the revenant pytest plugin: the kernel is
built and booted once with ``-append test`` and every KTAP case becomes an
item ``tests/test_kernel_ktap.py::kernel::<suite>::<case>`` (plus
``kernel::boot`` for the run as a whole: exit status, panics, KTAP structure).
"""
from __future__ import annotations

import shutil

import pytest

from toolchain import ktap
from toolchain.ktap import Status
from toolchain.pytest_plugin import ktap_suite

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

kernel = ktap_suite(append="test")

SELFTEST = "test=ktap_selftest* selftest_fail"


def test_the_selftest_suite_reports_pass_fail_and_skip_with_diagnostics(ktap_run):
    run = ktap_run(SELFTEST)
    suite = run.result.find("ktap_selftest")
    assert suite is not None, f"no ktap_selftest suite in {run.where()}"
    by_status = {status: [c for c in suite.subtests if c.status is status] for status in Status}
    assert by_status[Status.PASS], "a passing case reported as passed"
    assert by_status[Status.SKIP] and all(c.reason for c in by_status[Status.SKIP]), \
        "a skipped case reported as skipped, with its reason"
    failed = by_status[Status.FAIL]
    assert failed, "the deliberately failing case reported as failed"
    assert all(c.diagnostics for c in failed), "a failed case carries its diagnostic lines"
    assert any("kernel/" in d and ":" in d for c in failed for d in c.diagnostics), \
        "the diagnostic names the file:line of the failed expectation"
    assert suite.status is Status.FAIL
    assert run.result.errors == [] and not run.panic


def test_a_failing_kernel_run_exits_qemu_with_status_35(ktap_run):
    run = ktap_run(SELFTEST)
    assert run.exit_status == 35, run.exit_description
    assert run.log_path is not None and run.log_path.is_file()


def test_without_selftest_fail_the_selftest_suite_is_not_run(ktap_run):
    run = ktap_run("test")                       # the same boot as the `kernel` items above
    assert run.result.found and run.result.cases
    assert run.result.find("ktap_selftest") is None


# -- CPU features: a missing one is a skip with its reason ---------------------

def test_a_protection_feature_the_cpu_lacks_is_a_ktap_skip_with_its_reason_not_a_pass(boot):
    # -cpu qemu64 offers NX but no SMEP, SMAP or UMIP. Under -cpu max (the
    # `kernel` boot above) the same cases pass only if CR4 has each bit set.
    machine = boot("test=syscall", cpu="qemu64", timeout=60)
    machine.wait(30)
    run = ktap.parse("\n".join(machine.console.lines()))
    for feature in ("smep", "smap", "umip"):
        case = run.find(f"syscall.{feature}_is_on")
        assert case is not None, f"no case syscall.{feature}_is_on; log: {machine.log_path}"
        assert case.status is Status.SKIP, f"{feature}: {case.status}; log: {machine.log_path}"
        assert f"no {feature.upper()} (CPUID.7.0:" in case.reason, case.reason
    assert run.find("syscall.protection_features").status is Status.PASS, f"log: {machine.log_path}"


# -- the plugin end to end, in a nested pytest run -----------------------------

pytest_plugins = ["pytester"]


def test_the_plugin_turns_the_selftest_into_passed_failed_and_skipped_items(pytester):
    pytester.makepyfile(test_self=f"from toolchain.pytest_plugin import ktap_suite\n"
                                  f"selftest = ktap_suite({SELFTEST!r})\n")
    result = pytester.runpytest("-v", "-rs", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("passed", 0) >= 2 and outcomes.get("skipped", 0) >= 1
    result.stdout.fnmatch_lines(["test_self.py::selftest::boot PASSED*"])   # exit 35 is what a failure must give
    result.stdout.fnmatch_lines(["test_self.py::selftest::ktap_selftest::* FAILED*"])
    result.stdout.fnmatch_lines(["kernel case ktap_selftest.* failed", "diagnostics:", "    kernel/*:*",
                                 "serial excerpt (log: *build/logs/*.log):"])
    result.stdout.fnmatch_lines(["SKIPPED * kernel: *"])


def test_a_failed_test_that_booted_a_machine_shows_the_serial_tail_and_symbolized_panic(pytester):
    pytester.makepyfile(test_crash="""
        def test_boots_into_a_page_fault(boot):
            machine = boot("crash=pagefault", timeout=60)
            machine.wait(60)
            assert machine.result.ok, "deliberately failing"
        """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*- revenant machine (call) -*",
        "log: *build/logs/*.log",
        "last * serial lines:",
        "*PANIC: page fault*",
        "panic (symbolized):",
        "*#0 0x* crash_pagefault+0x* (kernel/crash.c:*)",
    ])
