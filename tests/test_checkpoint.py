"""Checkpoints written by the real kernel to a real qcow2 disk, read back from the host.

Each test boots the kernel with a virtio-blk disk (MachineConfig.disk), lets
``ckpt_work`` (userland/progs/ckpt_work.c) fill and dirty pages and call checkpoint(),
and then reads the disk with toolchain/persist/format.py: headers, manifests, every page's
CRC32C and contents. The kernel prints one line per checkpoint:

    checkpoint <n>: generation <g>, <e> envs, <p> pages (<d> dirty), <k> KiB written, <ms> ms[, full]; by <why>

ckpt_work's data pages live at 0x10000000; page p starts with the word p + 1, and step i adds
i to the first word of pages (i + d) % pages for d < dirty. So the disk's contents, and which
pages each generation wrote, are known exactly from the arguments.
"""
from __future__ import annotations

import re
import shutil
import struct
import time

import pytest

from toolchain.persist import format as fmt
from toolchain.persist.checkpoints import cut_step, kernel_checkpoints
from toolchain.runlog import EXIT_OK

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")

BASE = 0x10000000
PAGE = 4096
EXIT_CUT = 37                   # kernel/power.c power_cut()
# These tests read the disk after the run: checkpoint_final=off keeps the last checkpoint taken
# while the program ran as the newest (a clean power-off would add one with nothing running:
# tests/test_restore.py).
KEEP = "checkpoint_final=off"


def expected_words(pages: int, steps: int, dirty: int) -> list[int]:
    """The first word of each data page after `steps` steps of ckpt_work."""
    words = [p + 1 for p in range(pages)]
    for i in range(1, steps + 1):
        for d in range(dirty):
            words[(i + d) % pages] += i
    return words


def written_in_step(pages: int, i: int, dirty: int) -> set[int]:
    return {(i + d) % pages for d in range(dirty)}


def work_env(m: fmt.Manifest) -> fmt.Env:
    found = [e for e in m.envs if e.name == "ckpt_work"]
    assert len(found) == 1, [e.name for e in m.envs]
    return found[0]


def data_pages(m: fmt.Manifest, env_id: int, pages: int) -> dict[int, fmt.Page]:
    out = {}
    for p in m.pages:
        if p.owner_kind == fmt.OWNER_ENV and p.owner == env_id and BASE <= p.va < BASE + pages * PAGE:
            out[(p.va - BASE) // PAGE] = p
    return out


def test_checkpoints_reach_the_disk_with_increasing_generations_and_exact_pages(run, tmp_path):
    pages, steps, dirty = 48, 4, 3
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} run=ckpt_work:{pages}:{steps}:{dirty}", disk=disk, timeout=60)
    r.assert_sane()
    cps = kernel_checkpoints(r.lines)
    assert [c.generation for c in cps] == list(range(1, steps + 2)), r.where()
    assert cps[0].full and not any(c.full for c in cps[1:]), r.where()
    # What the program saw as checkpoint()'s result is the generation the kernel committed.
    for i in range(steps + 1):
        assert r.matching(rf"^ckpt_work: step {i} generation {i + 1} sum \d+$"), r.where()

    d = fmt.read_disk(disk)
    states = fmt.slots(d)
    assert [s.error for s in states] == [None, None], states
    gens = sorted(s.header.generation for s in states)
    assert gens == [steps, steps + 1]
    newest = fmt.newest(d)
    m = fmt.load(d, newest, check_pages=True)          # every page's CRC32C holds
    env = work_env(m)
    assert env.state == fmt.ENV_LIVE and env.nthreads == 1
    assert any(t.env_id == env.id for t in m.threads)
    # The contents: page p's first word is what the program wrote, no more, no less.
    words = expected_words(pages, steps, dirty)
    have = data_pages(m, env.id, pages)
    assert sorted(have) == list(range(pages))
    for p, page in have.items():
        assert struct.unpack_from("<Q", fmt.page_bytes(d, page))[0] == words[p], p
        assert page.prot == 3                          # PROT_READ | PROT_WRITE
    # Program text is saved too: the restore does not need the initrd.
    assert any(p.owner == env.id and p.prot & 4 for p in m.pages), "no executable page saved"


