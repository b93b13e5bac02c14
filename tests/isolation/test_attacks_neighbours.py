"""Concurrent neighbours: one job must not reach, starve or leave anything for another job.

Each test plays the attack a student would try from inside a sandbox and asserts it gains
nothing and disturbs nothing beside it.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.isolation import cgroups, leases, sandbox
from grader.isolation.client import WorkerClient, WorkerSettings
from grader.isolation.sandbox import Limits, plan_launch

BWRAP_OK, BWRAP_WHY = sandbox.isolation_available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap isolation unavailable: {BWRAP_WHY}")
x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers of x86_64")


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text("X = 1\n")
    return sub


def start(code: str, submission: Path, **kwargs) -> tuple[subprocess.Popen, sandbox.Launch]:
    launch = plan_launch([sys.executable, "-I", "-c", textwrap.dedent(code)],
                         submission_dir=submission, isolation="bwrap", **kwargs)
    proc = subprocess.Popen(launch.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **launch.popen_kwargs())
    return proc, launch


def finish(proc: subprocess.Popen, launch: sandbox.Launch, timeout: float = 60) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
        launch.cleanup()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


KEYRING = """
    import ctypes, json, os
    libc = ctypes.CDLL(None, use_errno=True)
    KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING = -4, -3
    def call(*args):
        r = libc.syscall(*args)
        return [r, ctypes.get_errno()]
    out = {{
        "add_key": call(248, b"user", b"answers", b"{secret}", 8, KEY_SPEC_USER_KEYRING),
        "request_key": call(249, b"user", b"answers", None, 0),
        "keyctl_read": call(250, 11, KEY_SPEC_USER_KEYRING, None, 0),  # KEYCTL_READ
        "session": call(250, 1, 0, b"mine"),  # KEYCTL_JOIN_SESSION_KEYRING
        # via the i386 entry (int 0x80) numbers are not checked here: the filter covers them
    }}
    print(json.dumps(out))
