"""QMP for the Revenant toolkit: asyncio inside, a synchronous facade outside.

``qemu.qmp.QMPClient`` is asyncio-only.  One daemon thread per process runs an
event loop (``_Loop``); the ``QMP`` facade submits coroutines to it and waits for
each with a timeout, so no call can hang forever and tests/tasks stay synchronous.

Events: every QMP event is copied into a thread-safe queue; ``wait_event(name,
timeout)`` takes the first matching one (earlier non-matching events are kept),
``events()`` drains what has arrived.

Snapshots (QEMU internal snapshots on a qcow2 node, see facts.md): snapshot-save/
-load/-delete are *jobs*.  The facade starts the job, waits on JOB_STATUS_CHANGE
(re-checking ``query-jobs``) until it is ``concluded``, reads its ``error``,
dismisses it, and raises ``QMPError(<job error>)`` if it failed.

* ``snapshot_save``: ``stop`` first (so the saved state is exactly the stopped
  instant), save, then ``cont`` again only if the VM was running before
  (``resume=None``), or as ``resume=True/False`` says.
* ``snapshot_load``: ``stop``, load, then ``cont`` (``resume=True`` by default;
  pass ``resume=False`` to inspect the restored machine paused).
* ``snapshot_delete``: no run-state change.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import itertools
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, TypeVar, Union

from .errors import QMPError

try:
    from qemu.qmp import EventListener, QMPClient
    from qemu.qmp import QMPError as _LibQMPError
    from qemu.qmp import ExecuteError as _ExecuteError
except ImportError:  # pragma: no cover - reported at connect time
    QMPClient = None  # type: ignore[assignment,misc]

T = TypeVar("T")
Event = Dict[str, Any]

__all__ = ["QMP", "SnapshotInfo", "SnapshotTiming", "connect"]


@dataclass(frozen=True)
class SnapshotInfo:
    """One internal snapshot of a qcow2 node (from query-named-block-nodes)."""

    id: str
    name: str
    node: str
    vm_state_size: int
    date: _dt.datetime
    vm_clock_ns: int


@dataclass(frozen=True)
class SnapshotTiming:
    """Result of a snapshot job.  ``job_ms``: the job alone; ``total_ms``: incl. stop/cont."""

    op: str            # "save" | "load" | "delete"
    tag: str
    job_ms: float
    total_ms: float
    resumed: bool


# ----------------------------------------------------------------- event loop
class _Loop:
    """A daemon thread running one asyncio loop, shared by all QMP facades."""

    _instance: Optional["_Loop"] = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="qmp-asyncio", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> "_Loop":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Awaitable[T], timeout: float, what: str) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise QMPError(f"QMP {what} timed out after {timeout:g} s") from None


# --------------------------------------------------------------------- facade
class QMP:
    """Synchronous QMP client.  Every method takes (or defaults) a timeout."""

    def __init__(self, default_timeout: float = 10.0) -> None:
        self.default_timeout = default_timeout
        self.path: Optional[Path] = None
        self._loop = _Loop.get()
        self._client: Optional["QMPClient"] = None
        self._events: "queue.Queue[Event]" = queue.Queue()
        self._pending: List[Event] = []        # taken from the queue but not matched yet
        self._pump: Optional["asyncio.Task[None]"] = None
        self._listener: Optional["EventListener"] = None
        self._job_ids = itertools.count(1)
        self._nodes: Optional[List[str]] = None
        self.quit_requested = False            # set by quit(): an exit 0 that follows is ours

    # ---------------------------------------------------------- connection
    def connect(self, path: Union[str, Path], timeout: float = 10.0,
                alive: Optional[Callable[[], bool]] = None) -> "QMP":
        """Connect to a QMP unix socket, retrying until it accepts or ``timeout``.

        ``alive`` (optional) is checked between attempts: when it returns False
        (QEMU exited) the retry stops with a ``QMPError``.
        """
        if QMPClient is None:
            raise QMPError("python package qemu.qmp is missing; run ci/bootstrap")
        self.path = Path(path)
        self._loop.run(self._connect(self.path, timeout, alive), timeout + 1.0, f"connect {path}")
        return self

    async def _connect(self, path: Path, timeout: float, alive: Optional[Callable[[], bool]]) -> None:
        deadline = time.monotonic() + timeout
        last: Optional[BaseException] = None
        while True:
            client = QMPClient("revenant")
            try:
                await asyncio.wait_for(client.connect(str(path)), max(0.05, deadline - time.monotonic()))
                break
            except (_LibQMPError, OSError, asyncio.TimeoutError) as exc:
                last = exc
                try:
                    await client.disconnect()
                except Exception:
                    pass
            if alive is not None and not alive():
                raise QMPError(f"QEMU exited before its QMP socket {path} accepted a connection")
            if time.monotonic() >= deadline:
                why = _root_cause(last)
                raise QMPError(f"no machine is listening on {path} ({why}); start one with `invoke run --qmp`")
            await asyncio.sleep(0.005)
        self._client = client
        self._listener = EventListener()
        client.register_listener(self._listener)
        self._pump = asyncio.get_running_loop().create_task(self._pump_events(self._listener))

    async def _pump_events(self, listener: "EventListener") -> None:
        async for event in listener:
            self._events.put(dict(event))

    def close(self) -> None:
        """Disconnect (QEMU keeps running)."""
        client, self._client = self._client, None
        if client is None:
            return

        async def _close() -> None:
            if self._pump is not None:
                self._pump.cancel()
            if self._listener is not None:
                try:
                    client.remove_listener(self._listener)
                except Exception:
                    pass
            try:
                await client.disconnect()
            except Exception:
                pass
        try:
            self._loop.run(_close(), 5.0, "disconnect")
        except QMPError:
            pass

    def __enter__(self) -> "QMP":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._client is not None

    # ------------------------------------------------------------- commands
    def execute(self, cmd: str, args: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        """Run one QMP command and return its ``return`` value; ``QMPError`` on error/timeout."""
        client = self._require()
        t = self.default_timeout if timeout is None else timeout
        return self._loop.run(self._execute(client, cmd, args), t, cmd)

    @staticmethod
    async def _execute(client: "QMPClient", cmd: str, args: Optional[Dict[str, Any]]) -> Any:
        try:
            return await client.execute(cmd, args)
        except _ExecuteError as exc:
            raise QMPError(f"QMP {cmd} failed: {exc}") from None
        except _LibQMPError as exc:
            raise QMPError(f"QMP {cmd} failed: {_root_cause(exc)}") from None

    def status(self, timeout: Optional[float] = None) -> str:
        """The run state: ``running``, ``paused``, ``prelaunch``, ``shutdown``, ``guest-panicked``..."""
        return str(self.execute("query-status", timeout=timeout)["status"])

    def running(self, timeout: Optional[float] = None) -> bool:
        return bool(self.execute("query-status", timeout=timeout)["running"])

    def stop(self, timeout: Optional[float] = None) -> None:
        """Pause the vCPUs (QMP ``stop``)."""
        self.execute("stop", timeout=timeout)

    def cont(self, timeout: Optional[float] = None) -> None:
        """Resume the vCPUs (QMP ``cont``)."""
        self.execute("cont", timeout=timeout)

    def quit(self, timeout: Optional[float] = None) -> None:
        """Ask QEMU to exit (QMP ``quit``); a dropped connection counts as success."""
        self.quit_requested = True
        try:
            self.execute("quit", timeout=timeout)
        except QMPError as exc:
            if "timed out" in str(exc):
                raise
        self.close()

    def hmp(self, command: str, timeout: Optional[float] = None) -> str:
        """A human monitor command through QMP (``human-monitor-command``)."""
        return str(self.execute("human-monitor-command", {"command-line": command}, timeout=timeout))

    # --------------------------------------------------------------- events
    def events(self) -> List[Event]:
        """All events received and not yet consumed (oldest first)."""
        out, self._pending = self._pending, []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def wait_event(self, name: str, timeout: float = 10.0,
                   predicate: Optional[Callable[[Event], bool]] = None) -> Event:
        """First (not yet consumed) event called ``name`` (and matching ``predicate``)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self._pending):
                if ev.get("event") == name and (predicate is None or predicate(ev)):
                    return self._pending.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f"no QMP event {name} within {timeout:g} s")
            try:
                self._pending.append(self._events.get(timeout=left))
            except queue.Empty:
                pass

    # ------------------------------------------------------------ snapshots
    def block_nodes(self, timeout: Optional[float] = None) -> List[Dict[str, Any]]:
        return list(self.execute("query-named-block-nodes", {"flat": True}, timeout=timeout))

    def snapshot_nodes(self) -> List[str]:
        """Node names of the qcow2 nodes (``d0`` with the standard machine)."""
        if self._nodes is None:
            self._nodes = [n["node-name"] for n in self.block_nodes() if n.get("drv") == "qcow2"]
        return self._nodes

    def _devices(self, devices: Optional[Sequence[str]], vmstate: Optional[str]) -> tuple:
        devs = list(devices) if devices else self.snapshot_nodes()
        if not devs:
            raise QMPError("the machine has no qcow2 disk for snapshots (start it with a snapshot disk, "
                           "e.g. `invoke run --qmp`)")
        return devs, (vmstate or devs[0])

    def snapshot_save(self, tag: str, *, devices: Optional[Sequence[str]] = None, vmstate: Optional[str] = None,
                      resume: Optional[bool] = None, timeout: float = 60.0) -> SnapshotTiming:
        """stop, snapshot-save ``tag``, then cont if the VM was running (or per ``resume``)."""
        devs, vm = self._devices(devices, vmstate)
        t0 = time.perf_counter()
        was_running = self.running()
        if was_running:
            self.stop()
        job_ms = self._job("snapshot-save", {"tag": tag, "vmstate": vm, "devices": devs}, timeout, tag)
        do_resume = was_running if resume is None else resume
        if do_resume:
            self.cont()
        return SnapshotTiming("save", tag, job_ms, (time.perf_counter() - t0) * 1000, do_resume)

    def snapshot_load(self, tag: str, *, devices: Optional[Sequence[str]] = None, vmstate: Optional[str] = None,
                      resume: bool = True, timeout: float = 60.0) -> SnapshotTiming:
        """stop, snapshot-load ``tag``, then cont (unless ``resume=False``)."""
        devs, vm = self._devices(devices, vmstate)
        t0 = time.perf_counter()
        if self.running():
            self.stop()
        job_ms = self._job("snapshot-load", {"tag": tag, "vmstate": vm, "devices": devs}, timeout, tag)
        if resume:
            self.cont()
        return SnapshotTiming("load", tag, job_ms, (time.perf_counter() - t0) * 1000, resume)

    def snapshot_delete(self, tag: str, *, devices: Optional[Sequence[str]] = None,
                        timeout: float = 60.0) -> SnapshotTiming:
        """snapshot-delete ``tag`` on all snapshot nodes (run state unchanged)."""
        devs, _ = self._devices(devices, None)
        t0 = time.perf_counter()
        job_ms = self._job("snapshot-delete", {"tag": tag, "devices": devs}, timeout, tag)
        return SnapshotTiming("delete", tag, job_ms, (time.perf_counter() - t0) * 1000, False)

    def snapshots(self, node: Optional[str] = None) -> List[SnapshotInfo]:
        """Internal snapshots of ``node`` (default: the first qcow2 node)."""
        nodes = self.block_nodes()
        want = node or (self.snapshot_nodes() or [None])[0]
        out: List[SnapshotInfo] = []
        for n in nodes:
            if n.get("node-name") != want:
                continue
            for s in n.get("image", {}).get("snapshots", []) or []:
                date = _dt.datetime.fromtimestamp(s.get("date-sec", 0) + s.get("date-nsec", 0) / 1e9)
                out.append(SnapshotInfo(str(s.get("id", "")), str(s.get("name", "")), str(want),
                                        int(s.get("vm-state-size", 0)), date,
                                        int(s.get("vm-clock-sec", 0)) * 1_000_000_000 + int(s.get("vm-clock-nsec", 0))))
        return out

    def _job(self, cmd: str, args: Dict[str, Any], timeout: float, tag: str) -> float:
        client = self._require()
        job_id = f"rvn-{cmd}-{next(self._job_ids)}-{int(time.time() * 1000)}"
        return self._loop.run(self._run_job(client, cmd, args, job_id, timeout, tag), timeout + 2.0,
                              f"{cmd} {tag}")

    async def _run_job(self, client: "QMPClient", cmd: str, args: Dict[str, Any], job_id: str,
                       timeout: float, tag: str) -> float:
        listener = EventListener("JOB_STATUS_CHANGE",
                                 lambda ev: ev.get("data", {}).get("id") == job_id)
        deadline = time.monotonic() + timeout
        t0 = time.perf_counter()
        with client.listen(listener):
            await self._execute(client, cmd, {**args, "job-id": job_id})
            while True:
                jobs = await self._execute(client, "query-jobs", None)
                job = next((j for j in jobs if j.get("id") == job_id), None)
                if job is None:
                    raise QMPError(f"{cmd} {tag!r}: job {job_id} vanished")
                if job.get("status") == "concluded":
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QMPError(f"{cmd} {tag!r}: job still {job.get('status')} after {timeout:g} s")
                try:
                    await asyncio.wait_for(listener.get(), left)
                except asyncio.TimeoutError:
                    pass
        elapsed = (time.perf_counter() - t0) * 1000
        error = job.get("error")
        await self._execute(client, "job-dismiss", {"id": job_id})
        if error:
            raise QMPError(f"{cmd} {tag!r} failed: {error}")
        return elapsed

    def _require(self) -> "QMPClient":
        if self._client is None:
            raise QMPError("QMP not connected")
        return self._client


def connect(path: Union[str, Path], timeout: float = 5.0) -> QMP:
    """Connect a new ``QMP`` facade to ``path``."""
    return QMP().connect(path, timeout)


def _root_cause(exc: Optional[BaseException]) -> str:
    while exc is not None and getattr(exc, "exc", None) is not None:
        exc = exc.exc  # qemu.qmp wraps the real error
    if exc is None:
        return "unknown error"
    if isinstance(exc, FileNotFoundError):
        return "socket does not exist"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
