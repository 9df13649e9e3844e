"""Start and stop one qemu-system-x86_64 running a Revenant kernel.

``Machine`` is a context manager around a real QEMU process:

* the kernel image is checked (ELF64, x86-64, program headers and segments inside
  the file, a PVH note) *before* QEMU starts: ``KernelImageError``;
* QEMU not on PATH: ``ToolMissing``;
* the serial port (``-serial stdio``) is read by one thread that tees it into a
  per-run log under build/logs/ (kept, path in ``machine.log_path``), feeds a
  ``Console`` (expect / failure markers) and optionally echoes to the terminal;
* the serial port's input is QEMU's stdin, a pipe: ``send(text)`` writes to it, once the
  kernel's banner shows its UART is set up (enabling the 16550's FIFOs empties them, so a
  byte that came earlier would be lost).  QEMU's 16550 takes a byte from the pipe only when
  it has room, and the kernel reads the UART only when a reader's ring has room
  (docs/restart.md, "Input is state too"), so what is sent waits in the pipe until the guest
  reads it: ``send`` blocks while the pipe is full, up to its timeout;
  QEMU's stderr goes to ``<log>.stderr`` through a second reader thread that also
  watches it for QEMU's internal-error state (``KVM internal error ... emulation
  failure``: the guest would stay paused forever) and fails the run with one line;
* QEMU never outlives the harness: it runs in its own session (process group),
  ``__exit__``/``kill()`` SIGKILL the group, an atexit hook and SIGTERM/SIGHUP
  handlers kill every live machine, the process gets PDEATHSIG=SIGKILL (via
  ``setpriv``) when started from the main thread, and a pidfile per run lets
  ``reap_stale()`` kill orphans left by a harness that was SIGKILLed.

No QMP connection, no sleeps and no polling on the plain boot path: waiting is a
blocking select/read in the reader thread and ``threading.Event``/``Condition`` waits.
"""
from __future__ import annotations

import atexit
import itertools
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Dict, List, Optional, Union

from . import paths
from .console import Console, ExitResult, Match, PatternLike, decode_exit
from .errors import GuestFailure, KernelImageError, OverallTimeout, QMPError, RevenantError, ToolMissing

if TYPE_CHECKING:  # pragma: no cover
    from .qmp import QMP

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
INSTALL_HINT = "run ci/bootstrap or `sudo apt-get install qemu-system-x86 qemu-utils`"
RUN_DIR_NAME = "run"          # build/logs/run/: pidfiles (and QMP sockets) of live machines

__all__ = [
    "MachineConfig", "Machine", "ExitResult", "find_tool", "check_kernel_image", "create_disk",
    "reap_stale", "kill_all", "live_machines", "disk_args",
]


# --------------------------------------------------------------------------- tools
def find_tool(name: str) -> str:
    """Absolute path of a host tool, or ``ToolMissing`` with the install hint."""
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} not found on PATH; {INSTALL_HINT}")
    return found


def create_disk(path: Path, size: str = "64M") -> Path:
    """Create an empty qcow2 image (for internal snapshots) unless it exists."""
    path = Path(path)
    if path.exists():
        return path
    if not path.parent.is_dir():
        if paths.BUILD not in path.parents:     # build/ is ours to create; elsewhere, a typo
            raise RevenantError(f"cannot create disk {path}: directory {path.parent} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
    qemu_img = find_tool(QEMU_IMG)
    proc = subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), size],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RevenantError(f"qemu-img create {path} failed: {(proc.stderr or proc.stdout).strip()}")
    return path


def disk_args(disk: Union[str, Path], *, attach: bool = True, replay: bool = False) -> List[str]:
    """QEMU options for the qcow2 ``disk``: node ``d0`` (QMP snapshots name it), and with
    ``attach`` the same node as the guest's virtio-blk disk (device ``blk0``), so one image holds
    both the guest's own writes and the snapshots.  ``replay`` puts a ``blkreplay`` node (``r0``)
    between them, which ``-icount ...,rr=record|replay`` needs for a disk (docs/persistence.md)."""
    args = ["-blockdev", f"driver=file,filename={_escape_opt(str(disk))},node-name=f0",
            "-blockdev", "driver=qcow2,file=f0,node-name=d0"]
    if not attach:
        return args
    node = "d0"
    if replay:
        args += ["-blockdev", "driver=blkreplay,image=d0,node-name=r0"]
        node = "r0"
    return args + ["-device", f"virtio-blk-pci,drive={node},id=blk0"]


