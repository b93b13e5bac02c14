"""The warm pool: a worker forked from a zygote gets everything a fresh sandboxed worker gets.

Every test here runs in one pool of one slot, so that whatever a hostile worker leaves is left
for the honest one that follows it in the same slot, forked from the same zygote. The honest
ones must see none of it, and must see exactly what a fresh sandboxed worker sees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import CORRECT, EXAMPLES, SHARED_REFERENCE, failing, grade_folder
from conftest import settings as conftest_settings

from grader.grading import GradeOptions, grade
from grader.isolation import cgroups, leases, pool
from grader.isolation.client import WorkerClient, WorkerCrashed, WorkerSettings, WorkerTimeout
from grader.isolation.limits import Limits

POOL_OK, POOL_WHY = pool.pool_available()
pytestmark = pytest.mark.skipif(not POOL_OK, reason=f"warm pool unavailable: {POOL_WHY}")


def settings(**overrides) -> WorkerSettings:
    base = {"threads": 1, "call_timeout": 60.0, "total_timeout": 300.0}
    base.update(overrides)
    return WorkerSettings(**base)


@pytest.fixture(scope="module")
def warm():
    with pool.WarmPool(1) as p:
        yield p


@pytest.fixture
def slot(warm):
    """The pool's one slot, its zygote running (so a test can see it is not replaced)."""
    s = warm.checkout(60)
    try:
        s.zygote(1, 60)
    finally:
        warm.checkin(s)
    return s


def submission(tmp_path: Path, code: str) -> Path:
    sub = tmp_path / f"sub-{uuid.uuid4().hex[:8]}"
    sub.mkdir()
    (sub / "probe.py").write_text(code)
    return sub


def call(client: WorkerClient, function: str = "probe", **kwargs) -> dict:
    reply = client.request("call", {"module": "probe", "function": function}, **kwargs)
    return json.loads(reply.result["output"]["value"])


def run(tmp_path: Path, code: str, warm_pool=None, **overrides) -> dict:
    """``probe()`` of ``code`` in one worker: pooled (given a pool) or fresh."""
    with WorkerClient(submission(tmp_path, code), settings(**overrides), pool=warm_pool) as c:
        got = call(c)
        if warm_pool is not None:
            assert c.isolation_description.startswith("bubblewrap (warm pool"), c.pool_refused
        else:
            assert c.isolation_description.startswith("bubblewrap:")
    return got


def leftovers(s: pool.PoolSlot) -> dict:
    """What the host can see of the slot between jobs: its uid's processes and its cgroups."""
    groups = []
    own = cgroups.own_cgroup_paths()
    for fstype, root, point, opts in cgroups.cgroup_mounts():
        for ctrl in ([c for c in opts if c in own] if fstype == "cgroup" else [""]):
            parent = cgroups.host_dir(root, point, own.get(ctrl, ""))
            if parent is not None and (parent / leases.cgroup_name(s.slot)).exists():
                groups.append(str(parent / leases.cgroup_name(s.slot)))
    return {"processes": pool.processes_of_uid(s.uid), "cgroups": groups, "events": s.events}


CLEAN = {"processes": [], "cgroups": [], "events": []}

COMMON = '''
import ctypes, errno, json, os, signal, socket, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
KEY = 0x6772
IPC_CREAT = 0o1000
NAME = b"/grader-pool-hostile"

def sys_(*args):
    r = libc.syscall(*args)
    return [r, ctypes.get_errno() if r == -1 else 0]

def c_(r):
    return [r, ctypes.get_errno() if r == -1 else 0]

def try_(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))

def pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
'''

