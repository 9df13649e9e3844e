"""pytest integration: in-kernel KTAP cases as pytest items, and machine fixtures.

Registered through the ``pytest11`` entry point, so every pytest run in the venv
has it.

KTAP cases as items
    A test module assigns ``ktap_suite(...)`` to a name::

        kernel = ktap_suite(append="test")

    When pytest collects that module, the plugin builds the kernel (once a
    session), boots it once with that command line, parses the KTAP output and
    turns every case into its own item::

        tests/test_kernel_ktap.py::kernel::boot             the run itself (exit status, panics, KTAP errors)
        tests/test_kernel_ktap.py::kernel::printf::formats_decimal
        tests/test_kernel_ktap.py::kernel::printf::formats_hex

    Only modules that define a ``ktap_suite`` boot anything, so ``pytest
    tests/test_ktap_unit.py`` never starts QEMU.  A run that cannot happen
    (build error, no QEMU, timeout) does not break collection: it is reported
    by the ``boot`` item, and whatever KTAP output did arrive is still parsed
    (cases that never reported are ``CRASHED``).  ``--ktap-filter GLOB`` runs
    only the matching suites (kernel ``test=GLOB``).

Fixtures for other tests
    ``kernel_elf``  the built kernel (``toolchain.build.build()`` once a session)
    ``boot``        factory: ``boot(append="", timeout=30, **config) -> Machine``,
                    started now, always stopped after the test
    ``ktap_run``    factory: ``ktap_run(append) -> KtapRun`` (boot, wait, parse; cached a session)

    When a test fails, its report gets a section per machine it started (through
    ``boot`` or a ``Machine`` of its own) with the last 30 serial lines, the log
    path and the symbolized panic (if any); with ``--junitxml`` that text also
    goes into the test case's ``<system-out>`` (a KTAP case: its run's tail).

In parallel (pytest-xdist, ``invoke test`` defaults to ``-n auto``)
    The controller builds the kernel once before any worker starts and hands
    the workers the ELF or the build error.  A KTAP suite (or ``ktap_run``
    command line) is booted once per session: the first worker boots it and
    saves the run under ``build/logs/ktap-shared/<session>/``, the others wait
    on its lock and read it back, so all workers collect the same items.
"""
from __future__ import annotations

import re
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from toolchain import ktap
from toolchain.errors import BootTimeout, RevenantError

TAIL_LINES = 30
DEFAULT_TIMEOUT = 120.0


# ---------------------------------------------------------------------------
# One KTAP run of the kernel


@dataclass(frozen=True)
class KtapSuite:
    """Marker object: a module attribute that becomes a collector of kernel cases."""

    append: str = "test"
    timeout: float = DEFAULT_TIMEOUT


def ktap_suite(append: str = "test", timeout: float = DEFAULT_TIMEOUT) -> KtapSuite:
    """Declare, in a test module, a kernel boot whose KTAP cases become pytest items."""
    return KtapSuite(append, timeout)


@dataclass
class KtapRun:
    """A finished boot with ``test``: the parsed KTAP and how it ended."""

    append: str
    result: ktap.KtapResult
    log_lines: list[str] = field(default_factory=list)
    log_path: Optional[Path] = None
    exit_status: Optional[int] = None
    exit_description: str = ""
    error: str = ""         # the boot itself failed (build, QEMU, timeout): the message
    panic: str = ""         # the symbolized panic report, if the log has one
    replayed: bool = False  # read from a recorded log (--ktap-replay), not booted

    @property
    def expected_exit(self) -> int:
        """33 when every case passed, 35 when some failed (what the kernel must report)."""
        return 35 if any(case.failed for _, case in self.result.walk()) or not self.result.found \
            or self.result.plan == 0 else 33

    def problems(self) -> list[str]:
        """Everything wrong with the run as a whole (not with one case)."""
        found = []
        if self.error:
            found.append(self.error)
        if not self.result.found:
            found.append("the kernel printed no KTAP output")
        elif self.result.plan == 0:
            found.append("no kernel test matched (plan 1..0)")
        else:
            found += [f"KTAP: {e}" for e in self.result.errors]
        found += [f"kernel: # {d}" for d in self.result.diagnostics]
        if self.panic:
            found.append("the kernel panicked")
        if not self.error and self.exit_status != self.expected_exit and not (
                self.replayed and self.exit_status is None):
            found.append(f"QEMU exit status {self.exit_status} ({self.exit_description});"
                         f" expected {self.expected_exit} for {self.result.summary()}")
        return found

    def tail(self, n: int = TAIL_LINES) -> list[str]:
        return self.log_lines[-n:]

    def where(self) -> str:
        return f"log: {self.log_path}" if self.log_path else "log: (not saved)"


