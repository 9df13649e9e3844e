#!/usr/bin/env python3
"""Repeat one trial of `invoke experiment powercut` (or upgrade) with nothing but qemu-img,
qemu-system-x86_64 and SIGKILL: no toolkit import, only the campaign's result.json.

    ci/powercut-by-hand.py build/experiments/powercut-.../result.json --trial K

It creates a fresh disk (the JSON's disk_create), boots the JSON's argv with {kernel}, {disk}
and {append} filled in, cuts each boot as the trial's params say (a kernel cut by its
checkpoint_cut keys, or kill -9 a delay after the boot's n-th `checkpoint <n>:` line), boots
again on the same disk, and at the end checks what the experiment checks: the expected final
line, and no program line printed twice over all boots, but for the release window as the logs
show it (a line shown after a boot's last checkpoint line and again by the next boot's restore,
once). Exit 0 if so. (docs/persistence.md)
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time


def boot(argv, cut):
    """Run one boot; its serial lines and whether it was cut."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines, seen = [], threading.Event()
    commits = 0

    def read():
        nonlocal commits
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if line.startswith("checkpoint ") and line.split()[1].rstrip(":").isdigit():
                commits += 1
                if cut and cut["kind"] == "kill" and commits >= cut["after"]:
                    seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = False
    if cut and cut["kind"] == "kill":
        if cut["after"] == 0:
            seen.set()
        while not seen.wait(0.002) and proc.poll() is None:
            pass
        if seen.is_set():
            time.sleep(cut["delay_ms"] / 1000)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)       # the power cut
                killed = True
    status = proc.wait(120)
    reader.join(10)
    was_cut = killed or (cut is not None and cut["kind"] == "step" and status == 37)
    return lines, was_cut, status


PROGRAM = ("powerwork: ", "init: ")


def after_last(lines, prefix):
    marks = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    return lines[marks[-1] + 1:] if marks else []


def released_last(lines):
    """Program lines a cut boot showed after its last checkpoint line: the release of that
    checkpoint, which a cut before its release mark reached the disk shows again."""
    return {line for line in after_last(lines, "checkpoint ") if line.startswith(PROGRAM)}


def reshown(lines):
    """Program lines the next boot showed between its restore line and its first checkpoint:
    the restored checkpoint's held output, shown again."""
    block = after_last(lines, "restore: generation")
    first = next((i for i, line in enumerate(block) if line.startswith("checkpoint ")), len(block))
    return {line for line in block[:first] if line.startswith(PROGRAM)}


def this_run(lines):
    """A boot whose restore finds the newest checkpoint with nothing running (a clean power-off
    took it: the workload had finished) shows the held last lines, then the command line starts
    the workload anew: those later program lines are another run's, not this trial's."""
    at = next((i for i, line in enumerate(lines)
               if line.startswith("restore: generation") and "no program was running" in line), None)
    if at is None:
        return lines
    return lines[:at + 1] + [line for line in lines[at + 1:] if not line.startswith(PROGRAM)]


def main():
    if len(sys.argv) != 4 or sys.argv[2] != "--trial":
        sys.exit("usage: powercut-by-hand.py RESULT.json --trial K")
    result = json.load(open(sys.argv[1]))
    k = int(sys.argv[3])
    trial = next((t for t in result["trials"] if t["index"] == k), None)
    if trial is None:
        sys.exit(f"{sys.argv[1]}: no trial {k}")
    params, setup = trial["params"], result["setup"]
    kernels = setup["kernels"]
    disk = os.path.join(tempfile.mkdtemp(prefix="powercut-by-hand-"), "disk.qcow2")
    subprocess.run([a.replace("{disk}", disk) for a in setup["disk_create"]], check=True, capture_output=True)
    everything, boots, cuts, status = [], [], 0, None
    for i, cut in enumerate(params["cuts"] + [None]):
        append = params["append"]
        if cut and cut["kind"] == "step":
            append += f" checkpoint_cut={cut['step']} checkpoint_cut_after={cut['after']}"
        kernel = kernels["A"] if i == 0 else kernels.get("B", kernels["A"])
        argv = [a.replace("{kernel}", kernel).replace("{disk}", disk) if a != "{append}" else append
                for a in result["argv"]]
        lines, was_cut, status = boot(argv, cut)
        lines = this_run(lines)
        everything += lines
        boots.append(lines)
        cuts += was_cut
        if not was_cut:
            break
    program = [line for line in everything if line.startswith(PROGRAM)]
    window = set()
    for before, after in zip(boots, boots[1:]):
        window |= released_last(before) & reshown(after)
    twice = sorted({line for line in program if program.count(line) > 1 + (line in window)})
    final = [line for line in program if line.startswith("powerwork: done ")]
    ok = status == 33 and final[-1:] == [result["expected"]] and not twice
    print(f"by-hand: trial {k}: {'ok' if ok else 'WRONG'}: {cuts} cut(s), final line "
          f"{final[-1] if final else None!r}, {len(twice)} line(s) printed twice, last status {status}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
