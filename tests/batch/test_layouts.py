"""Input layouts and the roster, without grading: each layout maps its files to students."""

from __future__ import annotations

import os
import zipfile

import pytest

from grader.batch import layouts
from grader.batch.coordinator import _assign_students
from grader.batch.executors import choose_parallelism
from grader.batch.roster import RosterError, match, read_roster

MODULES = ["attention", "causal_mask", "block", "training", "kv_cache", "gpt2_loading"]


def _find(class_dir, tmp_path, layout="auto", **kw):
    return layouts.find(class_dir, layout, staging=tmp_path / "staging", modules=MODULES, **kw)


def test_folders(tmp_path):
    c = tmp_path / "class"
    (c / "alice").mkdir(parents=True)
    (c / "alice" / "attention.py").write_text("x = 1\n")
    (c / "bob" / "nested").mkdir(parents=True)
    (c / "bob" / "nested" / "attention.py").write_text("x = 2\n")
    (c / "empty").mkdir()
    (c / ".hidden").mkdir()
    (c / "run").mkdir()  # the run folder inside the class folder is not a student
    assert layouts.detect(c) == "folders"
    entries = _find(c, tmp_path, exclude=[c / "run"])
    assert [e.student_id for e in entries] == ["alice", "bob", "empty"]
    assert entries[0].files == ["attention.py"] and entries[0].path == c / "alice"
    assert entries[1].files == ["nested/attention.py"]
    assert entries[2].problem == "the student's folder is empty"


def test_canvas_names_late_and_resubmissions(tmp_path):
    c = tmp_path / "class"
    c.mkdir()
    (c / "smithjohn_12345_67890_attention.py").write_text("a = 1\n")
    (c / "smithjohn_12345_67891_block-1.py").write_text("b = 1\n")  # resubmitted file
    (c / "doejane_late_222_333_attention.py").write_text("a = 2\n")
    (c / "doejane_LATE_222_334_notes-2.txt").write_text("kept as named\n")
    os.utime(c / "doejane_late_222_333_attention.py", (1_700_000_000, 1_700_000_000))
    assert layouts.detect(c) == "canvas"
    entries = {e.student_id: e for e in _find(c, tmp_path)}
    john, jane = entries["canvas-12345"], entries["canvas-222"]
    assert john.files == ["attention.py", "block.py"] and john.late is False
    assert john.name == "smithjohn" and john.keys["canvas_user_id"] == "12345"
    assert john.metadata["lms_submission_ids"] == ["67890", "67891"]
    assert (john.path / "attention.py").read_text() == "a = 1\n"
    assert jane.late is True and jane.files == ["attention.py", "notes-2.txt"]
    # the staged copy keeps the file's time (the received time, and a stable content hash)
    assert os.stat(jane.path / "attention.py").st_mtime == 1_700_000_000


def test_moodle_folders_and_flat_files(tmp_path):
    c = tmp_path / "class"
    (c / "John Smith_4242_assignsubmission_file_").mkdir(parents=True)
    (c / "John Smith_4242_assignsubmission_file_" / "attention.py").write_text("a\n")
    (c / "John Smith_4242_assignsubmission_onlinetext_").mkdir()
    (c / "Jane Doe_77_assignsubmission_file_attention.py").write_text("b\n")
    assert layouts.detect(c) == "moodle"
    entries = {e.student_id: e for e in _find(c, tmp_path)}
    assert set(entries) == {"moodle-4242", "moodle-77"}
    assert entries["moodle-4242"].name == "John Smith"
    assert entries["moodle-4242"].files == ["attention.py"]
    assert entries["moodle-77"].files == ["attention.py"]


def test_nbgrader_tree_with_timestamps(tmp_path):
    c = tmp_path / "course"
    folder = c / "submitted" / "alice" / "ps1"
    folder.mkdir(parents=True)
    (folder / "attention.ipynb").write_text("{}")
    (folder / "timestamp.txt").write_text("2026-11-30 12:34:56.789012 UTC\n")
    (c / "submitted" / "bob" / "ps1").mkdir(parents=True)
    (c / "submitted" / "bob" / "ps1" / "attention.py").write_text("x\n")
    assert layouts.detect(c) == "nbgrader"
    entries = {e.student_id: e for e in _find(c, tmp_path)}
    assert entries["alice"].submitted_at == "2026-11-30T12:34:56+00:00"
    assert entries["alice"].files == ["attention.ipynb"]
    assert entries["bob"].submitted_at is None
    assert {e.student_id for e in _find(c / "submitted", tmp_path, "nbgrader")} == {"alice",
                                                                                  "bob"}
    (c / "submitted" / "bob" / "ps2").mkdir()
    with pytest.raises(layouts.LayoutError, match="--nbgrader-assignment"):
        _find(c, tmp_path)
    assert {e.student_id for e in _find(c, tmp_path, nbgrader_assignment="ps2")} == {"bob"}


