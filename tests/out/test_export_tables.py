"""The CSV exports and the feedback release, from a gradebook of a small class whose results
are known (tests/out/test_export_fixtures.py), compared byte for byte with golden files.

Regenerate the golden files after an intended change with ``GRADER_UPDATE_GOLDEN=1`` and read
the diff before committing it.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

import pytest
from test_export_fixtures import DUE, make_gradebook

from grader.cli import main
from grader.out.exports.late import LatePolicy, lateness, parse_time
from grader.out.exports.tables import canvas, entries, moodle, safe, wide

GOLDEN = Path(__file__).parent / "golden"
FIXED_TIME = "2026-11-23T12:00:00+00:00"
POLICY = ["--due", DUE, "--penalty-per-day", "10", "--max-penalty", "30", "--cutoff-days", "5"]


@pytest.fixture
def book_path(tmp_path: Path, monkeypatch) -> Path:
    """The class's gradebook, with fixed grading times (so the golden files hold)."""
    import grader.out.gradebook as gradebook

    monkeypatch.setattr(gradebook, "now_iso", lambda: FIXED_TIME)
    path = tmp_path / "run" / "gradebook.sqlite"
    make_gradebook(path).close()
    return path


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GRADER_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.is_file(), f"no golden file {path}: run with GRADER_UPDATE_GOLDEN=1"
    assert text == path.read_bytes().decode("utf-8"), f"{name} differs from its golden file"


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("fmt, extra", [
    ("wide", []), ("wide", POLICY), ("canvas", []), ("canvas", POLICY),
    ("moodle", []), ("moodle", ["--identify", "idnumber"])])
def test_exports_match_their_golden_files(book_path: Path, tmp_path: Path, fmt: str,
                                          extra: list[str]) -> None:
    out = tmp_path / "out.csv"
    assert main(["export", fmt, str(book_path), "-o", str(out), *extra]) == 0
    first = out.read_bytes()
    assert main(["export", fmt, str(book_path.parent), "-o", str(out), *extra]) == 0
    assert out.read_bytes() == first  # deterministic; a run folder works as well as the file
    suffix = "-late" if "--due" in extra else ("-idnumber" if "idnumber" in extra else "")
    golden(f"{fmt}{suffix}.csv", first.decode("utf-8"))


def test_wide_table_numbers(book_path: Path) -> None:
    from grader.out.gradebook import Gradebook

    with Gradebook.open(book_path, readonly=True) as book:
        rows = parse(wide(entries(book)))
    assert rows[0]["student_id"] == "Points Possible" and rows[0]["total"] == "22"
    assert rows[0]["attention.sdpa_values"] == "3" and rows[0]["training"] == "10"
    by = {r["student_id"]: r for r in rows[1:]}
    assert list(by) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]  # roster
    assert {s: by[s]["total"] for s in by} == {"alice": "22", "bob": "14", "carol": "9",
                                                "dave": "10", "erin": "14", "frank": "16",
                                                "grace": "0"}
    assert by["bob"]["percent"] == "63.64" and by["bob"]["attention.sdpa_values"] == "0"
    assert by["grace"]["status"] == "no_submission" and by["grace"]["max"] == "22"
    assert by["grace"]["content_hash"] == "" and by["alice"]["content_hash"].startswith("sha256:")
    assert by["erin"]["attention.mha_gradients"] == "0"  # the timed-out hidden check
    assert by["dave"]["attention"] == "0" and by["dave"]["training"] == "10"


def test_late_policy_is_separate_columns_and_never_stored(book_path: Path) -> None:
    from grader.out.gradebook import Gradebook

    policy = LatePolicy(parse_time(DUE), per_day=0.1, cap=0.3, cutoff_days=5)
    with Gradebook.open(book_path, readonly=True) as book:
        rows = {r["student_id"]: r for r in parse(wide(entries(book), policy))[1:]}
        plain = {r["student_id"]: r for r in parse(wide(entries(book)))[1:]}
    # erin: 5 h late -> 1 day -> 10% of each assignment's possible points (1.2 + 1.0).
    assert (rows["erin"]["raw_total"], rows["erin"]["days_late"], rows["erin"]["penalty"],
            rows["erin"]["final"]) == ("14", "1", "2.2", "11.8")
    # frank: 44 h late with a 1-day extension -> 1 day late.
    assert rows["frank"]["days_late"] == "1" and rows["frank"]["final"] == "13.8"
    assert rows["bob"]["penalty"] == "0" and rows["grace"]["penalty"] == "0"
    assert rows["erin"]["total"] == "11.8" and plain["erin"]["total"] == "14"