def extract_panic(lines: list[str]) -> str:
    """The raw ``PANIC:`` ... ``end of panic`` report in a log, or ''."""
    for start, line in enumerate(lines):
        if line.lstrip().startswith("PANIC:"):
            for end in range(start, len(lines)):
                if lines[end].strip().startswith("end of panic"):
                    return "\n".join(lines[start:end + 1])
            return "\n".join(lines[start:])
    return ""


def symbolized_panic(lines: list[str], elf: Optional[Path] = None) -> str:
    report = extract_panic(lines)
    if not report:
        return ""
    try:
        from toolchain.paths import KERNEL_ELF
        from toolchain.symbols import symbolize_report
        return symbolize_report(report, elf or KERNEL_ELF)
    except RevenantError as e:
        return f"{report}\n(not symbolized: {e})"


def _machine_api():
    from toolchain.machine import Machine, MachineConfig
    return Machine, MachineConfig


def build_kernel() -> Path:
    """Build the kernel (the build is incremental) and return the ELF path."""
    from toolchain import build
    return Path(build.build().elf)


def boot_ktap(elf: Path, append: str, timeout: float = DEFAULT_TIMEOUT) -> KtapRun:
    """Boot ``elf`` with ``append``, wait for QEMU to exit, parse the KTAP output.

    Never raises for a guest problem: a timeout or a QEMU failure is recorded in
    ``error`` and the output that did arrive is still parsed.
    """
    Machine, MachineConfig = _machine_api()
    lines: list[str] = []
    log_path: Optional[Path] = None
    status: Optional[int] = None
    description = ""
    error = ""
    machine = None
    try:
        machine = Machine(MachineConfig(kernel=elf, append=append, name="ktap"))
        with machine:
            log_path = machine.log_path
            try:
                exit_result = machine.wait(timeout)
                status, description = exit_result.status, exit_result.description
            except BootTimeout:
                error = f"QEMU still running after {timeout:.0f} s (kernel hung?); killed"
            lines = machine.console.lines()
    except RevenantError as e:
        error = str(e)
        log_path = getattr(e, "log_path", None) or log_path
    if machine is not None and not lines:
        lines = machine.console.lines()
        log_path = log_path or machine.log_path
    if not lines and log_path is not None and Path(log_path).is_file():
        lines = Path(log_path).read_text(errors="replace").splitlines()
    return KtapRun(append=append, result=ktap.parse("\n".join(lines)), log_lines=lines,
                   log_path=Path(log_path) if log_path else None, exit_status=status,
                   exit_description=description, error=error, panic=symbolized_panic(lines, elf))


# ---------------------------------------------------------------------------
# Session-wide caches (kept in the config's stash, so pytester sessions get their own)

_BUILD = pytest.StashKey[Any]()
_RUNS = pytest.StashKey[dict]()
_REPLAYS = pytest.StashKey[dict]()
_MACHINES = pytest.StashKey[list]()
_SHARED = pytest.StashKey[Path]()       # xdist controller: the session's shared KTAP run directory

# workerinput keys (pytest-xdist): what the controller hands every worker
_WORKER_KERNEL = "revenant_kernel"      # {"elf": path} or {"error": message}
_WORKER_SHARED = "revenant_shared"      # directory of KTAP runs shared by the workers of one session