def test_an_incremental_checkpoint_writes_exactly_the_pages_that_changed(run, tmp_path):
    pages, steps, dirty = 64, 3, 5
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} run=ckpt_work:{pages}:{steps}:{dirty}", disk=disk, timeout=60)
    r.assert_sane()
    d = fmt.read_disk(disk)
    for state in fmt.slots(d):
        h = state.header
        assert h is not None, state.error
        m = fmt.load(d, h, check_pages=True)
        step = h.generation - 1
        have = data_pages(m, work_env(m).id, pages)
        wrote = {p for p, page in have.items() if page.flags & fmt.PAGE_WRITTEN}
        assert wrote == written_in_step(pages, step, dirty), (h.generation, sorted(wrote))
        # Unchanged pages point at blocks of older generations, which still hold them.
        assert all(page.generation < h.generation for p, page in have.items() if p not in wrote)
        assert h.pages_written < h.pages_total // 4, (h.pages_written, h.pages_total)
    cps = kernel_checkpoints(r.lines)
    assert cps[0].dirty == cps[0].pages
    assert all(c.dirty < c.pages // 4 for c in cps[1:]), cps


def test_a_page_mapped_again_is_saved_though_the_program_never_wrote_it(run, tmp_path):
    # The last page is unmapped and mapped afresh (zeros, probably the very same frame): no
    # write from the program sets its dirty bit; a new mapping must count as changed.
    pages = 8
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} run=ckpt_work:{pages}:2:1:z", disk=disk, timeout=60)
    r.assert_sane()
    d = fmt.read_disk(disk)
    h = fmt.newest(d)
    assert r.has(f"ckpt_work: zeroed generation {h.generation} sum " +
                 r.matching(r"^ckpt_work: done sum (\d+)$")[0].group(1))
    m = fmt.load(d, h, check_pages=True)
    last = data_pages(m, work_env(m).id, pages)[pages - 1]
    assert last.flags & fmt.PAGE_WRITTEN and fmt.page_bytes(d, last) == bytes(PAGE)


def test_shared_memory_is_saved_once_with_every_holder_and_activation_state_with_it(run, tmp_path):
    # ring: a producer and a consumer (two environments, thread runtime, activations) share one
    # region at 0x50000000. Cut the machine right after the 6th checkpoint committed, mid-run
    # (under icount the instant is a fixed count of instructions).
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} hz=1000 run=ring:200000:16 checkpoint_every=2 checkpoint_cut=5 checkpoint_cut_after=5",
            disk=disk, timeout=120, icount=True)
    assert r.status == EXIT_CUT, r.where()
    d = fmt.read_disk(disk)
    h = fmt.newest(d)
    assert h.generation == 6
    m = fmt.load(d, h, check_pages=True)
    rings = [e for e in m.envs if e.name == "ring"]
    assert len(rings) == 2 and all(e.state == fmt.ENV_LIVE for e in rings), m.envs
    assert len(m.shms) == 1, m.shms                         # one region, saved once
    holds = [x for x in m.holds if x.shm == 0]
    assert sorted(x.env_id for x in holds) == sorted(e.id for e in rings)
    assert all(x.va == 0x50000000 and x.prot == 3 for x in holds), holds
    shm_pages = [p for p in m.pages if p.owner_kind == fmt.OWNER_SHM]
    assert len(shm_pages) == m.shms[0].npages and all(p.owner == 0 for p in shm_pages)
    # No environment saves the region's frames as its own page.
    assert not [p for p in m.pages if p.owner_kind == fmt.OWNER_ENV and 0x50000000 <= p.va < 0x50100000]
    # Activation state: both use the runtime: counters, its segment's pages, its records in use.
    for e in rings:
        assert e.flags & fmt.ENV_ACT_USED and e.act_pool_size > 0
        assert all(s.index < e.act_pool_size for s in m.act_slots if s.env_id == e.id)
        assert any(p.owner == e.id and p.flags & fmt.PAGE_ACT for p in m.pages)
        assert [t.index for t in m.threads if t.env_id == e.id] == [0]
    # No thread is saved as waiting in the kernel on anything but a rewound syscall frame.
    for t in m.threads:
        if t.flags & fmt.THR_BLOCKED:
            assert t.frame_kind == fmt.FRAME_SYSCALL


