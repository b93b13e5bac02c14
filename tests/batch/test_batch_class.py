"""A real batch of a tiny class with hostile members: every failure is a recorded result, the
others' results are right, the maximum is everyone's, reruns resume, regrades keep history."""

from __future__ import annotations

import json

import pytest
from batch_helpers import (
    CORRECT_ATTENTION,
    FAST,
    HOSTILE,
    NO_SCALE_ATTENTION,
    NO_SCALE_FAILS,
    need_sandbox,
    roster,
    student,
)

from grader.batch import coordinator, run_batch
from grader.out.gradebook import ERROR, GRADED, NO_SUBMISSION, Gradebook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    need_sandbox()
    base = tmp_path_factory.mktemp("hostile")
    class_dir = base / "class"
    student(class_dir, "alice", CORRECT_ATTENTION)
    student(class_dir, "bob", NO_SCALE_ATTENTION)
    for name, code in HOSTILE.items():
        student(class_dir, name, code)
    roster(base / "roster.csv", ["alice", "bob", *HOSTILE, "zoe"])
    out = base / "run"
    with pytest.MonkeyPatch.context() as mp:
        # Other engineers edit the grader while these tests run: keep the code out of the
        # fingerprint here, so that the resume tests see one run (the hash is tested below).
        mp.setattr(coordinator, "_VERDICT_CODE", ())
        report = run_batch(class_dir, out, roster=base / "roster.csv", **FAST)
        yield class_dir, out, report, mp


def _latest(out):
    """Student -> (grading, its check rows, its results), read while the book is open."""
    with Gradebook.open(out / "gradebook.sqlite", readonly=True) as book:
        return {sid: (g, g.checks(), g.result()) for sid, g in book.latest().items()}


def test_every_member_recorded_and_the_others_right(graded):
    class_dir, out, report, _ = graded
    latest = _latest(out)
    assert set(latest) == {"alice", "bob", *HOSTILE, "zoe"}
    alice, alice_checks, _ = latest["alice"]
    assert alice.status == GRADED and alice.score == alice.max_score > 0
    bob, bob_checks, _ = latest["bob"]
    assert {c.check_id for c in bob_checks if c.status == "failed"} == NO_SCALE_FAILS
    assert any(c.diagnosis_id for c in bob_checks if c.check_id == "sdpa_values")
    flood, _, flood_result = latest["flood"]  # a flood of prints costs only the log
    assert flood.score == flood.max_score
    assert len(flood_result.log) <= 70_000 and "bytes of output cut" in flood_result.log
    for name, status in (("loop", "timeout"), ("forkbomb", "timeout"), ("exit", "error")):
        g, checks, _ = latest[name]
        assert g.status == GRADED and g.score == 0
        assert {c.status for c in checks} == {status}, name
        assert all(c.message for c in checks)
    assert "did not finish within 5 s" in latest["loop"][1][0].message
    assert "exited" in latest["exit"][1][0].message or "stopped" in latest["exit"][1][0].message
    zoe, zoe_checks, _ = latest["zoe"]
    assert zoe.status == NO_SUBMISSION and zoe.score == 0
    assert all(c.message == "no submission" for c in zoe_checks)
    t = report.tally
    assert (t.graded, t.errors, t.timeouts, t.no_submission, t.skipped) == (3, 1, 2, 1, 0)


def test_the_maximum_is_the_same_for_everyone(graded):
    _, out, _, _ = graded
    latest = _latest(out)
    maxima = {sid: g.max_score for sid, (g, _, _) in latest.items()}
    assert len(set(maxima.values())) == 1, maxima
    checks = {sid: [(c.check_id, c.max_score) for c in rows]
              for sid, (_, rows, _) in latest.items()}
    assert len({tuple(v) for v in checks.values()}) == 1


def test_feedback_for_students(graded):
    _, out, _, _ = graded
    for sid in ["alice", "bob", *HOSTILE, "zoe"]:
        folder = out / "feedback" / sid
        html = (folder / "report.html").read_text()
        assert "<html" in html.lower() and (folder / "report.md").read_text().strip()
        data = json.loads((folder / "results.json").read_text())
        assert "seed" not in data["environment"]  # the run's secret inputs stay secret
        for a in data["assignments"]:
            for c in a["checks"]:
                if c["visibility"] == "hidden":
                    assert c["details"] == {} and c["message"] == "hidden check"
        full = json.loads((out / "results" / f"{sid}.json").read_text())
        assert full["score"] == data["score"]
    assert not list(out.glob("feedback/*/.*.tmp")), "no half-written file is left"


