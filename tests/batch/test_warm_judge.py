"""A batch's warm judges: each submission is judged in a child forked from its pool slot's
unprivileged judge, not in the batch's root process; whatever goes wrong in a child costs that
submission only, and the verdicts are those of a fresh judging process per submission."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
from batch_helpers import (
    CORRECT_ATTENTION,
    NO_SCALE_ATTENTION,
    NO_SCALE_FAILS,
    no_judge_processes,
    student,
)

from grader.batch.executors import LocalExecutor
from grader.batch.jobs import Job
from grader.isolation import bounded
from grader.isolation.client import WorkerSettings
from grader.isolation.launcher import JUDGE_UID, Launcher
from grader.isolation.pool import pool_available

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _need_judges() -> None:
    ok, why = pool_available()
    if not ok:
        pytest.skip(f"no warm pool here: {why}")
    if not bounded.judge_available("auto"):
        pytest.skip("the unprivileged judge needs root and a working bubblewrap")


def _verdicts(outcome) -> list[tuple]:
    return [(a["name"], c["id"], c["status"], c["score"], c["message"] if c["max_score"] else "")
            for a in outcome.result["assignments"] for c in a["checks"]]


def _failed(outcome) -> set[str]:
    return {c["id"] for a in outcome.result["assignments"] for c in a["checks"]
            if c["status"] != "passed"}


def _run(jobs: list[Job], **kwargs) -> tuple[list, LocalExecutor]:
    with LocalExecutor(1, **kwargs) as ex:
        for job in jobs:
            ex.submit(job)
        outcomes = sorted(ex.outcomes(), key=lambda o: o.key)
    return outcomes, ex


def test_a_batch_is_judged_in_warm_judges_with_the_verdicts_of_fresh_judges(tmp_path):
    _need_judges()
    cls = tmp_path / "class"
    options = {"assignments": ["attention"], "threads": 1, "isolation": "auto"}
    jobs = [Job(f"k{i}", name, str(student(cls, name, src)), "h", options, "f", 20261202)
            for i, (name, src) in enumerate([("ann", CORRECT_ATTENTION),
                                             ("bob", NO_SCALE_ATTENTION),
                                             ("cat", CORRECT_ATTENTION)])]
    judged, ex = _run(jobs)
    assert ex.judges is not None, ex.judges_why
    fresh, _ = _run(jobs, judge=False)
    for o in judged + fresh:
        assert o.kind == "graded", o.message
    for o in judged:
        assert o.result["environment"]["isolation"].startswith("bubblewrap (warm pool")
        assert o.result["environment"]["judging"].startswith(
            f"in a warm judge's child: unprivileged uid {JUDGE_UID}")
    for o in fresh:  # never in the batch's own process
        assert o.result["environment"]["judging"].startswith(
            f"in a fresh judging process of its own (unprivileged uid {JUDGE_UID}")
    assert [_verdicts(o) for o in judged] == [_verdicts(o) for o in fresh]
    assert [_failed(o) for o in judged] == [set(), NO_SCALE_FAILS, set()]
    assert no_judge_processes()  # every judge ended with the batch


def test_a_judging_child_past_the_job_time_limit_costs_that_submission_only(tmp_path):
    _need_judges()
    import shutil

    folder = str(shutil.copytree(EXAMPLES / "correct", tmp_path / "ann"))
    quick = {"assignments": ["attention"], "threads": 1, "isolation": "auto"}
    # Every assignment of a complete submission that trains nothing (several seconds: the
    # hidden 124M check alone writes a 0.5 GB checkpoint) in 3 s: cut short. (One that trains
    # would be judged by another judge: whether it imports dynamo is part of its setup.)
    rest = ["attention", "causal_mask", "kv_cache", "gpt2_loading", "bpe"]
    slow = {**quick, "assignments": rest, "job_timeout": 3.0}
    jobs = [Job("k0", "first", folder, "h", quick, "f", 1),
            Job("k1", "slow", folder, "h", slow, "f", 1),
            Job("k2", "after", folder, "h", quick, "f", 1)]
    with LocalExecutor(1) as ex:
        outcomes = []
        for job in jobs:  # one at a time, so that "after" follows the killed child
            ex.submit(job)
            outcomes += list(ex.outcomes())
        judge = next(iter(ex.judges._judges.values()))[1]
        starts = judge.starts
    first, slow_o, after = outcomes
    assert first.kind == after.kind == "graded"
    assert _failed(first) == _failed(after) == set()
    messages = {c["message"] for a in slow_o.result["assignments"] for c in a["checks"]}
    assert any("time limit of 3 s" in m for m in messages), messages
    assert starts == 2  # the stuck child's judge was killed; the next submission got a new one
    assert no_judge_processes()


# ------------------------------------------------------------- the warm judge itself, unit


class _Call:
    """A payload that, unpickled in the judging child, calls ``fn(*args)``: a stand-in for a
    judging routine gone wrong (the payload itself is the root side's, trusted)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.fixture
def warm_judge():
    _need_judges()
    from grader.batch.judging import ENTRY
    from grader.isolation.warm_judge import WarmJudge

    judge = WarmJudge(ENTRY, bounded.judge_setting(1))
    yield judge
    judge.close()
    assert no_judge_processes()


def _judge(judge, payload: bytes, **limits) -> dict:
    launcher = Launcher(judge.work_area, WorkerSettings().limits, 1, isolation="bwrap").start()
    try:
        return judge.judge(payload, launcher, bounded.JudgeLimits(**limits))
    finally:
        launcher.close()


def _honest(judge, tmp_path: Path) -> dict:
    from grader.grading import GradeOptions
    from grader.isolation.launcher import copy_submission

    cls = tmp_path / f"honest{time.monotonic_ns()}"
    folder = student(cls, "ann", CORRECT_ATTENTION)
    area = judge.work_area / f"job{time.monotonic_ns()}"
    area.mkdir(mode=0o755)
    copy = copy_submission(folder, area)
    return _judge(judge, pickle.dumps((str(copy), GradeOptions(assignments=["attention"]))))


@pytest.mark.parametrize("fn, args, limits, why", [
    (time.sleep, (600,), {"timeout": 3.0}, "took longer than 3 s"),
    (bytearray, (3 * 2**30,), {"memory_bytes": 2 * 2**30}, "ran out of memory"),
    (os.abort, (), {}, "killed by SIGABRT"),
    (os._exit, (0,), {}, "unreadable results"),  # exits 0 without an answer
])
def test_a_child_that_hangs_blows_its_memory_or_crashes_is_a_reason_and_the_next_is_judged(
        warm_judge, tmp_path, fn, args, limits, why):
    with pytest.raises(bounded.JudgingFailed, match=why):
        _judge(warm_judge, pickle.dumps(("x", _Call(fn, *args))), **limits)
    after = _honest(warm_judge, tmp_path)
    assert {c["status"] for a in after["assignments"] for c in a["checks"]} == {"passed"}
    # A child that only timed out took its judge with it; the others left the judge serving.
    assert warm_judge.starts == (2 if "longer" in why else 1)


def test_each_child_starts_from_the_unchanged_judge(warm_judge, tmp_path):
    # A child that rewrites the judge's modules (as a compromised one could) changes its own
    # copy: the next child has the judge's code again.
    import grader.grading

    poison = pickle.dumps(("x", _Call(exec, "import grader.grading as g; g.grade = None; "
                                      "import os; os._exit(0)")))
    with pytest.raises(bounded.JudgingFailed):
        _judge(warm_judge, poison)
    after = _honest(warm_judge, tmp_path)
    assert {c["status"] for a in after["assignments"] for c in a["checks"]} == {"passed"}
    assert grader.grading.grade is not None


def test_a_pooled_launcher_serves_only_the_folders_it_made_and_removes_them(tmp_path):
    _need_judges()
    import socket

    from grader.isolation.client import WorkerClient
    from grader.isolation.launcher import (
        LauncherProxy,
        LaunchRefused,
        copy_submission,
        new_work_area,
        remove_work_area,
    )
    from grader.isolation.pool import WarmPool

    with WarmPool(1) as warm:
        slot = warm.checkout(60)
        area = new_work_area()
        launcher = Launcher(area, WorkerSettings().limits, 1, pool_slot=slot).start()
        try:
            sub = copy_submission(student(tmp_path / "class", "ann", CORRECT_ATTENTION), area)
            proxy = LauncherProxy(socket.socket(fileno=os.dup(launcher.judge_end.fileno())))
            data = proxy.data_dir()
            assert data is not None and data.parent.parent == slot.jobs
            assert data.stat().st_uid == JUDGE_UID  # the judge writes its files there
            assert data.parent.stat().st_uid == 0 and data.parent.stat().st_mode & 0o777 == 0o711
            limits = WorkerSettings().limits
            for bad in (area / "tmp", tmp_path, slot.jobs, data.parent / "submission"):
                with pytest.raises(LaunchRefused, match="did not hand out"):
                    proxy.launch(sub, bad, 1, limits)
            with pytest.raises(LaunchRefused, match="outside"):
                proxy.launch(tmp_path, data, 1, limits)
            with WorkerClient(sub, WorkerSettings(threads=1), launcher=proxy) as client:
                assert client.data_dir.parent.parent == slot.jobs  # a folder of its own
                client.start()
                assert client.isolation_description.startswith("bubblewrap (warm pool")
                assert client.info["torch"]
            assert launcher.pool_refused == ""
        finally:
            launcher.close()
            remove_work_area(area)
            leftover = list(slot.jobs.iterdir())
            warm.checkin(slot)
    assert leftover == []  # every job folder it made went with it


def test_only_the_judges_of_gradings_that_train_import_dynamo_as_they_warm(tmp_path):
    from grader.batch.judged import judge_setup, make_judge
    from grader.batch.judging import ENTRY, ENTRY_NO_DYNAMO

    _need_judges()  # making a judge hands its folders to the judge uid

    def setup(assignments):
        return judge_setup({"threads": 1, "assignments": assignments})

    assert [setup(a)[3] for a in (["attention"], ["attention", "kv_cache"], ["block"],
                                  ["training"], None)] == [False, False, True, True, True]
    # The setup is a judge's identity: a slot's judge is replaced when it changes.
    assert setup(["attention"]) != setup(["training"])
    entries = [make_judge(tmp_path / name, setup(a), starter=None).entry
               for name, a in (("lean", ["attention"]), ("full", ["training"]))]
    assert entries == [ENTRY_NO_DYNAMO, ENTRY]
