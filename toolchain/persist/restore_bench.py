"""What a restore costs: ``python -m toolchain.persist.restore_bench [--runs N]``.

For each workload: boot 1 on a fresh disk checkpoints it (``checkpoint_every=20``) and powers
off right after the third checkpoint commits (``checkpoint_cut=5``); boot 2 on that disk runs
under ``-icount shift=0`` (one guest instruction per virtual nanosecond, so the figure is
guest instructions, independent of the host's load) and its kernel line
``restore: generation <g> from slot <S>, <n> envs, <p> pages, <t> ms`` gives the time the
restore itself took: what a restoring boot does beyond a plain boot, which would instead load
``init`` from the initrd. Prints one line per run and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from .. import paths
from ..machine import Machine, MachineConfig
from ..runlog import RunLog

RESTORED = re.compile(r"^restore: generation (\d+) from slot ([AB]), (\d+) envs, (\d+) pages, ([\d.]+) ms$")
WORKLOADS = {
    "clockwatch": "run=clockwatch:300:2000",
    "ring": "hz=1000 run=ring:20000:16:3000",
    "mixed": "run=clockwatch:300:2000,ring:20000:16:3000,sleeper:4:100:5,futex_count",
}


@dataclass
class RestoreRun:
    workload: str
    envs: int
    pages: int
    ms: float               # guest time under -icount shift=0: millions of guest instructions


def one_run(name: str, append: str, kernel: Path, directory: Path) -> Optional[RestoreRun]:
    disk = directory / f"{name}.qcow2"
    disk.unlink(missing_ok=True)
    cut = f"checkpoint_every=20 checkpoint_cut=5 checkpoint_cut_after=2 {append}"
    with Machine(MachineConfig(kernel=kernel, append=cut, disk=disk, name=f"rbench-{name}")) as m:
        RunLog(m, 120)
    with Machine(MachineConfig(kernel=kernel, append=f"checkpoint_every=20 {append}", disk=disk,
                               extra_args=["-icount", "shift=0"], name=f"rbench-{name}-2")) as m:
        line = m.expect(RESTORED, timeout=60).line.rstrip()
        m.kill()
    g = RESTORED.match(line)
    return RestoreRun(name, int(g.group(3)), int(g.group(4)), float(g.group(5))) if g else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default=",".join(WORKLOADS))
    args = ap.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            for _ in range(args.runs):
                r = one_run(name, WORKLOADS[name], paths.KERNEL_ELF, Path(tmp))
                if r:
                    runs.append(r)
                    print(f"{r.workload}: {r.envs} envs, {r.pages} pages, restore {r.ms:.1f} ms "
                          f"(guest, -icount shift=0)", flush=True)
    summary = {name: {"median_ms": statistics.median(r.ms for r in rs), "pages": rs[0].pages,
                      "envs": rs[0].envs, "runs": len(rs)}
               for name in {r.workload for r in runs} for rs in [[r for r in runs if r.workload == name]]}
    print(json.dumps({"runs": [asdict(r) for r in runs], "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
