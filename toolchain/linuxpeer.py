"""Linux as a benchmark peer: the same loops, in the same QEMU, on a stock Debian kernel.

Revenant's benchmarks are compared against Linux running the same loop in the
same QEMU machine, counted two ways:

* **instructions** -- QEMU with ``-icount shift=0``.  QEMU then derives both
  its virtual clock and the guest TSC from the count of retired guest
  instructions, one nanosecond (and one TSC tick) per instruction.  A TSC
  delta -- or a ``CLOCK_MONOTONIC`` delta, which Linux computes from the TSC
  -- is therefore the number of guest instructions executed in between,
  kernel ones included.  Verified by the ``calib`` benchmark (``python -m
  toolchain.linuxpeer --calib``): a ``dec; jnz`` loop of exactly 1,000,000
  iterations = 2,000,000 instructions measures ``min_tsc=2000012``, the
  surplus being the dozen straight-line instructions between the two
  ``rdtsc`` (the loop setup and the fence/shift/or of the first read), the
  same on every run; the calibration loop reads 2.000 tsc per iteration.  The
  minimum of 5 repetitions is taken so that a timer tick landing in one of
  them (about 2,800 kernel instructions) does not pollute it.
  ``CLOCK_MONOTONIC`` (vDSO over the TSC) agrees to within about 90 ns, its
  own instructions.  Under plain TCG the same loop costs about 6.6 host TSC
  cycles per iteration.

  Determinism: the headline per-iteration figure is taken from the fastest
  of 10 equal chunks of the loop (a chunk no timer tick landed in); with it
  getpid, signal and alarm were bit-identical over 3 boots and futex varied
  by about 0.1 % (the scheduler's wakeup decisions depend on timing state).
  The whole-loop means (``mean_tsc_per_iter``, background ticks included)
  vary by about 0.1 % between boots (where the ticks land differs; neither
  ``nokaslr norandmaps`` nor ``-icount sleep=off`` nor ``-cpu max,-rdrand``
  made them identical).
* **tsc_cycles** -- plain TCG.  The guest TSC is then the host's TSC, so the
  figure is host cycles spent emulating the loop (noisy: other host load
  shows; expect a few percent between boots, much more for ``alarm``, whose
  timer is a host timer).

Caveat, ``-cpu max`` under TCG: the CPU offers PKU, so Linux rewrites PKRU on
every signal delivery and sigreturn, and QEMU flushes its whole soft TLB on
each PKRU write.  That makes ``signal`` about 3.4x dearer in host cycles
(~71,000 vs ~21,000 with ``--cpu max,-pku``) and ``alarm`` ~1.5x, with the
same instruction count.  A QEMU artefact, not a Linux cost; compare at equal
``-cpu`` and mention it.

The Linux side is fetched and cached by the benchmark itself:

1. ``apt-cache show linux-image-cloud-amd64`` names the current
   ``linux-image-6.1.0-NN-cloud-amd64 (= version)`` it depends on; ``apt-get download`` fetches it and
   ``dpkg -x`` unpacks it; ``boot/vmlinuz-*`` is kept as
   ``build/cache/linux/<package>_<version>/vmlinuz`` (a second run fetches
   nothing; if apt is unavailable the newest cached kernel is used).
   ``REVENANT_LINUX_VMLINUZ=/path/to/vmlinuz`` bypasses all of that;
   ``REVENANT_LINUX_PACKAGE=linux-image-...`` pins the package.
2. ``toolchain/peer/bench.c`` is compiled with ``gcc -static -O2 -pthread``
   and packed as ``/init`` into a gzip'd newc cpio written by this module
   (``write_newc``: same format as ``cpio -o -H newc``, but with no host tool,
   fixed mtimes, and a ``/dev/console`` node that needs no root to create).
3. ``qemu-system-x86_64 -M pc -cpu max -m 256M -kernel vmlinuz -initrd
   init.cpio.gz -append "console=ttyS0 quiet panic=-1 rdinit=/init bench=...
   iters=..."`` runs it; the program prints ``RESULT name=... key=value ...``
   lines and powers off.  The serial log of every run is kept in
   ``build/logs/``.

Benchmarks (see bench.c for the exact loops):

Figures are per iteration: ``tsc_per_iter`` is the fastest of 10 chunks (for
``alarm`` the median event), ``mean_tsc_per_iter`` the whole loop.

``getpid``  null syscall, ``syscall(SYS_getpid)``.
``signal``  self-sent signal round trip: ``kill(getpid(), SIGUSR1)``, delivered
            on the syscall's return path, empty handler, ``rt_sigreturn``.
            Deterministic (one event per iteration); includes the kill
            syscall itself.
``alarm``   timer-delivered signal, the analogue of a timer-interrupt upcall:
            ``setitimer(ITIMER_REAL, 200us)`` SIGALRM into a loop reading the
            TSC back to back; the TSC gap around each handler run is one
            event (interrupt + hrtimer + signal setup + handler + sigreturn).
``futex``   thread switch: two pthreads ping-pong via raw ``SYS_futex``
            WAIT/WAKE on one vCPU; figures are per switch (half a round trip).
``pipe``    request/response between two processes: one byte written into a pipe,
            read and written back by a forked child through a second pipe; per
            round trip (two switches, four syscalls).
``wakeall`` 63 threads in ``FUTEX_WAIT`` on one word, woken at once by
            ``FUTEX_WAKE`` and waited for until every one is back in its wait
            (the median of 200 events): what an in-place restart does to 63
            blocked calls.
``calib``   the instruction-count check above.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from toolchain import paths
from toolchain.errors import BuildError, GuestFailure, OverallTimeout, RevenantError, ToolMissing

META_PACKAGE = "linux-image-cloud-amd64"
CACHE: Path = paths.BUILD / "cache" / "linux"
PEER_SRC: Path = Path(__file__).resolve().parent / "peer"
BENCHES = ("getpid", "signal", "alarm", "futex", "calib", "pipe", "wakeall")
DEFAULT_BENCHES = ("getpid", "signal", "alarm", "futex")
CFLAGS = ["-static", "-O2", "-pthread", "-Wall", "-Wextra"]
ALARM_MAX_EVENTS = 2000


class LinuxPeerError(RevenantError):
    """Fetching, building or running the Linux peer failed (one-line message)."""


# --------------------------------------------------------------------------- results


@dataclass
class LinuxBenchResult:
    """One benchmark from one boot of the Linux peer.

    ``per_iter_tsc`` is TSC ticks per iteration (per switch for ``futex``, per
    timer event for ``alarm``); under icount that *is* the instruction count.
    """

    name: str
    icount: bool
    iters: int
    per_iter_tsc: float
    per_iter_ns: float
    fields: dict = field(default_factory=dict)
    boot_seconds: float | None = None     # host wall time from QEMU start to the first line of init
    wall_seconds: float | None = None     # host wall time of the whole QEMU run
    kernel: str = ""
    log_path: str = ""

    @property
    def instructions(self) -> float | None:
        """Guest instructions per iteration (icount runs only)."""
        return self.per_iter_tsc if self.icount else None

    @property
    def tsc_cycles(self) -> float | None:
        """Host TSC cycles per iteration (plain TCG runs only)."""
        return None if self.icount else self.per_iter_tsc

    def to_dict(self) -> dict:
        d = asdict(self)
        d["instructions"] = self.instructions
        d["tsc_cycles"] = self.tsc_cycles
        return d


_RESULT_RE = re.compile(r"^RESULT\s+(.*)$")
_KV_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")


def _number(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_kv(text: str) -> dict:
    """``a=1 b=2.5 c=x`` -> ``{'a': 1, 'b': 2.5, 'c': 'x'}``."""
    return {k: _number(v) for k, v in _KV_RE.findall(text)}


def parse_results(log: str) -> dict[str, dict]:
    """All ``RESULT name=... k=v ...`` lines of a serial log, by name.

    Tolerates ``\\r\\n`` endings and kernel messages interleaved on the same
    console; a line is taken only if it *starts* with ``RESULT``.
    """
    results: dict[str, dict] = {}
    for raw in log.splitlines():
        m = _RESULT_RE.match(raw.strip("\r"))
        if not m:
            continue
        kv = parse_kv(m.group(1))
        if "name" in kv:
            results[str(kv["name"])] = kv
    return results


def parse_info(log: str) -> dict[str, str]:
    """``INFO key=value`` lines (clocksource, mitigations) of a serial log."""
    info: dict[str, str] = {}
    for raw in log.splitlines():
        line = raw.strip("\r")
        if line.startswith("INFO "):
            info.update({k: str(v) for k, v in parse_kv(line[5:]).items()})
    return info


def parse_errors(log: str) -> list[str]:
    """Guest-side failures: ``ERROR`` lines of the program, kernel panics and oopses."""
    bad = []
    for raw in log.splitlines():
        line = raw.strip("\r")
        if line.startswith("ERROR ") or "Kernel panic" in line or re.search(r"\bBUG:|\bOops\b", line):
            bad.append(line.strip())
    return bad


def results_from_log(log: str, icount: bool, *, boot_seconds=None, wall_seconds=None,
                     kernel: str = "", log_path: str = "") -> dict[str, LinuxBenchResult]:
    """Turn a serial log into ``LinuxBenchResult``s, by benchmark name."""
    out = {}
    for name, kv in parse_results(log).items():
        try:
            out[name] = LinuxBenchResult(
                name=name, icount=icount, iters=int(kv["iters"]),
                per_iter_tsc=float(kv["tsc_per_iter"]), per_iter_ns=float(kv["ns_per_iter"]),
                fields={k: v for k, v in kv.items()
                        if k not in ("name", "iters", "tsc_per_iter", "ns_per_iter")},
                boot_seconds=boot_seconds, wall_seconds=wall_seconds, kernel=kernel,
                log_path=log_path)
        except (KeyError, ValueError) as err:
            raise LinuxPeerError(f"malformed RESULT line for {name!r} ({err}) in {log_path or 'log'}")
    return out


# --------------------------------------------------------------------------- the kernel


def _run(cmd: list[str], what: str, timeout: float = 600, cwd: Path | None = None) -> str:
    if not shutil.which(cmd[0]):
        raise ToolMissing(f"{cmd[0]} not found: the Linux peer needs it for {what} "
                          f"(Debian/Ubuntu host with apt and dpkg; or set REVENANT_LINUX_VMLINUZ)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise LinuxPeerError(f"{what}: `{' '.join(cmd)}` timed out after {timeout:.0f} s")
    if proc.returncode != 0:
        err = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:]) or f"exit {proc.returncode}"
        raise LinuxPeerError(f"{what} failed: `{' '.join(cmd)}`: {err}")
    return proc.stdout


_resolved: dict[str, tuple[str, str]] = {}


def resolve_kernel_package() -> tuple[str, str]:
    """(package, version) of the Debian cloud kernel that ``linux-image-cloud-amd64`` depends on.

    Local apt metadata only (no network); memoized for the life of the process.
    """
    pkg = os.environ.get("REVENANT_LINUX_PACKAGE", "").strip() or META_PACKAGE
    if pkg in _resolved:
        return _resolved[pkg]
    out = _run(["apt-cache", "show", "--no-all-versions", pkg], f"looking up {pkg}", timeout=60)
    version = re.search(r"^Version:\s*(\S+)", out, re.M)
    if pkg == META_PACKAGE:
        # Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
        dep = re.search(r"^Depends:.*?\b(linux-image-[0-9]\S*)(?:\s*\(=\s*([^)\s]+)\))?", out, re.M)
        if not dep:
            raise LinuxPeerError(f"`apt-cache show {META_PACKAGE}` names no linux-image dependency "
                                 f"(is this Debian 12 with package lists? try `apt-get update`)")
        if dep.group(2):
            _resolved[pkg] = (dep.group(1), dep.group(2))
            return _resolved[pkg]
        out = _run(["apt-cache", "show", "--no-all-versions", dep.group(1)], f"looking up {dep.group(1)}",
                   timeout=60)
        version = re.search(r"^Version:\s*(\S+)", out, re.M)
        pkg_name = dep.group(1)
    else:
        pkg_name = pkg
    if not version:
        raise LinuxPeerError(f"`apt-cache show {pkg_name}` gives no version (try `apt-get update`)")
    _resolved[pkg] = (pkg_name, version.group(1))
    return _resolved[pkg]


def _cache_dir(pkg: str, version: str) -> Path:
    return CACHE / f"{pkg}_{version.replace(':', '%3a')}"


def _newest_cached() -> Path | None:
    found = sorted(CACHE.glob("linux-image-*/vmlinuz"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def fetch_kernel(verbose: bool = False) -> Path:
    """The cached vmlinuz of the Debian cloud kernel, downloading it on first use."""
    override = os.environ.get("REVENANT_LINUX_VMLINUZ")
    if override:
        p = Path(override)
        if not p.is_file():
            raise LinuxPeerError(f"REVENANT_LINUX_VMLINUZ={override} is not a file")
        return p
    try:
        pkg, version = resolve_kernel_package()
    except RevenantError:
        cached = _newest_cached()
        if cached:          # offline / no apt: any kernel we already have will do
            return cached
        raise
    dest = _cache_dir(pkg, version)
    vmlinuz = dest / "vmlinuz"
    if vmlinuz.is_file():
        return vmlinuz
    for tool, what in (("apt-get", "downloading the Linux kernel package"), ("dpkg", "unpacking it")):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: needed for {what} ({pkg}); "
                              f"this needs a Debian host, or set REVENANT_LINUX_VMLINUZ")
    CACHE.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"linuxpeer: fetching {pkg} {version}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="fetch-") as tmp:
        tmpd = Path(tmp)
        _run(["apt-get", "download", f"{pkg}={version}"], f"apt-get download {pkg}", cwd=tmpd)
        debs = list(tmpd.glob("*.deb"))
        if not debs:
            raise LinuxPeerError(f"apt-get download {pkg}={version} produced no .deb")
        _run(["dpkg", "-x", str(debs[0]), str(tmpd / "x")], f"dpkg -x {debs[0].name}")
        images = sorted((tmpd / "x" / "boot").glob("vmlinuz-*"))
        if not images:
            raise LinuxPeerError(f"{debs[0].name} contains no boot/vmlinuz-*")
        dest.mkdir(parents=True, exist_ok=True)
        for cfg in (tmpd / "x" / "boot").glob("config-*"):
            shutil.copyfile(cfg, dest / "config")
        (dest / "release").write_text(images[0].name[len("vmlinuz-"):] + "\n")
        shutil.copyfile(images[0], dest / "vmlinuz.tmp")
        os.replace(dest / "vmlinuz.tmp", vmlinuz)   # atomic: a half-copied kernel is never cached
    return vmlinuz


def kernel_name(vmlinuz: Path) -> str:
    rel = vmlinuz.parent / "release"
    if rel.is_file():
        return f"{vmlinuz.parent.name} ({rel.read_text().strip()})"
    return str(vmlinuz)


# --------------------------------------------------------------------------- the initramfs


def write_newc(entries: Iterable[tuple[str, int, bytes, int, int]]) -> bytes:
    """A newc ("070701") cpio archive, as ``cpio -o -H newc`` writes it.

    ``entries``: (name, mode, data, rdev_major, rdev_minor).  mtimes are 0 so the
    archive depends only on its contents.
    """
    buf = io.BytesIO()

    def put(name: str, mode: int, data: bytes, ino: int, major: int = 0, minor: int = 0) -> None:
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(nb), 0))
        buf.write(hdr.encode() + nb)
        buf.write(b"\0" * (-(110 + len(nb)) % 4))
        buf.write(data)
        buf.write(b"\0" * (-len(data) % 4))

    ino = 1
    for name, mode, data, major, minor in entries:
        put(name, mode, data, ino, major, minor)
        ino += 1
    put("TRAILER!!!", 0, b"", 0)
    return buf.getvalue()


def build_initramfs(verbose: bool = False) -> Path:
    """Compile toolchain/peer/*.c into a static /init and pack it; cached by content hash."""
    sources = sorted(PEER_SRC.glob("*.c"))
    if not sources:
        raise BuildError(f"no Linux peer sources in {PEER_SRC}")
    gcc = shutil.which("gcc")
    if not gcc:
        raise ToolMissing("gcc not found: needed to build the Linux peer (apt-get install -y gcc libc6-dev)")
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for src in sources:
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    key = h.hexdigest()[:16]
    outdir = CACHE / "peer"
    cpio = outdir / f"init-{key}.cpio.gz"
    if cpio.is_file():
        return cpio
    outdir.mkdir(parents=True, exist_ok=True)
    exe = outdir / f"init-{key}"
    cmd = [gcc, *CFLAGS, "-o", str(exe), *map(str, sources)]
    if verbose:
        print("linuxpeer:", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = next((l for l in proc.stderr.splitlines() if "error" in l), proc.stderr.strip()[:200])
        hint = " (static glibc missing? apt-get install -y libc6-dev)" if "-lc" in proc.stderr else ""
        raise BuildError(f"building the Linux peer failed: {first}{hint}")
    archive = write_newc([
        ("dev", 0o040755, b"", 0, 0),
        ("dev/console", 0o020600, b"", 5, 1),
        ("proc", 0o040555, b"", 0, 0),
        ("sys", 0o040555, b"", 0, 0),
        ("init", 0o100755, exe.read_bytes(), 0, 0),
    ])
    tmp = cpio.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        # mtime=0: the same sources give the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            gz.write(archive)
    os.replace(tmp, cpio)
    exe.unlink()
    return cpio


# --------------------------------------------------------------------------- the runner


def _qemu_cmd(vmlinuz: Path, initrd: Path, append: str, icount: bool, cpu: str) -> list[str]:
    cmd = ["qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-cpu", cpu, "-m", "256M", "-smp", "1",
           "-display", "none", "-monitor", "none", "-no-reboot", "-serial", "stdio",
           "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", append]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd


def _bench_cmdline(benches: list[str], iters: int, alarm_events: int) -> str:
    return f"bench={','.join(benches)} iters={iters} alarm_events={alarm_events}"


def run_linux_benches(benches: Iterable[str] = DEFAULT_BENCHES, iters: int = 20000, icount: bool = True,
                      *, alarm_events: int | None = None, timeout: float | None = None, cpu: str = "max",
                      extra_append: str = "", verbose: bool = False) -> dict[str, LinuxBenchResult]:
    """Boot the Linux peer once, run ``benches`` in it, return their results by name.

    ``timeout`` bounds the whole QEMU run (default: 120 s plus a generous
    allowance per iteration); on expiry QEMU is killed and ``OverallTimeout``
    names the log.
    """
    benches = list(benches)
    for b in benches:
        if b not in BENCHES:
            raise LinuxPeerError(f"unknown Linux peer benchmark {b!r} (known: {', '.join(BENCHES)})")
    if iters < 1:
        raise LinuxPeerError("iters must be at least 1")
    if alarm_events is None:
        alarm_events = max(1, min(iters, ALARM_MAX_EVENTS))
    if not shutil.which("qemu-system-x86_64"):
        raise ToolMissing("qemu-system-x86_64 not found: run ci/bootstrap (apt-get install -y qemu-system-x86)")
    vmlinuz = fetch_kernel(verbose=verbose)
    initrd = build_initramfs(verbose=verbose)
    if timeout is None:
        # icount runs go at ~100-300 MIPS; a signal or switch costs a few thousand instructions.
        timeout = 120.0 + len(benches) * iters * 200e-6 + alarm_events * 2e-3
    append = f"console=ttyS0 quiet panic=-1 rdinit=/init {_bench_cmdline(benches, iters, alarm_events)}"
    if extra_append:
        append += " " + extra_append
    cmd = _qemu_cmd(vmlinuz, initrd, append, icount, cpu)

    paths.LOGS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = paths.LOGS / f"linuxpeer-{'+'.join(benches)}-{'icount' if icount else 'tcg'}-{stamp}-{os.getpid()}.log"
    if verbose:
        print("linuxpeer:", " ".join(cmd), file=sys.stderr)

    lines: list[str] = []
    first_line_at: list[float] = []
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"# {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not first_line_at and line.startswith("PEER "):
                    first_line_at.append(time.monotonic() - t0)
                lines.append(line)
                log.write(line + "\n")
                log.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reader.join(5)
            raise OverallTimeout(f"Linux peer ({','.join(benches)}) did not finish within {timeout:.0f} s; "
                                 f"log: {log_path}", log_path=log_path)
        finally:
            if proc.poll() is None:     # KeyboardInterrupt or any other escape: never leave QEMU behind
                proc.kill()
                proc.wait()
        reader.join(10)
        wall = time.monotonic() - t0
        log.write(f"# exit status {rc}, {wall:.3f} s\n")

    text = "\n".join(lines)
    tail = "\n".join(lines[-15:])
    errors = parse_errors(text)
    if errors:
        raise GuestFailure(f"Linux peer failed: {errors[0]}; log: {log_path}", detail=tail, log_path=log_path)
    if rc != 0:
        raise GuestFailure(f"qemu exited with status {rc} running the Linux peer; log: {log_path}",
                           detail=tail, log_path=log_path)
    if not any(l.strip() == "DONE" for l in lines):
        raise GuestFailure(f"Linux peer stopped before printing DONE (kernel panic or reset?); log: {log_path}",
                           detail=tail, log_path=log_path)
    results = results_from_log(text, icount, boot_seconds=first_line_at[0] if first_line_at else None,
                               wall_seconds=wall, kernel=kernel_name(vmlinuz), log_path=str(log_path))
    missing = [b for b in benches if b not in results]
    if missing:
        raise GuestFailure(f"Linux peer printed no RESULT for {', '.join(missing)}; log: {log_path}",
                           detail=tail, log_path=log_path)
    return results


def run_linux_bench(which: str, iters: int, icount: bool, **kwargs) -> LinuxBenchResult:
    """Boot the Linux peer and run one benchmark (``getpid``, ``signal``, ``alarm``, ``futex``, ``calib``).

    For ``alarm``, ``iters`` is the number of timer events measured.  Under
    ``icount`` the result's ``instructions`` is set, otherwise ``tsc_cycles``.
    """
    if which == "alarm":
        kwargs.setdefault("alarm_events", iters)
    return run_linux_benches([which], iters, icount, **kwargs)[which]


def compare_runs(benches: Iterable[str] = DEFAULT_BENCHES, iters: int = 20000, *, runs: int = 1,
                 cpu: str = "max", verbose: bool = False) -> dict:
    """Everything ``python -m toolchain.linuxpeer`` prints: per benchmark, instructions and tsc cycles."""
    benches = list(benches)
    icount_runs = [run_linux_benches(benches, iters, True, cpu=cpu, verbose=verbose) for _ in range(runs)]
    tcg_runs = [run_linux_benches(benches, iters, False, cpu=cpu, verbose=verbose) for _ in range(runs)]
    out: dict = {"kernel": icount_runs[0][benches[0]].kernel, "cpu": cpu, "iters": iters, "runs": runs,
                 "boot_seconds": {"icount": icount_runs[0][benches[0]].boot_seconds,
                                  "tcg": tcg_runs[0][benches[0]].boot_seconds},
                 "logs": [r[benches[0]].log_path for r in icount_runs + tcg_runs],
                 "results": {}}
    for b in benches:
        ins = [r[b].per_iter_tsc for r in icount_runs]
        cyc = [r[b].per_iter_tsc for r in tcg_runs]
        entry = {
            "unit": {"futex": "per switch", "alarm": "per timer event", "pipe": "per round trip",
                     "wakeall": "per wake-all event"}.get(b, "per call"),
            "iters": icount_runs[0][b].iters,
            "instructions": statistics.median(ins),
            "tsc_cycles": statistics.median(cyc),
            "ns_tcg": statistics.median(r[b].per_iter_ns for r in tcg_runs),
            "icount_fields": icount_runs[0][b].fields,
            "tcg_fields": tcg_runs[0][b].fields,
        }
        if runs > 1:
            entry["instructions_runs"] = ins
            entry["tsc_cycles_runs"] = cyc
        out["results"][b] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m toolchain.linuxpeer", description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=",".join(DEFAULT_BENCHES),
                    help=f"comma-separated subset of {','.join(BENCHES)} (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=20000, help="iterations per benchmark (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=1, help="boots per mode; >1 lists every run (default: 1)")
    ap.add_argument("--cpu", default="max", help="QEMU -cpu model (default: max, as Revenant runs)")
    ap.add_argument("--calib", action="store_true", help="also run the instruction-count calibration")
    ap.add_argument("--fetch-only", action="store_true", help="fetch the kernel, build the initramfs, print paths")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.fetch_only:
            print(json.dumps({"vmlinuz": str(fetch_kernel(args.verbose)),
                              "initrd": str(build_initramfs(args.verbose))}, indent=2))
            return 0
        benches = [b for b in args.bench.split(",") if b]
        if args.calib and "calib" not in benches:
            benches.append("calib")
        print(json.dumps(compare_runs(benches, args.iters, runs=args.runs, cpu=args.cpu,
                                      verbose=args.verbose), indent=2))
        return 0
    except RevenantError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
