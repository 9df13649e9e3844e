"""``invoke checkpoint list|inspect DISK``: what a checkpoint disk holds, read on the host.

No machine is booted: the disk (qcow2 or raw) is read through
``format.read_disk`` and judged by the same rules the kernel's restore path
applies to the header and manifest (``format.py``), page checksums included,
so "valid" here means what the next boot would take, and the slot it would
take is marked ``newest``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

from ..errors import UsageError
from . import format as fmt

SLOT_NAMES = ("A", "B")
FRAME_KINDS = {fmt.FRAME_SYSCALL: "syscall", fmt.FRAME_FRESH: "fresh",
               fmt.FRAME_UPCALL: "upcall", fmt.FRAME_INTERRUPT: "interrupt"}
THREAD_FLAGS = ((fmt.THR_BLOCKED, "blocked"), (fmt.THR_ACT_DISABLED, "disabled"),
                (fmt.THR_RESTART_PENDING, "restart-pending"), (fmt.THR_WAKE_PENDING, "wake-pending"),
                (fmt.THR_ACT_IDLE, "idle"))
SLOT_STATES = {fmt.SLOT_HELD: "held", fmt.SLOT_BLOCKED: "blocked", fmt.SLOT_WOKEN: "woken"}


@dataclass(frozen=True)
class SlotReport:
    """One slot as the next boot would judge it."""

    slot: int
    header: Optional[fmt.Header]
    manifest: Optional[fmt.Manifest]
    error: Optional[str]

    @property
    def valid(self) -> bool:
        return self.manifest is not None

    @property
    def empty(self) -> bool:
        return self.error is not None and "no checkpoint" in self.error


def judge(disk: fmt.Disk, slot: int) -> SlotReport:
    """Slot ``slot`` of ``disk``: header, manifest and every page checksum, or why not."""
    try:
        header = fmt.parse_header(disk.block(slot)[:fmt.SECTOR], slot, disk.blocks)
        return SlotReport(slot, header, fmt.load(disk, header, check_pages=True), None)
    except fmt.FormatError as e:
        return SlotReport(slot, None, None, str(e))


def newest(reports: list[SlotReport]) -> Optional[SlotReport]:
    valid = [r for r in reports if r.valid]
    return max(valid, key=lambda r: r.header.generation, default=None)


def parse_slot(text: str) -> Optional[int]:
    """``--slot A|B`` (or empty: the newest valid one)."""
    if not text:
        return None
    name = text.strip().upper()
    if name not in SLOT_NAMES:
        raise UsageError(f"--slot {text!r}: use A or B")
    return SLOT_NAMES.index(name)


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


def _summary(r: SlotReport, newest_slot: Optional[int]) -> str:
    name = SLOT_NAMES[r.slot]
    if not r.valid:
        return f"slot {name}: {'empty' if r.empty else 'invalid: ' + str(r.error)}"
    h, m = r.header, r.manifest
    live = sum(1 for e in m.envs if e.state == fmt.ENV_LIVE)
    mark = "  <- newest: the next boot restores it" if r.slot == newest_slot else ""
    return (f"slot {name}: generation {h.generation}, {'full' if h.full else 'incremental'}, "
            f"{len(m.envs)} envs ({live} live), {h.pages_total} pages ({h.pages_written} written), "
            f"{len(m.output)} bytes held output, clock {_ms(h.clock_ns)}{mark}")


def list_disk(disk: fmt.Disk) -> str:
    reports = [judge(disk, s) for s in range(fmt.SLOTS)]
    if all(r.empty for r in reports):
        raise fmt.FormatError(f"{disk.path}: not a checkpoint disk (no checkpoint in either slot)")
    best = newest(reports)
    lines = [_summary(r, best.slot if best else None) for r in reports]
    release = fmt.release_mark(disk)
    if release:
        lines.append(f"release mark: output of generation {release.generation} released "
                     f"(up to byte {release.released_seq})")
    if best is None:
        lines.append("no valid checkpoint: the next boot is a clean one")
    return "\n".join(lines)


def _env_lines(m: fmt.Manifest) -> list[str]:
    own = Counter(p.owner for p in m.pages if p.owner_kind == fmt.OWNER_ENV)
    out = [f"envs ({len(m.envs)}):"]
    for e in m.envs:
        state = "live" if e.state == fmt.ENV_LIVE else f"zombie status={e.status}"
        out.append(f"  env {e.id} ({e.name}) parent={e.parent} {state} threads={e.nthreads} "
                   f"pages={own[e.id]} act_pool={e.act_pool_size} act_seq={e.act_seq}")
    return out


def _thread_lines(m: fmt.Manifest) -> list[str]:
    out = [f"threads ({len(m.threads)}):"]
    for t in m.threads:
        flags = ",".join(n for bit, n in THREAD_FLAGS if t.flags & bit) or "-"
        out.append(f"  env {t.env_id} vproc {t.index}: {FRAME_KINDS.get(t.frame_kind, t.frame_kind)} "
                   f"rip={t.regs['rip']:#x} rsp={t.regs['rsp']:#x} rax={t.regs['rax']:#x} "
                   f"flags={flags} resuming={t.act_resuming}")
    for s in m.act_slots:
        out.append(f"  env {s.env_id} record {s.index}: {SLOT_STATES.get(s.state, s.state)}")
    return out


def _shm_lines(m: fmt.Manifest) -> list[str]:
    out = [f"shared regions ({len(m.shms)}):"]
    for s in m.shms:
        holders = [f"env {h.env_id} slot {h.slot}" + (f" at {h.va:#x}" if h.va else "")
                   + (" handle" if h.has_handle else "") for h in m.holds if h.shm == s.id]
        out.append(f"  region {s.id}: {s.npages} pages; " + ("; ".join(holders) or "held by nobody"))
    return out


def inspect_disk(disk: fmt.Disk, slot: Optional[int]) -> str:
    reports = [judge(disk, s) for s in range(fmt.SLOTS)]
    if all(r.empty for r in reports):
        raise fmt.FormatError(f"{disk.path}: not a checkpoint disk (no checkpoint in either slot)")
    r = newest(reports) if slot is None else reports[slot]
    if r is None:
        raise fmt.FormatError(f"{disk.path}: no valid checkpoint (slot A: {reports[0].error}; "
                              f"slot B: {reports[1].error})")
    if not r.valid:
        raise fmt.FormatError(f"{disk.path}: slot {SLOT_NAMES[r.slot]}: {r.error}")
    h, m = r.header, r.manifest
    lines = [_summary(r, getattr(newest(reports), "slot", None)),
             f"header: manifest {h.manifest_bytes} bytes at block {h.manifest_block}, "
             f"disk {h.disk_blocks} blocks, capture {_ms(h.capture_ns)}, next env id "
             f"{h.next_env_id}, console holder {h.console_holder}"
             + (f" ring {h.console_ring_va:#x}/{h.console_ring_size}" if h.console_ring_va else "")]
    lines += _env_lines(m) + _thread_lines(m) + _shm_lines(m)
    if m.output:
        lines.append(f"held output ({len(m.output)} bytes): {m.output[:200]!r}")
    return "\n".join(lines)


def command(action: str, disk: str, slot: str = "") -> str:
    """The text ``invoke checkpoint list|inspect DISK [--slot A|B]`` prints."""
    if action not in ("list", "inspect"):
        raise UsageError(f"checkpoint {action!r}: use list DISK or inspect DISK [--slot A|B]")
    if not disk:
        raise UsageError(f"checkpoint {action}: name the disk (a qcow2 or raw image)")
    which = parse_slot(slot)
    if action == "list" and which is not None:
        raise UsageError("checkpoint list: --slot is for inspect")
    image = fmt.read_disk(disk)
    if image.blocks <= fmt.FIRST_DATA_BLOCK:
        raise fmt.FormatError(f"{disk}: {len(image.data)} bytes: too small to hold a checkpoint")
    return list_disk(image) if action == "list" else inspect_disk(image, which)
