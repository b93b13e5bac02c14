"""Answer sheets: take → fill in → grade, into the results model and its JSON."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from grader.model.results import Status, SubmissionResult
from grader.quiz import cli as quiz_cli
from grader.quiz.answers import example_answer, wrong_answer
from grader.quiz.bank import load_banks
from grader.quiz.cli import main
from grader.quiz.instance import instantiate
from grader.quiz.sheets import (
    SheetError,
    grade_sheet,
    make_sheet,
    sheet_seed,
    sheet_stream,
)

REPO = Path(__file__).resolve().parents[2]
QUIZZES = REPO / "quizzes"
BANKS = load_banks(QUIZZES)
BY_ID = {q.id: q for b in BANKS for q in b.questions}
BY_BANK = {b.name: b for b in BANKS}


def graded(bank: str) -> int:
    """Questions of a bank that go on a sheet (self-graded cards are practice only)."""
    return sum(1 for q in BY_BANK[bank].questions if q.kind != "recall")
Q = ["--quizzes", str(QUIZZES)]


def sheet_inst(qid: str, learner: str, attempt: int, sheet_id: str = "default"):
    """The variant a sheet shows (the sheet's own seed stream)."""
    return instantiate(BY_ID[qid], sheet_seed(sheet_id, learner, qid, attempt),
                       sheet_stream(sheet_id))


def fill(sheet_text: str, answers: dict[str, str]) -> str:
    """Fill in answers the way a person edits the file: on the 'answer:' line of each question."""
    out, current = [], None
    for line in sheet_text.splitlines():
        m = re.match(r"- id: (\S+)$", line)
        if m:
            current = m.group(1)
        if line == "  answer:" and current in answers:
            line = f"  answer: {answers[current]}"
        out.append(line)
    return "\n".join(out) + "\n"


def test_take_fill_grade_round_trip(tmp_path, capsys):
    sheet = tmp_path / "alice.yaml"
    assert main(["take", "phase2-checkpoint", "training-dynamics", "--out", str(sheet),
                 "--learner", "alice", "--attempt", "2", *Q]) == 0
    assert "Wrote" in capsys.readouterr().out
    text = sheet.read_text()
    data = yaml.safe_load(text)
    assert data["learner"] == "alice" and data["attempt"] == 2
    assert data["banks"] == ["phase2-checkpoint", "training-dynamics"]
    entries = data["questions"]
    assert len(entries) == graded("phase2-checkpoint") + graded("training-dynamics")
    assert all(e["answer"] is None for e in entries)

    plan: dict[str, str] = {}
    answers: dict[str, str] = {}
    for i, e in enumerate(entries):
        inst = sheet_inst(e["id"], "alice", 2)
        assert e["variant"] == inst.variant and e["question"] == inst.prompt
        if inst.choices:
            assert list(e["choices"].values()) == inst.choices
        kind = ["right", "right", "wrong", "unreadable", "blank"][i % 5]
        plan[e["id"]] = kind
        if kind == "right":
            answers[e["id"]] = json.dumps(example_answer(inst), ensure_ascii=False)
        elif kind == "wrong":
            answers[e["id"]] = json.dumps(wrong_answer(inst), ensure_ascii=False)
        elif kind == "unreadable":
            answers[e["id"]] = "'???'"
    # One multiple-choice answer written as a YAML list, the way the sheet suggests.
    multi = next(e for e in entries if e.get("how", "").startswith("all letters"))
    inst = sheet_inst(multi["id"], "alice", 2)
    answers[multi["id"]] = "[" + ", ".join(example_answer(inst).split(", ")) + "]"
    plan[multi["id"]] = "right"
    sheet.write_text(fill(text, answers))

    out_json = tmp_path / "alice.json"
    assert main(["grade", str(sheet), "--json", str(out_json), "--color", "never", *Q]) == 0
    printed = capsys.readouterr().out
    result = SubmissionResult.from_json(out_json.read_text())
    assert [a.name for a in result.assignments] == ["phase2-checkpoint", "training-dynamics"]
    assert result.environment["learner"] == "alice" and result.environment["attempt"] == 2
    checks = {c.id: c for _, c in result.all_checks()}
    assert set(checks) == {e["id"] for e in entries}
    expected_status = {"right": Status.PASSED, "wrong": Status.FAILED,
                       "unreadable": Status.ERROR, "blank": Status.FAILED}
    for qid, kind in plan.items():
        c = checks[qid]
        assert c.status is expected_status[kind], (qid, kind, c.message)
        assert c.max_score == BY_ID[qid].points
        assert c.score == (c.max_score if kind == "right" else 0)
        assert c.details["source"] == BY_ID[qid].source
        assert c.details["explanation"] and c.details["accepted_answer"]
        assert "your_answer" in c.details
        if kind == "unreadable":
            assert c.message.startswith("Could not read your answer")
        if kind == "blank":
            assert c.message.startswith("No answer given")
    n_right = sum(1 for k in plan.values() if k == "right")
    assert result.score == n_right
    assert result.max_score == len(entries)
    assert f"{result.score:g}/{result.max_score:g}" in printed
    assert "phase2-checkpoint" in printed and "training-dynamics" in printed


def test_sheet_answers_are_read_as_typed_text():
    q = BY_ID["chinchilla-ratio"]  # answer 20
    text = make_sheet([_bank_of(q)], "bob")
    graded = grade_sheet(fill(text, {q.id: "2e1"}), BANKS)
    assert graded.assignment(q.bank).check(q.id).status is Status.PASSED
    graded = grade_sheet(fill(text, {q.id: "yes"}), BANKS)  # not YAML's True
    c = graded.assignment(q.bank).check(q.id)
    assert c.status is Status.ERROR and "'yes'" in c.message


def _bank_of(q):
    return next(b for b in BANKS if b.name == q.bank)


def test_a_tampered_variant_or_a_swapped_learner_is_refused():
    bank = next(b for b in BANKS if b.name == "phase2-checkpoint")
    text = make_sheet([bank], "carol")
    q = BY_ID["kv-bytes"]
    inst = sheet_inst(q.id, "carol", 1)
    filled = fill(text, {q.id: str(int(inst.value))})
    assert grade_sheet(filled, BANKS).assignment(bank.name).check(q.id).passed
    tampered = filled.replace(f"variant: {inst.variant}", "variant: 00000000")
    c = grade_sheet(tampered, BANKS).assignment(bank.name).check(q.id)
    assert c.status is Status.ERROR and "variant" in c.message
    swapped = filled.replace("learner: carol", "learner: dave")
    c = grade_sheet(swapped, BANKS).assignment(bank.name).check(q.id)
    assert c.status is Status.ERROR


def test_questions_removed_from_the_banks_are_errors():
    bank = next(b for b in BANKS if b.name == "gpt-from-scratch")
    text = make_sheet([bank], "erin").replace("- id: prenorm\n", "- id: prenorm-gone\n")
    graded = grade_sheet(text, BANKS)
    c = next(c for _, c in graded.all_checks() if c.id == "prenorm-gone")
    assert c.status is Status.ERROR and "not in the quiz banks" in c.message


@pytest.mark.parametrize("text,fragment", [
    ("just: a mapping\n", "not an answer sheet"),
    ("questions: []\n", "'learner' is missing"),
    ("learner: x\nattempt: two\nquestions: []\n", "'attempt'"),
    ("learner: x\nquestions: {a: 1}\n", "must be a list"),
    ("learner: x\nquestions: [{answer: 3}]\n", "no 'id'"),
    ("learner: [unclosed\n", "not valid YAML"),
    ("sheet: grader-quiz-sheet/1\nlearner: x\nquestions: []\n", "written by an older grader"),
])
def test_broken_sheets(text, fragment):
    with pytest.raises(SheetError, match=re.escape(fragment)):
        grade_sheet(text, BANKS, origin="s.yaml")


def test_grading_many_sheets_writes_a_directory(tmp_path, capsys):
    sheets = []
    for name in ("ann", "ben", "cat"):
        path = tmp_path / "in" / f"{name}.yaml"
        assert main(["take", "training-dynamics", "--out", str(path), "--learner", name, *Q]) == 0
        sheets.append(str(path))
    broken = tmp_path / "in" / "broken.yaml"
    broken.write_text("not: a sheet\n")
    out_dir = tmp_path / "results"
    code = main(["grade", *sheets, str(broken), "--json", str(out_dir), *Q])
    assert code == 1  # one sheet could not be graded; the others were
    captured = capsys.readouterr()
    assert "not an answer sheet" in captured.err
    assert "Graded 3 sheets" in captured.out
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["ann.json", "ben.json", "cat.json"]
    for f in out_dir.iterdir():
        r = SubmissionResult.from_json(f.read_text())
        assert r.score == 0 and r.max_score == graded("training-dynamics")
    # One sheet into a directory named with a trailing slash.
    assert main(["grade", sheets[0], "--json", str(tmp_path / "one") + "/", *Q]) == 0
    assert (tmp_path / "one" / "ann.json").is_file()


def test_register_adds_quiz_to_a_grader_parser(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="grader")
    sub = parser.add_subparsers(dest="command")
    quiz_cli.register(sub)
    args = parser.parse_args(["quiz", "list", *Q])
    assert args.command == "quiz" and args.func(args) == 0
    assert "phase2-checkpoint" in capsys.readouterr().out
    args = parser.parse_args(["quiz"])
    assert args.func(args) == 2  # no sub-command: help
    args = parser.parse_args(["quiz", "take", "phase2-checkpoint", "--out",
                              str(tmp_path / "s.yaml"), "--learner", "x", *Q])
    assert args.func(args) == 0 and (tmp_path / "s.yaml").exists()


def test_fallback_summary_without_grader_summary(monkeypatch):
    bank = next(b for b in BANKS if b.name == "phase2-checkpoint")
    result = grade_sheet(make_sheet([bank], "fay"), BANKS)
    text = quiz_cli._fallback_summary(result)
    assert text.startswith("Submission fay: 0/") and "FAIL" in text
    assert "No answer given" in text


def test_the_sheet_states_the_precision_each_answer_needs():
    bank = BY_BANK["training-dynamics"]
    data = yaml.safe_load(make_sheet([bank], "gus", 1, "quiz-1"))
    how = {e["id"]: e["how"] for e in data["questions"]}
    assert data["sheet_id"] == "quiz-1"
    assert how["ppl-val"] == "a number, to 3 significant figures"
    assert how["updates-course"].startswith("the exact count")
    assert "card-sudden-jump" not in how  # self-graded cards are practice only
