"""invoke tasks for Revenant: thin wrappers that parse options and call toolchain/.

Every task turns a RevenantError into one `error: ...` line and exit status 1.
"""
from __future__ import annotations

import functools
import shlex
import sys

from invoke import Exit, task


def _clean_errors(fn):
    """Report toolkit errors as one line, never a traceback."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        from toolchain.errors import RevenantError

        try:
            return fn(c, *args, **kwargs)
        except RevenantError as err:
            details = getattr(err, "output", "")
            if details:                     # full compiler output above the one-line verdict
                print(details.rstrip(), file=sys.stderr)
            raise Exit(f"error: {err}", code=1)
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130)

    return wrapper


@task(help={"verbose": "print every compiler command"})
@_clean_errors
def build(c, verbose=False):
    """Compile the kernel and userland into build/kernel.elf (incremental)."""
    from toolchain import build as builder

    result = builder.build(verbose=verbose)
    if result.up_to_date:
        print(f"{result.elf.name}: up to date ({result.seconds:.2f} s)")
    else:
        print(f"{result.elf.name}: compiled {len(result.compiled)} file(s)"
              f"{', linked' if result.linked else ''} in {result.seconds:.2f} s")


@task(
    help={
        "append": "kernel command line, e.g. 'heartbeat=500' or 'run=hello'",
        "qmp": "leave a QMP socket (build/qmp.sock) for `invoke snapshot`",
        "disk": "attach a qcow2 disk (created if absent) so snapshots can be saved",
        "timeout": "stop the machine after this many seconds (0 = never)",
        "kvm": "use KVM instead of TCG (opt-in; slower when nested)",
        "iso": "boot the GRUB ISO instead of the PVH ELF",
        "kernel": "boot this kernel image instead of building build/kernel.elf",
        "socket": "with --qmp: the QMP socket path (default build/qmp.sock)",
    }
)
@_clean_errors
def run(c, append="", qmp=False, disk="", timeout=0.0, kvm=False, iso=False, kernel="", socket=""):
    """Build, boot with the serial console on this terminal, and exit when the guest does."""
    from toolchain import runner

    if not kernel:
        build(c)
    status = runner.run_interactive(
        append=append, qmp=qmp, disk=disk or None, timeout=timeout, kvm=kvm, iso=iso,
        kernel=kernel or None, socket=socket or None,
    )
    print(f"result: {status.description}", file=sys.stderr)
    if not status.ok:
        raise Exit(code=1)


@task(help={"args": "extra pytest arguments (or give them after --)"})
def test(c, args=""):
    """Run the whole test suite with pytest; arguments after -- go to pytest."""
    extra = shlex.split(args) + shlex.split(c.remainder or "")
    cmd = [sys.executable, "-m", "pytest", *extra]
    result = c.run(shlex.join(cmd), pty=False, warn=True)
    if result.exited != 0:
        raise Exit(code=result.exited)


@task(help={"append": "kernel command line", "port": "gdbstub TCP port"})
@_clean_errors
def debug(c, append="", port=1234):
    """Start QEMU paused with its gdbstub and attach gdb with symbols."""
    from toolchain import debugger

    build(c)
    debugger.debug(append=append, port=port)


@task(
    positional=["action", "name"],
    help={
        "action": "save | load | list | delete",
        "name": "snapshot tag; for list, a glob or `all`",
        "socket": "QMP socket of a machine started by `invoke run --qmp`",
    }
)
@_clean_errors
def snapshot(c, action, name, socket=""):
    """QEMU snapshots of a machine started by `invoke run --qmp`: snapshot save|load|delete NAME, snapshot list all."""
    import dataclasses
    import fnmatch

    from toolchain import snapshot as snap
    from toolchain.errors import RevenantError

    sock = socket or None
    if action == "list":
        listing = snap.list_snapshots(sock)
        if name not in ("all", "*"):
            listing = dataclasses.replace(
                listing, snapshots=[s for s in listing.snapshots if fnmatch.fnmatch(s.name, name)])
        print(snap.format_list(listing))
        return
    operations = {"save": snap.save, "load": snap.load, "delete": snap.delete}
    if action not in operations:
        raise RevenantError(f"unknown snapshot action {action!r}: use save, load, list or delete")
    op = operations[action](name, sock)
    print(f"{op.op} {op.name}: {op.ms:.1f} ms (with stop/cont {op.total_ms:.1f} ms), "
          f"machine {op.status_after}")


@task
@_clean_errors
def doctor(c):
    """Show what is installed, what is missing, and how to install it."""
    from toolchain import doctor as doc

    report = doc.examine()
    print(report.render())
    if not report.ok:
        raise Exit(code=1)


@task
@_clean_errors
def iso(c):
    """Build build/revenant.iso with GRUB (multiboot2)."""
    from toolchain import iso as isomaker

    build(c)
    print(isomaker.make_iso())


@task(help={"quick": "small N (seconds instead of minutes)", "out": "JSON output path",
            "only": "comma-separated sections: boot,harness,snapshot,syscall,activation,uswitch"})
@_clean_errors
def bench(c, quick=False, out="build/bench.json", only=""):
    """Run the benchmarks; write JSON with ratios against in-run baselines."""
    from toolchain import bench as benchmarks

    build(c)
    report = benchmarks.run_all(quick=quick, out=out, only=[s for s in only.split(",") if s] or None)
    print(report.render())


@task(help={"name": "leak | chained | fuzz", "size": "N (default: the large N of each)"})
@_clean_errors
def experiment(c, name, size=0):
    """Long experiments (large N) behind the suite's short ones; JSON in build/experiments/."""
    from toolchain import experiment as experiments

    build(c)
    result = experiments.run(name, int(size))
    print(result.render())
    if not result.ok:
        raise Exit(code=1)


@task(help={"only": "comma-separated areas (vm, syscall, ...) or globs on mutant names",
            "jobs": "mutants run at once, each in its own scratch copy (default 1)",
            "quick": "trust each mutant's named tests: no whole-suite run for survivors or baseline",
            "list": "list the catalogue (with --only: the selection) and exit",
            "keep": "keep the scratch copies (their build/logs) for a post-mortem",
            "timeout": "seconds one mutant's pytest run may take (default: 3x the baseline, >= 300)",
            "catalogue": "directory of mutant patches (default tests/mutants)",
            "out": "JSON report path"})
@_clean_errors
def mutate(c, only="", jobs=1, quick=False, list=False, keep=False, timeout=0.0, catalogue="",
           out="build/mutate.json"):
    """Apply each kernel/toolkit mutant (tests/mutants/*.patch) to a scratch copy and run the suite on it."""
    from pathlib import Path

    from toolchain import mutate as mutation
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
    report = mutation.run(only=only, jobs=int(jobs), quick=quick, catalogue=directory, out=out_path,
                          timeout=float(timeout), keep=keep)
    print(report.summary())
    print(f"report: {out_path}")
    if report.survivors:
        raise Exit(code=1)


@task
def clean(c):
    """Remove build/ (kernel objects, logs, caches are kept in build/cache)."""
    import shutil
    from pathlib import Path

    build_dir = Path(__file__).resolve().parent / "build"
    for child in build_dir.glob("*") if build_dir.exists() else []:
        if child.name == "cache":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    print(f"cleaned {build_dir} (kept build/cache)")
