"""A KTAP version 1 parser for the Revenant serial log.

The kernel's serial log holds more than test output (``Revenant kernel booting``,
``revenant: poweroff status=0``, printk lines from inside a test).  ``parse()``
finds the first ``KTAP version 1`` (or ``TAP version 13/14``) line, takes its
indentation as the base, and reads the nested test tree from there on
(Linux ``Documentation/dev-tools/ktap.rst``, KUnit style):

    KTAP version 1
    1..1
        KTAP version 1
        # Subtest: printf
        1..2
        # a diagnostic line, attached to the next result at this level
        ok 1 formats_decimal
        not ok 2 formats_hex
    not ok 1 printf

Nesting follows indentation (KUnit prints 4 spaces a level; any consistent
step works).  Lines that are not KTAP are kept in the log excerpts but never
change the structure.  A result that never appeared (the plan says ``1..5``
and the log stops after 3, or a suite's own ``ok N suite`` line is missing)
becomes a case with status ``CRASHED`` whose excerpt is the tail of the log.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

__all__ = ["Status", "TestCase", "KtapResult", "Summary", "parse"]


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    TODO = "todo"        # known-broken: reported, not a failure
    XFAIL = "xfail"      # expected failure that happened: counts as a pass
    CRASHED = "crashed"  # no result line: the kernel died (or the plan lied)

    @property
    def is_failure(self) -> bool:
        return self in (Status.FAIL, Status.CRASHED)


@dataclass
class TestCase:
    """One result line (or the absence of one) and everything that led to it."""

    name: str
    number: int
    status: Status
    reason: str = ""                                            # text after the directive
    diagnostics: list[str] = field(default_factory=list)        # "# ..." lines, without "# "
    subtests: list["TestCase"] = field(default_factory=list)
    log: list[str] = field(default_factory=list)                # raw serial lines of this case
    plan: Optional[int] = None                                  # the subtests' "1..N", if any

    __test__ = False  # not a pytest test class, despite the name

    @property
    def display_name(self) -> str:
        """The name, or ``#N`` for a case the kernel never got to name."""
        return self.name or f"#{self.number}"

    @property
    def failed(self) -> bool:
        return self.status.is_failure

    def walk(self, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], "TestCase"]]:
        """This case and all nested ones, depth first, each with its name path."""
        path = prefix + (self.display_name,)
        yield path, self
        for sub in self.subtests:
            yield from sub.walk(path)


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    todo: int = 0
    xfail: int = 0
    crashed: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.todo + self.xfail + self.crashed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.crashed == 0

    def __str__(self) -> str:
        parts = [f"{self.total} cases", f"{self.passed} passed", f"{self.failed} failed",
                 f"{self.crashed} crashed", f"{self.skipped} skipped"]
        if self.todo:
            parts.append(f"{self.todo} todo")
        if self.xfail:
            parts.append(f"{self.xfail} xfail")
        return ", ".join(parts)


_COUNTER = {Status.PASS: "passed", Status.FAIL: "failed", Status.SKIP: "skipped",
            Status.TODO: "todo", Status.XFAIL: "xfail", Status.CRASHED: "crashed"}


@dataclass
class KtapResult:
    cases: list[TestCase] = field(default_factory=list)   # top level (the suites)
    errors: list[str] = field(default_factory=list)       # structural problems found while parsing
    found: bool = False                                   # was there a version line at all?
    version: str = ""                                     # e.g. "KTAP version 1"
    plan: Optional[int] = None
    diagnostics: list[str] = field(default_factory=list)  # top-level "# ..." lines after the last result

    def walk(self) -> Iterator[tuple[tuple[str, ...], TestCase]]:
        for case in self.cases:
            yield from case.walk()

    def leaves(self) -> list[tuple[tuple[str, ...], TestCase]]:
        """The cases that have no subtests (a suite that crashed before any case is one)."""
        return [(path, case) for path, case in self.walk() if not case.subtests]

    def flatten(self, sep: str = ".") -> list[tuple[str, TestCase]]:
        """Leaf cases as ``suite.case`` names, in log order."""
        return [(sep.join(path), case) for path, case in self.leaves()]

    def find(self, dotted: str, sep: str = ".") -> Optional[TestCase]:
        for path, case in self.walk():
            if sep.join(path) == dotted:
                return case
        return None

    def summary(self) -> Summary:
        counts = Summary()
        for _, case in self.leaves():
            name = _COUNTER[case.status]
            setattr(counts, name, getattr(counts, name) + 1)
        return counts

    @property
    def ok(self) -> bool:
        """Found, well formed, and nothing failed or crashed."""
        return self.found and not self.errors and self.summary().ok and \
            not any(c.failed for c in self.cases)


# ---------------------------------------------------------------------------
# Line classification

