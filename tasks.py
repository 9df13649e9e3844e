"""invoke tasks for Revenant: thin wrappers that parse options and call toolchain/.

Every task turns a RevenantError into one `error: ...` line and exit status 1.
"""
from __future__ import annotations

import functools
import shlex
import sys

from invoke import Exit, task


def _clean_errors(fn):
    """Report toolkit errors as one line, never a traceback (toolchain/cli.py: guard)."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        from toolchain.cli import guard

        return guard(lambda: fn(c, *args, **kwargs), Exit)

    return wrapper


@task(help={"verbose": "print every compiler command", "jobs": "parallel jobs (default: cores + 2)"})
@_clean_errors
def build(c, verbose=False, jobs=""):
    """Compile the kernel and userland into build/kernel.elf (Ninja: incremental, parallel)."""
    from toolchain import build as builder
    from toolchain.cli import number

    workers = int(number("--jobs", jobs, integer=True, minimum=1)) if jobs else None
    result = builder.build(verbose=verbose, jobs=workers)
    print(f"{result.elf.name}: {builder.describe(result)}")


@task(
    help={
        "append": "kernel command line, e.g. 'heartbeat=500' or 'run=hello' (checked before booting)",
        "qmp": "leave a QMP socket (build/qmp.sock) for `invoke snapshot`",
        "disk": "a qcow2 image the guest gets as its virtio-blk disk and QMP snapshots use (with --qmp "
                "default build/snapshots.qcow2); created (64 MiB) if absent, in an existing directory, "
                "and kept across boots",
        "timeout": "stop the machine after this many seconds (0 = never)",
        "kvm": "use KVM instead of TCG (opt-in; fails with one line if this host's KVM cannot run it)",
        "iso": "boot through GRUB from its own ISO, build/run.iso (build/revenant.iso is `invoke iso`'s)",
        "kernel": "boot this kernel image instead of building build/kernel.elf",
        "socket": "with --qmp: the QMP socket path (default build/qmp.sock)",
        "raw": "show the kernel's serial lines exactly as they are (the log always has them)",
    }
)
@_clean_errors
def run(c, append="", qmp=False, disk="", timeout="0", kvm=False, iso=False, kernel="", socket="",
        raw=False):
    """Build, boot with the serial console on this terminal, and exit when the guest does."""
    from toolchain import runner
    from toolchain.cli import number

    seconds = number("--timeout", timeout, minimum=0, unit="seconds")
    options = runner.RunOptions(append=append, qmp=qmp, disk=disk or None, timeout=seconds, kvm=kvm,
                                iso=iso, kernel=kernel or None, socket=socket or None, raw=raw)
    options.check()                     # every refusal before the build and the boot
    if not kernel:
        build(c)
    status = runner.run_interactive(options)
    if not status.ok:
        raise Exit(code=1)


# pytest arguments that choose the parallelism themselves (or cannot run in parallel)
_SERIAL_OR_CHOSEN = ("-n", "--numprocesses", "--pdb", "--trace", "no:xdist")


@task(help={"args": "extra pytest arguments (or give them after --)",
            "numprocesses": "parallel workers (pytest-xdist): auto (one per core, the default), N, or 0 for none",
            "junit": "also write JUnit XML to this path (failing tests carry their serial log tail)"})
@_clean_errors
def test(c, args="", numprocesses="", junit=""):
    """Run the whole test suite with pytest, in parallel; arguments after -- go to pytest."""
    from toolchain.errors import UsageError

    extra = shlex.split(args) + shlex.split(c.remainder or "")
    workers = numprocesses or "auto"
    if not (workers in ("auto", "logical") or workers.isdigit()):
        raise UsageError(f"--numprocesses takes auto, logical or a number of workers (0: none), not {workers!r}")
    cmd = [sys.executable, "-m", "pytest"]
    if numprocesses or not any(a in _SERIAL_OR_CHOSEN or a.startswith(("-n", "--numprocesses="))
                               for a in extra):
        import importlib.util
        if importlib.util.find_spec("xdist") is not None:
            cmd += ["-n", workers]
            if workers != "0":
                # a module's tests on one worker: module-scoped fixtures (a boot shared by the
                # module's tests, e.g. tests/test_isolation_attacks.py) run once, not per worker
                cmd += ["--dist", "loadscope"]
        elif workers != "0":
            from toolchain.errors import ToolMissing
            raise ToolMissing("pytest-xdist is not installed: run ci/bootstrap (or run serially: invoke test -n 0)")
    if junit:
        from pathlib import Path
        if Path(junit).is_dir():
            raise UsageError(f"--junit takes the path of an XML file to write, not the directory {junit}")
        cmd += [f"--junitxml={junit}"]
    result = c.run(shlex.join(cmd + extra), pty=False, warn=True)
    if result.exited != 0:
        raise Exit(code=result.exited)


@task(help={"append": "kernel command line (checked before booting)",
            "port": "gdbstub TCP port, 1..65535 (default 1234)"})
@_clean_errors
def debug(c, append="", port="1234"):
    """Start QEMU paused with its gdbstub and attach gdb with symbols."""
    from toolchain import cmdline, debugger
    from toolchain.cli import number

    tcp_port = int(number("--port", port, integer=True, minimum=1, maximum=65535))
    cmdline.check(append)
    build(c)
    debugger.debug(append=append, port=tcp_port)


@task(
    positional=["action", "name"],
    help={
        "action": "save | load | delete | list",
        "name": "snapshot tag; for list, a glob (default: all)",
        "socket": "QMP socket of a machine started by `invoke run --qmp` (default build/qmp.sock)",
        "disk": "for list: read this qcow2's snapshots offline with qemu-img "
                "(default, when no machine runs: build/snapshots.qcow2)",
    }
)
@_clean_errors
def snapshot(c, action, name, socket="", disk=""):
    """QEMU snapshots: snapshot save|load|delete NAME, snapshot list [GLOB] (offline too)."""
    from toolchain import snapshot as snap

    print(snap.command(action, name, socket=socket or None, disk=disk or None))


@task
@_clean_errors
def doctor(c):
    """Show what is installed, what is missing, and how to install it."""
    from toolchain import doctor as doc

    report = doc.examine()
    print(report.render())
    if not report.ok:
        raise Exit(code=1)


@task(help={"append": "kernel command line baked into the ISO's grub.cfg (checked first)"})
@_clean_errors
def iso(c, append=""):
    """Build build/revenant.iso with GRUB (multiboot2)."""
    from toolchain import cmdline
    from toolchain import iso as isomaker

    cmdline.check(append)
    build(c)
    print(isomaker.make_iso(cmdline=append))


@task(help={"quick": "small N (seconds instead of minutes)", "out": "JSON output path",
            "only": "comma-separated sections: boot,harness,snapshot,syscall,activation,uswitch,"
                    "ipc,futex,restart"})
@_clean_errors
def bench(c, quick=False, out="build/bench.json", only=""):
    """Run the benchmarks; a verdict per figure against its target; exit 1 on a miss."""
    from toolchain import bench as benchmarks

    sections = benchmarks.parse_only(only)
    benchmarks.out_path(out)
    build(c)
    report = benchmarks.run_all(quick=quick, out=out, only=sections, progress=True)
    print(report.render())
    from toolchain.experiments.report import bench_report
    print(bench_report(report.out).render())
    if not report.ok:
        raise Exit(code=1)


@task(help={"socket": "QMP socket of a machine started by `invoke run --qmp` (default build/qmp.sock)"})
@_clean_errors
def restart(c, socket=""):
    """Ask the machine of `invoke run --qmp` for an in-place restart (an NMI; docs/restart.md)."""
    from toolchain import restart as restarts

    req = restarts.request(socket or None)
    print(f"restart requested: inject-nmi sent to {req.socket} in {req.ms:.1f} ms; the kernel "
          f"prints `restart <n>: ...` at its next safe point")


@task(
    positional=["action", "disk"],
    help={
        "action": "now (default): ask the machine of `invoke run --qmp --disk` for a checkpoint; "
                  "list | inspect: read a checkpoint disk offline, without booting",
        "disk": "for list / inspect: the checkpoint disk, a qcow2 (as `invoke run --disk`) or raw image",
        "slot": "for inspect: A or B (default: the newest valid checkpoint)",
        "socket": "for now: QMP socket of that machine (default build/qmp.sock)",
    }
)
@_clean_errors
def checkpoint(c, action, disk, slot="", socket=""):
    """Checkpoints: ask a running machine for one (F12 through QMP send-key), or read a disk:
    checkpoint [now], checkpoint list DISK, checkpoint inspect DISK [--slot A|B] (docs/persistence.md)."""
    from toolchain.errors import UsageError
    from toolchain.persist import checkpoints, inspect

    if action in ("list", "inspect"):
        print(inspect.command(action, disk, slot))
        return
    if action not in ("", "now") or disk:
        raise UsageError(f"checkpoint: unknown action {' '.join(filter(None, [action, disk]))!r} "
                         f"(now, list DISK, inspect DISK)")
    req = checkpoints.request(socket or None)
    print(f"checkpoint requested: send-key {checkpoints.CHECKPOINT_KEY} sent to {req.socket} in "
          f"{req.ms:.1f} ms; the kernel prints `checkpoint <n>: ...` at its next safe point")


@task(positional=["name", "results"],
      help={"name": "an experiment (leak | chained | fuzz | restart | loadvm | instant | powercut | upgrade) or merge | replay | bisect",
            "results": "merge: the shards' result.json files; replay, bisect: one result.json",
            "trials": "trials in the campaign (default: the experiment's own)",
            "seed": "the campaign's seed: trial K's seed and choices derive from (seed, K) (default 1)",
            "jobs": "trials at once (default: the cores)",
            "shard": "I/N: run only the trials K with K % N == I - 1 (merge the N results after)",
            "keep": "failing (default) | all | none: which trials keep their logs, disks and rr files",
            "trial": "run (replay, bisect) only trial K of the campaign",
            "size": "the experiment's N per trial (leak, chained, restart: events; fuzz: calls; powercut, upgrade: work units)",
            "workload": "loadvm: reqresp (default), ring or futex_count; instant: ring (default), tally or tally_buggy",
            "out": "merge: the merged campaign's directory (default build/experiments/NAME-merged-...)"})
@_clean_errors
def experiment(c, name, results="", trials="", seed="", jobs="", shard="", keep="", trial="", size="",
               workload="", out=""):
    """Campaigns of seeded trials in parallel, shards, merge; result.json, report.md and plots."""
    from toolchain.cli import positional_list
    from toolchain.experiments import commands

    given = commands.Given(size=size, workload=workload, trials=trials, seed=seed, jobs=jobs, shard=shard,
                           keep=keep, trial=trial, out=out)
    command = commands.parse(name, positional_list(results), given)     # every refusal before the build
    if command.needs_build:
        build(c)
    outcome = command.run()
    print(outcome.text)
    if not outcome.ok:
        raise Exit(code=1)


@task(positional=["result"],
      help={"result": "a campaign's result.json (or its directory), or a bench JSON (build/bench.json)",
            "out": "write the report and plots here (default: beside the JSON)"})
@_clean_errors
def report(c, result, out=""):
    """Draw a campaign's (or `invoke bench`'s) report.md and PNG plots again from its JSON."""
    from toolchain.experiments import commands

    print(commands.report(result, out).text)


@task(help={"only": "comma-separated areas (vm, syscall, ...) or globs on mutant names",
            "jobs": "mutants run at once, each in its own scratch copy (default 1)",
            "quick": "trust each mutant's named tests: no whole-suite run for survivors or baseline",
            "list": "list the catalogue (with --only: the selection) and exit",
            "keep": "keep the scratch copies (their build/logs) for a post-mortem",
            "timeout": "seconds one mutant's pytest run may take (default: 3x the baseline, >= 300)",
            "catalogue": "directory of mutant patches (default tests/mutants)",
            "out": "JSON report path"})
@_clean_errors
def mutate(c, only="", jobs="1", quick=False, list=False, keep=False, timeout="0", catalogue="",
           out="build/mutate.json"):
    """Apply each kernel/toolkit mutant (tests/mutants/*.patch) to a scratch copy and run the suite on it."""
    from pathlib import Path

    from toolchain import mutate as mutation
    from toolchain.cli import number
    from toolchain.paths import ROOT

    directory = Path(catalogue) if catalogue else mutation.MUTANTS_DIR
    chosen = mutation.select(mutation.load_catalogue(directory), only)
    if list:
        for m in chosen:
            extra = f"  [equivalent: {m.equivalent}]" if m.equivalent else ""
            print(f"{m.name:<34} {m.what}{extra}")
        print(f"{len(chosen)} mutant(s)")
        return
    out_path = Path(out) if Path(out).is_absolute() else ROOT / out
    n_jobs = int(number("--jobs", jobs, integer=True, minimum=1))
    seconds = number("--timeout", timeout, minimum=0, unit="seconds")
    report = mutation.run(only=only, jobs=n_jobs, quick=quick, catalogue=directory, out=out_path,
                          timeout=seconds, keep=keep)
    print(report.summary())
    print(f"report: {out_path}")
    if report.survivors:
        raise Exit(code=1)


@task(help={"all_": "also delete the saved snapshots (build/snapshots.qcow2)"})
@_clean_errors
def clean(c, all_=False):
    """Remove build/ but build/cache (the Linux peer) and the saved snapshots; refused while a machine runs."""
    from toolchain import clean as cleaner

    print(cleaner.clean(everything=all_))


def _adapt_invoke() -> None:
    """Placeholders in --help, and `invoke snapshot list` without a NAME (toolchain/cli.py)."""
    from toolchain.cli import adapt_invoke

    adapt_invoke(
        metavars={
            "run": {"append": "CMDLINE", "disk": "QCOW2", "timeout": "SECONDS", "kernel": "ELF",
                    "socket": "PATH"},
            "debug": {"append": "CMDLINE", "port": "PORT"},
            "snapshot": {"socket": "PATH", "disk": "QCOW2", "action": "ACTION", "name": "NAME"},
            "checkpoint": {"action": "ACTION", "disk": "DISK", "slot": "A|B", "socket": "PATH"},
            "iso": {"append": "CMDLINE"},
            "bench": {"out": "PATH", "only": "SECTIONS"},
            "experiment": {"name": "NAME", "results": "RESULT.json", "size": "N", "trials": "N", "seed": "S",
                           "workload": "NAME", "trial": "K", "jobs": "N", "shard": "I/N",
                           "keep": "WHICH", "out": "DIR"},
            "report": {"result": "JSON", "out": "DIR"},
            "mutate": {"only": "AREAS", "jobs": "N", "timeout": "SECONDS", "catalogue": "DIR", "out": "PATH"},
            "test": {"args": "ARGS", "numprocesses": "N", "junit": "PATH"},
            "build": {"jobs": "N"},
        },
        optional={"snapshot": ["name"], "checkpoint": ["action", "disk"], "experiment": ["results"]},
        variadic={"experiment": "results"},
    )


_adapt_invoke()
