"""Bank validation: every message names the file (and line), the question and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.quiz.bank import load_bank, load_banks
from grader.quiz.cli import main
from grader.quiz.schema import BankError

GOOD_QUESTION = """\
  - id: good-one
    kind: numeric
    prompt: What is 2 + 2?
    answer: 4
    explanation: Two and two make four, as the course says.
    tags: [arithmetic]
    source: day30-capstone-and-checkpoint.md, Part 3 Q1
"""


def write(tmp_path: Path, body: str, name: str = "bank.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(BankError) as info:
        load_bank(path)
    return info.value.messages


def bank_with(question: str) -> str:
    return "title: Test bank\nquestions:\n" + GOOD_QUESTION + textwrap.indent(
        textwrap.dedent(question), "  ")


def test_a_valid_bank_loads(tmp_path):
    bank = load_bank(write(tmp_path, "title: Test bank\nquestions:\n" + GOOD_QUESTION))
    assert bank.name == "bank" and bank.title == "Test bank"
    q = bank.questions[0]
    assert (q.id, q.kind, q.answer, q.tags, q.line) == ("good-one", "numeric", 4.0,
                                                        ["arithmetic"], 3)


@pytest.mark.parametrize("question,field,fragment", [
    ("""\
     - id: no-explanation
       kind: single
       prompt: Pick one.
       choices: [x, y]
       correct: x
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "explanation", "required"),
    ("""\
     - id: typo-field
       kind: text
       prompt: Say it.
       accepted: [it]
       explaination: misspelt
       explanation: The answer is it, as the text says.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "explaination", "unknown field"),
    ("""\
     - id: bad-correct
       kind: single
       prompt: Pick one.
       choices: [x, y]
       correct: z
       explanation: Because x is the one.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "correct", "'z' is not one of the choices"),
    ("""\
     - id: list-for-single
       kind: single
       prompt: Pick one.
       choices: [x, y]
       correct: [x]
       explanation: Because x is the one.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "correct", "kind: multiple"),
    ("""\
     - id: all-correct
       kind: multiple
       prompt: Pick.
       choices: [x, y]
       correct: [x, y]
       explanation: Because both of them are.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "correct", "make at least one wrong"),
    ("""\
     - id: bad-source
       kind: text
       prompt: Say it.
       accepted: [it]
       explanation: The answer is it, as the text says.
       tags: [t]
       source: somewhere on the internet
     """, "source", "must name a course file"),
    ("""\
     - id: unknown-course-file
       kind: text
       prompt: Say it.
       accepted: [it]
       explanation: The answer is it, as the text says.
       tags: [t]
       source: day31.md, Part 1
     """, "source", "must name a course file"),
    ("""\
     - id: bad-tags
       kind: text
       prompt: Say it.
       accepted: [it]
       explanation: The answer is it, as the text says.
       tags: [Not A Tag]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "tags", "is not a tag"),
    ("""\
     - id: no-tags
       kind: text
       prompt: Say it.
       accepted: [it]
       explanation: The answer is it, as the text says.
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "tags", "required"),
    ("""\
     - id: bad-answer
       kind: numeric
       prompt: How many?
       answer: four
       explanation: Four, as the text says.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "answer", "cannot read 'four'"),
    ("""\
     - id: bad-tolerance
       kind: numeric
       prompt: How many?
       answer: 4
       tolerance: {rel: 5}
       explanation: Four, as the text says.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "tolerance.rel", "must be < 1"),
    ("""\
     - id: bad-unit
       kind: numeric
       prompt: How many?
       answer: 4
       unit: furlongs
       explanation: Four, as the text says.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "unit", "must be one of"),
    ("""\
     - id: mistake-is-right
       kind: numeric
       prompt: How many?
       answer: 4
       mistakes: [{value: 4.001, message: close}]
       explanation: Four, as the text says.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "mistakes[0].value", "accepted as correct"),
    ("""\
     - id: bad-generator
       kind: param
       generator: no_such_generator
       prompt: Hm?
       explanation: Because it is so.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q4
     """, "generator", "is not a generator"),
    ("""\
     - id: bad-variable
       kind: param
       generator: kv_cache_bytes
       prompt: A model with {layerz} layers?
       explanation: Because {answer}.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q4
     """, "prompt", "unknown variable(s) {layerz}"),
    ("""\
     - id: attribute-access
       kind: param
       generator: kv_cache_bytes
       prompt: A model with {layers.__class__} layers?
       explanation: Because {answer}.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q4
     """, "prompt", "not a plain variable name"),
    ("""\
     - id: bad-option
       kind: param
       generator: kv_cache_bytes
       options: {batch: many}
       prompt: A model with {layers} layers?
       explanation: Because {answer}.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q4
     """, "options.batch", "must be a int"),
    ("""\
     - id: colon-in-choice
       kind: single
       prompt: Pick.
       choices:
         - no: colons
         - fine
       correct: fine
       explanation: Because fine is fine.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "choices[0]", "quote a choice"),
    ("""\
     - id: Bad_ID!
       kind: text
       prompt: Say it.
       accepted: [it]
       explanation: The answer is it, as the text says.
       tags: [t]
       source: day30-capstone-and-checkpoint.md, Part 3 Q1
     """, "id", "not a valid id"),
], ids=lambda v: v.split("\n")[0].split("id: ")[-1] if "\n" in str(v) else None)
def test_errors_name_file_line_question_and_field(tmp_path, question, field, fragment):
    path = write(tmp_path, bank_with(question))
    messages = errors_of(path)
    assert len(messages) == 1, messages
    m = messages[0]
    assert m.startswith(f"{path}:10: question '"), m  # the line where the question starts
    assert f"field '{field}'" in m, m
    assert fragment in m, m


def test_unknown_kind_and_missing_id(tmp_path):
    path = write(tmp_path, bank_with("""\
        - kind: essay
          prompt: Write.
        """))
    id_error, kind_error = errors_of(path)
    assert "question #2: field 'id': required" in id_error
    assert "question #2: field 'kind'" in kind_error and "essay" in kind_error


def test_duplicate_ids_in_a_bank_and_across_banks(tmp_path):
    path = write(tmp_path, "title: T\nquestions:\n" + GOOD_QUESTION + GOOD_QUESTION)
    (m,) = errors_of(path)
    assert "question 'good-one'" in m and "duplicate id" in m
    tmp2 = tmp_path / "two"
    tmp2.mkdir()
    write(tmp2, "title: A\nquestions:\n" + GOOD_QUESTION, "a.yaml")
    write(tmp2, "title: B\nquestions:\n" + GOOD_QUESTION, "b.yaml")
    with pytest.raises(BankError) as info:
        load_banks(tmp2)
    (m,) = info.value.messages
    assert "b.yaml:3: question 'good-one': field 'id'" in m and "a.yaml" in m


def test_top_level_problems(tmp_path):
    assert "a mapping" in errors_of(write(tmp_path, "- just a list\n"))[0]
    messages = errors_of(write(tmp_path, "titel: T\nquestions: []\n"))
    assert any("field 'titel': unknown field" in m for m in messages)
    assert any("field 'title': required" in m for m in messages)
    assert any("field 'questions': required" in m for m in messages)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "title: T\nquestions:\n  - id: x\n    prompt: [unclosed\n")
    (m,) = errors_of(path)
    assert m.startswith(f"{path}:") and "invalid YAML" in m


def test_quiz_check_exits_1_with_the_messages(tmp_path, capsys):
    write(tmp_path, bank_with("""\
        - id: bad-correct
          kind: single
          prompt: Pick one.
          choices: [x, y]
          correct: z
          explanation: Because x is the one.
          tags: [t]
          source: day30-capstone-and-checkpoint.md, Part 3 Q1
        """))
    assert main(["check", "--quizzes", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bank.yaml:10: question 'bad-correct': field 'correct': 'z' is not one of the choices" \
        in err


def test_quiz_check_reports_a_question_whose_own_answer_fails(tmp_path, capsys):
    # A text answer that normalises to nothing but its own punctuation would never match: the
    # schema refuses it; a numeric answer with a broken mistake is caught by the self-test.
    write(tmp_path, bank_with("""\
        - id: empty-accepted
          kind: text
          prompt: Say it.
          accepted: ["!!!"]
          explanation: There is nothing to say here.
          tags: [t]
          source: day30-capstone-and-checkpoint.md, Part 3 Q1
        """))
    assert main(["check", "--quizzes", str(tmp_path)]) == 1
    assert "field 'accepted[0]'" in capsys.readouterr().err


def test_quiz_check_on_a_missing_directory(tmp_path, capsys):
    assert main(["check", "--quizzes", str(tmp_path / "nope")]) == 1
    assert "no quiz bank directory" in capsys.readouterr().err


@pytest.mark.parametrize("question,fragment", [
    ("""\
     - id: fb-correct
       kind: single
       prompt: Pick.
       choices: [right one, wrong one]
       correct: right one
       feedback: {right one: "praise"}
       explanation: Because.
       tags: [t]
       source: learning-plan.md, Stage 1
     """, "'right one' is a correct choice: feedback is for distractors"),
    ("""\
     - id: fb-unknown
       kind: single
       prompt: Pick.
       choices: [right one, wrong one]
       correct: right one
       feedback: {other: "no"}
       explanation: Because.
       tags: [t]
       source: learning-plan.md, Stage 1
     """, "'other' is not one of the choices"),
    ("""\
     - id: ct-flag
       kind: numeric
       prompt: How much?
       answer: 3
       mistakes: [{value: 2, message: "no", course_text: "yes"}]
       explanation: Because.
       tags: [t]
       source: learning-plan.md, Stage 1
     """, "course_text': must be true or false"),
    ("""\
     - id: sig-bad
       kind: numeric
       prompt: How much?
       answer: 3
       tolerance: {sig: 2.5}
       explanation: Because.
       tags: [t]
       source: learning-plan.md, Stage 1
     """, "tolerance.sig': must be a whole number of significant figures"),
    ("""\
     - id: clash
       kind: numeric
       prompt: How much?
       answer: 100
       tolerance: {rel: 0.01}
       mistakes: [{value: 101.5, message: "close"}]
       explanation: Because.
       tags: [t]
       source: learning-plan.md, Stage 1
     """, "too close to the answer to be told apart"),
])
def test_teaching_fields_are_validated(tmp_path, question, fragment):
    messages = errors_of(write(tmp_path, bank_with(question)))
    assert any(fragment in m for m in messages), messages


def test_a_recall_card_and_sig_tolerance_load(tmp_path):
    bank = load_bank(write(tmp_path, bank_with("""\
     - id: card
       kind: recall
       prompt: Explain it.
       explanation: The model answer.
       tags: [t]
       source: learning-plan.md, Stage 5
     - id: sig-ok
       kind: numeric
       prompt: How much?
       answer: 1234.5
       tolerance: {sig: 3}
       hint: Think.
       explanation: Because.
       tags: [t]
       source: learning-plan.md, Stage 5
     """)))
    assert bank.question("card").kind == "recall"
    tol = bank.question("sig-ok").tolerance
    assert tol.sig == 3 and tol.rel == 0 and tol.accepts(1230, 1234.5)
    assert not tol.accepts(1220, 1234.5)
