"""Slot leases: one uid per concurrent job across every grader process on the machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grader.isolation import leases, sandbox

BWRAP_OK, BWRAP_WHY = sandbox.isolation_available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap isolation unavailable: {BWRAP_WHY}")
REPO = Path(__file__).resolve().parents[2]


def holder(directory: Path, slot: int | None = None, slots: int = 4) -> subprocess.Popen:
    """Another process that leases a slot, prints it and then sleeps until killed."""
    code = f"""
        import sys, time
        from grader.isolation import leases
        lease = leases.acquire_slot({slot!r}, directory={str(directory)!r}, slots={slots}, wait=5)
        print(lease.slot, flush=True)
        time.sleep(600)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    return proc


def test_leases_in_one_process_are_distinct_and_released(tmp_path):
    a = leases.acquire_slot(directory=tmp_path, slots=3, wait=0)
    b = leases.acquire_slot(directory=tmp_path, slots=3, wait=0)
    assert {a.slot, b.slot} == {0, 1}
    assert leases.held(a.slot) and leases.held(b.slot)
    assert b.uid == 60000 + b.slot and b.cgroup == f"grader-slot-{b.slot}"
    a.release()
    a.release()  # idempotent
    assert not leases.held(0)
    c = leases.acquire_slot(directory=tmp_path, slots=3, wait=0)
    assert c.slot == 0  # the lowest free slot again
    with pytest.raises(leases.SlotsExhausted):
        leases.acquire_slot(1, directory=tmp_path, slots=3, wait=0.2)
    b.release()
    c.release()


def test_a_lease_held_by_another_process_is_excluded_and_freed_by_sigkill(tmp_path):
    proc = holder(tmp_path, slot=2)
    try:
        assert proc.stdout.readline().strip() == "2"
        with pytest.raises(leases.SlotsExhausted):
            leases.acquire_slot(2, directory=tmp_path, slots=4, wait=0.3)
        other = leases.acquire_slot(directory=tmp_path, slots=4, wait=0)
        assert other.slot != 2
        other.release()
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up: the kernel drops the flock
        proc.wait(timeout=10)
        again = leases.acquire_slot(2, directory=tmp_path, slots=4, wait=5)
        assert again.slot == 2
        again.release()
    finally:
        proc.kill()
        proc.wait()


def test_waiting_for_a_slot_gets_it_when_the_holder_exits(tmp_path):
    procs = [holder(tmp_path) for _ in range(4)]
    try:
        assert sorted(int(p.stdout.readline()) for p in procs) == [0, 1, 2, 3]
        with pytest.raises(leases.SlotsExhausted, match="still leased"):
            leases.acquire_slot(directory=tmp_path, slots=4, wait=0.2)
        procs[1].terminate()
        started = time.monotonic()
        lease = leases.acquire_slot(directory=tmp_path, slots=4, wait=10)
        assert time.monotonic() - started < 10
        lease.release()
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_forked_child_does_not_think_it_holds_its_parents_lease(tmp_path):
    lease = leases.acquire_slot(directory=tmp_path, slots=4, wait=0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its copy is inactive, so it would lease a slot of its own
        try:
            mine = leases.acquire_slot(directory=tmp_path, slots=4, wait=0)
            os.write(write, json.dumps([leases.held(lease.slot), mine.slot]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    held_in_child, child_slot = json.loads(os.read(read, 100))
    os.close(read)
    assert held_in_child is False and child_slot != lease.slot
    assert leases.held(lease.slot)
    lease.release()


def test_an_unsafe_lease_directory_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(leases.LeaseDirectoryUnsafe, match="writable by others"):
        leases.acquire_slot(directory=shared, wait=0)


GRADER_PROCESS = """
import json, sys, time
from pathlib import Path
from grader.isolation.client import WorkerClient, WorkerSettings
submission, barrier, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
with WorkerClient(submission, WorkerSettings(isolation="bwrap", threads=1)) as client:
    client.start()
    # Hold the worker up until every grader process has one: they really run at the same time.
    (barrier / f"up-{client.slot}").touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("up-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    uids = []
    for _ in range(2):  # two requests, and a restart in between: the same identity throughout
        reply = client.request("call", {"module": "whoami", "function": "ids"})
        uids.append(reply.result["output"]["items"][0]["value"])
        client._stop()
    print(json.dumps({"slot": client.slot, "uids": uids}))
"""


@needs_bwrap
def test_two_grader_processes_run_their_workers_under_different_uids(tmp_path):
    submission = tmp_path / "sub"
    submission.mkdir()
    (submission / "whoami.py").write_text("import os\ndef ids():\n    return [os.getuid()]\n")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", GRADER_PROCESS, str(submission), str(barrier), "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    slots = [o["slot"] for o in outs]
    assert len(set(slots)) == 2, outs
    for o in outs:
        assert o["uids"] == [60000 + o["slot"]] * 2, outs
    assert len(list(barrier.glob("up-*"))) == 2


@needs_bwrap
def test_plan_launch_waits_for_a_slot_another_process_holds(tmp_path):
    # plan_launch of a slot this process does not hold leases it: a slot held elsewhere on the
    # machine (here by a helper process, through the default lease directory) is never shared.
    proc = holder(leases.default_directory(), slot=None, slots=leases.DEFAULT_SLOTS)
    try:
        taken = int(proc.stdout.readline())
        sub = tmp_path / "sub"
        sub.mkdir()
        with pytest.raises(leases.SlotsExhausted):
            sandbox.plan_launch(["true"], submission_dir=sub, slot=taken, lease_wait=0.2)
    finally:
        proc.kill()
        proc.wait()
