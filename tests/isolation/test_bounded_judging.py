"""The judging process: a hang or a memory blow-up costs one submission's result, nothing more."""

from __future__ import annotations

import os
import time

import pytest

from grader.isolation.bounded import JudgeLimits, JudgingFailed, cut_strings, run_bounded

WRITE = "from grader.isolation.bounded import write_result; "


def test_a_result_comes_back_with_its_strings_cut():
    got = run_bounded(WRITE + "import sys; d = sys.stdin.read(); "
                      "write_result({'echo': d, 'log': 'L' * 300000, 'long': 'x' * 50000})",
                      b"hello")
    assert got["echo"] == "hello"
    assert len(got["long"]) < 20_100 and got["long"].endswith("cut by the grader]")
    assert 128 * 1024 <= len(got["log"]) < 128 * 1024 + 100


def test_a_hang_is_stopped_at_the_deadline():
    started = time.monotonic()
    with pytest.raises(JudgingFailed, match="longer than 2 s"):
        run_bounded("import time; time.sleep(60)", b"", JudgeLimits(timeout=2))
    assert time.monotonic() - started < 15


def test_a_memory_blow_up_is_a_recorded_failure_and_the_caller_lives():
    before = os.getpid()
    with pytest.raises(JudgingFailed, match="memory"):
        run_bounded("x = bytearray(3 * 2**30)", b"", JudgeLimits(memory_bytes=2**30))
    assert os.getpid() == before


def test_oversized_or_unreadable_results_are_failures():
    with pytest.raises(JudgingFailed, match="bytes of results"):
        run_bounded(WRITE + "write_result({'x': 'y' * 5000})", b"",
                    JudgeLimits(result_bytes=1000))
    with pytest.raises(JudgingFailed, match="unreadable"):
        run_bounded("import os; open(os.environ['GRADER_JUDGE_OUT'], 'w').write('[' * 10**5)",
                    b"")
    with pytest.raises(JudgingFailed, match="exited with code 3"):
        run_bounded("raise SystemExit(3)", b"")


def test_cut_strings_per_key():
    assert cut_strings({"a": "x" * 10, "b": ["y" * 10], "log": "z" * 10}, 5, {"log": 8}) == {
        "a": "xxxxx [... 5 more characters cut by the grader]",
        "b": ["yyyyy [... 5 more characters cut by the grader]"],
        "log": "zzzzzzzz [... 2 more characters cut by the grader]",
    }


def test_grade_bounded_records_every_check_as_an_error_when_judging_fails(tmp_path, monkeypatch):
    from grader import grading
    from grader.isolation import bounded

    def fail(*args, **kwargs):
        raise bounded.JudgingFailed("the judging process was killed by SIGKILL (out of memory?)")

    monkeypatch.setattr(bounded, "run_bounded", fail)
    result = grading.grade_bounded(tmp_path, grading.GradeOptions(assignments=["attention"]))
    checks = result.assignment("attention").checks
    assert checks and all(c.status.value == "error" for c in checks)
    assert "out of memory" in checks[0].message
    assert result.score == 0 and result.max_score > 0


def test_grade_bounded_grades_a_real_submission(tmp_path):
    from grader import grading
    from grader.isolation.client import WorkerSettings

    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text("def scaled_dot_product_attention(q, k, v, mask=None):\n"
                                      "    raise ValueError('nope')\n")
    result = grading.grade_bounded(sub, grading.GradeOptions(
        assignments=["attention"], worker=WorkerSettings(threads=1, call_timeout=60)))
    a = result.assignment("attention")
    assert a.checks and result.score < result.max_score
    assert any("nope" in c.message for c in a.checks)