def test_one_file_per_student_and_unsafe_zips(tmp_path):
    c = tmp_path / "class"
    c.mkdir()
    (c / "alice.ipynb").write_text("{}")
    with zipfile.ZipFile(c / "bob.zip", "w") as zf:
        zf.writestr("hw/attention.py", "ok = 1\n")
        zf.writestr("../escape.py", "evil\n")
        zf.writestr("__MACOSX/._attention.py", "junk\n")
    with zipfile.ZipFile(c / "carol.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\0" * (layouts.ZIP_MAX_BYTES + 1))
    assert layouts.detect(c) == "files"
    entries = {e.student_id: e for e in _find(c, tmp_path)}
    assert entries["alice"].files == ["alice.ipynb"]
    assert entries["bob"].files == ["hw/attention.py"]
    assert not (tmp_path / "staging" / "escape.py").exists()
    assert "not unpacked" in entries["carol"].problem and entries["carol"].files == []
    (c / "dave.py").write_text("x = 1\n")
    with pytest.raises(layouts.LayoutError, match="-a NAME"):
        _find(c, tmp_path, "files")
    one = layouts.find(c, "files", staging=tmp_path / "s2", modules=["attention"])
    assert {e.student_id: e.files for e in one}["dave"] == ["attention.py"]


def test_roster_columns_and_matching(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffStudent ID;First Name;Last Name;Email Address;Section;Canvas User ID;"
                      "Extension Days\n"
                      "s1;John;Smith;john@uni.edu;A;12345;2\n"
                      "s2;Jane;Doe;jane@uni.edu;B;;\n"
                      "s3;Zoë;Ünal;zoe@uni.edu;B;;\n", encoding="utf-8")
    students = read_roster(roster)
    assert [s.id for s in students] == ["s1", "s2", "s3"]
    john = students[0]
    assert (john.name, john.email, john.section) == ("John Smith", "john@uni.edu", "A")
    assert john.extra["extension days"] == "2"
    assert match(students, "canvas-12345", {"canvas_user_id": "12345"}) is john
    assert match(students, "canvas-9", {"sortable_name": "doejane"}).id == "s2"
    assert match(students, "moodle-5", {"name": "Zoe Unal"}).id == "s3"
    assert match(students, "jane", {}).id == "s2"  # the email's user name
    assert match(students, "s1", {}) is john
    assert match(students, "nobody", {"name": "Nobody Here"}) is None
    bad = tmp_path / "bad.csv"
    bad.write_text("name,email\nA,a@x\n")
    with pytest.raises(RosterError, match="no student id column"):
        read_roster(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,name\na,A\na,B\n")
    with pytest.raises(RosterError, match="already on line 2"):
        read_roster(dup)


def test_entries_mapped_to_roster_newest_wins(tmp_path):
    roster_file = tmp_path / "r.csv"
    roster_file.write_text("id,name\ns1,John Smith\n")
    roster = read_roster(roster_file)
    e1 = layouts.Entry("canvas-1", "smithjohn", tmp_path, ["a.py"], "old", "canvas",
                       "2026-01-01T00:00:00+00:00", keys={"sortable_name": "smithjohn"})
    e2 = layouts.Entry("s1", "", tmp_path, ["a.py"], "new", "folders",
                       "2026-01-02T00:00:00+00:00")
    e3 = layouts.Entry("stranger", "", tmp_path, ["a.py"], "x", "folders", "t")
    entries, notes = _assign_students([e1, e2, e3], roster)
    assert sorted(e.student_id for e in entries) == ["s1", "stranger"]
    assert next(e for e in entries if e.student_id == "s1").source == "new"
    assert any("two submissions for s1" in n for n in notes)
    assert any("not on the roster" in n and "stranger" in n for n in notes)


def test_parallelism_never_oversubscribes():
    p = choose_parallelism(cores=2, memory=64 * 2**30)
    assert (p.jobs, p.threads) == (2, 1)
    p = choose_parallelism(cores=8, memory=3 * 2**30)  # memory-bound: two jobs, 4 threads each
    assert (p.jobs, p.threads) == (2, 4)
    p = choose_parallelism(cores=8, memory=64 * 2**30, pending=1)
    assert (p.jobs, p.threads) == (1, 8)
    p = choose_parallelism(jobs=3, cores=2, memory=64 * 2**30)
    assert (p.jobs, p.threads) == (3, 1)
    for cores in range(1, 17):
        for mem in (2**30, 8 * 2**30, 2**40):
            p = choose_parallelism(cores=cores, memory=mem)
            assert p.jobs * p.threads <= cores
