"""End to end on a tiny real class: ``grader batch`` grades it, then every export and the class
summary are made from its gradebook (the unit tests build gradebooks without grading)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from grader.cli import main

ROOT = Path(__file__).resolve().parents[2]
ROSTER = """\
id,name,email,canvas user id,section
ann,"Ames, Ann",ann@uni.example,201,A
ben,"Berg, Ben",ben@uni.example,202,A
cat,"Cole, Cat",cat@uni.example,203,B
dan,"Diaz, Dan",dan@uni.example,204,B
"""


@pytest.mark.slow
def test_batch_then_exports_and_summary(tmp_path: Path, capsys) -> None:
    class_dir = tmp_path / "class"
    for sid, example in (("ann", "correct"), ("ben", "buggy-attention-no-scale"),
                         ("cat", None)):
        (class_dir / sid).mkdir(parents=True)
        if example:
            shutil.copy(ROOT / "examples" / example / "attention.py",
                        class_dir / sid / "attention.py")
        else:
            (class_dir / sid / "notes.txt").write_text("forgot the file")
    (tmp_path / "roster.csv").write_text(ROSTER)
    run = tmp_path / "run"
    code = main(["batch", str(class_dir), "--out", str(run), "--roster",
                 str(tmp_path / "roster.csv"), "-a", "attention", "--isolation", "auto",
                 "--progress", "none", "-j", "2"])
    assert code == 0, capsys.readouterr()

    out = tmp_path / "wide.csv"
    assert main(["export", "wide", str(run), "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["student_id"] for r in rows] == ["Points Possible", "ann", "ben", "cat", "dan"]
    by = {r["student_id"]: r for r in rows}
    full = by["Points Possible"]["total"]
    assert by["ann"]["total"] == full and by["ann"]["status"] == "graded"
    assert 0 < float(by["ben"]["total"]) < float(full)
    assert by["ben"]["attention.sdpa_values"] == "0"
    assert by["cat"]["total"] == "0" and by["dan"]["status"] == "no_submission"
    assert by["ann"]["content_hash"] and not by["dan"]["content_hash"]

    canvas = tmp_path / "canvas.csv"
    assert main(["export", "canvas", str(run), "-o", str(canvas)]) == 0
    table = list(csv.reader(io.StringIO(canvas.read_text())))
    assert table[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert table[1][0] == "Points Possible" and [r[1] for r in table[2:]] == ["201", "202",
                                                                              "203", "204"]
    assert main(["export", "moodle", str(run), "-o", str(tmp_path / "moodle.csv")]) == 0
    fb = tmp_path / "fb"
    assert main(["export", "feedback", str(run), "-o", str(fb)]) == 0
    assert sorted(p.name for p in fb.iterdir()) == ["ann", "ben", "cat"]

    summary = tmp_path / "summary"
    # The files are found where the batch found them: no --class-dir needed.
    assert main(["summary", str(run), "-o", str(summary),
                 "--stubs", str(ROOT / "assignments")]) == 0
    printed = capsys.readouterr().out
    assert "3/4 submitted" in printed and "sqrt(d_k)" in printed
    assert "similar pairs to look at: 1" in printed  # ann's and ben's differ by one scale
    md = (summary / "summary.md").read_text()
    assert "1 student(s): ben" in md and "attention: cat" in md