_VERSION = re.compile(r"^(K?TAP) version (\d+)\s*$")
_PLAN = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
_RESULT = re.compile(r"^(not ok|ok)\s+(\d+)\b\s*(?:-\s+)?(.*)$")
_SUBTEST = re.compile(r"^#\s*Subtest:\s*(.*?)\s*$")
_BAIL = re.compile(r"^Bail out!\s*(.*)$")
_DIRECTIVES = {"SKIP": Status.SKIP, "TODO": Status.TODO, "XFAIL": Status.XFAIL,
               "TIMEOUT": Status.FAIL, "ERROR": Status.FAIL}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _result_fields(ok: bool, rest: str) -> tuple[str, Status, str]:
    """Split ``name # DIRECTIVE reason`` into (name, status, reason)."""
    name, _, comment = rest.partition("#")
    name = name.strip()
    status = Status.PASS if ok else Status.FAIL
    comment = comment.strip()
    word, _, reason = comment.partition(" ")
    directive = _DIRECTIVES.get(word.upper())
    if directive is not None:
        status = directive
        if directive is Status.FAIL:                # TIMEOUT / ERROR: keep the word in the reason
            reason = f"{word.upper()} {reason}".strip()
        return name, status, reason.strip()
    return name, status, comment


# ---------------------------------------------------------------------------
# The parser: a stack of open test groups, one per indentation level


