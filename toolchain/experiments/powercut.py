"""powercut: cut the power of a machine that checkpoints, boot it again on the same disk, repeat,
and check that the workload ends exactly as an uninterrupted run does (docs/persistence.md,
"Experiments").

One trial, every choice drawn from its seed (``plan``):

* The workload is ``powerwork`` (userland/progs/powerwork.c): ``size`` numbered units, each one
  line ``powerwork: unit <k> sum <hex>``, then ``powerwork: done units=<n> checksum=<hex>``; it
  calls checkpoint() itself every ``every_units`` units (0: never) and the kernel takes one
  every ``every_ms`` ms (``checkpoint_every=``), with output commit on.
* A fresh qcow2 disk; boot 1 on it. Each of the trial's ``cuts`` ends one boot early:
  - ``step``: the kernel itself powers off right after step ``step`` (1-7) of the checkpoint
    that follows ``after`` committed ones of that boot (``checkpoint_cut=``,
    ``checkpoint_cut_after=``): a cut inside the write sequence, at a chosen step.
  - ``kill``: the host SIGKILLs QEMU ``delay_ms`` after the boot's ``after``-th checkpoint line
    (after=0: after QEMU started): a cut at an instant the kernel does not choose, which may
    land anywhere, inside a checkpoint write included.
  Then the next boot, same disk, same command line without the cut keys. A boot that finishes
  before its cut ends the trial (the cut never happened: ``cuts`` counts those that did).
* The last boot runs to the end.

The verdict reads the serial logs of all boots, concatenated: the workload's lines must be the
uninterrupted run's, in order, each exactly once. Figures: ``lost`` (units whose line never
appeared), ``doubled`` (units whose line appeared more than once), ``repeated_lines`` (workload
lines seen more than once, all kinds), ``cuts``, ``step_cuts``, ``kills``, ``restores``,
``clean_boots`` (a boot after a cut that found no checkpoint), ``restore_ms_max`` (the kernel's
own figure), ``checkpoints`` (commits over all boots), ``boots``.

The campaign JSON holds the QEMU argv with ``{kernel}``, ``{disk}`` and ``{append}`` for what
changes, the qemu-img command, each trial's boots (append and cut) in its params, and the
expected final line: ci/powercut-by-hand.py repeats a trial with nothing but qemu and kill.
"""
from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import paths
from ..errors import RevenantError, UsageError
from ..machine import Machine, MachineConfig, create_disk
from ..persist.checkpoints import CHECKPOINT_LINE
from .engine import RR, TrialPlan, TrialResult, build_id, trial_seed

PROGRAM = "powerwork"
WORK = 100_000                 # hash rounds per unit (powerwork's second argument): ~20 ms of guest time
GUEST_MS_PER_UNIT = 2           # measured (ICOUNT): 120 units take ~300 ms of guest time
STEPS = 7                       # kernel/checkpoint.c: the write sequence's numbered steps
DISK_SIZE = "64M"
DISK_CREATE = ["qemu-img", "create", "-f", "qcow2", "{disk}", DISK_SIZE]
# Guest time counts instructions (1 ns each), not the host's clock: the checkpoint timer then
# fires at the same points of the workload however loaded the host is, so a plan's kernel cuts
# (checkpoint_cut_after=N) land where the plan meant. (Kills stay on the host's clock.)
ICOUNT = ["-icount", "shift=0"]
BOOT_TIMEOUT = 90.0             # seconds one boot may take (TCG on a shared 2-core host)

# The lines programs print (held by output commit): the workload's and init's. The kernel's own
# lines (boot, checkpoint, restore) come again in every boot by design and are not judged.
PROGRAM_LINES = (f"{PROGRAM}: ", "init: ")
UNIT = re.compile(rf"^{PROGRAM}: unit (\d+) sum ([0-9a-f]+)$")
DONE = re.compile(rf"^{PROGRAM}: done units=\d+ checksum=[0-9a-f]+$")
RESTORED = re.compile(r"^restore: generation \d+ from slot [AB], \d+ envs, \d+ pages, ([\d.]+) ms$")
POWEROFF = "revenant: poweroff"
CLEAN = re.compile(r"^restore: no (valid )?checkpoint")
# The newest checkpoint is the one a clean power-off takes, with nothing running: the workload had
# finished (its last lines may be the held output this restore shows again, before this line).
FINISHED = re.compile(r"^restore: generation \d+ from slot [AB]: no program was running: clean boot$")