HOSTILE = COMMON + '''
def daemon():
    # setsid + double fork: the classic way to outlive one's parent
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            s = socket.socket(socket.AF_UNIX)
            s.bind(b"\\0grader-pool-hostile")
            s.listen()
            t = socket.socket()
            t.bind(("127.0.0.1", 47123))
            t.listen()
            while True:
                time.sleep(1)
        os._exit(0)

def probe():
    got = {}
    daemon()
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"],
                     start_new_session=True)
    for path in ("/tmp/hostile", "/dev/shm/hostile", os.path.expanduser("~/hostile")):
        with open(path, "w") as fh:
            fh.write("left behind")
    got["write"] = {p: try_(lambda p=p: open(p, "w").close())
                    for p in ("/hostile", "/submission/hostile", "/opt/grader-data/hostile",
                              "/etc/hostile", "/usr/hostile", "/opt/hostile")}
    got["shmget"] = c_(libc.shmget(KEY, 4096, IPC_CREAT | 0o666))
    got["msgget"] = c_(libc.msgget(KEY, IPC_CREAT | 0o666))
    got["semget"] = c_(libc.semget(KEY, 1, IPC_CREAT | 0o666))
    from multiprocessing import shared_memory
    global SHM
    SHM = shared_memory.SharedMemory(name="grader-pool-hostile", create=True, size=4096)
    SHM.buf[:4] = b"evil"
    rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    got["mq_open"] = c_(rt.mq_open(NAME, os.O_CREAT | os.O_RDWR, 0o600, None))
    got["add_key"] = sys_(248, b"user", b"hostile", b"secret", 6, -4)  # the user keyring
    got["join_session"] = sys_(250, 1, b"hostile")
    # The zygote and the init: unnamed, unreachable.
    got["pids"] = pids()
    got["init_mem"] = try_(lambda: open("/proc/1/mem", "r+b").close())
    got["ptrace_init"] = sys_(101, 16, 1, 0, 0)  # PTRACE_ATTACH
    got["kill_init"] = try_(lambda: os.kill(1, signal.SIGKILL))
    got["unshare"] = c_(libc.unshare(0x00020000))
    got["setns"] = try_(lambda: os.open("/proc/1/ns/mnt", os.O_RDONLY))
    # This process's copy of the zygote's memory: patched everywhere the next one would look.
    import math, types
    import torch
    import torch.nn.functional as F
    import grader.worker.tasks as tasks
    F.softmax = lambda *a, **k: torch.zeros(1)
    torch.matmul = lambda *a, **k: torch.zeros(1)
    torch.Tensor.sum = lambda self, *a, **k: torch.tensor(-1.0)
    fake = types.ModuleType("math")
    fake.pi = 3.0
    sys.modules["math"] = fake
    tasks.TASKS["ping"] = lambda *a: ({"evil": True}, {})
    # and raw bytes: the zygote's own string constant, overwritten in place
    from grader.worker import zygote
    text = zygote.JOBS_DIR
    ctypes.memmove(id(text) + sys.getsizeof(text) - len(text) - 1, b"/hacked-by-a-job", 16)
    got["raw_write"] = zygote.JOBS_DIR
    return json.dumps(got)
'''

HONEST = COMMON + '''
def probe():
    got = {"pids": pids(), "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"),
           "home": os.listdir(os.path.expanduser("~"))}
    got["shmget"] = c_(libc.shmget(KEY, 0, 0))
    got["msgget"] = c_(libc.msgget(KEY, 0))
    got["semget"] = c_(libc.semget(KEY, 0, 0))
    rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    got["mq_open"] = c_(rt.mq_open(NAME, os.O_RDONLY))
    s = socket.socket(socket.AF_UNIX)
    got["abstract_socket"] = try_(lambda: s.connect(b"\\0grader-pool-hostile"))
    t = socket.socket()
    got["tcp"] = try_(lambda: t.connect(("127.0.0.1", 47123)))
    got["keyctl_read"] = sys_(250, 11, -4, 0, 0)
    import math
    import torch
    import torch.nn.functional as F
    import grader.worker.tasks as tasks
    got["softmax"] = F.softmax(torch.tensor([0.0, 0.0]), dim=0).tolist()
    got["matmul"] = torch.matmul(torch.eye(2), torch.ones(2)).tolist()
    got["sum"] = torch.ones(3).sum().item()
    got["pi"] = math.pi
    got["ping_is_ours"] = tasks.TASKS["ping"] is tasks.ping
    got["dtypes"] = sorted(tasks.DTYPES)
    from grader.worker import zygote
    got["jobs_dir"] = zygote.JOBS_DIR
    return json.dumps(got)
'''