def test_late_policy_rules() -> None:
    due = parse_time("2026-11-20T23:59:00Z")
    p = LatePolicy(due, per_day=0.25, cap=0.5, cutoff_days=3)
    assert lateness(p, "2026-11-20T23:59:00+00:00").share == 0  # on the dot: on time
    assert lateness(p, "2026-11-21T00:00:00+00:00").days_late == 1  # a started day
    assert lateness(p, "2026-11-23T00:00:00+00:00").share == 0.5  # 3 days: capped at 50%
    assert lateness(p, "2026-11-24T00:00:00+00:00").zero  # past the 3-day cut-off
    assert not lateness(p, "2026-11-24T00:00:00+00:00", extension=2).zero
    assert lateness(p, None).share == 0  # unknown time: never penalised
    assert lateness(p, "2026-11-21T00:30:00+01:00").share == 0  # zones are honoured
    with pytest.raises(ValueError):
        LatePolicy(due, per_day=10)  # 10 means 1000%: a share is 0..1


def test_lms_imports_use_the_roster_ids(book_path: Path) -> None:
    from grader.out.gradebook import Gradebook

    with Gradebook.open(book_path, readonly=True) as book:
        rows = entries(book)
    text, skipped = canvas(rows, names={"attention": "HW1 Attention (4521)"})
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                        "HW1 Attention (4521)", "training"]
    assert table[1] == ["Points Possible", "", "", "", "", "12", "10"]
    assert table[2] == ["Liddell, Alice", "101", "S001", "aliddell", "Section A", "12", "10"]
    assert not skipped.reasons
    # A student with no LMS id is left out and said, never guessed.
    rows[1].extra = {}
    text, skipped = canvas(rows)
    assert "Builder" not in text and "bob" in skipped.reasons
    text, skipped = moodle(rows, identify="email")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:4] == ["First name", "Last name", "ID number", "Email address"]
    assert table[2][:4] == ["Bob", "Builder", "bob", "bob@uni.example"]  # roster id stands in
    with pytest.raises(ValueError, match="unknown assignments"):
        canvas(rows, names={"atention": "x"})


def test_csv_cells_cannot_be_formulas() -> None:
    assert safe("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert safe("-1+2") == "'-1+2" and safe("@SUM(A1)") == "'@SUM(A1)"
    assert safe("Alice") == "Alice"


def test_feedback_release_hides_hidden_checks(book_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "fb"
    assert main(["export", "feedback", str(book_path), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alice", "bob", "carol", "dave", "erin",
                                                     "frank"]  # grace submitted nothing
    page = (out / "erin" / "report.md").read_text()
    assert "did not finish within 60 s" not in page  # hidden check: name and points only
    assert "MultiHeadAttention: input and parameter gradients" in page
    inst = tmp_path / "fb-instructor"
    assert main(["export", "feedback", str(book_path), "-o", str(inst),
                 "--audience", "instructor"]) == 0
    assert "did not finish within 60 s" in (inst / "erin" / "report.md").read_text()
    again = tmp_path / "fb2"
    assert main(["export", "feedback", str(book_path), "-o", str(again)]) == 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (again / p.relative_to(out)).read_bytes(), p


def test_feedback_release_in_lms_namings(book_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "canvas"
    assert main(["export", "feedback", str(book_path), "-o", str(out), "--naming", "canvas",
                 "--zip"]) == 0
    names = zipfile.ZipFile(out / "feedback.zip").namelist()
    assert "liddellalice_101_0_report.html" in names and len(names) == 12
    out = tmp_path / "moodle"
    assert main(["export", "feedback", str(book_path), "-o", str(out), "--naming", "moodle",
                 "--zip"]) == 0
    # The fixture roster has no Moodle participant ids: plain names, one zip per student.
    assert sorted(p.name for p in out.iterdir())[0] == "alice.zip"
    with zipfile.ZipFile(out / "alice.zip") as zf:
        assert sorted(zf.namelist()) == ["alice/report.html", "alice/report.md"]


def test_bad_input_is_a_clear_message(tmp_path: Path, capsys) -> None:
    assert main(["export", "wide", str(tmp_path / "none.sqlite"), "-o", "x.csv"]) == 2
    assert "no gradebook" in capsys.readouterr().err
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    assert main(["export", "wide", str(junk), "-o", "x.csv"]) == 2
    assert main(["export", "wide", str(junk), "-o", "x.csv", "--penalty-per-day", "5"]) == 2
    assert "needs --due" in capsys.readouterr().err