def after_the_finish(lines: List[str]) -> List[str]:
    """A boot that finds the workload finished: the program lines after its restore line belong to
    a new run of the workload that the command line starts (not this trial's): dropped."""
    at = next((i for i, line in enumerate(lines) if FINISHED.match(line)), None)
    if at is None:
        return lines
    return lines[:at + 1] + [line for line in lines[at + 1:] if not line.startswith(PROGRAM_LINES)]


@dataclass(frozen=True)
class Cut:
    """How one boot ends early (see the module's doc)."""

    kind: str                   # "step" | "kill"
    after: int                  # committed checkpoints of this boot before the cut
    step: int = 0               # kind "step": the write sequence's step (1..7)
    delay_ms: float = 0.0       # kind "kill": after that checkpoint's line (or QEMU's start)

    def keys(self) -> str:
        return f" checkpoint_cut={self.step} checkpoint_cut_after={self.after}" if self.kind == "step" else ""


def workload_append(units: int, every_ms: int, every_units: int) -> str:
    return f"checkpoint_every={every_ms} outcommit=on run={PROGRAM}:{units}:{WORK}:{every_units}"


def checkpoint_period(rng: random.Random, first_step: Optional[int]) -> Tuple[int, int]:
    """(checkpoint_every= ms, the program's own checkpoint() every N units) of a trial. A unit
    takes ~2 ms of guest time. A cut at step 6 or 7 needs a checkpoint that holds output to
    release: with a checkpoint() after every unit, nearly all of them do (at 10 ms on the timer
    alone, many hold none)."""
    if first_step is not None and first_step >= 6:
        return 50, 1
    return rng.choice((10, 20, 50)), rng.choice((0, 1, 7))