def test_a_new_boot_on_a_used_disk_continues_the_generations_and_spares_the_old_checkpoint(run, tmp_path):
    # Boot 1 commits generations 1..3. Boot 2 (restore=off: a clean boot on a used disk)
    # starts from other state; its first checkpoint must be generation 4 and must not write
    # over any block of generation 3 or 2: cut it right after its pages and manifest are written.
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} run=ckpt_work:16:2:2", disk=disk, timeout=60)
    r.assert_sane()
    before = fmt.read_disk(disk)
    assert fmt.newest(before).generation == 3
    r = run(f"{KEEP} restore=off run=ckpt_work:64:2:2 checkpoint_cut=3 checkpoint_cut_after=0", disk=disk, timeout=60)
    assert r.status == EXIT_CUT, r.where()
    d = fmt.read_disk(disk)
    states = fmt.slots(d)
    assert sorted(s.header.generation for s in states if s.header) == [2, 3], states
    for s in states:                                    # both intact, every page's CRC included
        fmt.load(d, s.header, check_pages=True)
    r = run(f"{KEEP} restore=off run=ckpt_work:8:1:1", disk=disk, timeout=60)
    r.assert_sane()
    assert r.matching(r"^ckpt_work: step 0 generation 4 sum \d+$"), r.where()


CUTS = {1: "pages written", 2: "manifest written", 3: "data flushed", 4: "header written",
        5: "header flushed (committed)", 6: "output released", 7: "release mark written"}


@pytest.mark.parametrize("step", sorted(CUTS))
def test_a_cut_inside_the_write_sequence_leaves_the_previous_generation(run, tmp_path, step):
    # Two checkpoints commit, the third is cut right after `step`. Before the header is
    # durable (steps 1-3) generation 2 must be the newest valid one; after its flush (5-7)
    # generation 3; a header written but not yet flushed (4) may be either, both complete.
    # Output commit is on so that steps 6 and 7 exist (held output to release).
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} run=ckpt_work:16:4:2 outcommit=on checkpoint_cut={step} checkpoint_cut_after=2",
            disk=disk, timeout=60)
    r.assert_no_panic()
    assert r.status == EXIT_CUT, f"QEMU: {r.result}; {r.where()}"
    assert cut_step(r.lines) == step and r.has(f"checkpoint: cut after step {step} ({CUTS[step]})")
    d = fmt.read_disk(disk)
    newest = fmt.newest(d)
    assert newest is not None
    want = {2} if step <= 3 else {2, 3} if step == 4 else {3}
    assert newest.generation in want, (step, newest.generation, fmt.slots(d))
    m = fmt.load(d, newest, check_pages=True)
    words = expected_words(16, newest.generation - 1, 2)
    for p, page in data_pages(m, work_env(m).id, 16).items():
        assert struct.unpack_from("<Q", fmt.page_bytes(d, page))[0] == words[p]
    # The release mark names the checkpoint whose held output went out: generation 3's only
    # once step 7 is done. A cut at step 6 is the window docs/persistence.md describes: 3 is
    # committed and its output shown, the mark still names 2, so a restore prints it again.
    mark = fmt.release_mark(d)
    assert mark is not None and mark.generation == (3 if step >= 7 else 2), (step, mark)
    if step <= 3:
        # Generation 3 never committed; its slot still holds generation 1, whose blocks the
        # interrupted write may have reused: valid or not, it is older and loses.
        assert all(s.header is None or s.header.generation in (1, 2) for s in fmt.slots(d))


def test_output_commit_holds_a_programs_lines_until_the_next_commit(run, tmp_path):
    disk = tmp_path / "ckpt.qcow2"
    r = run(f"{KEEP} run=ckpt_work:8:3:1 outcommit=on", disk=disk, timeout=60)
    r.assert_sane()
    assert r.has("outcommit: on, 16384 bytes held at most")
    lines = r.lines
    # "step i" is printed after checkpoint i+1 was taken: it is held until checkpoint i+2
    # commits, so it appears after that checkpoint's line.
    for i in range(3):
        step = next(k for k, ln in enumerate(lines) if ln.startswith(f"ckpt_work: step {i} "))
        commit = next(k for k, ln in enumerate(lines) if ln.startswith(f"checkpoint {i + 2}: "))
        assert commit < step, (i, lines[commit], lines[step])
    # Every line is printed once (the last one at power-off, uncommitted).
    assert len([ln for ln in lines if ln.startswith("ckpt_work: step ")]) == 4
    # The newest checkpoint holds the output that its commit released.
    d = fmt.read_disk(disk)
    m = fmt.load(d, fmt.newest(d))
    assert m.output.decode().startswith("ckpt_work: step 2 generation 3 sum "), m.output
    assert m.header.flags & fmt.FLAG_OUTCOMMIT
    mark = fmt.release_mark(d)
    assert mark is not None and mark.generation == m.header.generation
    assert mark.released_seq == m.header.output_seq + len(m.output)


