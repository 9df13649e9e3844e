"""Restore after a power cut, onto another kernel build, and from hostile disks (docs/persistence.md).

Every test boots the real kernel on a real qcow2 disk attached as virtio-blk. Boot 1 runs a
workload with ``checkpoint_every=`` until a few checkpoints have committed, then QEMU is killed
with SIGKILL (a power cut: nothing is flushed, nothing is shut down). Boot 2 on the same disk
restores the newest valid checkpoint and the workload finishes. The kernel's lines:

    restore: generation <g> from slot <A|B>, <n> envs, <p> pages, <t> ms
    restore: slot <S> (generation <g>) rejected: <why>
    restore: no valid checkpoint (slot A: <why>; slot B: <why>): clean boot

The corrupt-disk tests edit a copy of one base disk (toolchain/persist/diskedit.py) and check
that the kernel names what is wrong and falls back to the older slot or to a clean boot.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from toolchain import paths
from toolchain.persist import diskedit, format as fmt, inspect, upgrade
from toolchain.restart import ring_exact, ring_verdict
from toolchain.runlog import EXIT_OK, RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None,
                                reason="qemu-system-x86_64 / qemu-img not installed (run ci/bootstrap)")

CHECKPOINT = re.compile(r"^checkpoint \d+: generation (\d+), (\d+) envs")
RESTORED = re.compile(r"^restore: generation (\d+) from slot ([AB]), (\d+) envs, (\d+) pages, ([\d.]+) ms$")
CLOCKWATCH = re.compile(r"^clockwatch: done rounds=(\d+) backwards=(\d+) early=(\d+) checksum=([0-9a-f]+) "
                        r"restarts=(\d+)$")
# A workload that sleeps most of the time (so a checkpoint finds threads blocked in sleep_until
# and in the runtime's idle wait) and lasts long enough to be cut in the middle.
WATCH = "clockwatch:300:2000"
EVERY = "checkpoint_every=20"
FRESH = re.compile(r"^env \d+ \(clockwatch\) started$")     # a kernel line: output commit holds init's


def cut_after_checkpoints(boot, disk: Path, append: str, generations: int, envs: int = 2, **config) -> int:
    """Boot on ``disk`` until checkpoint generation ``generations`` or later has committed with
    ``envs`` environments in it (on a slow host the first ones may come before init has started
    its programs), then SIGKILL QEMU; that generation."""
    m = boot(append, disk=disk, timeout=120, **config)
    while True:
        hit = m.expect(CHECKPOINT, timeout=60)
        if int(hit.group(1)) >= generations and int(hit.group(2)) >= envs:
            break
    m.kill()
    m.wait(10)
    return int(hit.group(1))


def blocked_at_cut(disk: Path) -> int:
    """Threads and activation records waiting in a system call in the newest checkpoint: each
    saved as a frame rewound onto its `syscall`, to be run again after the restore."""
    header = fmt.newest(fmt.read_disk(disk))
    m = fmt.load(fmt.read_disk(disk), header)
    return (sum(1 for t in m.threads if t.flags & fmt.THR_BLOCKED)
            + sum(1 for a in m.act_slots if a.state in (fmt.SLOT_BLOCKED, fmt.SLOT_WOKEN)))


def restored(r: RunLog) -> re.Match:
    found = r.matching(RESTORED.pattern)
    assert found, f"no restore line; {r.where()}"
    return found[0]


def clockwatch(r: RunLog) -> re.Match:
    found = r.matching(CLOCKWATCH.pattern)
    assert found, f"clockwatch never finished; {r.where()}"
    return found[-1]


@pytest.fixture(scope="module")
def uninterrupted_watch(kernel_elf) -> str:
    """The checksum of the clockwatch workload run without a disk, start to end."""
    from toolchain.machine import Machine, MachineConfig

    with Machine(MachineConfig(kernel=kernel_elf, append=f"run={WATCH}", name="restore-baseline")) as m:
        r = RunLog(m, 60)
    return clockwatch(r).group(4)


@pytest.fixture(scope="module")
def base_disk(kernel_elf, tmp_path_factory) -> Path:
    """A disk on which both slots hold a committed checkpoint of init and ckpt_work, which
    takes its checkpoints itself (the system call, after each step of its work: the same
    checkpoints on any host); the kernel powers off (checkpoint_cut=5) right after the flush
    that commits the fifth, before a sixth could start overwriting the blocks of the fourth."""
    from toolchain.machine import Machine, MachineConfig

    disk = tmp_path_factory.mktemp("restore") / "base.qcow2"
    append = "checkpoint_cut=5 checkpoint_cut_after=4 run=ckpt_work"
    with Machine(MachineConfig(kernel=kernel_elf, append=append, disk=disk, name="restore-base")) as m:
        r = RunLog(m, 60)
    assert r.matching(r"^checkpoint: cut after step 5\b"), r.where()
    states = fmt.slots(fmt.read_disk(disk))
    assert [s.header.generation for s in states if s.header] == [4, 5], [s.error for s in states]
    assert all(len(diskedit.manifest_of(fmt.read_disk(disk).data, s.slot).envs) == 2 for s in states)
    return disk


def slots_of(disk: Path) -> tuple[int, int]:
    """(newest slot, older slot) of a disk whose slots are both valid."""
    a, b = (s.header for s in fmt.slots(fmt.read_disk(disk)))
    return (0, 1) if a.generation > b.generation else (1, 0)


@pytest.fixture
def disk(base_disk, tmp_path) -> Path:
    copy = tmp_path / "disk.qcow2"
    shutil.copyfile(base_disk, copy)
    return copy


# ------------------------------------------------------------ round trips


def test_a_power_cut_loses_nothing_the_workload_finishes_with_the_uninterrupted_checksum(
        boot, run, tmp_path, uninterrupted_watch):
    disk = tmp_path / "disk.qcow2"
    cut = cut_after_checkpoints(boot, disk, f"{EVERY} run={WATCH}", 3)
    assert blocked_at_cut(disk) >= 1, "no thread was blocked at the cut: nothing to rerun"
    r = run(f"{EVERY} run={WATCH}", disk=disk, timeout=60)
    got = restored(r)
    assert int(got.group(1)) >= cut - 1, (got.group(0), cut)
    # run= is not started again: the restored init and clockwatch go on.
    assert not r.matching(FRESH.pattern), r.where()
    done = clockwatch(r)
    rounds, backwards, early, checksum, restarts = done.groups()
    assert (backwards, early) == ("0", "0"), done.group(0)
    assert checksum == uninterrupted_watch, (done.group(0), uninterrupted_watch)
    assert int(restarts) >= 1, f"no restarted upcall after the restore: {done.group(0)}"
    assert r.status == EXIT_OK, r.where()


def test_a_shared_ring_comes_back_still_shared_and_loses_or_doubles_nothing(boot, run, tmp_path):
    # Producer and consumer in two environments over a shared region, waiting on each other
    # with futexes: at the cut, one or both are blocked in futex_wait (saved as rewound frames).
    disk = tmp_path / "disk.qcow2"
    append = f"hz=1000 {EVERY} run=ring:6000:16:3000"
    cut_after_checkpoints(boot, disk, append, 3, envs=3)
    assert blocked_at_cut(disk) >= 1, "no thread was blocked at the cut: nothing to rerun"
    r = run(append, disk=disk, timeout=90)
    restored(r)
    v = ring_verdict(r.lines)
    assert v is not None and ring_exact(v), f"{v}; {r.where()}"
    assert v["got"] == 6000, v
    assert r.status == EXIT_OK, r.where()


def test_a_different_kernel_build_restores_the_checkpoint(boot, run, tmp_path, uninterrupted_watch):
    kernel_b = upgrade.build_b()
    disk = tmp_path / "disk.qcow2"
    cut_after_checkpoints(boot, disk, f"{EVERY} run={WATCH}", 3)
    r = run(f"{EVERY} run={WATCH}", disk=disk, timeout=60, kernel=kernel_b)
    assert any(line.startswith(upgrade.BANNER) for line in r.lines), f"build B did not boot; {r.where()}"
    assert any("tick 250 Hz" in line for line in r.lines), r.where()
    restored(r)
    done = clockwatch(r)
    assert done.group(4) == uninterrupted_watch and done.group(2) == "0", done.group(0)
    assert r.status == EXIT_OK, r.where()


# A cut inside the write sequence of the third checkpoint (docs/persistence.md, "Commit
# protocol": 1 pages, 2 manifest, 3 flush, 4 header, 5 flush = committed). Before its header is
# written the second is the newest; once the header has been written (4: QEMU's exit keeps
# what it was given, flushed or not) the third.
CUT_RESTORES = {1: {2}, 2: {2}, 3: {2}, 4: {2, 3}, 5: {3}}


@pytest.mark.parametrize("step", sorted(CUT_RESTORES))
def test_a_cut_at_each_step_of_a_checkpoint_write_restores_the_last_committed(boot, run, tmp_path, step):
    disk = tmp_path / "disk.qcow2"
    first = run(f"{EVERY} checkpoint_cut={step} checkpoint_cut_after=2 run={WATCH}", disk=disk,
                timeout=60)
    assert first.matching(rf"^checkpoint: cut after step {step}\b"), first.where()
    lines = boot_until_verdict(boot, disk)
    got = [RESTORED.match(line) for line in restore_lines(lines)]
    generations = {int(m.group(1)) for m in got if m}
    assert generations and generations <= CUT_RESTORES[step], restore_lines(lines)


@pytest.mark.parametrize("step", [5, 7])
def test_held_output_is_printed_once_across_a_cut_never_lost_never_twice(run, tmp_path, step):
    # ckpt_work prints a line per step and then takes a checkpoint (the system call), so the
    # second checkpoint holds output for certain. Cut after step 5 of it (committed, its output
    # not yet shown): the restore must print that output. Cut after step 7 (shown, and the
    # release mark written): the restore must not print it again. Either way every line of the
    # program appears exactly once over the two boots.
    disk = tmp_path / "disk.qcow2"
    first = run(f"outcommit=on checkpoint_cut={step} checkpoint_cut_after=1 run=ckpt_work", disk=disk,
                timeout=60)
    assert first.matching(rf"^checkpoint: cut after step {step}\b"), first.where()
    second = run("outcommit=on run=ckpt_work", disk=disk, timeout=60)
    assert restored(second).group(1) == "2", second.where()
    before = [line for line in first.lines if line.startswith("ckpt_work:")]
    after = [line for line in second.lines if line.startswith("ckpt_work:")]
    both = before + after
    steps = [int(m.group(1)) for line in both if (m := re.match(r"ckpt_work: step (\d+) ", line))]
    assert sorted(steps) == list(range(len(steps))) and len(steps) >= 3, both
    assert len(both) == len(set(both)) and both[-1].startswith("ckpt_work: done"), both
    assert bool(before) == (step == 7), (before, after)
    assert second.status == EXIT_OK, second.where()


def test_a_finished_run_booted_again_starts_afresh_and_repeats_no_line(run, tmp_path):
    # A run that ends cleanly takes one last checkpoint at power-off, with nothing running
    # in it, so the next boot of the same disk is a clean one: the run starts over from its
    # first step. Without it the next boot restored the last mid-run checkpoint and did the
    # run's tail again, printing its last lines a second time (measured: 10 lines).
    disk = tmp_path / "disk.qcow2"
    first = run("outcommit=on checkpoint_every=5 run=ckpt_work", disk=disk, timeout=60)
    assert first.status == EXIT_OK, first.where()
    assert first.matching(r"^checkpoint \d+: generation \d+, 0 envs, .*; by poweroff$"), first.where()
    second = run("outcommit=on checkpoint_every=5 run=ckpt_work", disk=disk, timeout=60)
    got = [line for line in second.lines if line.startswith("restore:")]
    assert len(got) == 1 and "no program was running: clean boot" in got[0], got
    # The same steps and sums; the generations go on from the disk's (ids are never reused).
    def steps(r):
        return [re.sub(r" generation \d+", "", line) for line in r.lines if line.startswith("ckpt_work:")]
    mine, again = steps(first), steps(second)
    assert again == mine and mine[-1].startswith("ckpt_work: done"), (mine, again)
    assert min(map(int, re.findall(r"ckpt_work: step \d+ generation (\d+)", "\n".join(second.lines)))) > \
        max(map(int, re.findall(r"ckpt_work: step \d+ generation (\d+)", "\n".join(first.lines))))
    assert second.status == EXIT_OK, second.where()


# ------------------------------------------------------------ hostile disks


def boot_until_verdict(boot, disk: Path) -> list[str]:
    """Boot on ``disk`` until the kernel has decided (restored, or a clean boot that starts run=
    afresh), then stop; the serial lines up to there."""
    m = boot(f"{EVERY} run={WATCH}", disk=disk, timeout=60)
    seen = [m.expect(re.compile(r"^restore: (generation \d+ from slot [AB][,:]|no )"), timeout=30).line.rstrip()]
    if "clean boot" in seen[0]:
        seen.append(m.expect(FRESH, timeout=30).line.rstrip())
    m.kill()
    m.wait(10)
    lines = [line.rstrip("\r") for line in m.console.lines()]
    return lines + [line for line in seen if line not in lines]


def restore_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("restore:")]


def expect_fallback(lines: list[str], rejected_slot: int, why: str, older: Optional[int]) -> None:
    got = restore_lines(lines)
    name = "AB"[rejected_slot]
    assert any(line.startswith(f"restore: slot {name}") and why in line for line in got), got
    if older is None:
        assert any("clean boot" in line for line in got), got
        assert any(FRESH.match(line) for line in lines), lines[-5:]
    else:
        assert any(line.startswith(f"restore: generation {older} from slot {'AB'[1 - rejected_slot]}")
                   for line in got), got


HEADER_EDITS = [
    ("magic", 0x12345678, True, "header: magic"),
    ("version", fmt.VERSION + 1, True, "header: version"),
    ("header_size", 512, True, "header: header_size"),
    ("block_size", 512, True, "header: block_size"),
    ("generation", 0, True, "header: generation"),
    ("disk_blocks", 1 << 40, True, "header: disk_blocks"),
    ("clock_ns", 1 << 63, True, "header: clock_ns"),
    ("manifest_block", 1, True, "header: manifest_block"),
    ("manifest_bytes", 1 << 40, True, "header: manifest_bytes"),
    ("manifest_crc", 0xdeadbeef, True, "manifest: manifest_crc"),
    ("flags", 1 << 9, True, "header: flags"),
    ("pages_written", 0xffffffff, True, "header: pages_written"),
    ("next_env_id", 0, True, "header: next_env_id"),
    ("console_holder", 0x7fff0000, True, "header: console_holder"),
    ("console_give_next", 7, True, "header: console_give_next"),
    ("reserved1", 1, True, "header: reserved"),
    ("section[page].count", 0xffffffff, True, "header: section[page]"),
    ("section[env].record_size", 8, True, "header: section[env]"),
    ("section[thread].offset", 1 << 40, True, "header: section[thread]"),
    ("clock_ns", 5, False, "header: header_crc"),          # changed, not sealed again
]


@pytest.mark.parametrize("field,value,reseal,why", HEADER_EDITS, ids=[f"{e[0]}{'' if e[2] else '-unsealed'}"
                                                                      for e in HEADER_EDITS])
def test_a_bad_header_field_in_the_newest_slot_falls_back_to_the_older(boot, disk, field, value, reseal, why):
    newest, older = slots_of(disk)
    older_gen = fmt.slots(fmt.read_disk(disk))[older].header.generation
    diskedit.edit(disk, lambda d: diskedit.set_header_field(d, newest, field, value, reseal))
    expect_fallback(boot_until_verdict(boot, disk), newest, why, older_gen)


# Records forged by hand with every checksum made to match: only the kernel's judgement of the
# values themselves stands between them and the kernel (kernel/restore_check.c).
FORGED = [
    (fmt.SEC_THREAD, diskedit.THREAD_RIP, "Q", 0xffffffff80100000, "thread record: rip 0xffffffff80100000"),
    (fmt.SEC_THREAD, diskedit.THREAD_CS, "Q", 0x08, "thread record: cs 0x8"),
    (fmt.SEC_PAGE, diskedit.PAGE_VA, "Q", 0xffff800000000000, "page: env"),
    (fmt.SEC_ENV, diskedit.ENV_ID, "i", 1, "env record: parent 0x1"),     # its own parent
    (fmt.SEC_ENV, diskedit.ENV_PARENT, "i", 0, "env 1: saved twice"),        # with the edit above
]


@pytest.mark.parametrize("k", range(len(FORGED)), ids=["rip", "cs", "page-va", "env-own-parent", "env-id-twice"])
def test_a_forged_record_with_valid_checksums_is_refused(boot, disk, k):
    newest, older = slots_of(disk)
    older_gen = fmt.slots(fmt.read_disk(disk))[older].header.generation
    why = FORGED[k][-1]

    def forge(d: bytearray) -> None:
        # The last case builds on the one before it: env record 1 (ckpt_work) takes id 1 and
        # parent 0, a second init.
        for section, offset, code, value, _ in FORGED[3:k + 1] if k >= 3 else [FORGED[k]]:
            index = 1 if section == fmt.SEC_ENV else 0
            diskedit.set_record_field(d, newest, section, index, offset, code, value)
    diskedit.edit(disk, forge)
    assert fmt.slots(fmt.read_disk(disk))[newest].header is not None, "the forged disk must pass every CRC"
    expect_fallback(boot_until_verdict(boot, disk), newest, why, older_gen)


def test_a_flipped_bit_in_the_manifest_falls_back_to_the_older_slot(boot, disk):
    newest, older = slots_of(disk)
    states = fmt.slots(fmt.read_disk(disk))
    h = states[newest].header
    diskedit.edit(disk, lambda d: diskedit.flip_bit(d, h.manifest_block * fmt.BLOCK + h.manifest_bytes // 2, 3))
    expect_fallback(boot_until_verdict(boot, disk), newest, "manifest_crc", states[older].header.generation)


def test_a_flipped_bit_in_page_data_falls_back_to_the_older_slot(boot, disk):
    newest, older = slots_of(disk)
    states = fmt.slots(fmt.read_disk(disk))
    raw = bytearray()
    diskedit.edit(disk, lambda d: raw.extend(d))
    page = diskedit.page_block(raw, newest, env_id=2)
    assert page.generation == states[newest].header.generation, \
        "the newest checkpoint wrote no page of env 2: no page only it references"
    diskedit.edit(disk, lambda d: diskedit.flip_bit(d, page.block * fmt.BLOCK + 100, 5))
    expect_fallback(boot_until_verdict(boot, disk), newest, "checksum", states[older].header.generation)


def test_both_slots_bad_is_a_clean_boot_with_one_line(boot, disk):
    def wreck(d: bytearray) -> None:
        diskedit.set_header_field(d, 0, "version", 99)
        diskedit.flip_bit(d, 1 * fmt.BLOCK + 40)       # slot B: a torn header
    diskedit.edit(disk, wreck)
    lines = boot_until_verdict(boot, disk)
    got = restore_lines(lines)
    assert got == [line for line in got if "clean boot" in line] and len(got) == 1, got
    assert "slot A: header: version 0x63" in got[0] and "slot B: header: header_crc" in got[0], got
    assert any(FRESH.match(line) for line in lines), lines[-5:]


def test_a_checkpoint_with_nothing_running_is_a_clean_boot_not_the_older_one(boot, disk):
    # The newest checkpoint says every program had ended (no record in any section): the
    # system had finished. The boot is a clean one: the older slot, from mid-run, must not
    # bring a finished run back.
    newest, _ = slots_of(disk)

    def finished(d: bytearray) -> None:
        for name in fmt.SECTION_NAMES:
            diskedit.set_header_field(d, newest, f"section[{name}].count", 0)
            diskedit.set_header_field(d, newest, f"section[{name}].bytes", 0)
        diskedit.set_header_field(d, newest, "pages_total", 0)
        diskedit.set_header_field(d, newest, "pages_written", 0)
        diskedit.set_header_field(d, newest, "console_holder", 0)
    diskedit.edit(disk, finished)
    lines = boot_until_verdict(boot, disk)
    got = restore_lines(lines)
    assert len(got) == 1 and "no program was running: clean boot" in got[0], got
    assert any(FRESH.match(line) for line in lines), lines[-5:]


def test_restore_off_is_a_clean_boot_that_leaves_the_checkpoints(boot, disk):
    before = [s.header.generation for s in fmt.slots(fmt.read_disk(disk))]
    m = boot(f"restore=off {EVERY} run={WATCH}", disk=disk, timeout=60)
    m.expect("restore: off (restore=off): clean boot; the checkpoints on the disk stay", timeout=30)
    m.expect(FRESH, timeout=30)
    m.kill()
    m.wait(10)
    after = fmt.slots(fmt.read_disk(disk))
    # Whatever this boot wrote since, the newest checkpoint it did not restore is intact.
    assert max(before) in [s.header.generation for s in after if s.header], (before, after)


def test_a_truncated_disk_is_refused(boot, disk, tmp_path):
    # The disk shrunk under the checkpoints (a truncated image): every block number they name
    # may now lie past its end.
    subprocess.run(["qemu-img", "resize", "-q", "--shrink", str(disk), "1M"], check=True)
    lines = boot_until_verdict(boot, disk)
    got = restore_lines(lines)
    assert len(got) == 1 and "disk_blocks" in got[0] and "clean boot" in got[0], got


# ------------------------------------------------------------ the host side


def test_checkpoint_list_and_inspect_read_the_disk_without_booting(base_disk):
    newest, older = slots_of(base_disk)
    listing = inspect.command("list", str(base_disk))
    lines = listing.splitlines()
    assert lines[newest].startswith(f"slot {'AB'[newest]}: generation") and "<- newest" in lines[newest], listing
    assert lines[older].startswith(f"slot {'AB'[older]}: generation") and "newest" not in lines[older], listing
    detail = inspect.command("inspect", str(base_disk), "AB"[older])
    assert "env 1 (init)" in detail and "env 2 (ckpt_work)" in detail, detail
    assert re.search(r"env 2 vproc 0: \w+ rip=0x[0-9a-f]+", detail), detail


def test_checkpoint_list_names_a_corrupt_slot(disk):
    newest, _ = slots_of(disk)
    diskedit.edit(disk, lambda d: diskedit.set_header_field(d, newest, "version", 9))
    lines = inspect.command("list", str(disk)).splitlines()
    assert "invalid" in lines[newest] and "version 9" in lines[newest], lines


@pytest.mark.parametrize("args,message", [
    (["list", "/nonexistent/disk.qcow2"], "no such disk image"),
    (["inspect"], "name the disk"),
    (["list", "ZERO"], "not a checkpoint disk"),
    (["inspect", "ZERO", "--slot", "C"], "--slot 'C': use A or B"),
])
def test_checkpoint_cli_bad_input_is_one_line(tmp_path, args, message):
    zero = tmp_path / "zero.raw"
    zero.write_bytes(bytes(1 << 20))
    argv = [str(zero) if a == "ZERO" else a for a in args]
    proc = subprocess.run([sys.executable, "-m", "invoke", "checkpoint", *argv], cwd=paths.ROOT,
                          capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1 and out.count("\n") == 0 and message in out, out
