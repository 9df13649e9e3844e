"""`invoke experiment loadvm`: QMP snapshot-save at a random instant, snapshot-load into a fresh
QEMU, an in-place restart (inject-nmi) at a random delay after the load, and the same final line
(toolchain/experiments/loadvm.py on the campaign engine). A few trials here; `--trials 1000` by
hand (docs/toolkit.md)."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from test_restart import invoke
from toolchain.experiments import engine, loadvm

LOADVM = loadvm.EXPERIMENT


def run(workload: str = "reqresp", **kw):
    return engine.run_campaign(LOADVM, options={"workload": workload}, progress=False, **kw)


def trial_seed(seed: int, k: int) -> int:
    return engine.trial_seed("loadvm", seed, k)

qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                          reason="qemu-system-x86_64 not installed (run ci/bootstrap)")


def test_a_trial_is_a_pure_function_of_the_seed():
    w = loadvm.WORKLOADS["reqresp"]
    seeds = [trial_seed(11, k) for k in range(200)]
    assert seeds == [trial_seed(11, k) for k in range(200)] and len(set(seeds)) == 200
    assert trial_seed(12, 0) != seeds[0]
    for s in seeds:
        save, restart = loadvm.instants(s, w)
        assert w.save_ms[0] <= save <= w.save_ms[1] and w.restart_ms[0] <= restart <= w.restart_ms[1]
        assert loadvm.instants(s, w) == (save, restart)
    plans = [LOADVM.plan(11, k, {"workload": "reqresp"}) for k in range(200)]
    assert [p.seed for p in plans] == seeds
    assert all((p.params["save_ms"], p.params["restart_ms"]) == loadvm.instants(p.seed, w) for p in plans)


def test_the_argv_names_the_per_trial_paths_and_drops_the_pidfile():
    argv = ["qemu", "-pidfile", "/x/run.pid", "-qmp", "unix:/x/s.qmp,server=on,wait=off",
            "-blockdev", "driver=file,filename=/x/a,,b.qcow2,node-name=f0"]
    assert loadvm.portable_argv(argv, Path("/x/a,b.qcow2"), Path("/x/s.qmp")) == \
        ["qemu", "-qmp", "unix:{qmp},server=on,wait=off", "-blockdev", "driver=file,filename={disk},node-name=f0"]


def test_a_trial_is_judged_by_both_final_lines():
    t = loadvm.Trial(1.0, 1.0, final_original="end 1", final_loaded="end 1")
    assert loadvm.judge(t, "end 1") == ("ok", "")
    t.final_loaded = "end 2"
    assert loadvm.judge(t, "end 1") == ("wrong", "the loaded run ended with 'end 2'")
    t.final_loaded = None
    assert loadvm.judge(t, "end 1")[0] == "wrong"


@qemu
def test_the_experiment_writes_every_trial_and_reruns_one_from_its_seed():
    proc = invoke("experiment", "loadvm", "--trials", "4", "--seed", "11", "--keep", "all", timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "trials=4 workload=reqresp: OK" in output, output
    (json_path,) = [line.split(":", 1)[1].strip() for line in output.splitlines()
                    if line.strip().startswith("json:")]
    record = json.loads(Path(json_path).read_text())
    camp = Path(json_path).parent
    assert record["experiment"] == "loadvm" and record["campaign"]["options"] == {"workload": "reqresp"}
    assert record["campaign"]["seed"] == 11 and record["build"]["id"] == engine.build_id(), record["build"]
    assert record["expected"].startswith("reqresp: final requests=2000 answered=2000 "), record
    argv = record["argv"]
    assert "-S" in argv and any("{disk}" in a for a in argv) and any("{qmp}" in a for a in argv), argv
    assert "-pidfile" not in argv
    counts = record["summary"]["counts"]
    assert counts["ok"] + counts["late"] == 4 and counts["ok"] >= 2, counts
    for t in record["trials"]:
        assert t["seed"] == trial_seed(11, t["index"])
        assert (t["params"]["save_ms"], t["params"]["restart_ms"]) == \
            loadvm.instants(t["seed"], loadvm.WORKLOADS["reqresp"])
        assert (camp / t["artifacts"]["log_original"]).is_file(), t      # --keep all
        if t["verdict"] == "ok":
            assert (camp / t["artifacts"]["log_loaded"]).is_file() and t["message"] == "", t
            assert t["figures"]["load_job_ms"] > 0 and t["figures"]["save_job_ms"] > 0, t
    shutil.rmtree(camp / "artifacts")       # --keep all kept every trial's 64 MiB disk
    again = run(seed=11, only=2)
    (t2,) = again.results
    first = next(t for t in record["trials"] if t["index"] == 2)
    assert (t2.seed, t2.params) == (first["seed"], first["params"])
    assert again.ok and t2.verdict in ("ok", "late") and t2.artifacts == {}, t2     # --keep failing


@qemu
def test_an_outside_qmp_client_repeats_a_trial_from_the_json_alone(tmp_path):
    # Only the JSON, qemu-img, QEMU and the qemu.qmp library: no toolchain code below here.
    from qemu.qmp.legacy import QEMUMonitorProtocol

    record = run(seed=5, only=1)
    assert record.ok, record.results
    spec = json.loads(Path(record.json_path).read_text())
    trial, start = spec["trials"][0]["params"], "init: reqresp is env"
    disk, sock, started = tmp_path / "d.qcow2", tmp_path / "q.sock", []
    subprocess.run([a.replace("{disk}", str(disk)) for a in spec["setup"]["disk_create"]], check=True,
                   capture_output=True)

    def machine():
        sock.unlink(missing_ok=True)
        argv = [a.replace("{disk}", str(disk)).replace("{qmp}", str(sock)) for a in spec["argv"]]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        started.append(proc)
        serial = []
        threading.Thread(target=lambda: serial.extend(iter(lambda: proc.stdout.read1(4096), b"")),
                         daemon=True).start()
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        qmp = QEMUMonitorProtocol(str(sock))
        qmp.connect()
        return proc, qmp, serial

    def job(qmp, cmd, n):
        qmp.cmd(cmd, **{"job-id": f"j{n}", "tag": "trial", "vmstate": "d0", "devices": ["d0"]})
        while (j := next(j for j in qmp.cmd("query-jobs") if j["id"] == f"j{n}"))["status"] != "concluded":
            time.sleep(0.005)
        assert "error" not in j, j
        qmp.cmd("job-dismiss", id=f"j{n}")

    def finish(proc, qmp, serial):
        status = proc.wait(60)
        qmp.close()
        time.sleep(0.05)
        assert status == 33, b"".join(serial).decode()[-800:]
        return b"".join(serial).decode()

    try:
        proc, qmp, serial = machine()
        qmp.cmd("cont")
        time.sleep(trial["save_ms"] / 1000)
        qmp.cmd("stop")
        time.sleep(0.05)                # stopped: the reader takes what is left in the pipe
        before = b"".join(serial).decode()
        job(qmp, "snapshot-save", 1)
        qmp.cmd("cont")
        assert spec["expected"] in finish(proc, qmp, serial)
        proc, qmp, serial = machine()
        job(qmp, "snapshot-load", 2)
        qmp.cmd("cont")
        while start not in before + b"".join(serial).decode() and proc.poll() is None:
            time.sleep(0.001)           # the NMI is aimed at the workload (qmp_steps)
        time.sleep(trial["restart_ms"] / 1000)
        try:
            qmp.cmd("inject-nmi")
        except Exception:
            assert proc.wait(5) == 33      # it had ended already
        whole = before + finish(proc, qmp, serial)
        assert spec["expected"] in whole and whole.count("Revenant kernel booting") == 1, whole
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@qemu
def test_a_final_line_the_restart_changes_is_caught_as_wrong(monkeypatch):
    # A workload whose "final" line counts restarted upcalls: the original sees none, the loaded
    # run sees the experiment's NMI. The experiment must call such a trial wrong and keep its
    # disk and logs (the real workloads' final lines depend on nothing a restart may change).
    w = loadvm.Workload("restarts_seen", "hz=1000 run=futex_count:8:200000:2",
                        r"^futex_count: env parent threads=\d+ restarts=\d+", (40, 60), (0, 5), "")
    monkeypatch.setitem(loadvm.WORKLOADS, w.name, w)
    result = run(w.name, trials=3, seed=3)
    assert result.expected == "futex_count: env parent threads=4 restarts=0", result.results
    wrong = [t for t in result.results if t.verdict == "wrong"]
    assert not result.ok and wrong, result.results
    camp = Path(result.dir)
    for t in wrong:
        assert t.message == "the loaded run ended with 'futex_count: env parent threads=4 restarts=1'", t
        assert t.figures["restarted"] == 1, t
        assert (camp / t.artifacts["disk"]).is_file() and (camp / t.artifacts["log_loaded"]).is_file(), t
    for t in result.results:
        if not t.failing:
            assert t.artifacts == {} and not (camp / "artifacts" / f"trial-{t.index}").exists(), t
    shutil.rmtree(camp)                 # the kept disks hold 128 MiB guests' state