def test_a_hostile_worker_leaves_nothing_for_the_honest_one_after_it(slot, warm, tmp_path):
    fresh = run(tmp_path, HONEST)  # what a fresh sandboxed worker sees: the standard
    starts = slot.zygote_starts
    hostile = run(tmp_path, HOSTILE, warm)
    # It really tried: it wrote its files, made its IPC objects, started its daemons.
    assert hostile["shmget"][0] >= 0 and hostile["msgget"][0] >= 0 and hostile["semget"][0] >= 0
    assert hostile["mq_open"][0] >= 0
    assert set(hostile["write"].values()) <= {"EROFS", "EACCES", "ENOENT"}, hostile["write"]
    assert hostile["add_key"][1] == 1 and hostile["join_session"][1] == 1  # EPERM
    assert hostile["pids"][:2] == [1, 2] and len(hostile["pids"]) >= 4  # its daemons, alone
    assert hostile["init_mem"] in ("EACCES", "EPERM") and hostile["ptrace_init"][1] == 1
    assert hostile["kill_init"] == "EPERM" and hostile["unshare"][1] == 1
    assert hostile["setns"] in ("EACCES", "EPERM")
    assert hostile["raw_write"] == "/hacked-by-a-job"
    assert leftovers(slot) == CLEAN  # the host: no process of the uid, no cgroup, nothing found

    honest = run(tmp_path, HONEST, warm)
    assert honest == fresh
    assert honest["pids"] == [1, 2] and honest["tmp"] == [] and honest["shm"] == []
    assert honest["home"] == []
    for ipc in ("shmget", "msgget", "semget", "mq_open"):
        assert honest[ipc] == [-1, 2], ipc  # ENOENT
    assert honest["abstract_socket"] == "ECONNREFUSED" and honest["tcp"] == "ECONNREFUSED"
    assert honest["softmax"] == [0.5, 0.5] and honest["matmul"] == [1.0, 1.0]
    assert honest["sum"] == 3.0 and honest["ping_is_ours"] and honest["pi"] > 3.14
    assert honest["jobs_dir"] == "/tmp/grader-jobs"
    assert slot.zygote_starts == starts  # the same zygote served both
    assert leftovers(slot) == CLEAN