def test_without_output_commit_and_for_a_program_that_turns_it_off_lines_go_out_at_once(run, tmp_path):
    for append in ("run=ckpt_work:8:2:1", "run=ckpt_work:8:2:1:d outcommit=on"):
        r = run(append, disk=tmp_path / f"d{len(append)}.qcow2", timeout=60)
        r.assert_sane()
        step0 = r.lines.index(next(ln for ln in r.lines if ln.startswith("ckpt_work: step 0 ")))
        commit2 = r.lines.index(next(ln for ln in r.lines if ln.startswith("checkpoint 2: ")))
        assert step0 < commit2, append
    assert r.has(f"ckpt_work: outcommit was {1}")


def test_a_writer_that_overflows_the_held_output_waits_for_a_checkpoint_and_loses_nothing(run, tmp_path):
    # 64 lines of 256 bytes per step: 16 KiB and more, beyond what the kernel holds, between two
    # checkpoint() calls. The writer waits (rewound), a checkpoint "by output" commits and
    # releases, and every line appears exactly once, in order.
    r = run(f"{KEEP} run=ckpt_work:8:2:1:l outcommit=on", disk=tmp_path / "d.qcow2", timeout=60)
    r.assert_sane()
    loud = [ln.split()[2] for ln in r.lines if ln.startswith("ckpt_work: loud ")]
    assert loud == [f"{i}.{k:02d}" for i in (1, 2) for k in range(64)]
    assert any(c.by == "output" for c in kernel_checkpoints(r.lines)), r.where()


def test_checkpoint_every_takes_them_on_the_timer(run, tmp_path):
    # Under icount spin's ~40 ms of work are a fixed number of guest instructions: a loaded
    # host cannot squeeze them between two periods.
    r = run(f"{KEEP} run=spin:6:2000000 checkpoint_every=5", disk=tmp_path / "d.qcow2", timeout=60, icount=True)
    r.assert_sane()
    cps = kernel_checkpoints(r.lines)
    assert len(cps) >= 2 and all(c.by == "timer" for c in cps), r.where()
    assert [c.generation for c in cps] == list(range(1, len(cps) + 1))


def test_the_host_asks_for_a_checkpoint_with_a_key(boot, tmp_path):
    # QMP send-key F12 -> i8042 -> IRQ 1 -> the next safe point (kernel/kbd.c).
    m = boot("run=spin:400:2000000", disk=tmp_path / "d.qcow2", qmp=True, timeout=120)
    m.expect("init: spin is env", timeout=30)
    from toolchain.persist.checkpoints import CHECKPOINT_KEY
    m.qmp.execute("send-key", {"keys": [{"type": "qcode", "data": "a"}]})   # not the key: ignored
    m.qmp.execute("send-key", {"keys": [{"type": "qcode", "data": CHECKPOINT_KEY}]})
    line = m.expect(re.compile(r"^checkpoint 1: generation 1, .*; by host$"), timeout=30)
    assert line
    time.sleep(0.2)
    assert not any(ln.startswith("checkpoint 2:") for ln in m.console.lines()), "one key, one checkpoint"


def test_without_a_disk_checkpoint_fails_cleanly_and_output_is_not_held(run):
    r = run(f"{KEEP} run=ckpt_work:4:1:1 checkpoint_every=10 outcommit=on")
    r.assert_sane()
    assert r.has("checkpoint: off: no disk") and r.has("outcommit: off: no disk to commit to")
    assert r.matching(r"^ckpt_work: step 0 generation -19 sum \d+$"), r.where()    # -ENODEV
    assert not kernel_checkpoints(r.lines)


def test_page_quota_bounds_what_one_program_maps_while_checkpoints_are_on(run, tmp_path):
    r = run(f"{KEEP} run=ckpt_work:4:1:1:q page_quota=512", disk=tmp_path / "d.qcow2", timeout=60)
    r.assert_sane()
    m = r.matching(r"^ckpt_work: quota probe mapped (\d+) pages, then ENOSPC$")
    assert m, r.where()
    mapped = int(m[0].group(1))
    assert 512 - 128 <= mapped <= 512, mapped          # the program's own text, stack, ... count too
    r = run(f"{KEEP} run=ckpt_work:4:1:1:q", timeout=60)        # no disk: no checkpoints, no quota
    assert r.has("ckpt_work: quota probe mapped 2048 pages, then stopped"), r.where()
