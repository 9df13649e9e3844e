"""Request/response over channels in shared memory (userland/include/ipc.h), under in-place
restarts from the kernel's timer and from the host.

``reqresp`` (userland/progs/reqresp.c) is a server environment answering client environments'
requests through a channel; ``ipc_send`` commits a request and returns its id, ``ipc_wait``
is the one blocking, restartable part. Both sides count: the server its answers, each client
the answers it received, and a ledger in shared memory counts every id's answers, which the
server checks at the end (``reqresp: final ... lost=0 doubled=0 ...``). Host-triggered restarts
(QMP inject-nmi at random instants) hit it, the 8-thread futex counter, and (in
test_restart.py) the producer/consumer ring.
"""
from __future__ import annotations

import random
import shutil
import time

import pytest

from test_restart import ICOUNT_EXACT, kernel_without_the_rewind
from toolchain import paths
from toolchain.ipc import reqresp_exact, reqresp_verdict
from toolchain.restart import kernel_restarts
from toolchain.runlog import EXIT_FAIL, EXIT_OK, RunLog

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (run ci/bootstrap)")


def assert_exact(r: RunLog) -> dict:
    v = reqresp_verdict(r.lines)
    assert v is not None, f"the server never reported; {r.where()}"
    assert reqresp_exact(v), f"{v['line']}\n{v['server']}\n{v['clients']}\n" + \
        "\n".join(v["fails"][:10]) + f"\n{r.where()}"
    return v


def test_requests_are_answered_exactly_once_without_restarts(run):
    # Three client environments of three threads, eight slots: the ring wraps all the time, so
    # senders find it full (ipc_send -EAGAIN) and wait for room.
    r = run("run=reqresp:3000:3:3:8:6", timeout=60)
    r.assert_sane()
    v = assert_exact(r)
    assert len(v["clients"]) == 3 and all(c["received"] == 1000 for c in v["clients"]), v["clients"]
    assert v["server"]["futex_waits"] > 0, "the server never waited for a request"
    assert r.status == EXIT_OK


REQUESTS = 5000
# 32 ns of guest time per instruction, idle time skipped: the run is a fixed amount of guest
# work (~400 guest ms for REQUESTS, 0.35 s of host time), so a restart every few guest ms lands
# the same number of times however loaded the host (under plain TCG the count varied 35-270).
ICOUNT_SLOW = ["-icount", "shift=5,sleep=off"]


@pytest.mark.parametrize("every_ms", [1, 3])
def test_every_request_is_answered_exactly_once_across_restarts_every_few_ms(run, every_ms):
    r = run(f"hz=1000 restart_every={every_ms} run=reqresp:{REQUESTS}:2:2:16:4", timeout=60,
            extra_args=ICOUNT_SLOW)
    r.assert_sane()
    v = assert_exact(r)
    restarts = kernel_restarts(r.lines)
    # Measured: 398 restarts (598 futex waiters dropped) every ms, 108 (78) every 3 ms.
    assert len(restarts) >= 300 // every_ms - 20, f"only {len(restarts)} restarts; {r.where()}"
    # The restarts caught threads waiting in the kernel (a client for its answer, the server for
    # a request) and every side got its restarted upcalls.
    assert sum(x.futex for x in restarts) >= 10, f"futex waiters dropped: {sum(x.futex for x in restarts)}"
    sides = [v["server"], *v["clients"]]
    assert min(s["restarts"] for s in sides) >= 50 // every_ms, sides
    assert r.status == EXIT_OK


def test_without_the_rewind_request_response_fails(run, kernel_elf):
    # The same run on a kernel whose dispatcher never moves rip back onto `syscall`: a dropped
    # futex_wait "returns" 15 (its own number), or with blocked upcalls the runtime's idle
    # act_wait "returns" 22: the runtime refuses to build on either.
    patched = kernel_without_the_rewind(kernel_elf, paths.BUILD / "kernel-norewind-ipc.elf")
    r = run(f"hz=1000 restart_every=1 run=reqresp:{REQUESTS}:2:2:16:4", timeout=60, kernel=patched,
            extra_args=ICOUNT_SLOW)
    assert r.status == EXIT_FAIL, r.where()
    assert r.matching(r"^thread: FAIL kernel (futex_wait returned 15|act_wait returned 22),"), r.where()
    assert not reqresp_exact(reqresp_verdict(r.lines)), r.where()