def test_rerun_grades_nothing_again(graded):
    class_dir, out, report, _ = graded
    before = _count(out)
    report_html = out / "feedback" / "alice" / "report.html"
    report_html.unlink()  # as if killed between the committed grading and its files
    (out / "results" / "zoe.json").unlink()
    again = run_batch(class_dir, out, roster=class_dir.parent / "roster.csv", **FAST)
    assert again.fingerprint == report.fingerprint
    assert again.tally.skipped == 7 and again.tally.graded == again.tally.errors == 0
    assert _count(out) == before
    assert "alice" in report_html.read_text() and (out / "results" / "zoe.json").is_file()


def test_regrade_one_student_keeps_history(graded):
    class_dir, out, _, _ = graded
    before = _count(out)
    run_batch(class_dir, out, roster=class_dir.parent / "roster.csv", students=["bob"], **FAST)
    with Gradebook.open(out / "gradebook.sqlite", readonly=True) as book:
        history = book.history("bob")
        assert len(history) == 2 and history[0].id < history[1].id
        assert history[0].score == history[1].score  # same seed, same verdicts
        assert book.latest()["bob"].id == history[1].id
        assert len(book.history("alice")) == 1
    assert _count(out) == before + 1


def test_regrade_failed_only(graded):
    class_dir, out, _, _ = graded
    with Gradebook.open(out / "gradebook.sqlite", readonly=True) as book:
        counts = {s.id: len(book.history(s.id)) for s in book.students()}
    report = run_batch(class_dir, out, roster=class_dir.parent / "roster.csv", regrade="failed",
                       **FAST)
    with Gradebook.open(out / "gradebook.sqlite", readonly=True) as book:
        after = {s.id: len(book.history(s.id)) for s in book.students()}
    regraded = {sid for sid in after if after[sid] > counts[sid]}
    assert regraded == {"loop", "forkbomb", "exit"}
    assert (report.tally.errors, report.tally.timeouts) == (1, 2)


def test_fingerprint_changes_with_what_decides_a_verdict(graded, tmp_path):
    class_dir, out, report, mp = graded
    opts = coordinator.BatchOptions(**{k: v for k, v in FAST.items()})
    job = coordinator._job_options(opts, tmp_path)
    base = coordinator._fingerprint_components(opts, job, ["attention"])
    opts.weights = {"attention": {"sdpa_values": 10}}
    assert coordinator._fingerprint_components(opts, job, ["attention"])["checks"] != \
        base["checks"]
    assert coordinator._tree_hash([coordinator._GRADER / "checks"]) != \
        coordinator._tree_hash([coordinator._GRADER / "diagnosis"])
    # more threads or jobs never make a new run
    assert base == coordinator._fingerprint_components(
        coordinator.BatchOptions(**FAST, jobs=3, threads=2), job, ["attention"])


def test_error_result_status(graded, tmp_path):
    """A submission that cannot be graded at all is an ERROR grading with its reason."""
    class_dir, _, _, _ = graded
    c = tmp_path / "class"
    (c / "empty").mkdir(parents=True)
    report = run_batch(c, tmp_path / "run", **FAST)
    with Gradebook.open(report.gradebook, readonly=True) as book:
        g = book.latest()["empty"]
        assert g.status == ERROR and "empty" in g.message
        assert g.max_score > 0 and all(c.status == "error" for c in g.checks())


def _count(out) -> int:
    with Gradebook.open(out / "gradebook.sqlite", readonly=True) as book:
        return len(book.gradings())


def test_students_whose_names_look_alike_keep_their_own_files(tmp_path):
    """"a b", "a_b" and "a?b" were all written to results/a_b.json and feedback/a_b/: two
    students' results were lost and one was sent another's report."""
    from grader.batch.layouts import file_name

    need_sandbox()
    class_dir = tmp_path / "class"
    student(class_dir, "a b", CORRECT_ATTENTION)
    student(class_dir, "a_b", NO_SCALE_ATTENTION)
    student(class_dir, "a?b", "raise ImportError('not done yet')\n")
    out = tmp_path / "run"
    run_batch(class_dir, out, **FAST)
    names = {sid: file_name(sid) for sid in ("a b", "a_b", "a?b")}
    assert len(set(names.values())) == 3 and names["a_b"] == "a_b"
    scores = {}
    for sid, name in names.items():
        full = json.loads((out / "results" / f"{name}.json").read_text())
        mine = json.loads((out / "feedback" / name / "results.json").read_text())
        assert full["submission"] == mine["submission"] == sid
        scores[sid] = full["score"]
    assert scores["a b"] == 16 and 0 < scores["a_b"] < 16 and scores["a?b"] == 0
    assert len(list((out / "results").glob("*.json"))) == 3


def test_file_names_are_one_per_id():
    from grader.batch.layouts import file_name

    ids = ["ann", "a b", "a_b", "a?b", "a__b", "", ".", "..", "x/../y", "Zoë", "zo_", "student"]
    names = [file_name(i) for i in ids]
    assert len(set(names)) == len(ids), names
    assert file_name("ann") == "ann" and file_name("a_b") == "a_b"
    assert all("/" not in n and n not in (".", "..") and n for n in names)
