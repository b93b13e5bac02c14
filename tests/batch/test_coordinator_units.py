"""The coordinator's refusals and small pieces, without grading anything."""

from __future__ import annotations

import fcntl
import os

import pytest
from batch_helpers import FAST, need_sandbox

from grader.batch import BatchError, run_batch
from grader.batch.coordinator import _student_view
from grader.model.results import (
    AssignmentResult,
    CheckResult,
    Status,
    SubmissionResult,
    Visibility,
)


def test_one_batch_per_run_folder(tmp_path):
    need_sandbox()
    (tmp_path / "class" / "alice").mkdir(parents=True)
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(BatchError, match="another grader batch is writing"):
            run_batch(tmp_path / "class", out, **FAST)
    finally:
        os.close(fd)


def test_clear_refusals(tmp_path):
    need_sandbox()
    with pytest.raises(BatchError, match="class folder not found"):
        run_batch(tmp_path / "nope", tmp_path / "run", **FAST)
    (tmp_path / "class" / "alice").mkdir(parents=True)
    with pytest.raises(BatchError, match="no such student in the class: mallory"):
        run_batch(tmp_path / "class", tmp_path / "run", students=["mallory"], **FAST)
    with pytest.raises(BatchError, match="unknown assignment"):
        run_batch(tmp_path / "class", tmp_path / "run", **{**FAST, "assignments": ["nope"]})
    with pytest.raises(BatchError, match="--scheduler"):
        run_batch(tmp_path / "class", tmp_path / "run", executor="dask", **FAST)
    with pytest.raises(TypeError, match="unknown batch option"):
        run_batch(tmp_path / "class", tmp_path / "run", colour="red")


def test_student_view_hides_hidden_checks_and_the_seed():
    hidden = CheckResult("h", "hidden one", Status.FAILED, 0, 2, "expected 3.1 got 2.9",
                         Visibility.HIDDEN, "hint", {"max_abs_diff": 0.2})
    public = CheckResult("p", "public one", Status.FAILED, 0, 1, "shape (2, 3)")
    result = SubmissionResult("alice", [AssignmentResult("attention", [hidden, public])],
                              environment={"seed": 99, "threads": 1, "batch_host": "h1"})
    view = _student_view(result)
    h, p = view["assignments"][0]["checks"]
    assert (h["message"], h["hint"], h["details"]) == ("hidden check", "", {})
    assert h["max_score"] == 2 and h["status"] == "failed"
    assert p["message"] == "shape (2, 3)"
    assert view["environment"] == {"threads": 1}