def _session_kernel(config: pytest.Config) -> Path:
    """Build once per session; a failed build is remembered and re-raised.

    Under pytest-xdist the controller builds before any worker starts and hands
    the workers the ELF (or the build error): workers never build."""
    if _BUILD not in config.stash:
        given = getattr(config, "workerinput", {}).get(_WORKER_KERNEL)
        if given is not None:
            config.stash[_BUILD] = Path(given["elf"]) if "elf" in given else RevenantError(given["error"])
        else:
            try:
                config.stash[_BUILD] = build_kernel()
            except RevenantError as e:
                config.stash[_BUILD] = e
    value = config.stash[_BUILD]
    if isinstance(value, RevenantError):
        raise value
    return value


def replay_ktap(log_path: Path, append: str = "test") -> KtapRun:
    """A KtapRun from a recorded serial log (no QEMU): the exit status is inferred
    from ``revenant: poweroff status=N`` (33/35) or a panic (35)."""
    lines = Path(log_path).read_text(errors="replace").splitlines()
    status: Optional[int] = None
    for line in lines:
        m = re.match(r"\s*revenant: poweroff status=(\d+)", line)
        if m:
            status = 33 if m.group(1) == "0" else 35
    if status is None and extract_panic(lines):
        status = 35
    return KtapRun(append=append, result=ktap.parse("\n".join(lines)), log_lines=lines,
                   log_path=Path(log_path), exit_status=status,
                   exit_description=f"replayed from {log_path}", replayed=True,
                   panic=extract_panic(lines))  # raw: the kernel that printed it may be gone


def _session_run(config: pytest.Config, append: str, timeout: float, replayable: bool = False) -> KtapRun:
    runs = config.stash.setdefault(_RUNS, {})
    replay = config.getoption("ktap_replay", None) if replayable else None
    if replay:
        runs = config.stash.setdefault(_REPLAYS, {})
        if append not in runs:
            runs[append] = replay_ktap(Path(replay), append)
        return runs[append]
    if append not in runs:
        shared = getattr(config, "workerinput", {}).get(_WORKER_SHARED)
        runs[append] = (_shared_run(config, Path(shared), append, timeout) if shared
                        else _boot_or_error(config, append, timeout))
    return runs[append]


def _boot_or_error(config: pytest.Config, append: str, timeout: float) -> KtapRun:
    try:
        elf = _session_kernel(config)
    except RevenantError as e:
        return KtapRun(append=append, result=ktap.parse(""), error=str(e))
    return boot_ktap(elf, append, timeout)


_SAVED_FIELDS = ("append", "log_lines", "exit_status", "exit_description", "error", "panic", "replayed")


def _shared_run(config: pytest.Config, shared: Path, append: str, timeout: float) -> KtapRun:
    """One boot per command line for all xdist workers of a session: the first worker to
    get here boots and saves the run, the others wait on the lock and read it back.  Every
    worker thus collects the same kernel cases (xdist requires identical collections)."""
    import fcntl
    import hashlib
    import json

    key = hashlib.sha1(append.encode()).hexdigest()[:16]
    saved = shared / f"{key}.json"
    shared.mkdir(parents=True, exist_ok=True)
    with open(shared / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if saved.exists():
            data = json.loads(saved.read_text())
            return KtapRun(result=ktap.parse("\n".join(data["log_lines"])),
                           log_path=Path(data["log_path"]) if data["log_path"] else None,
                           **{k: data[k] for k in _SAVED_FIELDS})
        run = _boot_or_error(config, append, timeout)
        data = {k: getattr(run, k) for k in _SAVED_FIELDS}
        data["log_path"] = str(run.log_path) if run.log_path else None
        tmp = saved.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(saved)
        return run


def _effective_append(config: pytest.Config, append: str) -> str:
    pattern = config.getoption("ktap_filter", None)
    if not pattern:
        return append
    words = [w for w in shlex.split(append) if w != "test" and not w.startswith("test=")]
    return " ".join([f"test={pattern}"] + words)


# ---------------------------------------------------------------------------
# Collection


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("revenant")
    group.addoption("--ktap-filter", dest="ktap_filter", metavar="GLOB", default=None,
                    help="run only the in-kernel suites matching GLOB (kernel test=GLOB)")
    group.addoption("--ktap-replay", dest="ktap_replay", metavar="LOG", default=None,
                    help="do not boot: turn a recorded serial log into the kernel case results")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ktap: an in-kernel KTAP test case (collected by the revenant plugin)")
    if getattr(config.option, "xmlpath", None) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_JUnitSerialTails(config), "revenant-junit-tails")


