"""`grader run` on the layouts students and LMSs produce: the modules one folder down, a folder
of student folders, a single module or notebook file, a notebook cell that fails without
costing a graded name; and the help texts."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from conftest import CORRECT

from grader.cli import build_parser, main

RUN = ["--threads", "1", "--color", "never"]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_modules_one_folder_down_are_found_and_said_where(tmp_path, capsys):
    (tmp_path / "nested" / "hw").mkdir(parents=True)
    shutil.copy(CORRECT / "attention.py", tmp_path / "nested" / "hw")
    (tmp_path / "nested" / "__MACOSX").mkdir()  # what a zip from a Mac brings along
    assert main(["run", str(tmp_path / "nested"), "-a", "attention", *RUN]) == 0
    out = capsys.readouterr().out
    assert "found them in hw/" in _flat(out)
    assert "attention  16/16" in out and "empty" not in out


def test_a_folder_of_student_folders_points_to_batch_grading(tmp_path, capsys):
    for student in ("alice", "bob", "carol"):
        (tmp_path / "class" / student).mkdir(parents=True)
        shutil.copy(CORRECT / "attention.py", tmp_path / "class" / student)
    assert main(["run", str(tmp_path / "class"), *RUN]) == 2
    err = _flat(capsys.readouterr().err)
    assert "a folder of 3 student submissions (alice, bob, carol)" in err
    assert f"grader batch {tmp_path / 'class'}" in err


def test_a_single_module_file_is_graded_alone(tmp_path, capsys):
    folder = tmp_path / "hw"  # pytest's tmp_path is 0700: the sandbox's uid could not read it
    folder.mkdir()
    shutil.copy(CORRECT / "attention.py", folder)
    assert main(["run", str(folder / "attention.py"), *RUN]) == 0
    out = capsys.readouterr().out
    assert "attention  16/16" in out
    assert "causal_mask" not in out and "missing" not in out  # only what was given is graded
    assert "grading the single file attention.py" in _flat(out)


def test_a_file_that_is_no_assignment_gets_a_precise_message(tmp_path, capsys):
    shutil.copy(CORRECT / "attention.py", tmp_path / "attenton.py")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["run", str(tmp_path / "attenton.py"), *RUN]) == 2
    assert "attenton.py is not an assignment module (did you mean attention.py?)" in \
        capsys.readouterr().err
    assert main(["run", str(tmp_path / "notes.txt"), *RUN]) == 2
    err = _flat(capsys.readouterr().err)
    assert "is a file, not a submission: pass the folder" in err
    assert main(["run", str(tmp_path / "nope"), *RUN]) == 2
    assert "submission folder not found" in capsys.readouterr().err


def _notebook(tmp_path, extra_cell: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Attention"),
                nbformat.v4.new_code_cell((CORRECT / "attention.py").read_text()),
                nbformat.v4.new_markdown_cell("Let us look at it."),
                nbformat.v4.new_code_cell(extra_cell, execution_count=7)]
    (tmp_path / "nb").mkdir()
    path = tmp_path / "nb" / "attention.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_single_notebook_file_is_graded_and_a_failing_cell_is_a_warning(tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    path = _notebook(tmp_path, "plot(weights)  # a plot the grader has no library for")
    assert main(["run", str(path), *RUN]) == 0
    out = capsys.readouterr().out
    assert "attention  16/16" in out and "causal_mask" not in out
    # The cell defines nothing graded, so no check fails: the warning is the only trace, with
    # the number a Jupyter user sees (code cells only; the In [n] the file stores).
    warning = next(line for line in out.splitlines() if line.startswith("warning:"))
    assert "attention.ipynb, code cell 2 (In [7], `plot(weights)" in warning
    assert "raised NameError" in warning


def test_run_help_says_modules_or_notebooks_and_helps_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = _flat(capsys.readouterr().out)
    assert "notebook" in text and "single module or notebook file" in text
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    undocumented = [a.dest for a in run._actions if not a.help]
    assert undocumented == []
    isolation = next(a for a in run._actions if a.dest == "isolation")
    color = next(a for a in run._actions if a.dest == "color")
    assert "bubblewrap" in isolation.help and "terminal" in color.help


def test_checks_and_quiz_commands_have_descriptions(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert commands["checks"].description and "--hidden" in commands["checks"].description
    quiz = commands["quiz"]._subparsers._group_actions[0].choices
    for name in ("list", "take"):
        assert quiz[name].description and "grader quiz list" in (
            quiz[name].description + " ".join(a.help or "" for a in quiz[name]._actions))


def test_locate_goes_two_folders_down_and_names_an_ambiguity(tmp_path):
    from grader.intake.discover import NotASubmission, locate

    modules = ["attention", "block"]
    deep = tmp_path / "zip" / "student" / "hw"
    deep.mkdir(parents=True)
    (deep / "block.py").write_text("")
    found = locate(tmp_path / "zip", modules)
    assert found.root == deep and "found them in student/hw/" in found.note
    assert locate(deep, modules).note == ""  # given directly: nothing to say
    (tmp_path / "zip" / "student" / "old").mkdir()
    (tmp_path / "zip" / "student" / "old" / "attention.py").write_text("")
    with pytest.raises(NotASubmission, match=r"several folders \(student/hw/, student/old/\)"):
        locate(tmp_path / "zip", modules)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert locate(empty, modules).root == empty  # discovery then says what is missing


def test_a_helper_folder_beside_the_modules_does_not_mislead_the_search(tmp_path, capsys):
    # Any .py counts before the checks are imported: the exact look must correct the guess.
    (tmp_path / "zip" / "hw").mkdir(parents=True)
    (tmp_path / "zip" / "helpers").mkdir()
    (tmp_path / "zip" / "helpers" / "utils.py").write_text("X = 1\n")
    shutil.copy(CORRECT / "attention.py", tmp_path / "zip" / "hw")
    assert main(["run", str(tmp_path / "zip"), "-a", "attention", *RUN]) == 0
    out = capsys.readouterr().out
    assert "found them in hw/" in _flat(out) and "attention  16/16" in out
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "helpers").mkdir()
    (tmp_path / "only" / "helpers" / "utils.py").write_text("X = 1\n")
    assert main(["run", str(tmp_path / "only"), "-a", "attention", *RUN]) == 0
    assert "attention.py is missing" in capsys.readouterr().out