def checkpoints_within(units: int, every_ms: int, every_units: int) -> int:
    """How many committed checkpoints a cut may wait for: about the first half of a run's."""
    timer = units * GUEST_MS_PER_UNIT // every_ms
    return max(1, (timer + (units // every_units if every_units else 0)) // 2)


def draw_cut(rng: random.Random, first_step: Optional[int], max_after: int) -> Cut:
    """One cut: a kernel cut at ``first_step`` if given, else a step cut or a kill at random;
    after 0..max_after committed checkpoints of its boot (steps 6 and 7 exist only in a
    checkpoint that holds output to release, which the first ones of a boot rarely do: at
    least one before them)."""
    if first_step is not None or rng.random() < 0.4:
        step = first_step if first_step is not None else rng.randint(1, STEPS)
        return Cut("step", rng.randint(1 if step >= 6 else 0, max_after), step)
    return draw_kill(rng, max_after)


def draw_kill(rng: random.Random, max_after: int) -> Cut:
    return Cut("kill", rng.randint(0, max_after), delay_ms=round(rng.uniform(0, 60), 3))


@dataclass
class Boot:
    """What one boot showed."""

    lines: List[str]
    log: str
    status: Optional[int]
    cut: Optional[str] = None   # "step" | "kill" if it was cut, None if it ran to its end
    window: List[str] = field(default_factory=list)   # release_window() of the disk after the cut
    torn: str = ""              # a last line the cut ended half-way (not in ``lines``)


@dataclass
class Verdict:
    verdict: str
    message: str
    figures: Dict[str, float] = field(default_factory=dict)


def release_window(disk: Path) -> List[str]:
    """The program lines a cut may have shown without the disk knowing: the held output of the
    newest checkpoint past the release mark. The kernel shows it (step 6), then writes and
    flushes the mark (step 7); a cut in between leaves lines that the console has shown and the
    restore shows again. No console can be asked what it showed: inherent, and the only
    repetition allowed (docs/persistence.md, "Experiments")."""
    from ..persist import format as fmt

    d = fmt.read_disk(disk)
    header = fmt.newest(d)
    if header is None:
        return []
    held = fmt.load(d, header).output
    mark = fmt.release_mark(d)
    shown = mark.released_seq if mark is not None else 0
    skip = min(max(shown - header.output_seq, 0), len(held))
    return [line for line in held[skip:].decode("utf-8", "replace").splitlines()
            if line.startswith(PROGRAM_LINES)]


def judge(boots: List[Boot], expected: List[str], units: int) -> Verdict:
    """The trial's verdict from every boot's serial lines and the uninterrupted run's."""
    got = [line for b in boots for line in b.lines if line.startswith(PROGRAM_LINES)]
    extra = Counter({line: n - 1 for line, n in Counter(got).items() if n > 1})
    allowed = Counter(line for b in boots for line in b.window if line in b.lines)
    in_window = extra & allowed
    extra -= in_window
    unit_seen = Counter(int(m.group(1)) for line in got if (m := UNIT.match(line)))
    unit_extra = Counter(int(m.group(1)) for line in extra.elements() if (m := UNIT.match(line)))
    want_sum = {int(m.group(1)): m.group(2) for line in expected if (m := UNIT.match(line))}
    wrong_sums = sorted(k for line in got if (m := UNIT.match(line))
                        and want_sum.get(k := int(m.group(1))) != m.group(2))
    restores = [float(m.group(1)) for b in boots for line in b.lines if (m := RESTORED.match(line))]
    cut = [b.cut for b in boots if b.cut]
    figures: Dict[str, float] = {
        "lost": sum(1 for k in range(units) if unit_seen[k] == 0),
        "doubled": len(unit_extra),
        "repeated_lines": sum(extra.values()),
        "window_repeats": sum(in_window.values()),
        "cuts": len(cut), "step_cuts": cut.count("step"), "kills": cut.count("kill"),
        "restores": len(restores),
        "clean_boots": sum(1 for b in boots[1:] for line in b.lines if CLEAN.match(line)),
        "found_finished": sum(1 for b in boots[1:] for line in b.lines if FINISHED.match(line)),
        "checkpoints": sum(1 for b in boots for line in b.lines if CHECKPOINT_LINE.match(line)),
        "boots": len(boots),
    }
    if restores:
        figures["restore_ms_max"] = max(restores)
    why = [f"{name}={figures[name]:g}" for name in ("lost", "doubled", "repeated_lines") if figures[name]]
    if wrong_sums:
        why.append(f"units with another sum: {wrong_sums[:5]}")
    torn = [b.torn for b in boots if b.torn.startswith(PROGRAM_LINES)]
    figures["torn_lines"] = len(torn)
    unexplained = [t for t in torn if not any(line.startswith(t) for b in boots for line in b.window)]
    if unexplained:
        why.append(f"a cut tore a line the release window does not explain: {unexplained[0]!r}")
    final = [line for line in got if DONE.match(line)]
    want = final_line(expected)
    if final[-1:] != [want]:
        why.append(f"final line {final[-1] if final else None!r}, not {want!r}")
    if not why:
        why += out_of_order(got, expected, in_window)
    last = boots[-1]
    if last.cut is None and f"{POWEROFF} status=0" not in last.lines:
        why.append(f"the last boot did not power off cleanly (QEMU status {last.status})")
    if why:
        return Verdict("wrong", "; ".join(why), figures)
    if not cut:
        return Verdict("late", "the workload ended before the first cut: nothing was cut", figures)
    return Verdict("ok", "", figures)


def out_of_order(got: List[str], expected: List[str], in_window: Counter) -> List[str]:
    """Each program's lines in the uninterrupted run's order (two programs' lines may
    interleave differently: they run side by side), once the allowed repeats are dropped."""
    seen: Counter = Counter()
    once = []
    for line in got:
        seen[line] += 1
        if seen[line] <= 1 or seen[line] > 1 + in_window[line]:
            once.append(line)
    for prefix in PROGRAM_LINES:
        if [x for x in once if x.startswith(prefix)] != [x for x in expected if x.startswith(prefix)]:
            return [f"the {prefix.rstrip(': ')} lines came in another order than the uninterrupted run's"]
    return []


def final_line(lines: List[str]) -> str:
    return next(line for line in lines if DONE.match(line))


def portable_argv(argv: List[str], kernel: Path, disk: Path, append: str) -> List[str]:
    """The argv with {kernel}, {disk} and {append} for what changes per trial and boot."""
    from ..bench import _drop_pidfile

    out = []
    for a in _drop_pidfile(argv):
        if a == append:
            out.append("{append}")
            continue
        out.append(a.replace(str(disk).replace(",", ",,"), "{disk}").replace(str(kernel), "{kernel}"))
    return out


class Powercut:
    name = "powercut"
    about = "SIGKILL or a kernel cut at random instants, boot again on the same disk: same lines, once each"
    defaults = {"size": 120, "cuts": "mixed"}
    default_trials = 20
    instant = "first_after"
    units = {"restore_ms_max": "ms (guest)", "first_after": "checkpoints before the first cut",
             "lost": "units", "doubled": "units", "repeated_lines": "lines"}
    max_cuts = 3

    def __init__(self) -> None:
        self._references: Dict[Tuple[str, int], List[str]] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------- plan
    def plan(self, campaign_seed: int, index: int, options: dict) -> TrialPlan:
        """cuts=mixed: even trials begin with a kernel cut at step index/2 % 7 + 1 (every step
        within 14 trials), odd ones with a kill; 0-2 more cuts of either kind at random.
        cuts=steps: one kernel cut per trial, at step index % 7 + 1 (every step within 7
        trials), with a checkpoint() after every unit: under ICOUNT the cut lands at the same
        point of the workload on every run."""
        units, mode = _options(options)
        seed = trial_seed(self.name, campaign_seed, index)
        rng = random.Random(seed)
        if mode == "steps":
            every_ms, every_units = 50, 1
            step = index % STEPS + 1
            cuts = [Cut("step", rng.randint(1, checkpoints_within(units, every_ms, every_units)), step)]
            return self.params(index, seed, units, every_ms, every_units, cuts)
        first = (index // 2) % STEPS + 1 if index % 2 == 0 else None
        every_ms, every_units = checkpoint_period(rng, first)
        max_after = checkpoints_within(units, every_ms, every_units)
        cuts = [draw_cut(rng, first, max_after) if first is not None else draw_kill(rng, max_after)]
        cuts += [draw_cut(rng, None, max_after) for _ in range(rng.randint(0, self.max_cuts - 1))]
        return self.params(index, seed, units, every_ms, every_units, cuts)

    def params(self, index: int, seed: int, units: int, every_ms: int, every_units: int,
               cuts: List[Cut]) -> TrialPlan:
        return TrialPlan(index, seed, {"units": units, "every_ms": every_ms, "every_units": every_units,
                                       "append": workload_append(units, every_ms, every_units),
                                       "cuts": [asdict(c) for c in cuts], "first_after": cuts[0].after})

    # -------------------------------------------------------------- reference
    def describe(self, options: dict) -> dict:
        units, _ = _options(options)
        append = workload_append(units, 10, 0)
        expected = self.reference(units, paths.KERNEL_ELF)
        m = Machine(MachineConfig(append=append, disk=Path("/DISK"), symbolize=False, extra_args=list(ICOUNT)))
        return {"argv": portable_argv(m.argv(), paths.KERNEL_ELF, Path("/DISK"), append),
                "expected": final_line(expected), "disk_create": DISK_CREATE,
                "kernels": {"A": str(paths.KERNEL_ELF)},
                "by_hand": "ci/powercut-by-hand.py RESULT.json --trial K (docs/persistence.md)"}

    def reference(self, units: int, kernel: Path) -> List[str]:
        """The workload's lines in an uninterrupted run on a disk (checkpoints, no cut)."""
        key = (build_id(kernel), units)
        with self._lock:
            if key not in self._references:
                self._references[key] = self._reference_run(units, kernel)
            return self._references[key]

    def _reference_run(self, units: int, kernel: Path) -> List[str]:
        import shutil
        import tempfile

        paths.BUILD.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="powercut-reference-", dir=paths.BUILD))
        disk = create_disk(work / "reference.qcow2", DISK_SIZE)
        b = self._boot(kernel, workload_append(units, 10, 0), disk, work, None, "reference")
        lines = [line for line in b.lines if line.startswith(PROGRAM_LINES)]
        if b.status != 33 or not any(DONE.match(line) for line in lines):
            raise RevenantError(f"{self.name}: the uninterrupted run failed (status {b.status}); log: {b.log}")
        shutil.rmtree(work, ignore_errors=True)
        return lines

    # -------------------------------------------------------------- a trial
    def kernels(self) -> Tuple[Path, Path]:
        """(the kernel of the first boot, the kernel of the boots after a cut)."""
        return paths.KERNEL_ELF, paths.KERNEL_ELF

    def run(self, plan: TrialPlan, workdir: Path, rr: Optional[RR]) -> TrialResult:
        if rr is not None:
            raise UsageError(f"{self.name} kills QEMU at wall-clock instants: no record/replay")
        first, after_cut = self.kernels()
        expected = self.reference(plan.params["units"], first)
        disk = create_disk(workdir / "disk.qcow2", DISK_SIZE)
        artifacts: Dict[str, str] = {"disk": str(disk)}
        boots: List[Boot] = []
        cuts = [Cut(**c) for c in plan.params["cuts"]]
        for i, cut in enumerate([*cuts, None]):
            b = self._boot(first if i == 0 else after_cut, plan.params["append"], disk, workdir, cut, f"boot{i + 1}")
            boots.append(b)
            artifacts[f"serial_boot{i + 1}"] = b.log
            if b.cut is None:
                break
            b.window = release_window(disk)
        v = judge(boots, expected, plan.params["units"])
        v = self.also(boots, v)
        return TrialResult.of_plan(plan, v.verdict, message=v.message, figures=v.figures, artifacts=artifacts)

    def also(self, boots: List[Boot], v: Verdict) -> Verdict:
        """More checks of a subclass (upgrade: build B booted and restored)."""
        return v

    def _boot(self, kernel: Path, append: str, disk: Path, workdir: Path, cut: Optional[Cut], name: str) -> Boot:
        cfg = MachineConfig(kernel=kernel, name=name, append=append + (cut.keys() if cut else ""), disk=disk,
                            create_disk=False, log_dir=workdir, symbolize=False, extra_args=list(ICOUNT))
        with Machine(cfg) as m:
            how = None
            if cut is not None and cut.kind == "kill":
                if _await_checkpoints(m, cut.after) and not m.wait_until_exit(cut.delay_ms / 1000):
                    m.kill()        # SIGKILL: the power cut (nothing flushed, nothing shut down)
                    how = "kill"
            result = m.wait(BOOT_TIMEOUT)
            lines = [line.rstrip("\r") for line in m.console.lines()]
            # The serial log as QEMU wrote it (the console completes a last partial line at EOF).
            torn = "" if _ends_a_line(Path(m.log_path)) or not lines else lines.pop()
            if how == "kill" and any(line.startswith(POWEROFF) for line in lines):
                how = None      # the kernel had powered off: the kill only beat QEMU's exit
            if cut is not None and cut.kind == "step" and result.status == 37:
                how = "step"
            return Boot(after_the_finish(lines), str(m.log_path), result.status, how, torn=torn)


def _ends_a_line(log: Path) -> bool:
    with open(log, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def _await_checkpoints(m: Machine, n: int) -> bool:
    """Wait until this boot has printed ``n`` checkpoint lines; False if it ended first."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while sum(1 for line in m.console.lines() if CHECKPOINT_LINE.match(line.rstrip("\r"))) < n:
        if m.wait_until_exit(0.002):
            return False
        if time.monotonic() > deadline:
            raise RevenantError(f"{m.config.name}: no checkpoint {n} within {BOOT_TIMEOUT:g} s; log: {m.log_path}")
    return True


def _options(options: dict) -> Tuple[int, str]:
    units = int(options["size"])
    mode = str(options.get("cuts", "mixed"))
    if mode not in ("mixed", "steps"):
        raise UsageError(f"cuts={mode!r}: mixed (kills and kernel cuts) or steps (every first cut a kernel cut)")
    return units, mode


EXPERIMENT = Powercut()