# ----------------------------------------------------------------- kernel image check
_PT_LOAD, _PT_NOTE = 1, 4
_XEN_ELFNOTE_PHYS32_ENTRY = 18


def check_kernel_image(path: Union[str, Path], *, require_pvh: bool = True) -> Path:
    """Validate a kernel ELF before QEMU sees it; ``KernelImageError`` (one line) if bad."""
    path = Path(path)
    if not path.exists():
        raise KernelImageError(f"kernel image {path} does not exist (build it with `invoke build`)")
    if not path.is_file():
        raise KernelImageError(f"kernel image {path} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KernelImageError(f"kernel image {path} cannot be read: {exc.strerror}") from None
    size = len(data)
    if size < 64 or data[:4] != b"\x7fELF":
        raise KernelImageError(f"kernel image {path} is not an ELF file (bad magic)")
    if data[4] != 2:
        raise KernelImageError(f"kernel image {path} is not a 64-bit ELF (class {data[4]})")
    if data[5] != 1:
        raise KernelImageError(f"kernel image {path} is not little-endian")
    (e_type, e_machine, _ver, _entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize, e_phnum,
     _shentsize, _shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_machine != 62:
        raise KernelImageError(f"kernel image {path} is not x86-64 (e_machine {e_machine})")
    if e_type not in (2, 3):
        raise KernelImageError(f"kernel image {path} is not an executable (e_type {e_type})")
    if e_phnum == 0 or e_phentsize < 56:
        raise KernelImageError(f"kernel image {path} has no program headers")
    if e_phoff + e_phnum * e_phentsize > size:
        raise KernelImageError(f"kernel image {path} is corrupt or truncated: "
                               f"program headers end past the file ({size} bytes)")
    has_load = has_pvh = False
    for i in range(e_phnum):
        p_type, _pflags, p_offset, _vaddr, _paddr, p_filesz, _memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type in (_PT_LOAD, _PT_NOTE) and p_offset + p_filesz > size:
            raise KernelImageError(f"kernel image {path} is corrupt or truncated: segment {i} "
                                   f"ends at {p_offset + p_filesz} past the file ({size} bytes)")
        if p_type == _PT_LOAD and p_filesz:
            has_load = True
        if p_type == _PT_NOTE:
            has_pvh = has_pvh or _has_pvh_note(data[p_offset:p_offset + p_filesz])
    if not has_load:
        raise KernelImageError(f"kernel image {path} has no loadable segment")
    if require_pvh and not has_pvh:
        raise KernelImageError(f"kernel image {path} has no PVH note (Xen type 18 in a PT_NOTE "
                               f"segment); qemu -kernel cannot boot it")
    return path


def _has_pvh_note(notes: bytes) -> bool:
    off = 0
    while off + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, off)
        name = notes[off + 12:off + 12 + namesz]
        if ntype == _XEN_ELFNOTE_PHYS32_ENTRY and name.rstrip(b"\0") == b"Xen":
            return True
        off += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


# ------------------------------------------------------------------------- config
@dataclass
class MachineConfig:
    """What to boot and how.  Defaults: docs/toolkit.md."""

    kernel: Path = field(default_factory=lambda: paths.KERNEL_ELF)
    append: str = ""
    memory: str = "128M"
    cpu: str = "max"
    accel: str = "tcg"                     # "kvm" is opt-in (nested KVM is slow here)
    machine: str = "pc"
    nodefaults: bool = True                # no NIC/VGA/option ROMs: ~25 ms faster boot
    qmp: bool = False                      # open a QMP socket (server, wait=off)
    qmp_socket: Optional[Path] = None      # default: build/logs/run/<run>.qmp
    disk: Optional[Path] = None            # qcow2 image for internal snapshots (node names f0/d0)
    create_disk: bool = True               # qemu-img create it if missing
    disk_size: str = "64M"
    attach_disk: bool = True               # also give d0 to the guest as a virtio-blk-pci device
    disk_replay: bool = False              # put a blkreplay node (r0) between d0 and the device: -icount rr=
    paused: bool = False                   # -S: CPUs stopped until `cont` (QMP or gdb)
    gdb: Optional[str] = None              # e.g. "tcp::1234" -> -gdb tcp::1234
    extra_args: List[str] = field(default_factory=list)
    log_dir: Path = field(default_factory=lambda: paths.LOGS)
    name: str = "run"
    echo: Union[bool, IO[str]] = False     # True: echo serial output to sys.stdout
    symbolizer: Optional[Callable[[str], str]] = None   # default: toolchain.symbols if importable
    symbolize: bool = True
    panic_grace: float = 1.0
    grace: float = 0.2
    check_image: bool = True
    iso: Optional[Path] = None             # boot this GRUB ISO (-cdrom) instead of -kernel
    qemu: str = QEMU


# ------------------------------------------------------------- process bookkeeping
# Called with every Machine as it launches QEMU: the pytest plugin keeps the machines a test
# started, so that a failing test's report (and its JUnit XML) carries their serial tails.
START_HOOKS: List[Callable[["Machine"], None]] = []
_live: Dict[int, "Machine"] = {}
_live_lock = threading.Lock()
_handlers_installed = False
_counter = itertools.count(1)


def kill_all() -> None:
    """Kill every QEMU this process started and that is still running."""
    with _live_lock:
        machines = list(_live.values())
    for m in machines:
        m.kill()


def _on_fatal_signal(signum: int, frame: object) -> None:
    kill_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_previous_handlers: Dict[int, object] = {}


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True
    atexit.register(kill_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            prev = signal.getsignal(sig)
            if prev is _on_fatal_signal:
                continue
            _previous_handlers[sig] = prev
            signal.signal(sig, _on_fatal_signal)
        except (ValueError, OSError):  # not settable here
            pass


def live_machines(run_dir: Optional[Path] = None) -> List[tuple]:
    """``(pid, parent pid, pidfile)`` of every QEMU started by a harness that is still running.

    A pidfile under ``build/logs/run/`` names a QEMU we started; it counts while that pid is
    alive and its command line still names the pidfile (pids get reused).  Pidfiles of dead
    QEMUs are removed on the way.
    """
    run_dir = run_dir or (paths.LOGS / RUN_DIR_NAME)
    found: List[tuple] = []
    for pidfile in sorted(run_dir.glob("*.pid")):
        try:
            pid = int(pidfile.read_text().strip() or "0")
        except (OSError, ValueError):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            try:
                pidfile.unlink(missing_ok=True)
            except OSError:
                pass
            continue
        if str(pidfile).encode() not in cmdline:
            continue                              # pid reused by something else
        found.append((pid, int(stat.rsplit(")", 1)[1].split()[1]), pidfile))
    return found


def reap_stale(run_dir: Optional[Path] = None) -> List[int]:
    """Kill QEMUs left behind by a harness that died without cleanup (e.g. SIGKILL).

    A live QEMU (``live_machines``) whose parent is gone (reparented) is an orphan and is
    killed.  Returns the pids killed.
    """
    killed: List[int] = []
    for pid, ppid, pidfile in live_machines(run_dir):
        if ppid == 1 or not Path(f"/proc/{ppid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
            pidfile.unlink(missing_ok=True)
    return killed


# ------------------------------------------------------------------------ machine
class Machine:
    """One QEMU run.  Use as ``with Machine(cfg) as m: m.expect(...); m.wait()``.

    ``start()`` is called by ``__enter__``; ``__exit__`` always kills QEMU if it is
    still running and closes the QMP connection.  The log is always kept.
    """

    def __init__(self, config: Optional[MachineConfig] = None, **overrides: object) -> None:
        cfg = config or MachineConfig()
        if overrides:
            cfg = MachineConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cfg.name) or "run"
        self.run_id = f"{stamp}-{safe}-{os.getpid()}-{next(_counter)}"
        self.log_dir = Path(cfg.log_dir)
        self.log_path = self.log_dir / f"{self.run_id}.log"
        self.stderr_path = self.log_dir / f"{self.run_id}.stderr"
        self.run_dir = self.log_dir / RUN_DIR_NAME
        self.pidfile = self.run_dir / f"{self.run_id}.pid"
        self.qmp_socket: Optional[Path] = None
        if cfg.qmp:
            self.qmp_socket = Path(cfg.qmp_socket) if cfg.qmp_socket else self.run_dir / f"{self.run_id}.qmp"
            if len(str(self.qmp_socket)) > 100:     # sun_path limit is 108 bytes
                self.qmp_socket = Path(tempfile.mkdtemp(prefix="rvn-")) / "qmp.sock"
        self.console = Console(log_path=self.log_path, symbolizer=self._symbolizer(),
                               panic_grace=cfg.panic_grace, grace=cfg.grace)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.started_at = 0.0
        self._qemu_path: Optional[str] = None
        self._reader: Optional[threading.Thread] = None
        self._done = threading.Event()
        self._result: Optional[ExitResult] = None
        self._killed = False
        self._qmp: Optional["QMP"] = None
        self._feed_lock = threading.Lock()
        self._log_file: Optional[IO[bytes]] = None
        self._stderr_file: Optional[IO[bytes]] = None
        self._stderr_reader: Optional[threading.Thread] = None
        self._send_lock = threading.Lock()

    # ----------------------------------------------------------------- argv
    def argv(self) -> List[str]:
        """The full QEMU command line (for printing / debugging)."""
        cfg = self.config
        qemu = self._qemu_path or cfg.qemu
        argv = [qemu, "-M", cfg.machine, "-cpu", cfg.cpu, "-m", cfg.memory, "-accel", cfg.accel]
        if cfg.nodefaults:
            argv.append("-nodefaults")
        argv += ["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                 "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                 "-device", "pvpanic", "-action", "panic=none",
                 "-pidfile", str(self.pidfile)]
        if cfg.iso is not None:
            argv += ["-cdrom", str(cfg.iso), "-boot", "d"]
        else:
            argv += ["-kernel", str(cfg.kernel), "-append", cfg.append]
        if self.qmp_socket is not None:
            argv += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        if cfg.disk is not None:
            argv += disk_args(cfg.disk, attach=cfg.attach_disk, replay=cfg.disk_replay)
        if cfg.paused:
            argv.append("-S")
        if cfg.gdb:
            argv += ["-gdb", cfg.gdb]
        argv += list(cfg.extra_args)
        return argv

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Machine":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "Machine":
        """Validate, then launch QEMU and the serial reader thread."""
        if self.proc is not None:
            raise RevenantError("machine already started")
        cfg = self.config
        self._qemu_path = find_tool(cfg.qemu)
        if cfg.check_image:
            check_kernel_image(cfg.kernel)
        if cfg.disk is not None:
            if cfg.create_disk:
                create_disk(Path(cfg.disk), cfg.disk_size)
            elif not Path(cfg.disk).exists():
                raise RevenantError(f"snapshot disk {cfg.disk} does not exist")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RevenantError(f"cannot create {err.filename or self.run_dir} for the serial log and "
                                f"pidfile: {err.strerror} (is build/ writable? `invoke doctor` checks)") from None
        reap_stale(self.run_dir)
        if self.qmp_socket is not None:
            self.qmp_socket.parent.mkdir(parents=True, exist_ok=True)
            if self.qmp_socket.is_socket():
                _refuse_live_socket(self.qmp_socket)
                self.qmp_socket.unlink()
        _install_handlers()
        argv = self.argv()
        if _pdeathsig_prefix() and threading.current_thread() is threading.main_thread():
            argv = _pdeathsig_prefix() + argv
        try:
            self._log_file = open(self.log_path, "wb", buffering=0)
            self._stderr_file = open(self.stderr_path, "wb", buffering=0)
        except OSError as err:
            self._close_files()
            raise RevenantError(f"cannot write the serial log {err.filename}: {err.strerror} "
                                f"(is build/ writable? `invoke doctor` checks)") from None
        self.started_at = time.monotonic()
        for hook in START_HOOKS:
            hook(self)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         close_fds=True, bufsize=0)
        except OSError as exc:
            self._close_files()
            raise ToolMissing(f"cannot run {argv[0]}: {exc.strerror}; {INSTALL_HINT}") from None
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)   # send() waits with select, bounded
        with _live_lock:
            _live[self.proc.pid] = self
        self._stderr_reader = threading.Thread(target=self._read_stderr, name=f"stderr-{self.run_id}",
                                               daemon=True)
        self._stderr_reader.start()
        self._reader = threading.Thread(target=self._read_serial, name=f"serial-{self.run_id}", daemon=True)
        self._reader.start()
        return self

    def _read_serial(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        echo = self._echo_stream()
        log = self._log_file
        try:
            while True:
                try:
                    select.select([fd], [], [])       # wait without holding the feed lock
                except (OSError, ValueError):
                    break
                with self._feed_lock:                 # read and feed are one step for drain_serial()
                    data = _read_chunk(fd)
                    if not data:
                        break
                    _quiet_write(log, data)
                    self.console.feed(data)
                    if echo is not None:
                        _quiet_write(echo, data.decode("utf-8", "replace"), flush=True)
        finally:
            status = proc.wait()
            if self._stderr_reader is not None:
                self._stderr_reader.join(timeout=5)     # all of stderr is in the file
            quit_requested = self._qmp is not None and self._qmp.quit_requested
            self._result = decode_exit(status, killed_by_harness=self._killed, quit_requested=quit_requested,
                                       duration_s=time.monotonic() - self.started_at,
                                       log_path=self.log_path,
                                       stderr_hint=self._stderr_first_line() if status != 0 else "")
            with _live_lock:
                _live.pop(proc.pid, None)
            self.console.close(self._result)
            self._done.set()

    def _read_stderr(self) -> None:
        """Tee QEMU's stderr into <log>.stderr; fail the run at QEMU's internal-error state."""
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        fd = proc.stderr.fileno()
        seen = b""
        reported = False
        while True:
            data = _read_chunk(fd)
            if not data:
                break
            _quiet_write(self._stderr_file, data)
            if reported:
                continue
            seen = (seen + data)[-65536:]
            if b"internal error" not in seen:
                continue
            # QEMU prints the whole register dump at once; give it a moment to arrive.
            if b"Code=" not in seen:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    continue
            reported = True
            self.console.fail(internal_error_summary(seen.decode("utf-8", "replace"),
                                                     self.config.kernel, self.config.accel))
            self.kill()

    def kill(self) -> None:
        """SIGKILL QEMU's whole process group (idempotent, safe from any thread/handler)."""
        proc = self.proc
        if proc is None or proc.returncode is not None or self._done.is_set():
            return
        self._killed = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                proc.kill()
            except OSError:
                pass

    def close(self) -> None:
        """Disconnect QMP, kill QEMU if still running, reap it, close the log."""
        if self._qmp is not None:
            try:
                self._qmp.close()
            except Exception:
                pass
            self._qmp = None
        if self.proc is not None:
            self.kill()
            if self._reader is not None:
                self._reader.join(timeout=10)
            if self.proc.returncode is None:
                self.proc.wait(timeout=10)
            with self._send_lock:
                if self.proc.stdin is not None and not self.proc.stdin.closed:
                    self.proc.stdin.close()
        self._close_files()
        self.pidfile.unlink(missing_ok=True)
        if self.qmp_socket is not None and self.qmp_socket.is_socket():
            try:
                self.qmp_socket.unlink()
            except OSError:
                pass

    def _close_files(self) -> None:
        for f in (self._log_file, self._stderr_file):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    # ---------------------------------------------------------------- waits
    @property
    def running(self) -> bool:
        return self.proc is not None and not self._done.is_set()

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def result(self) -> Optional[ExitResult]:
        return self._result

    def wait_until_exit(self, timeout: float) -> bool:
        """True once QEMU has exited (the reader saw it go), False after ``timeout`` seconds; no polling.
        Interruptible: Ctrl-C raises KeyboardInterrupt here."""
        return self.proc is not None and self._done.wait(max(0.0, timeout))

    def wait(self, timeout: float = 30.0) -> ExitResult:
        """Wait for QEMU to exit and decode its status (33 ok, 35 failure, 0 reset, ...).

        Does not raise for a failing status (check ``result.ok``); raises
        ``OverallTimeout`` (with the log tail) if QEMU is still running after ``timeout``.
        """
        if self.proc is None:
            raise RevenantError("machine not started")
        if not self._done.wait(timeout):
            raise OverallTimeout(self.console.describe(
                f"QEMU still running after {timeout:g} s (machine {self.config.name})"), log_path=self.log_path)
        assert self._result is not None
        return self._result

    def drain_serial(self, timeout: float = 10.0) -> None:
        """Return once every byte QEMU has written to the serial pipe is in ``console``.

        Meant for a stopped guest (QMP ``stop``, or ``paused``): QEMU's serial
        writes are synchronous, so after ``stop`` the pipe holds all of the guest's
        output; once the pipe is empty while the reader is not between its
        ``read`` and its ``feed`` (both happen under one lock), the console has
        every line.  Exact, not a wait-for-quiet heuristic.
        """
        import fcntl
        import termios
        if self.proc is None or self.proc.stdout is None:
            raise RevenantError("machine not started")
        fd = self.proc.stdout.fileno()
        buf = bytearray(4)
        deadline = time.monotonic() + timeout
        while not self._done.is_set():
            with self._feed_lock:                 # the reader is not between read() and feed()
                try:
                    fcntl.ioctl(fd, termios.FIONREAD, buf)
                except OSError:
                    return                        # pipe closed: the reader is done with it
                if int.from_bytes(buf, sys.byteorder) == 0:
                    return
            if time.monotonic() > deadline:
                raise OverallTimeout(self.console.describe(
                    f"serial output still arriving after {timeout:g} s (is the guest stopped?)"),
                    log_path=self.log_path)
            time.sleep(0.005)

    def wait_poweroff(self, timeout: float = 30.0, idle_timeout: Optional[float] = None) -> ExitResult:
        """Wait for a clean poweroff (exit 33); ``GuestFailure`` for panic/reset/other status."""
        return self.console.wait_exit(timeout, idle_timeout)

    def expect(self, pattern: PatternLike, timeout: float = 30.0, idle_timeout: Optional[float] = None) -> Match:
        """``Console.expect`` on this machine's serial output."""
        return self.console.expect(pattern, timeout=timeout, idle_timeout=idle_timeout)

    def quit(self, timeout: float = 10.0) -> ExitResult:
        """Ask QEMU to exit over QMP (exit 0 is then *not* a reset) and wait for it."""
        self.qmp.quit(timeout=timeout)
        return self.wait(timeout)

    def send(self, text: Union[str, bytes], timeout: Optional[float] = 10.0) -> None:
        """Type ``text`` (UTF-8) into the guest's serial port: all of it, in order.

        Waits first for the kernel's banner (the UART is set up), then writes to QEMU's stdin
        pipe.  The guest takes bytes only as fast as a reader makes room (flow control: none is
        dropped), so this blocks while the pipe (64 KiB) is full; ``OverallTimeout`` if it
        could not write everything within ``timeout`` seconds (None: no limit), ``GuestFailure``
        (or the console's own failure) if the machine ended first.  Thread-safe: concurrent
        sends do not interleave.
        """
        data = text.encode() if isinstance(text, str) else bytes(text)
        if self.proc is None or self.proc.stdin is None:
            raise RevenantError("machine not started")
        deadline = None if timeout is None else time.monotonic() + timeout
        self.console.wait_banner(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._send_lock:
            if self.proc.stdin.closed:
                raise RevenantError("machine closed: nothing can be sent to it")
            fd = self.proc.stdin.fileno()
            view = memoryview(data)
            while view:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise OverallTimeout(self.console.describe(
                        f"the guest took {len(data) - len(view)} of {len(data)} bytes sent in "
                        f"{timeout:g} s (is a reader attached, and does it empty its ring?)"),
                        log_path=self.log_path)
                # Writable, or the pipe's other end closed (QEMU exited): write tells which.
                select.select([], [fd], [], left)
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError):
                    self.console.check()
                    raise GuestFailure(self.console.describe(
                        f"QEMU exited with {len(view)} of {len(data)} bytes not sent"),
                        log_path=self.log_path) from None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ qmp
    @property
    def qmp(self) -> "QMP":
        """A connected QMP facade (connects on first use; needs ``MachineConfig(qmp=True)``)."""
        if self._qmp is None:
            if self.qmp_socket is None:
                raise QMPError("machine started without QMP (MachineConfig(qmp=True))")
            from .qmp import QMP
            q = QMP()
            q.connect(self.qmp_socket, timeout=10.0, alive=lambda: self.running)
            self._qmp = q
        return self._qmp

    # -------------------------------------------------------------- helpers
    def _symbolizer(self) -> Optional[Callable[[str], str]]:
        cfg = self.config
        if cfg.symbolizer is not None or not cfg.symbolize:
            return cfg.symbolizer
        kernel = Path(cfg.kernel)

        def symbolize(text: str) -> str:
            try:
                from .symbols import symbolize_report
            except Exception:
                return text
            return symbolize_report(text, kernel)
        return symbolize

    def _echo_stream(self) -> Optional[IO[str]]:
        echo = self.config.echo
        if echo is True:
            return sys.stdout
        if echo is False or echo is None:
            return None
        return echo  # type: ignore[return-value]

    def _stderr_first_line(self) -> str:
        """QEMU's first error line on stderr (else its first line): what went wrong, in its words."""
        lines = [line.strip() for line in self.stderr_text().splitlines() if line.strip()]
        return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")

    def __repr__(self) -> str:
        state = "running" if self.running else (str(self._result) if self._result else "not started")
        return f"<Machine {self.run_id} {state}>"


_INSTRUCTIONS = {"0f 01 ca": "clac", "0f 01 cb": "stac", "0f 01 f8": "swapgs", "0f 07": "sysretq"}


def internal_error_summary(text: str, kernel: Path, accel: str) -> str:
    """One line for QEMU's ``KVM internal error ... emulation failure`` register dump."""
    import re
    first = next((line.strip() for line in text.splitlines() if "internal error" in line), "internal error")
    kind = "emulation failure" if "emulation failure" in text else first
    where = ""
    rip = re.search(r"^RIP=([0-9a-fA-F]{16})", text, re.M)
    if rip:
        where = f" at rip 0x{rip.group(1).lower()}"
        try:
            from .symbols import symbolizer
            sym = symbolizer(kernel).lookup(int(rip.group(1), 16))
            if sym.known:
                where += f" in {sym}"
        except Exception:
            pass
    code = re.search(r"<([0-9a-f]{2})>((?: [0-9a-f]{2}){0,2})", text)
    if code:
        insn = f"{code.group(1)}{code.group(2)}".strip()
        name = next((n for b, n in _INSTRUCTIONS.items() if insn.startswith(b)), "")
        where += f", instruction {insn}" + (f" ({name})" if name else "")
    if accel == "kvm":
        return (f"KVM cannot run this kernel here: QEMU reports a KVM internal error ({kind}){where}; "
                f"the guest would stay paused forever, so it was stopped (run without --kvm: TCG)")
    return f"QEMU internal error ({kind}){where}; the guest would stay paused forever, so it was stopped"


def _read_chunk(fd: int) -> bytes:
    """What a pipe has (blocking), b"" at its end or on an error."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _quiet_write(stream: Optional[IO], data: Union[bytes, str], flush: bool = False) -> None:
    """Write to a log or the terminal; a closed or broken one must not stop the reader."""
    if stream is None:
        return
    try:
        stream.write(data)
        if flush:
            stream.flush()
    except (OSError, ValueError):
        pass


def _escape_opt(value: str) -> str:
    return value.replace(",", ",,")


_PDEATHSIG: Optional[List[str]] = None


def _pdeathsig_prefix() -> List[str]:
    """``setpriv --pdeathsig KILL --`` if available: QEMU dies with its parent thread."""
    global _PDEATHSIG
    if _PDEATHSIG is None:
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        _PDEATHSIG = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    return _PDEATHSIG


def _refuse_live_socket(sock: Path) -> None:
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(sock))
    except OSError:
        return                                   # stale socket file: fine to replace
    finally:
        s.close()
    raise QMPError(f"another QEMU is already listening on {sock}; stop it first")