# ---------------------------------------------------------------------------
# pytest-xdist: the controller builds once and hands the workers the kernel and a
# directory where they share KTAP runs (hooks are optional: xdist may be absent)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Any) -> None:
    """Before any worker starts: build the kernel (a failure is handed to every worker)."""
    import uuid

    try:
        _session_kernel(config)
    except RevenantError:
        pass
    from toolchain.paths import LOGS
    config.stash[_SHARED] = LOGS / "ktap-shared" / uuid.uuid4().hex


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    config = node.config
    built = config.stash.get(_BUILD, None)
    if isinstance(built, Path):
        node.workerinput[_WORKER_KERNEL] = {"elf": str(built)}
    elif built is not None:
        node.workerinput[_WORKER_KERNEL] = {"error": str(built)}
    if _SHARED in config.stash:
        node.workerinput[_WORKER_SHARED] = str(config.stash[_SHARED])


def pytest_sessionfinish(session: pytest.Session) -> None:
    shared = session.config.stash.get(_SHARED, None)
    if shared is not None:
        import shutil
        shutil.rmtree(shared, ignore_errors=True)


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object):
    if isinstance(obj, KtapSuite):
        return KtapRunCollector.from_parent(collector, name=name, spec=obj)
    return None


class KtapRunCollector(pytest.Collector):
    """One kernel boot; its children are the suites (and the ``boot`` item)."""

    def __init__(self, *, spec: KtapSuite, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.add_marker("ktap")

    def run(self) -> KtapRun:
        append = _effective_append(self.config, self.spec.append)
        return _session_run(self.config, append, self.spec.timeout, replayable=True)

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        run = self.run()
        yield KtapBootItem.from_parent(self, name="boot", run=run)
        yield from _children(self, run, run.result.cases, ())

    def reportinfo(self):
        return self.path, None, f"kernel {self.spec.append!r}"


class KtapGroupCollector(pytest.Collector):
    """A suite (or a nested group) of kernel cases."""

    def __init__(self, *, run: KtapRun, case: ktap.TestCase, names: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run, self.case, self.names = run, case, names

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        yield from _children(self, self.run, self.case.subtests, self.names)
        if self.case.failed and not any(c.failed for _, c in self.case.walk() if c is not self.case):
            # the suite failed or crashed although none of its cases did: report that once
            yield KtapCaseItem.from_parent(self, name="(suite)", run=self.run, case=self.case,
                                           names=self.names + ("(suite)",))

    def reportinfo(self):
        return self.path, None, ".".join(self.names)


def _children(parent: pytest.Collector, run: KtapRun, cases: list[ktap.TestCase],
              prefix: tuple[str, ...]) -> Iterator[pytest.Item | pytest.Collector]:
    seen: dict[str, int] = {}
    for case in cases:
        name = case.display_name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:                       # duplicate names would give duplicate node ids
            name = f"{name}[{seen[name]}]"
        names = prefix + (name,)
        if case.subtests:
            yield KtapGroupCollector.from_parent(parent, name=name, run=run, case=case, names=names)
        else:
            yield KtapCaseItem.from_parent(parent, name=name, run=run, case=case, names=names)


# ---------------------------------------------------------------------------
# Items


class KtapFailure(Exception):
    """Raised by a kernel case item; ``repr_failure`` prints ``text`` as it is."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _indent(lines: list[str], prefix: str = "    ") -> list[str]:
    return [prefix + line for line in lines]


class KtapCaseItem(pytest.Item):
    """One in-kernel KTAP case: its outcome is the kernel's."""

    def __init__(self, *, run: KtapRun, case: ktap.TestCase, names: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run, self.case, self.names = run, case, names
        self.add_marker("ktap")

    @property
    def dotted(self) -> str:
        return ".".join(self.names)

    def runtest(self) -> None:
        case, status = self.case, self.case.status
        if status in (ktap.Status.PASS, ktap.Status.XFAIL):
            return
        if status is ktap.Status.SKIP:
            pytest.skip(f"kernel: {case.reason or 'skipped'}")
        if status is ktap.Status.TODO:
            pytest.xfail(f"kernel TODO: {case.reason}".rstrip(": "))
        raise KtapFailure(self.failure_text())

    def failure_text(self) -> str:
        case, run = self.case, self.run
        out: list[str] = []
        if case.status is ktap.Status.CRASHED:
            out.append(f"kernel case {self.dotted} CRASHED: {case.reason}")
            out.append(f"kernel run {run.append!r}: {run.exit_description or run.error or 'no exit status'}")
            if case.diagnostics:
                out += ["diagnostics:"] + _indent(case.diagnostics)
            if run.panic:
                out += ["panic:"] + _indent(run.panic.split("\n"))
            out.append(f"last {min(TAIL_LINES, len(run.log_lines))} serial lines ({run.where()}):")
            out += _indent(run.tail(), "    | ")
        else:
            reason = f" # {case.reason}" if case.reason else ""
            out.append(f"kernel case {self.dotted} failed{reason}")
            if case.diagnostics:
                out += ["diagnostics:"] + _indent(case.diagnostics)
            else:
                out.append("diagnostics: (none printed)")
            out.append(f"serial excerpt ({run.where()}):")
            out += _indent(case.log[-TAIL_LINES:], "    | ")
        return "\n".join(out)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, KtapFailure):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"kernel {self.dotted}"


class KtapBootItem(pytest.Item):
    """The run as a whole: it booted, spoke well-formed KTAP, did not panic, exited as it should."""

    def __init__(self, *, run: KtapRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run = run

    def runtest(self) -> None:
        problems = self.run.problems()
        if not problems:
            return
        out = [f"kernel run {self.run.append!r}:"] + _indent(problems[0].split("\n"), "  ")
        out += [f"  {p}" for p in problems[1:]]
        if self.run.panic:
            out += ["panic:"] + _indent(self.run.panic.split("\n"))
        out.append(f"last {min(TAIL_LINES, len(self.run.log_lines))} serial lines ({self.run.where()}):")
        out += _indent(self.run.tail(), "    | ")
        raise KtapFailure("\n".join(out))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, KtapFailure):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"kernel boot {self.run.append!r}"


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def kernel_elf(pytestconfig: pytest.Config) -> Path:
    """The kernel ELF, built once per session (a build error fails the test, not pytest)."""
    try:
        return _session_kernel(pytestconfig)
    except RevenantError as e:
        pytest.fail(f"kernel build failed: {str(e)}", pytrace=False)


@pytest.fixture
def boot(request: pytest.FixtureRequest, kernel_elf: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``boot(append="", timeout=120.0, **config) -> Machine``, already started.

    Extra keyword arguments go to ``MachineConfig``.  ``timeout`` is a watchdog:
    QEMU is killed after that many seconds, so a hung guest cannot hang the run.
    Every machine is stopped after the test; if the test fails, its report shows
    the serial tail, the log path and the symbolized panic.
    """
    Machine, MachineConfig = _machine_api()
    started: list[Any] = []
    watchdogs: list[threading.Timer] = []

    def start(append: str = "", timeout: float = DEFAULT_TIMEOUT, **config: Any):
        config.setdefault("kernel", kernel_elf)
        config.setdefault("name", request.node.name[:40])
        machine = Machine(MachineConfig(append=append, **config))
        started.append(machine)
        machine.start()
        watchdog = threading.Timer(timeout, machine.kill)
        watchdog.daemon = True
        watchdog.start()
        watchdogs.append(watchdog)
        return machine

    yield start
    for watchdog in watchdogs:
        watchdog.cancel()
    for machine in reversed(started):
        machine.close()


@pytest.fixture
def run(boot: Callable[..., Any]) -> Callable[..., Any]:
    """``run(append, timeout=30, icount=False, **config) -> RunLog``: boot init with programs,
    wait for the machine to end, and read back its serial lines (toolchain.runlog).
    ``icount`` runs under ``-icount shift=0`` so the tick is a fixed number of guest instructions."""
    from .runlog import RunLog

    def start(append: str, timeout: float = 30.0, icount: bool = False, **config: Any) -> RunLog:
        if icount:
            config["extra_args"] = list(config.get("extra_args", [])) + ["-icount", "shift=0"]
        return RunLog(boot(append, timeout=timeout + 10, **config), timeout)
    return start


@pytest.fixture
def ktap_run(pytestconfig: pytest.Config) -> Callable[..., KtapRun]:
    """Factory: ``ktap_run(append, timeout=120) -> KtapRun`` (one boot per command line and session)."""
    def run(append: str, timeout: float = DEFAULT_TIMEOUT) -> KtapRun:
        return _session_run(pytestconfig, append, timeout)
    return run


# ---------------------------------------------------------------------------
# Failure reports of tests that used machines


def machine_report(machine: Any, lines: int = TAIL_LINES) -> str:
    """Serial tail, log path and symbolized panic of one machine (for a failure report)."""
    try:
        serial = machine.console.lines()
    except Exception as e:  # a half-started machine must not hide the test's own failure
        return f"(no console: {e})"
    out = [f"log: {getattr(machine, 'log_path', None)}",
           f"last {min(lines, len(serial))} serial lines:"]
    out += ["  | " + line for line in serial[-lines:]]
    panic = symbolized_panic(serial, getattr(getattr(machine, "config", None), "kernel", None))
    if panic:
        out += ["panic (symbolized):"] + _indent(panic.split("\n"), "  ")
    from .symbols import symbolize_user_faults
    faults = symbolize_user_faults(serial)
    if faults:
        out += ["user faults (symbolized):"] + _indent("\n".join(faults).split("\n"), "  ")
    return "\n".join(out)


_tracking: list[list] = []      # a stack: pytester runs items inside an item


def _track(machine: Any) -> None:
    if _tracking:
        _tracking[-1].append(machine)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]):
    """Every machine the item starts (fixture, ``Machine`` of its own, ``ktap_run``) is kept
    for its failure report, then dropped with the item."""
    from toolchain.machine import START_HOOKS

    if _track not in START_HOOKS:
        START_HOOKS.append(_track)
    machines: list = []
    item.stash[_MACHINES] = machines
    _tracking.append(machines)
    try:
        yield
    finally:
        _tracking.remove(machines)
        machines.clear()                # their consoles can be large: not kept for the session


def _ktap_tail(item: pytest.Item) -> str:
    run = getattr(item, "run", None)
    if not isinstance(run, KtapRun):
        return ""
    lines = [run.where(), f"last {min(TAIL_LINES, len(run.log_lines))} serial lines:"]
    return "\n".join(lines + ["  | " + line for line in run.tail()])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(item, KtapCaseItem) and isinstance(report.longrepr, tuple):
        # point at the test module, not at the plugin line that called pytest.skip()
        report.longrepr = (str(item.path), None, report.longrepr[2])
    if not report.failed:
        return
    machines = item.stash.get(_MACHINES, [])
    for n, machine in enumerate(machines):
        title = "revenant machine" + (f" {n + 1}" if len(machines) > 1 else "")
        report.sections.append((f"{title} ({report.when})", machine_report(machine)))
    tail = _ktap_tail(item) if getattr(item.config.option, "xmlpath", None) else ""
    if tail:        # the failure text has the excerpt already; the JUnit file gets the tail too
        report.sections.append((f"revenant serial log ({report.when})", tail))


class _JUnitSerialTails:
    """``--junitxml``: a failing test's ``<system-out>`` gets the serial tail of every machine it
    started (the report sections above), on the controller, after the junitxml plugin has
    written the ``<failure>``/``<error>``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed or report.when == "teardown":
            return          # at teardown junitxml has closed the test case already
        from _pytest.junitxml import bin_xml_escape, xml_key
        import xml.etree.ElementTree as ET

        xml = self.config.stash.get(xml_key, None)
        text = "\n\n".join(f"--- {name} ---\n{content}" for name, content in report.sections
                            if name.startswith("revenant"))
        if xml is None or not text:
            return
        out = ET.Element("system-out")
        out.text = bin_xml_escape(text)
        xml.node_reporter(report).append(out)
