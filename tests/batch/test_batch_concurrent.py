"""Two `grader batch` processes started independently at once: their workers run under
different uids (each concurrent job holds its own slot host-wide), and LMS layouts grade end to
end (a Canvas download in one, a Moodle download in the other, each mapped to its roster)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest
from batch_helpers import CORRECT_ATTENTION, FAST, need_sandbox

from grader.out.gradebook import Gradebook

pytestmark = pytest.mark.slow

# Says who it runs as, then holds its slot long enough for the other batch to start.
SPY = "import os, time\nprint('RUNNING AS UID', os.getuid(), flush=True)\ntime.sleep(4)\n" \
      + CORRECT_ATTENTION


def _batch(class_dir, out, roster_csv):
    return subprocess.Popen(
        [sys.executable, "-c", "from grader.cli import console; console()", "batch",
         str(class_dir), "--out", str(out), "--roster", str(roster_csv), "-a", "attention",
         "-j", "1", "--progress", "plain", "--seed", str(FAST["seed"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_batches_use_different_uids(tmp_path):
    need_sandbox()
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    (canvas / "smithjohn_late_12345_67890_attention.py").write_text(SPY)
    canvas_roster = tmp_path / "canvas.csv"
    canvas_roster.write_text("Student,ID,SIS User ID,Section\nJohn Smith,12345,js01,A\n"
                             "Ann Other,999,ao02,A\n")
    moodle = tmp_path / "moodle"
    (moodle / "Jane Doe_4242_assignsubmission_file_").mkdir(parents=True)
    (moodle / "Jane Doe_4242_assignsubmission_file_" / "attention.py").write_text(SPY)
    moodle_roster = tmp_path / "moodle.csv"
    moodle_roster.write_text("ID number,Full name,Email address\njd-7,Jane Doe,jane@uni.edu\n")

    a = _batch(canvas, tmp_path / "run-a", canvas_roster)
    b = _batch(moodle, tmp_path / "run-b", moodle_roster)
    for p in (a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    with Gradebook.open(tmp_path / "run-a" / "gradebook.sqlite", readonly=True) as book:
        latest = book.latest()
        john = latest["12345"]  # the roster's ID column, matched by the Canvas sortable name
        assert john.score == john.max_score and john.submission.late is True
        assert latest["999"].status == "no_submission"
        log_a, span_a = john.result().log, (john.started_at, john.finished_at)
    with Gradebook.open(tmp_path / "run-b" / "gradebook.sqlite", readonly=True) as book:
        jane = book.latest()["jd-7"]  # matched by the Moodle full name
        assert jane.score == jane.max_score
        assert jane.submission.metadata["layout"] == "moodle"
        log_b, span_b = jane.result().log, (jane.started_at, jane.finished_at)

    uid_a = int(log_a.split("RUNNING AS UID")[1].split()[0])
    uid_b = int(log_b.split("RUNNING AS UID")[1].split()[0])
    assert uid_a != uid_b and uid_a != 0 and uid_b != 0
    # they really ran at the same time
    start = max(datetime.fromisoformat(span_a[0]), datetime.fromisoformat(span_b[0]))
    end = min(datetime.fromisoformat(span_a[1]), datetime.fromisoformat(span_b[1]))
    assert start < end, (span_a, span_b)
