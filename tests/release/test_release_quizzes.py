"""The student bundle ships the quiz banks, so that `grader quiz` works from a released bundle,
and never an answer sheet kept beside the banks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helper import shared_bundle
from conftest import ROOT

from grader.release.bundle import SHEET_MARK, ship_quizzes

QUIZZES = ROOT / "quizzes"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return shared_bundle(tmp_path_factory)


def _banks(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.yaml"))


def test_ship_quizzes_copies_the_banks_and_never_a_sheet(tmp_path):
    source = tmp_path / "quizzes"
    source.mkdir()
    (source / "bank.yaml").write_text("title: A bank\n")
    (source / "midterm-key.yaml").write_text(f"format: {SHEET_MARK}/2\nanswers: [42]\n")
    (source / "notes.txt").write_text("not yaml")
    (source / "keys").mkdir()
    (source / "keys" / "k.yaml").write_text("title: hidden\n")
    written = ship_quizzes(tmp_path / "out", source)
    assert [p.name for p in written] == ["bank.yaml"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bank.yaml"]
    assert ship_quizzes(tmp_path / "none", tmp_path / "missing") == []


def test_the_bundle_holds_the_repositorys_banks(bundle):
    assert _banks(QUIZZES), "the repository has quiz banks"
    assert _banks(bundle / "quizzes") == _banks(QUIZZES)
    for name in _banks(QUIZZES):
        assert (bundle / "quizzes" / name).read_text() == (QUIZZES / name).read_text()
    import json

    info = json.loads((bundle / "grader" / "bundle.json").read_text())
    assert sorted(info["quizzes"]) == sorted(Path(n).stem for n in _banks(QUIZZES))


def _in_bundle(bundle: Path, tmp_path: Path, *args: str, stdin: str = ""):
    env = {k: v for k, v in os.environ.items() if k != "GRADER_QUIZZES"}
    env.update(PYTHONPATH=str(bundle), GRADER_QUIZ_STORE=str(tmp_path / "quiz.sqlite"),
               GRADER_LEARNER="student")
    return subprocess.run([sys.executable, "-m", "grader", "quiz", *args], cwd=tmp_path,
                          env=env, input=stdin, capture_output=True, text=True, timeout=300)


def test_quiz_practice_works_from_a_released_bundle(bundle, tmp_path):
    listed = _in_bundle(bundle, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    bank = "gpt-from-scratch"
    assert bank in listed.stdout
    done = _in_bundle(bundle, tmp_path, "practice", bank, "-n", "1", "--seed", "1",
                      stdin="skip\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Quiz practice for student: 1 question" in done.stdout
    assert "Traceback" not in done.stderr
    assert (tmp_path / "quiz.sqlite").is_file()  # the attempt was recorded