"""


@needs_bwrap
@x86_64
def test_keyring_calls_are_denied_so_nothing_passes_to_a_neighbour_or_a_successor(submission):
    # The attack: job A stores its outputs in the kernel's user keyring; job B (now, or later
    # under the same uid) reads them. Every keyring call fails inside the sandbox, for both.
    writer, wl = start(KEYRING.format(secret="s3cr3t!!"), submission, slot=207)
    got_a = finish(writer, wl)
    reader, rl = start(KEYRING.format(secret="xxxxxxxx"), submission, slot=207)
    got_b = finish(reader, rl)
    for got in (got_a, got_b):
        for call, (ret, err) in got.items():
            assert ret == -1 and err == 1, (call, ret, err)  # EPERM, every time


@needs_bwrap
def test_proc_1_cmdline_shows_no_host_paths(submission, tmp_path):
    secret_dir = tmp_path / "host-only-folder-name"
    secret_dir.mkdir()
    got_proc, launch = start(
        """
        import json, os
        fds = sorted(os.listdir("/proc/self/fd"))
        print(json.dumps({"cmdline": open("/proc/1/cmdline", "rb").read().decode(),
                          "fds": fds}))
        """,
        submission, extra_ro_binds=[(secret_dir, "/opt/data")])
    got = finish(got_proc, launch)
    cmdline = got["cmdline"]
    assert cmdline.startswith("/usr/bin/bwrap\0--args\0") or "--args" in cmdline
    for host in (str(submission), str(tmp_path), "host-only-folder-name", "/work"):
        assert host not in cmdline, cmdline
    # The descriptors bwrap read its options and its filter from are not left open inside.
    assert got["fds"] == ["0", "1", "2", "3"] or set(got["fds"]) <= {"0", "1", "2", "3"}


@needs_bwrap
def test_process_exhaustion_by_a_neighbour_does_not_starve_another_job(submission):
    # The attack: job A forks until the kernel refuses, and keeps its processes alive. Job B,
    # running at the same time, must still start processes and threads of its own.
    bomb, bl = start(
        """
        import os, sys, time, json
        n = 0
        try:
            while n < 1000:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        except OSError:
            pass
        print(json.dumps({"forked": n}), flush=True)
        sys.stdin.read()
        """,
        submission, limits=Limits(max_processes=40))
    try:
        line = bomb.stdout.readline()
        forked = json.loads(line)["forked"]
        assert 0 < forked < 40  # it hit its own ceiling
        victim, vl = start(
            """
            import json, subprocess, sys, threading
            done = []
            ts = [threading.Thread(target=lambda: done.append(1)) for _ in range(8)]
            [t.start() for t in ts]; [t.join() for t in ts]
            rc = [subprocess.run([sys.executable, "-c", "pass"]).returncode for _ in range(8)]
            print(json.dumps({"threads": len(done), "children": rc}))
            """,
            submission)
        got = finish(victim, vl)
        assert got == {"threads": 8, "children": [0] * 8}
    finally:
        bomb.kill()
        bomb.wait()
        bl.cleanup()


def test_two_clients_of_one_process_get_different_slots(submission):
    a = WorkerClient(submission, WorkerSettings(isolation="none"))
    b = WorkerClient(submission, WorkerSettings(isolation="none"))
    try:
        assert a._slot() != b._slot()
        assert a._slot() == a._slot()  # the same identity across restarts
    finally:
        a.close()
        b.close()


@needs_bwrap
def test_two_launches_of_one_slot_in_one_process_do_not_share_it(submission):
    first = plan_launch(["true"], submission_dir=submission, slot=211)
    try:
        with pytest.raises(leases.SlotsExhausted):
            plan_launch(["true"], submission_dir=submission, slot=211, lease_wait=0.2)
    finally:
        first.cleanup()
    again = plan_launch(["true"], submission_dir=submission, slot=211, lease_wait=5)
    again.cleanup()


@needs_bwrap
def test_each_job_gets_a_cpu_quota_of_its_threads(submission):
    proc, launch = start("import sys; print('{}', flush=True); sys.stdin.read()", submission,
                         threads=2, slot=209)
    try:
        if "cpu (v" not in launch.description:
            pytest.skip(f"no writable cpu cgroup here: {launch.description}")
        proc.stdout.readline()
        lines = Path("/proc", str(proc.pid), "cgroup").read_text().splitlines()
        cpu = next(line for line in lines if ":cpu:" in line or ":cpu," in line
                   or line.startswith("0::"))
        cg_path = cpu.split(":", 2)[2]
        for fstype, root, point, opts in cgroups.cgroup_mounts():
            if fstype == "cgroup" and "cpu" in opts:
                d = cgroups.host_dir(root, point, cg_path)
                assert d.name == "grader-slot-209"
                assert int((d / "cpu.cfs_quota_us").read_text()) == 2 * 100_000
                break
            if fstype == "cgroup2":
                d = cgroups.host_dir(root, point, cg_path)
                assert (d / "cpu.max").read_text().split()[0] == "200000"
                break
    finally:
        proc.kill()
        proc.wait()
        launch.cleanup()


@needs_bwrap
@x86_64
def test_new_namespaces_and_mounts_are_denied_inside(submission):
    # A user namespace would give the job capabilities over its own namespaces (mounts, more
    # of the kernel's surface); none of these calls may succeed, however they are spelled.
    proc, launch = start(
        """
        import ctypes, json, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def call(*args):
            r = libc.syscall(*args)
            return [r, ctypes.get_errno()]
        CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
        out = {
            "unshare_user": call(272, CLONE_NEWUSER),
            "unshare_mnt": call(272, CLONE_NEWNS),
            "clone_newuser": call(56, CLONE_NEWUSER | 17, 0, 0, 0, 0),  # 17 = SIGCHLD
            "clone3": call(435, 0, 0),
            "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, None),
            "bpf": call(321, 0, 0, 0),
        }
        t = threading.Thread(target=lambda: None); t.start(); t.join()  # threads still work
        print(json.dumps(out))
        """, submission)
    got = finish(proc, launch)
    for name, (ret, err) in got.items():
        assert ret == -1, (name, ret, err)
        assert err == (38 if name == "clone3" else 1), (name, err)  # ENOSYS / EPERM