@dataclass
class _Group:
    """A test group being read: the root, or a suite's nested block."""

    indent: int
    start: int                       # first line index of the block
    name: str = ""                   # from "# Subtest:"
    has_version: bool = False
    plan: Optional[int] = None
    children: list[TestCase] = field(default_factory=list)
    pending_diags: list[str] = field(default_factory=list)
    case_start: int = 0              # first line of the case now in progress
    finished_block: Optional["_Group"] = None   # a nested block waiting for its result line
    pending_name: str = ""           # TAP14 puts "# Subtest: name" at the parent's level

    @property
    def fresh(self) -> bool:
        return self.plan is None and not self.children and self.finished_block is None

    def label(self) -> str:
        return f"'{self.name}'" if self.name else f"at column {self.indent}"


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.errors: list[str] = []
        self.stack: list[_Group] = []

    # -- helpers -----------------------------------------------------------

    @property
    def top(self) -> _Group:
        return self.stack[-1]

    def excerpt(self, start: int, end: int) -> list[str]:
        return self.lines[start:end]

    def push(self, indent: int, index: int) -> _Group:
        parent = self.top
        if parent.finished_block is not None:        # a sibling block started: the last one never got a result
            self.orphan_block(parent, index)
        group = _Group(indent=indent, start=index, case_start=index, name=parent.pending_name)
        parent.pending_name = ""
        self.stack.append(group)
        return group

    def close(self, index: int) -> None:
        """Pop the innermost group; it waits in its parent for the result line."""
        group = self.stack.pop()
        self.fill_plan(group, index, crashed_tail=False)
        self.top.finished_block = group

    def fill_plan(self, group: _Group, index: int, crashed_tail: bool) -> None:
        """Add CRASHED cases for results the plan promised but the log lacks."""
        if group.plan is None:
            if not crashed_tail and group is not self.stack[0] and not group.children:
                self.errors.append(f"group {group.label()} has no plan and no results")
            return
        seen = len(group.children)
        if seen > group.plan:
            self.errors.append(f"group {group.label()}: plan 1..{group.plan} but {seen} results")
            return
        if seen < group.plan:
            self.errors.append(f"group {group.label()}: plan 1..{group.plan} but only {seen} results"
                               f" (missing {seen + 1}..{group.plan}: crashed)")
        tail = self.excerpt(group.case_start, len(self.lines) if crashed_tail else index)
        for number in range(seen + 1, group.plan + 1):
            diags, group.pending_diags = group.pending_diags, []
            group.children.append(TestCase(name="", number=number, status=Status.CRASHED,
                                           reason="no result line (kernel died?)",
                                           diagnostics=diags, log=list(tail)))

    def orphan_block(self, parent: _Group, index: int, crashed_tail: bool = False) -> None:
        """A nested block whose own result line never came: a crashed case."""
        block = parent.finished_block
        assert block is not None
        parent.finished_block = None
        number = len(parent.children) + 1
        self.errors.append(f"missing result line for {'suite ' + repr(block.name) if block.name else 'subtest'}"
                           f" #{number}")
        end = len(self.lines) if crashed_tail else index
        diags, parent.pending_diags = parent.pending_diags, []
        parent.children.append(TestCase(name=block.name, number=number, status=Status.CRASHED,
                                        reason="no result line (kernel died?)", diagnostics=diags,
                                        subtests=block.children, plan=block.plan,
                                        log=self.excerpt(parent.case_start, end)))
        if not crashed_tail:             # at the end of the log, later crashed cases share this tail
            parent.case_start = index

    def unwind_to(self, indent: int, index: int) -> None:
        """Close groups deeper than ``indent`` (a structural line at a shallower level)."""
        while len(self.stack) > 1 and self.top.indent > indent:
            self.close(index)

    # -- line handlers -----------------------------------------------------

    def on_version(self, indent: int, index: int) -> None:
        self.unwind_to(indent, index)
        if indent > self.top.indent:
            self.push(indent, index).has_version = True
        elif len(self.stack) > 1 and self.top.indent == indent:
            if self.top.fresh and not self.top.has_version:
                self.top.has_version = True
            else:                                   # a sibling block at the same depth
                self.close(index)
                self.push(indent, index).has_version = True
        else:
            raise _Restart(index)
        self.top.case_start = index + 1

    def on_subtest(self, name: str, indent: int, index: int) -> None:
        self.unwind_to(indent, index)
        if indent > self.top.indent:
            self.push(indent, index).name = name
        elif len(self.stack) > 1 and self.top.fresh and not self.top.name:
            self.top.name = name
        elif len(self.stack) > 1:
            self.close(index)
            self.push(indent, index).name = name
        else:
            self.top.pending_name = name
            return
        self.top.case_start = index + 1

    def on_plan(self, count: int, indent: int, index: int) -> None:
        self.unwind_to(indent, index)
        if indent > self.top.indent:
            self.push(indent, index)
        group = self.top
        if group.plan is not None:
            self.errors.append(f"group {group.label()}: second plan line 1..{count} ignored")
            return
        group.plan = count
        group.case_start = index + 1

    def on_result(self, ok: bool, number: Optional[int], rest: str, indent: int, index: int) -> None:
        self.unwind_to(indent, index)
        if indent > self.top.indent:                # results without a version/plan line first
            self.push(indent, index)
        group = self.top
        name, status, reason = _result_fields(ok, rest)
        expected = len(group.children) + 1
        if number is None:
            number = expected
        elif number != expected:
            self.errors.append(f"group {group.label()}: expected result {expected}, got {number} ({name})")
        case = TestCase(name=name, number=number, status=status, reason=reason,
                        diagnostics=group.pending_diags,
                        log=self.excerpt(group.case_start, index + 1))
        group.pending_diags = []
        block = group.finished_block
        if block is not None:
            group.finished_block = None
            case.subtests, case.plan = block.children, block.plan
            if not case.name:
                case.name = block.name
            elif block.name and block.name != case.name:
                self.errors.append(f"suite '{block.name}' ended by result line '{case.name}'")
            if block.pending_diags:                 # trailing diagnostics of the block (kunit totals)
                case.diagnostics = block.pending_diags + case.diagnostics
            if status is Status.PASS and any(c.failed for c in block.children):
                self.errors.append(f"suite '{case.name}' reported ok but has failed cases")
        group.children.append(case)
        group.case_start = index + 1

    def on_diagnostic(self, text: str, indent: int) -> None:
        group = self.top
        for candidate in reversed(self.stack):      # the deepest group not deeper than the line
            if candidate.indent <= indent:
                group = candidate
                break
        group.pending_diags.append(text)

    # -- driver ------------------------------------------------------------

    def run(self, header: int) -> None:
        base = _indent(self.lines[header])
        self.stack = [_Group(indent=base, start=header, has_version=True, case_start=header + 1)]
        end = len(self.lines)
        for index in range(header + 1, len(self.lines)):
            raw = self.lines[index]
            text = raw.strip()
            indent = _indent(raw)
            if not text or indent < base:
                continue
            if (m := _VERSION.match(text)):
                try:
                    self.on_version(indent, index)
                except _Restart:
                    self.errors.append(f"line {index + 1}: a second '{text}' at the top level;"
                                       " parsing stops there")
                    end = index
                    break
            elif (m := _SUBTEST.match(text)):
                self.on_subtest(m.group(1), indent, index)
            elif (m := _PLAN.match(text)):
                self.on_plan(int(m.group(1)), indent, index)
            elif (m := _RESULT.match(text)):
                number = int(m.group(2)) if m.group(2) else None
                self.on_result(m.group(1) == "ok", number, m.group(3), indent, index)
            elif (m := _BAIL.match(text)):
                self.errors.append(f"line {index + 1}: Bail out! {m.group(1)}".rstrip())
                end = index + 1
                break
            elif text == "#" or text.startswith(("# ", "#\t")):   # not "#1 0x..." (a backtrace frame)
                self.on_diagnostic(text[1:].strip(), indent)
            # anything else is log noise: it stays in the excerpts only
        self.finish(end)

    def finish(self, end: int) -> None:
        """End of log: whatever is still open crashed."""
        self.lines = self.lines[:end]
        while True:
            group = self.top
            if group.finished_block is not None:
                self.orphan_block(group, end, crashed_tail=True)
            self.fill_plan(group, end, crashed_tail=True)
            if len(self.stack) == 1:
                break
            self.stack.pop()
            self.top.finished_block = group


class _Restart(Exception):
    """A second top-level version line (the kernel started over)."""

    def __init__(self, index: int) -> None:
        self.index = index


def parse(log: str) -> KtapResult:
    """Parse the KTAP output somewhere inside a serial log."""
    lines = [line.replace("\r", "").replace("\x00", "").rstrip() for line in log.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    header = next((i for i, line in enumerate(lines) if _VERSION.match(line.strip())), None)
    if header is None:
        return KtapResult(errors=["no KTAP version line in the log"])
    parser = _Parser(lines)
    parser.run(header)
    root = parser.stack[0]
    return KtapResult(cases=root.children, errors=parser.errors, found=True,
                      version=lines[header].strip(), plan=root.plan, diagnostics=root.pending_diags)
