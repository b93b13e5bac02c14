"""The gradebook on its own: schema, history, the grading that counts, bounds, migrations."""

from __future__ import annotations

import sqlite3

import pytest

from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult
from grader.out import gradebook as gbm
from grader.out.gradebook import Gradebook, GradebookError, Student


def _result(content: str, score: float, *, details=None) -> SubmissionResult:
    checks = [CheckResult("values", "values", Status.PASSED if score else Status.FAILED, score,
                          3.0, "" if score else "wrong", details=details or {}),
              CheckResult("shapes", "shapes", Status.PASSED, 2.0, 2.0)]
    return SubmissionResult("x", [AssignmentResult("attention", checks, title="Attention")],
                            submission_id=content, grader_version="t", seconds=1.5,
                            environment={"seed": 7})


def _run(book: Gradebook, fp: str = "fp") -> gbm.Run:
    return book.run_for(fp, grader_version="t", components={"x": fp}, options={}, seed="11")


def test_record_and_read_back(tmp_path):
    with Gradebook.open(tmp_path / "g.sqlite") as book:
        book.set_roster([Student("a", "Ann", "ann@x", "S1"), Student("b", "Ben")])
        run = _run(book)
        mistake = {"likely_mistake": {"id": "no_scale", "name": "missing 1/sqrt(d_k)"}}
        g = book.record("a", _result("h1", 0.0, details=mistake), run, files=["attention.py"],
                        received_at="2026-01-01T00:00:00+00:00", late=True,
                        metadata={"layout": "canvas"})
        assert (g.score, g.max_score, g.status) == (2.0, 5.0, gbm.GRADED)
        assert g.submission.late is True and g.submission.files == ("attention.py",)
        rows = g.checks()
        assert [r.check_id for r in rows] == ["values", "shapes"]
        assert rows[0].diagnosis_id == "no_scale" and rows[1].diagnosis_id is None
        back = g.result()
        assert back.to_dict()["assignments"] == _result("h1", 0.0, details=mistake).to_dict()[
            "assignments"]
        assert back.submission_id == "h1" and back.environment == {"seed": 7}
    with Gradebook.open(tmp_path / "g.sqlite", readonly=True) as book:
        assert [s.id for s in book.students()] == ["a", "b"]
        assert book.journal_mode() == "wal"
        with pytest.raises(GradebookError, match="read-only"):
            book.ensure_student("c")


def test_history_kept_and_latest_counts_unless_chosen(tmp_path):
    with Gradebook.open(tmp_path / "g.sqlite") as book:
        run1, run2 = _run(book, "one"), _run(book, "two")
        assert _run(book, "one").id == run1.id and book.run(run1.id).seed == "11"
        first = book.record("a", _result("h1", 0.0), run1, files=[], received_at="t")
        book.record("a", _result("h2", 3.0), run1, files=[], received_at="t")
        regraded = book.record("a", _result("h2", 3.0), run2, files=[], received_at="t")
        assert [g.id for g in book.history("a")] == [first.id, first.id + 1, regraded.id]
        assert len(book.submissions("a")) == 2  # h2 graded twice is one submission version
        assert book.latest()["a"].id == regraded.id
        assert book.latest(run1.id)["a"].content_hash == "h2"
        book.choose("a", first.id, note="academic integrity: first version counts")
        assert book.latest()["a"].id == first.id
        assert book.latest(honour_choices=False)["a"].id == regraded.id
        with pytest.raises(ValueError):
            book.choose("b", first.id)
        book.choose("a", None)
        assert book.latest()["a"].id == regraded.id
        assert set(book.graded(run1.id)) == {("a", "h1"), ("a", "h2")}


def test_no_submission_has_the_full_maximum(tmp_path):
    with Gradebook.open(tmp_path / "g.sqlite") as book:
        book.set_roster([Student("a"), Student("z")])
        run = _run(book)
        book.record("a", _result("h1", 3.0), run, files=[], received_at="t")
        g = book.record_no_submission("z", _result("", 0.0), run)
        assert g.status == gbm.NO_SUBMISSION and g.submission is None
        latest = book.latest()
        assert latest["z"].max_score == latest["a"].max_score == 5.0
        # a later real submission beats the recorded zero
        book.record("z", _result("h9", 3.0), run, files=[], received_at="t")
        assert book.latest()["z"].content_hash == "h9"


def test_one_transaction_per_submission(tmp_path):
    """A failure in the middle of recording leaves nothing of that submission behind."""
    with Gradebook.open(tmp_path / "g.sqlite") as book:
        run = _run(book)
        bad = _result("h1", 3.0)
        bad.assignments[0].checks[1].status = "not a status"  # fails while inserting the checks
        with pytest.raises(AttributeError):
            book.record("a", bad, run, files=[], received_at="t")
        assert book.gradings() == [] and book.submissions() == []


def test_details_are_bounded(tmp_path):
    with Gradebook.open(tmp_path / "g.sqlite") as book:
        run = _run(book)
        huge = {"curve": list(range(200_000)),
                "likely_mistake": {"id": "m", "name": "M"}, "max_abs_diff": 0.5}
        g = book.record("a", _result("h", 0.0, details=huge), run, files=[], received_at="t")
        details = g.result().assignments[0].checks[0].details
        assert "curve" not in details and details["max_abs_diff"] == 0.5
        assert details["likely_mistake"]["id"] == "m" and "truncated" in details


def test_schema_version_and_refusals(tmp_path):
    path = tmp_path / "g.sqlite"
    Gradebook.open(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == gbm.SCHEMA_VERSION
    db.execute(f"PRAGMA user_version={gbm.SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(GradebookError, match="newer"):
        Gradebook.open(path)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(GradebookError, match="not a gradebook"):
        Gradebook.open(other)
    (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(GradebookError):
        Gradebook.open(tmp_path / "junk.sqlite")
    with pytest.raises(GradebookError, match="no gradebook"):
        Gradebook.open(tmp_path / "absent.sqlite", readonly=True)


def test_migrations_run_in_order(tmp_path, monkeypatch):
    """A file of an older schema is upgraded on open, in one transaction per step."""
    def add_notes(db):
        db.execute("CREATE TABLE notes (student_id TEXT, text TEXT)")

    path = tmp_path / "g.sqlite"
    Gradebook.open(path).close()
    monkeypatch.setattr(gbm, "MIGRATIONS", [*gbm.MIGRATIONS, add_notes])
    monkeypatch.setattr(gbm, "SCHEMA_VERSION", gbm.SCHEMA_VERSION + 1)
    with Gradebook.open(path) as book:
        assert book.schema_version == gbm.SCHEMA_VERSION
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    db.close()