IDENTITY = '''
import json, os, resource, signal, socket, sys, ctypes

def probe():
    import threading
    import torch
    # A fresh worker of a grading that trains imports torch._dynamo in a background thread
    # (grader.shared.preload); a pooled one has it from its zygote. Compare the steady state.
    for t in threading.enumerate():
        if t.name == "grader-import-dynamo":
            t.join()
    libc = ctypes.CDLL(None)
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    status = {k: v.strip() for k, v in status.items()}
    lo = socket.socket()
    lo.bind(("127.0.0.1", 0))
    lo.listen()
    peer = socket.create_connection(lo.getsockname())
    tmp, shm = os.statvfs("/tmp"), os.statvfs("/dev/shm")
    return json.dumps({
        "env": dict(os.environ), "uid": os.getresuid(), "gid": os.getresgid(),
        "groups": os.getgroups(), "cwd": os.getcwd(), "umask": os.umask(0o22),
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgrp": os.getpgrp(),
        "root": sorted(os.listdir("/")), "opt": sorted(os.listdir("/opt")),
        "grader": sorted(os.listdir("/opt/grader/grader")), "dev": sorted(os.listdir("/dev")),
        "passwd": open("/etc/passwd").read(), "group": open("/etc/group").read(),
        "hostname": socket.gethostname(), "interfaces": socket.if_nameindex(),
        "loopback": peer.getpeername()[0], "sys_path": sys.path, "argv": sys.argv,
        "executable": sys.executable, "isolated": sys.flags.isolated,
        "threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "initial_seed": torch.initial_seed(), "default_dtype": str(torch.get_default_dtype()),
        "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource)
                    if n.startswith("RLIMIT_")},
        "signals": {s.name: str(signal.getsignal(s)) for s in signal.Signals
                    if s not in (signal.SIGKILL, signal.SIGSTOP)},
        "status": {k: status.get(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                               "NoNewPrivs", "Seccomp", "NSpid", "Threads")},
        "dumpable": libc.prctl(3, 0, 0, 0, 0), "securebits": libc.prctl(27, 0, 0, 0, 0),
        "fds": sorted(os.listdir("/proc/self/fd")), "cgroup": open("/proc/self/cgroup").read(),
        "tmp": [tmp.f_blocks * tmp.f_frsize, oct(os.stat("/tmp").st_mode)],
        "shm": [shm.f_blocks * shm.f_frsize, oct(os.stat("/dev/shm").st_mode)],
        "home": [oct(os.stat(os.path.expanduser("~")).st_mode),
                 os.stat(os.path.expanduser("~")).st_uid],
        "writable": {p: os.access(p, os.W_OK) for p in ("/", "/submission", "/opt/grader-data",
                                                        "/tmp", "/dev/shm", "/home/student")},
        "submission": sorted(os.listdir("/submission")),
        "oom_score_adj": open("/proc/self/oom_score_adj").read(),
        "affinity": sorted(os.sched_getaffinity(0)),
    })
'''


def test_a_pooled_worker_starts_as_a_fresh_sandboxed_worker_does(slot, warm, tmp_path):
    fresh = run(tmp_path, IDENTITY)
    pooled = run(tmp_path, IDENTITY, warm)
    # The fresh worker had a slot of its own: its uid is the one thing that must differ.
    fresh = json.loads(json.dumps(fresh).replace(str(fresh["uid"][0]), str(slot.uid)))
    # Importing torch._dynamo sets this (a fresh worker imports it after its start; a pooled
    # one's zygote before its environment is replaced): a sign of having been forked, as
    # ARCHITECTURE.md lists, which no verdict depends on.
    fresh["env"].pop("TORCHINDUCTOR_CACHE_DIR", None)
    differ = {k: (fresh[k], pooled.get(k)) for k in fresh if fresh[k] != pooled.get(k)}
    assert differ == {}
    assert pooled["uid"] == [slot.uid] * 3 and pooled["status"]["CapEff"] == "0" * 16
    assert pooled["status"]["Seccomp"] == "2" and pooled["status"]["NoNewPrivs"] == "1"


RANDOM = '''
import json, random

def probe():
    import numpy, torch
    return json.dumps([random.random(), float(numpy.random.rand()), torch.rand(1).item()])
'''


def test_forked_workers_do_not_share_random_state(warm, tmp_path):
    # torch's generator starts from its fixed default seed in any process (and every check
    # seeds it anyway); Python's and numpy's start from fresh entropy, as in fresh processes.
    a = run(tmp_path, RANDOM, warm)
    b = run(tmp_path, RANDOM, warm)
    assert a[0] != b[0] and a[1] != b[1]
    assert a[2] == b[2] == run(tmp_path, RANDOM)[2]


HANG = COMMON + '''
def probe():
    for _ in range(3):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    pass
            os._exit(0)
    open("/tmp/still-here", "w").close()
    while True:
        time.sleep(1)
'''


def test_a_hung_worker_is_killed_with_all_it_started_and_the_slot_is_reused(slot, warm,
                                                                            tmp_path):
    starts = slot.zygote_starts
    with WorkerClient(submission(tmp_path, HANG), settings(call_timeout=3), pool=warm) as c:
        with pytest.raises(WorkerTimeout):
            call(c)
        assert leftovers(slot) == CLEAN  # stopped at the timeout, not at close()
    honest = run(tmp_path, HONEST, warm)
    assert honest["pids"] == [1, 2] and honest["tmp"] == []
    assert slot.zygote_starts == starts  # a hung job costs its timeout, not a new zygote


