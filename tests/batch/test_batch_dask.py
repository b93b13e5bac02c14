"""The batch on a real Dask LocalCluster of 2 worker processes: the same verdicts as the local
executor, shipped bytes instead of shared paths, a job's own time limit, a killed worker."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from batch_helpers import (
    CORRECT_ATTENTION,
    FAST,
    HOSTILE,
    NO_SCALE_ATTENTION,
    need_sandbox,
    processes_mentioning,
    student,
)

from grader.batch import run_batch
from grader.batch.dask_executor import DaskExecutor, dask_task
from grader.batch.executors import Parallelism
from grader.batch.jobs import DEFAULT_OPTIONS, Job, ship
from grader.out.gradebook import Gradebook

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
pytestmark = pytest.mark.slow

SLEEPER = "import time\ntime.sleep(40)\n" + CORRECT_ATTENTION


@pytest.fixture(scope="module")
def cluster():
    need_sandbox()
    # No retries: a task whose worker dies is reported (KilledWorker) rather than run again.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None, host="127.0.0.1",
                                      silence_logs=40, memory_limit=0) as c:
            with distributed.Client(c) as client:
                yield c, client


def _job(folder, key, **options) -> Job:
    opts = {**DEFAULT_OPTIONS, "assignments": ["attention"], "call_timeout": 30.0,
            "import_timeout": 60.0, "total_timeout": 120.0, **options}
    return Job(key=key, student_id=key, submission=str(folder), content_hash="h", options=opts,
               fingerprint="fp", seed=FAST["seed"])


def test_same_verdicts_as_the_local_executor(cluster, tmp_path):
    c, _ = cluster
    class_dir = tmp_path / "class"
    student(class_dir, "alice", CORRECT_ATTENTION)
    student(class_dir, "bob", NO_SCALE_ATTENTION)
    student(class_dir, "carol", HOSTILE["exit"])
    local = run_batch(class_dir, tmp_path / "local", **FAST)
    remote = run_batch(class_dir, tmp_path / "dask", executor="dask",
                       scheduler=c.scheduler_address, **FAST)
    with Gradebook.open(local.gradebook, readonly=True) as a, \
            Gradebook.open(remote.gradebook, readonly=True) as b:
        assert a.comparable() == b.comparable()
        assert b.latest()["alice"].score == b.latest()["alice"].max_score
    assert remote.tally.graded == 2 and remote.tally.errors == 1


def test_shipped_bytes_need_no_shared_folder(cluster, tmp_path):
    _, client = cluster
    folder = student(tmp_path, "alice", CORRECT_ATTENTION)
    job = _job(tmp_path / "not-on-the-worker", "alice")
    missing = client.submit(dask_task, job.to_dict(), pure=False).result(timeout=120)
    assert missing["kind"] == "error" and "not on this machine" in missing["message"]
    shipped = Job(**{**job.to_dict(), "payload": ship(folder)})
    out = client.submit(dask_task, shipped.to_dict(), pure=False).result(timeout=120)
    assert out["kind"] == "graded"
    assert out["result"]["score"] == out["result"]["max_score"] > 0


def test_a_job_enforces_its_own_time_limit(cluster, tmp_path):
    _, client = cluster
    folder = student(tmp_path, "slow", SLEEPER)
    out = client.submit(dask_task, _job(folder, "slow", job_timeout=8).to_dict(),
                        pure=False).result(timeout=120)
    assert out["kind"] == "graded"
    assert out["seconds"] < 8 + 15  # the student's code wanted 40 s
    checks = [c for a in out["result"]["assignments"] for c in a["checks"]]
    assert checks and all(c["status"] == "timeout" for c in checks)
    assert "time limit of 8 s" in checks[0]["message"]
    assert out["result"]["score"] == 0


def test_a_killed_worker_is_a_recorded_error_and_the_batch_goes_on(cluster, tmp_path):
    c, client = cluster
    victim = student(tmp_path, "victim", SLEEPER)
    healthy = student(tmp_path, "healthy", CORRECT_ATTENTION)
    with DaskExecutor(Parallelism(2, 1, "test"), scheduler=c.scheduler_address) as ex:
        ex.submit(_job(victim, "victim"))

        def kill_when_running():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for addr, keys in client.processing().items():
                    if any("victim" in str(k) for k in keys):
                        pid = client.run(os.getpid, workers=[addr])[addr]
                        time.sleep(1.0)  # let it start the sandboxed worker
                        os.kill(pid, signal.SIGKILL)
                        return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_when_running)
        killer.start()
        killer.join(90)
        client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
        ex.submit(_job(healthy, "healthy"))
        outcomes = {o.student_id: o for o in ex.outcomes()}
    assert outcomes["victim"].kind == "error"
    assert "KilledWorker" in outcomes["victim"].message
    assert outcomes["healthy"].kind == "graded"
    assert outcomes["healthy"].result["score"] == outcomes["healthy"].result["max_score"]
    deadline = time.monotonic() + 20
    while processes_mentioning(str(victim)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_mentioning(str(victim)), "the sandbox outlived its Dask worker"


def test_gpu_routing_only_where_the_cluster_has_gpus(cluster, tmp_path):
    c, _ = cluster
    with DaskExecutor(Parallelism(2, 1, "test"), scheduler=c.scheduler_address) as ex:
        training = _job(tmp_path, "t", assignments=["training"])
        attention = _job(tmp_path, "a")
        everything = _job(tmp_path, "e", assignments=None)
        assert ex.resources_for(training) is None  # CPU workers only: everything runs there
        ex._gpu = True  # as if a worker had started with --resources GPU=1
        assert ex.resources_for(training) == {"GPU": 1}
        assert ex.resources_for(everything) == {"GPU": 1}
        assert ex.resources_for(attention) is None
