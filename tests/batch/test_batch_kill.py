"""Killing a real `grader batch` midway (SIGTERM, then SIGKILL) loses nothing finished, leaves
no worker or temp directory, and the rerun ends with the gradebook an uninterrupted run makes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_helpers import (
    CORRECT_ATTENTION,
    EXAMPLES,
    FAST,
    HOSTILE,
    NO_SCALE_ATTENTION,
    need_sandbox,
    processes_mentioning,
    roster,
    student,
)

from grader.batch import run_batch
from grader.batch.cleanup import PREFIX
from grader.out.gradebook import Gradebook

pytestmark = pytest.mark.slow

STUDENTS = {
    "alice": CORRECT_ATTENTION,
    "bob": NO_SCALE_ATTENTION,
    "carol": HOSTILE["exit"],
    "dave": (EXAMPLES / "correct-einsum" / "attention.py").read_text(),
}


def _cli(class_dir: Path, out: Path, roster_csv: Path) -> list[str]:
    return [sys.executable, "-c", "from grader.cli import console; console()", "batch",
            str(class_dir), "--out", str(out),
            "--roster", str(roster_csv), "-a", "attention", "-j", "1", "--progress", "plain",
            "--seed", str(FAST["seed"]), "--timeout", str(FAST["call_timeout"]),
            "--total-timeout", str(FAST["total_timeout"])]


def _graded(out: Path) -> int:
    path = out / "gradebook.sqlite"
    if not path.exists():
        return 0
    try:
        with Gradebook.open(path, readonly=True) as book:
            return sum(g.submission is not None for g in book.gradings())
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _interrupt_after(cmd: list[str], out: Path, graded: int, sig: int) -> int:
    """Start the batch, send ``sig`` once ``graded`` submissions are recorded; returns its pid."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _graded(out) < graded:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.2)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code in ((130, 1) if sig == signal.SIGTERM else (-signal.SIGKILL,)), code
    return proc.pid


def _nothing_left(pid: int, class_dir: Path, out: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        left = processes_mentioning(str(class_dir)) + processes_mentioning(str(out))
        roots = list(Path("/tmp").glob(f"{PREFIX}{pid}-*"))
        if not left and not roots:
            return
        assert time.monotonic() < deadline, f"left behind: processes {left}, temp {roots}"
        time.sleep(0.2)


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    need_sandbox()
    class_dir = tmp_path / "class"
    for name, code in STUDENTS.items():
        student(class_dir, name, code)
    roster_csv = roster(tmp_path / "roster.csv", [*STUDENTS, "zoe"])

    whole = run_batch(class_dir, tmp_path / "whole", roster=roster_csv,
                      **{**FAST, "import_timeout": 60.0})
    with Gradebook.open(whole.gradebook, readonly=True) as book:
        expected = book.comparable()

    out = tmp_path / "killed"
    cmd = _cli(class_dir, out, roster_csv)
    pid = _interrupt_after(cmd, out, 1, signal.SIGTERM)
    _nothing_left(pid, class_dir, out)
    first = _graded(out)
    assert 1 <= first < len(STUDENTS)

    pid = _interrupt_after(cmd, out, first + 1, signal.SIGKILL)
    _nothing_left(pid, class_dir, out)
    assert _graded(out) >= first + 1

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Gradebook.open(out / "gradebook.sqlite", readonly=True) as book:
        assert book.comparable() == expected
        if len(book.runs()) == 1:  # (a grader file edited meanwhile makes a new run: regraded)
            for s in book.students():
                assert len(book.history(s.id)) == 1, f"{s.id} was graded twice"
    assert "skipped" in done.stdout