HOG = '''
import json

def probe():
    import torch
    got = {}
    try:
        torch.empty(8 * 2**30, dtype=torch.uint8).fill_(1)
        got["tensor"] = "allocated"
    except RuntimeError as exc:
        got["tensor"] = "refused"
    hoard = []
    try:
        while True:
            hoard.append(bytearray(64 * 2**20))
    except MemoryError:
        got["heap"] = len(hoard) * 64
    del hoard
    try:
        with open("/dev/shm/fill", "wb") as fh:
            while True:
                fh.write(bytes(2**20))
    except OSError as exc:
        got["shm"] = exc.errno
    return json.dumps(got)
'''


def test_memory_limits_hold_in_a_pooled_worker_and_leave_nothing(slot, warm, tmp_path):
    limits = Limits(memory_bytes=1536 * 2**20, tmpfs_bytes=64 * 2**20)
    got = run(tmp_path, HOG, warm, limits=limits)
    assert got["tensor"] == "refused"
    assert 0 < got["heap"] < 1536  # MiB: stopped by the job's RLIMIT_DATA
    assert got["shm"] == 28  # ENOSPC: the job's /dev/shm is capped
    assert leftovers(slot) == CLEAN
    assert run(tmp_path, HONEST, warm)["shm"] == []


CGROUP = '''
import json, os

def probe():
    return json.dumps({"cgroup": open("/proc/self/cgroup").read()})
'''


def test_a_pooled_worker_runs_in_the_slots_cgroup_from_its_first_instruction(slot, warm,
                                                                              tmp_path):
    with WorkerClient(submission(tmp_path, CGROUP), settings(), pool=warm) as c:
        call(c)
        if "cgroups not writable" in c.isolation_description:
            pytest.skip(c.isolation_description)
        init = c._proc.pid
        worker = int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0])
        for pid in (init, worker):
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            memory = [ln for ln in lines if ":memory:" in ln]
            assert memory and memory[0].endswith("/" + leases.cgroup_name(slot.slot)), lines
        assert pool._status(worker)["Uid"].split() == [str(slot.uid)] * 4
    assert leftovers(slot) == CLEAN


def test_a_dead_zygote_is_replaced_and_costs_no_result(slot, warm, tmp_path):
    z = slot._zygote
    os.killpg(z.proc.pid, signal.SIGKILL)
    z.proc.wait(timeout=10)
    honest = run(tmp_path, HONEST, warm)  # the start finds it dead and makes a new one
    assert honest["pids"] == [1, 2] and slot._zygote is not z


