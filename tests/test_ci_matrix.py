"""ci/experiment-matrix.yml: every `invoke ...` command it runs names a task of tasks.py with
options that task has, checked by invoke's own parser on the collection tasks.py builds (not by
grep), and the campaign options it passes pass the experiment command's own checks."""
from __future__ import annotations

import importlib.util
import re
import shlex
from typing import Dict, List

import pytest
from invoke import Collection
from invoke.exceptions import ParseError
from invoke.parser import Parser, ParserContext

from toolchain.paths import ROOT

WORKFLOW = ROOT / "ci" / "experiment-matrix.yml"
EXPRESSION = re.compile(r"\$\{\{\s*([\w.]+)\s*\}\}")


def run_commands(text: str) -> List[str]:
    """Every `run:` of the workflow, one string each (folded `>-` and literal `|` blocks joined)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?run:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent, rest = len(m.group(1)), m.group(2).strip()
        if rest not in (">-", ">", "|", "|-"):
            out.append(rest)
            continue
        block = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i].strip())
            i += 1
        out.append(" ".join(b for b in block if b) if rest.startswith(">") else "\n".join(block))
    return out


def inputs_defaults(text: str) -> Dict[str, str]:
    """workflow_dispatch inputs -> their default values."""
    out, name = {}, None
    for line in text.splitlines():
        if m := re.match(r"^\s{6}(\w+):\s*$", line):
            name = m.group(1)
        elif (m := re.match(r'^\s+default:\s*"?([^"]*)"?\s*$', line)) and name:
            out[name] = m.group(1)
    return out


def matrix_values(text: str) -> Dict[str, List[str]]:
    m = re.search(r"^\s+matrix:\s*\n\s+(\w+):\s*\[([^\]]*)\]", text, re.M)
    assert m, "the workflow has no matrix"
    return {m.group(1): [v.strip() for v in m.group(2).split(",")]}


def tasks_collection() -> Collection:
    spec = importlib.util.spec_from_file_location("revenant_tasks_ci", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)       # also installs toolchain/cli.py's parser adjustments
    return Collection.from_module(module)


def parse(collection: Collection, argv: List[str]) -> List[ParserContext]:
    parser = Parser(initial=ParserContext(), contexts=collection.to_contexts())
    return [c for c in parser.parse_argv(argv) if c.name]      # without the core options' context


def invoke_argvs(text: str) -> List[List[str]]:
    """The argv after `invoke` of each invoke command, for every matrix value, expressions filled."""
    values = {f"inputs.{k}": v for k, v in inputs_defaults(text).items()}
    ((key, choices),) = matrix_values(text).items()
    out = []
    for command in run_commands(text):
        for choice in choices:
            filled = EXPRESSION.sub(lambda m: {**values, f"matrix.{key}": choice}[m.group(1)], command)
            words = shlex.split(filled)
            if words and words[0].endswith("invoke"):
                out.append(words[1:])
    return out


def test_the_workflow_runs_shards_and_merges_them_with_commands_tasks_py_has():
    text = WORKFLOW.read_text()
    collection = tasks_collection()
    argvs = invoke_argvs(text)
    used = {argv[0] for argv in argvs}
    assert {"build", "experiment", "report"} <= used, argvs
    for argv in argvs:
        contexts = parse(collection, argv)
        assert [c.name for c in contexts] == [argv[0]], argv          # one task, every word its own
    shards = [a for a in argvs if a[0] == "experiment" and "--shard" in a]
    assert sorted(a[a.index("--shard") + 1] for a in shards) == ["1/4", "2/4", "3/4", "4/4"], shards
    (merge,) = {tuple(a) for a in argvs if a[:2] == ["experiment", "merge"]}
    assert "--out" in merge


def test_the_shard_command_passes_the_experiment_commands_checks():
    from toolchain.cli import positional_list
    from toolchain.experiments import commands

    collection = tasks_collection()
    for argv in invoke_argvs(WORKFLOW.read_text()):
        if argv[0] != "experiment" or "merge" in argv:
            continue
        (ctx,) = parse(collection, argv)
        args = {a.name: a.value for a in ctx.args.values()}
        given = commands.Given(**{k: str(args[k] or "") for k in ("size", "workload", "trials", "seed", "jobs",
                                                                    "shard", "keep", "trial", "out")})
        command = commands.parse(args["name"], positional_list(args["results"]), given)
        assert command.needs_build


def test_the_check_catches_an_option_tasks_py_lacks_and_a_task_it_lacks():
    collection = tasks_collection()
    with pytest.raises(ParseError):
        parse(collection, ["experiment", "loadvm", "--shards", "1/4"])
    with pytest.raises(ParseError):
        parse(collection, ["experiments", "loadvm"])
    broken = WORKFLOW.read_text().replace("--keep failing", "--keep-going failing")
    with pytest.raises(ParseError):
        for argv in invoke_argvs(broken):
            parse(collection, argv)


def test_merge_takes_every_shard_file_as_one_variadic_argument():
    (ctx,) = parse(tasks_collection(), ["experiment", "merge", "a.json", "b.json", "c.json", "--out", "m"])
    from toolchain.cli import positional_list
    assert ctx.args["name"].value == "merge" and ctx.args["out"].value == "m"
    assert positional_list(ctx.args["results"].value) == ["a.json", "b.json", "c.json"]