# ------------------------------------------------------------------ host NMIs

def nmis_until_the_end(m, seed: int, lo_ms: float, hi_ms: float, most: int = 2000) -> int:
    """QMP inject-nmi at random instants lo..hi ms apart until the guest ends; how many sent."""
    rng = random.Random(seed)
    sent = 0
    while m.running and sent < most:
        time.sleep(rng.uniform(lo_ms, hi_ms) / 1000)
        try:
            m.qmp.execute("inject-nmi")
        except Exception:
            break               # the run ended between the check and the command
        sent += 1
    return sent


def run_under_nmis(boot, append: str, prog: str, seed: int) -> tuple:
    """Boot `append`, and from `prog`'s start until the end send NMIs 1-8 ms apart: the run and
    its restarts, every one of them the host's."""
    m = boot(append, qmp=True, timeout=120)
    m.expect(f"init: {prog} is env", timeout=30)
    sent = nmis_until_the_end(m, seed, lo_ms=1, hi_ms=8)
    r = RunLog(m, 60)
    r.assert_sane()
    restarts = kernel_restarts(r.lines)
    assert not [x for x in restarts if x.by != "nmi"], "a restart the host did not ask for"
    # NMIs that come before one safe point are one request: at most one restart each.
    assert 20 <= len(restarts) <= sent, f"{len(restarts)} restarts for {sent} NMIs; {r.where()}"
    return r, restarts


def test_host_nmis_at_random_instants_lose_and_double_no_request(boot):
    r, restarts = run_under_nmis(boot, "hz=1000 run=reqresp:8000:2:2:16:4", "reqresp", seed=433)
    v = assert_exact(r)
    assert sum(x.futex for x in restarts) >= 3, f"futex waiters dropped: {sum(x.futex for x in restarts)}"
    assert min(s["restarts"] for s in [v["server"], *v["clients"]]) >= 5, v
    assert r.status == EXIT_OK


def test_host_nmis_at_random_instants_keep_the_futex_counter_exact(boot):
    # Eight threads in two environments on one fmutex in a shared region (futex_count), while
    # the host restarts the machine at random instants; no restart_every. Each thread adds at
    # least 100,000 and goes on until its environment has had 20 restarted upcalls.
    r, _ = run_under_nmis(boot, "hz=1000 run=futex_count:8:100000:2:20", "futex_count", seed=7)
    total = r.fields(r"^futex_count: total=")
    assert total["total"] == total["want"] >= 800_000, f"{total}; {r.where()}"
    sides = [r.fields(rf"^futex_count: env {role} ") for role in ("parent", "child")]
    assert min(s["restarts"] for s in sides) >= 20 and sum(s["futex_waits"] for s in sides) > 0, sides
    assert r.status == EXIT_OK


# ------------------------------------------------------------- the benchmarks' programs

def test_the_ipc_and_restart_benchmarks_print_results_the_bench_reads(run):
    # invoke bench runs them large (bench ipc, futex, restart); here they must simply work.
    from toolchain.linuxpeer import parse_results

    r = run("run=bench_ipc:200", timeout=60)
    r.assert_sane()
    res = parse_results("\n".join(r.lines))
    assert {"ipc_rr", "futex_pp"} <= set(res) and res["ipc_rr"]["iters"] == 200, res
    assert 0 < res["futex_pp"]["tsc_per_iter"] < res["ipc_rr"]["tsc_per_iter"], res
    # Exact icount: every restart finds the children blocked again (under plain TCG on a loaded
    # host their 63 reruns can outlast the 5 ms between restarts).
    r = run("hz=1000 restart_every=5 run=bench_restart:62:10", timeout=60, extra_args=ICOUNT_EXACT)
    r.assert_sane()
    res = parse_results("\n".join(r.lines))
    assert res["restart_gap"]["iters"] == 10 and res["restart_gap"]["tsc_per_iter"] > \
        res["tick_gap"]["tsc_per_iter"], res
    # Each restart found the 62 children and init blocked: 63 waiters dropped, 62 of them futex.
    full = [x for x in kernel_restarts(r.lines) if x.dropped == 63]
    assert len(full) >= 10 and all(x.futex == 62 and x.child == 1 for x in full), kernel_restarts(r.lines)[:3]
    done = r.fields(r"^bench_restart: ")
    assert done["children"] == 62 and done["ended_badly"] == 0 and r.status == EXIT_OK, done