def test_a_zygote_dying_under_a_running_worker_costs_that_request_only(slot, warm, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    sub = submission(tmp_path, HONEST + "\ndef slow():\n    import time\n    time.sleep(60)\n")
    with WorkerClient(sub, settings(), pool=warm) as c:
        assert call(c)["pids"] == [1, 2]
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(call, c, "slow")
            time.sleep(1.5)  # the request is in the worker's hands
            os.killpg(slot._zygote.proc.pid, signal.SIGKILL)  # takes the worker with it
            with pytest.raises(WorkerCrashed):
                running.result(timeout=60)
        assert call(c)["pids"] == [1, 2]  # the next request restarts, on a new zygote
        assert c.starts == 2
    assert leftovers(slot) == CLEAN


def test_a_worker_killed_by_a_signal_reads_as_killed(warm, tmp_path):
    code = 'import os, signal\ndef probe():\n    os.kill(os.getpid(), signal.SIGKILL)\n'
    with WorkerClient(submission(tmp_path, code), settings(), pool=warm) as c:
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
            call(c)
    code = 'import os\ndef probe():\n    os._exit(3)\n'
    with WorkerClient(submission(tmp_path, code), settings(), pool=warm) as c:
        with pytest.raises(WorkerCrashed, match="exited with code 3"):
            call(c)


LISTING = '''
import json, os

def probe():
    return json.dumps([sorted(os.listdir("/submission")),
                       oct(os.stat("/submission/run.sh").st_mode & 0o777),
                       os.readlink("/submission/link.py")])
'''


def test_the_submission_is_copied_whole_readable_and_without_special_files(warm, tmp_path):
    sub = submission(tmp_path, LISTING)
    os.mkfifo(sub / "pipe")  # a copy that opened it would wait forever
    (sub / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(sub / "run.sh", 0o700)
    (sub / ".git").mkdir()
    (sub / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    os.symlink("probe.py", sub / "link.py")
    with WorkerClient(sub, settings(), pool=warm) as c:
        got = call(c)
    assert got == [[".git", "link.py", "probe.py", "run.sh"], "0o744", "probe.py"]


def verdicts(result) -> list[tuple]:
    """Status, score and message of every check, but the messages of 0-point notes that
    report a measured speed (their numbers differ from run to run by nature)."""
    return [(a.name, c.id, c.status.value, c.score, c.message if c.max_score else "")
            for a in result.assignments for c in a.checks]


def grade_pooled(folder: Path, warm_pool: pool.WarmPool, assignments=None):
    """:func:`conftest.grade_folder`, its worker forked from ``warm_pool``."""
    options = GradeOptions(assignments=assignments, worker=conftest_settings(),
                           source=SHARED_REFERENCE)
    result = grade(folder, options, worker=WorkerClient(folder, options.worker, pool=warm_pool))
    assert result.environment["isolation"].startswith("bubblewrap (warm pool")
    return result


def test_a_full_grade_of_the_correct_example_is_the_same_pooled(warm, correct_result):
    assert verdicts(grade_pooled(CORRECT, warm)) == verdicts(correct_result)


@pytest.mark.parametrize("example, assignments", [
    ("buggy-attention-no-scale", ["attention"]),
    ("buggy-training-no-zero-grad", ["training"]),  # an optimizer: dynamo's first import
    ("buggy-kvcache-position", ["kv_cache"]),
])
def test_planted_bugs_get_the_same_verdicts_pooled_and_fresh(warm, example, assignments):
    folder = EXAMPLES / example
    pooled = grade_pooled(folder, warm, assignments)
    assert verdicts(pooled) == verdicts(grade_folder(folder, assignments))
    assert failing(pooled)  # the bug is seen


DYNAMO = """
import json, sys

def probe():
    return json.dumps("torch._dynamo" in sys.modules)
"""


def test_a_pool_for_gradings_that_do_not_train_leaves_dynamo_out_and_still_trains(tmp_path):
    # dynamo is ~1 s of CPU per zygote; without it a worker that does train (in a pool made
    # for gradings that do not) imports it itself, and gets the same verdicts.
    with pool.WarmPool(1, dynamo=False) as lean:
        assert run(tmp_path, DYNAMO, lean) is False
        folder = EXAMPLES / "buggy-training-no-zero-grad"
        pooled = grade_pooled(folder, lean, ["training"])
    assert verdicts(pooled) == verdicts(grade_folder(folder, ["training"]))
    assert failing(pooled)


def test_a_pool_for_gradings_that_train_has_dynamo_from_its_zygote(tmp_path, warm):
    assert run(tmp_path, DYNAMO, warm) is True


def test_the_local_executor_forks_its_workers_from_a_warm_pool_unless_told_not_to(tmp_path):
    from grader.batch.executors import LocalExecutor
    from grader.batch.jobs import Job

    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "attention.py").write_text((CORRECT / "attention.py").read_text())
    options = {"assignments": ["attention"], "threads": 1, "isolation": "auto"}
    jobs = [Job(f"k{i}", f"s{i}", str(folder), "h", options, "f", 7) for i in range(2)]
    seen = {}
    for warm in (None, False):
        with LocalExecutor(1, warm=warm) as ex:
            for job in jobs:
                ex.submit(job)
            outcomes = list(ex.outcomes())
        assert [o.kind for o in outcomes] == ["graded", "graded"], outcomes
        seen[warm] = [o.result["environment"]["isolation"] for o in outcomes]
        given = [[(c["id"], c["status"], c["score"], c["message"] if c["max_score"] else "")
                  for a in o.result["assignments"] for c in a["checks"]] for o in outcomes]
        assert given[0] == given[1]
        if warm is None:
            pooled = given[0]
    assert all(i.startswith("bubblewrap (warm pool") for i in seen[None]), seen
    assert all(i.startswith("bubblewrap:") for i in seen[False]), seen
    assert given[0] == pooled  # the same verdicts, to the message


# ----------------------------------------------------------------------------- the fallback


def test_without_a_usable_pool_the_client_starts_fresh_workers(warm, tmp_path, monkeypatch):
    with WorkerClient(submission(tmp_path, CGROUP), settings(isolation="none"), pool=warm) as c:
        call(c)
        assert c.isolation_description.startswith("none:") and c._pool_slot is None
    with pool.WarmPool(1) as broken:
        def refuse(*args, **kwargs):
            raise pool.sandbox.IsolationUnavailable("planted: no zygote here")

        monkeypatch.setattr(pool.sandbox, "plan_zygote", refuse)
        with WorkerClient(submission(tmp_path, CGROUP), settings(), pool=broken) as c:
            call(c)
            assert c.isolation_description.startswith("bubblewrap:")  # fresh, still isolated
            assert "planted: no zygote here" in c.pool_refused


# ----------------------------------------------------------------------------- units


GOOD_FACTS = {
    "pid": 2, "uid": [60001] * 4, "gid": [60001] * 4, "groups": "",
    "caps": {k: "0" * 16 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": "1", "seccomp": "2", "pids": [1, 2], "fds": [0, 1, 2, 3],
    "jobs_visible": False, "interfaces": ["lo"], "cwd": "/home/student", "home_mode": "0o700",
    "home_owner": 60001, "tmp": [], "root_writable": False,
}


@pytest.mark.parametrize("planted, words", [
    ({"caps": {**GOOD_FACTS["caps"], "CapBnd": "000001ffffffffff"}}, "capabilities"),
    ({"uid": [60001, 0, 60001, 60001]}, "ids"),
    ({"seccomp": "0"}, "seccomp"),
    ({"no_new_privs": "0"}, "no_new_privs"),
    ({"pids": [1, 2, 7]}, "pid namespace"),
    ({"fds": [0, 1, 2, 3, 5]}, "descriptors"),
    ({"jobs_visible": True}, "jobs"),
    ({"interfaces": ["eth0", "lo"]}, "network"),
    ({"root_writable": True}, "root"),
    ({"tmp": ["x"]}, "/tmp"),
    ({"home_owner": 0}, "home"),
])
def test_the_zygote_self_test_refuses_less_than_a_fresh_sandbox(planted, words):
    assert pool.selftest_problems(GOOD_FACTS, 60001) == []
    problems = pool.selftest_problems({**GOOD_FACTS, **planted}, 60001)
    assert len(problems) == 1 and words in problems[0], problems


def test_a_zygote_refuses_to_fork_with_a_second_thread():
    code = ("import threading, time\n"
            "from grader.worker import zygote\n"
            "assert zygote.fork_hazards() == []\n"
            "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
            "print(zygote.fork_hazards())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "2 threads" in out


def test_processes_of_uid_finds_a_process_under_that_uid():
    uid = leases.uid_for(leases.DEFAULT_SLOTS - 1)
    proc = subprocess.Popen(["sleep", "30"], user=uid)
    try:
        deadline = time.monotonic() + 5
        while proc.pid not in pool.processes_of_uid(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.pid in pool.processes_of_uid(uid)
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in pool.processes_of_uid(uid)
