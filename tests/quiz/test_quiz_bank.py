"""The shipped banks: they validate, are big enough, and every question is answered right and
wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.quiz.answers import check_answer, example_answer, letter, wrong_answer
from grader.quiz.audit import self_test
from grader.quiz.bank import load_banks, quizzes_dir
from grader.quiz.cli import main
from grader.quiz.generators import GENERATORS
from grader.quiz.instance import instantiate
from grader.quiz.model import derive_seed
from grader.quiz.schema import COURSE_FILES

REPO = Path(__file__).resolve().parents[2]
QUIZZES = REPO / "quizzes"
BANKS = load_banks(QUIZZES)
QUESTIONS = [q for b in BANKS for q in b.questions]
PARAM_SEEDS = 24
STATIC = [q for q in QUESTIONS if not q.parameterised and q.kind != "recall"]
PARAM = [q for q in QUESTIONS if q.parameterised]


def test_the_banks_are_found_next_to_the_package(monkeypatch):
    monkeypatch.delenv("GRADER_QUIZZES", raising=False)
    assert quizzes_dir() == QUIZZES
    monkeypatch.setenv("GRADER_QUIZZES", "/somewhere/else")
    assert quizzes_dir() == Path("/somewhere/else")
    assert quizzes_dir("explicit") == Path("explicit")


def test_bank_size_and_coverage():
    assert len(QUESTIONS) >= 60
    assert len(PARAM) >= 15
    used = {q.generator for q in PARAM}
    assert len(used) >= 15
    assert used == set(GENERATORS), "every generator is used by some question"
    kinds = {q.kind for q in QUESTIONS}
    assert kinds == {"numeric", "single", "multiple", "text", "param", "recall"}
    sources = {q.source.split(",")[0].split(";")[0] for q in QUESTIONS}
    assert {"day30-capstone-and-checkpoint.md", "stage12-training-dynamics.md",
            "series4-llms-and-transformers-summary.md"} <= sources
    units = {instantiate(q, 1).unit for q in QUESTIONS}
    assert {"bytes", "bits", "count", "percent", "nats"} <= units


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q.id)
def test_every_question_is_complete(q):
    assert q.tags and all(t == t.lower() for t in q.tags)
    assert len(q.explanation.split()) >= 5
    assert q.source.split(",")[0].split(";")[0].strip() in COURSE_FILES
    assert "," in q.source or ";" in q.source, "the source names the section too"
    assert q.points > 0


def test_checkpoint_questions_q1_to_q8_are_all_covered():
    sources = " ".join(q.source for q in QUESTIONS)
    for n in range(1, 9):
        assert f"Part 3 Q{n}" in sources


@pytest.mark.parametrize("q", STATIC, ids=lambda q: q.id)
def test_static_question_right_and_wrong(q):
    for attempt in (1, 2, 3):  # choices are shuffled per attempt
        inst = instantiate(q, derive_seed("tester", q.id, attempt))
        right = check_answer(inst, example_answer(inst))
        assert right.correct, right.message
        wrong = check_answer(inst, wrong_answer(inst))
        assert wrong.status == "wrong", wrong.message
        assert inst.display in wrong.message or inst.kind == "text"


@pytest.mark.parametrize("q", PARAM, ids=lambda q: q.id)
def test_parameterised_question_right_and_wrong_over_many_seeds(q):
    seen = set()
    for attempt in range(1, PARAM_SEEDS + 1):
        inst = instantiate(q, derive_seed("tester", q.id, attempt))
        seen.add((inst.prompt, inst.display))
        assert "{" not in inst.prompt.replace("{{", "") or "}" not in inst.prompt
        right = check_answer(inst, example_answer(inst))
        assert right.correct, (inst.prompt, right.message)
        # The shown answer itself (what a learner copies from the explanation) is accepted too.
        if inst.kind == "numeric":
            shown = inst.display.split(" (")[0]
            assert check_answer(inst, shown).correct, (inst.display, shown)
        wrong = check_answer(inst, wrong_answer(inst))
        assert wrong.status == "wrong", (inst.prompt, wrong.message)
        assert inst.explanation and inst.display in inst.explanation
    assert len(seen) >= 5, "the numbers change between attempts"


def test_text_and_choice_questions_accept_other_ways_of_answering():
    by_id = {q.id: q for q in QUESTIONS}
    inst = instantiate(by_id["attn-equation-scale"], 7)
    for given in ["√d_k", "sqrt(dk)", "Square root of d_k"]:
        assert check_answer(inst, given).correct
    assert check_answer(inst, "d_k").status == "wrong"
    inst = instantiate(by_id["kv-what"], 3)
    right = [letter(i) for i in inst.correct]
    assert check_answer(inst, " ".join(right).upper()).correct
    one = check_answer(inst, right[0])  # one of several right choices: partial credit
    assert one.status == "partial" and 0 < one.credit < 1


@pytest.mark.parametrize("qid,answers", [
    ("gpt2-param-count", ["124,439,808", "124439808", "124439808 params"]),
    ("llama3-tokens-per-param", ["1875", "15e12/8e9", "1,875"]),
    ("entropy-uniform-8", ["3", "log2(8)", "3 bits", "ln(8) nats"]),
    ("loss-init-20", ["ln(20)", "2.996", "3.0"]),
    ("accuracy-init", ["5", "5%", "1/20 * 100"]),
    ("init-scaled-residual", ["0.004082", "0.02/sqrt(24)", "4.08e-3"]),
    ("updates-course", ["312", "312 updates"]),
])
def test_static_numeric_answers_in_several_forms(qid, answers):
    q = next(q for q in QUESTIONS if q.id == qid)
    inst = instantiate(q, 1)
    for a in answers:
        assert check_answer(inst, a).correct, a


def test_self_test_and_quiz_check_pass(capsys):
    assert self_test(BANKS, seeds=1) == []
    assert main(["check", "--quizzes", str(QUIZZES)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {len(BANKS)} banks")
    assert re.search(r"coverage: \d+ of \d+ course items \((8[5-9]|9\d|100)%", out), out
    assert " 0 variants shared by practice and sheets" in out


def test_quiz_list(capsys):
    assert main(["list", "--quizzes", str(QUIZZES)]) == 0
    out = capsys.readouterr().out
    for b in BANKS:
        assert b.name in out
    assert main(["list", "phase2-checkpoint", "--quizzes", str(QUIZZES)]) == 0
    out = capsys.readouterr().out
    assert "kv-bytes" in out and "param:kv_cache_bytes" in out
    assert main(["list", "nope", "--quizzes", str(QUIZZES)]) == 2
