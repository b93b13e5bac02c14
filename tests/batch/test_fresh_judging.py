"""A batch without warm judges (``--no-warm-pool``, a Dask worker, ``judge=False``) still judges
each submission outside the batch's process: in a fresh bounded judging process of its own,
stopped at the job's deadline or by a cancel, which costs that submission only."""

from __future__ import annotations

import shutil
import threading
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
from grader.isolation import bounded, sandbox
from grader.isolation.launcher import JUDGE_UID

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICK = {"assignments": ["attention"], "threads": 1, "isolation": "bwrap"}


def _need_bwrap() -> None:
    ok, why = sandbox.isolation_available()
    if not ok:
        pytest.skip(f"no bubblewrap here: {why}")


def _failed(outcome) -> set[str]:
    return {c["id"] for a in outcome.result["assignments"] for c in a["checks"]
            if c["status"] != "passed"}


def _run(jobs: list[Job], pid_dir: Path | None = None) -> list:
    with LocalExecutor(1, warm=False, pid_dir=pid_dir) as ex:
        outcomes = []
        for job in jobs:  # one at a time: each follows the one before in the same thread
            ex.submit(job)
            outcomes += list(ex.outcomes())
    return outcomes


def test_without_warm_judges_the_checks_never_run_in_the_batch_process(tmp_path, monkeypatch):
    _need_bwrap()
    import grader.grading

    def refuse(*args, **kwargs):
        raise AssertionError("a check ran in the batch's own process")

    monkeypatch.setattr(grader.grading, "grade", refuse)  # this process's copy only
    cls = tmp_path / "class"
    jobs = [Job(f"k{i}", name, str(student(cls, name, src)), "h", QUICK, "f", 20261203)
            for i, (name, src) in enumerate([("ann", CORRECT_ATTENTION),
                                             ("bob", NO_SCALE_ATTENTION)])]
    ann, bob = _run(jobs, pid_dir=tmp_path)
    assert ann.kind == bob.kind == "graded", (ann.message, bob.message)
    assert _failed(ann) == set() and _failed(bob) == NO_SCALE_FAILS
    for o in (ann, bob):
        judging = o.result["environment"]["judging"]
        assert judging.startswith("in a fresh judging process of its own"), judging
        assert "no warm pool" in judging
        if bounded.judge_available("bwrap"):
            assert f"unprivileged uid {JUDGE_UID}" in judging
    assert list(tmp_path.glob("[0-9]*")) == []  # the reaper's notes are gone with the judges


def test_a_fresh_judge_past_the_job_time_limit_costs_that_submission_only(tmp_path):
    _need_bwrap()
    folder = str(shutil.copytree(EXAMPLES / "correct", tmp_path / "ann"))
    # Every assignment of a complete submission (several seconds) in 3 s: cut short.
    slow = {**QUICK, "assignments": None, "job_timeout": 3.0}
    started = time.monotonic()
    first, slow_o, after = _run([Job("k0", "first", folder, "h", QUICK, "f", 1),
                                 Job("k1", "slow", folder, "h", slow, "f", 1),
                                 Job("k2", "after", folder, "h", QUICK, "f", 1)])
    assert time.monotonic() - started < 60
    assert first.kind == after.kind == slow_o.kind == "graded"
    assert _failed(first) == _failed(after) == set()
    statuses = {c["status"] for a in slow_o.result["assignments"] for c in a["checks"]}
    messages = {c["message"] for a in slow_o.result["assignments"] for c in a["checks"]}
    assert statuses == {"timeout"}, statuses
    assert any("time limit of 3 s" in m for m in messages), messages
    assert slow_o.result["score"] == 0
    assert no_judge_processes()


def test_cancelling_the_batch_stops_a_fresh_judge_at_once(tmp_path):
    _need_bwrap()
    folder = str(shutil.copytree(EXAMPLES / "correct", tmp_path / "ann"))
    job = Job("k0", "ann", folder, "h", {**QUICK, "assignments": None}, "f", 1)
    with LocalExecutor(1, warm=False) as ex:
        ex.submit(job)
        threading.Timer(2.0, ex.scope.cancel).start()
        started = time.monotonic()
        (outcome,) = list(ex.outcomes())
        took = time.monotonic() - started
    assert outcome.kind == "cancelled", outcome.message
    assert took < 15  # a whole grading takes longer; the judge was killed, not waited for
    assert no_judge_processes()


def test_where_the_unprivileged_judge_cannot_run_a_bounded_process_judges(tmp_path, monkeypatch):
    """A Dask worker that is not root: the judging process has the batch's privileges, but
    still its own memory cap and deadline, and the same verdicts."""
    _need_bwrap()
    monkeypatch.setattr(bounded, "judge_available", lambda isolation: False)
    cls = tmp_path / "class"
    jobs = [Job("k0", "bob", str(student(cls, "bob", NO_SCALE_ATTENTION)), "h", QUICK, "f", 7)]
    (bob,) = _run(jobs)
    assert bob.kind == "graded", bob.message
    assert _failed(bob) == NO_SCALE_FAILS
    assert bob.result["environment"]["judging"].startswith(
        "in a fresh judging process of its own (in a bounded process with the grader's "
        "privileges)")
