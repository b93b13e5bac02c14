"""The safe numeric parser, units, text normalisation, choices, and answer checking."""

from __future__ import annotations

import builtins
import math

import pytest

from grader.quiz.answers import (
    Unreadable,
    check_answer,
    format_number,
    normalize_text,
    parse_choices,
    parse_number,
    read_number,
    text_matches,
)
from grader.quiz.model import Instance, Mistake, Question, Tolerance

ACCEPTED = [
    ("2.99", 2.99),
    ("3", 3.0),
    ("3e0", 3.0),
    ("3E0", 3.0),
    ("1e-4", 1e-4),
    ("2.5e+3", 2500.0),
    (".5", 0.5),
    ("1.", 1.0),
    ("-0.5", -0.5),
    ("+2", 2.0),
    ("−0.5", -0.5),  # the Unicode minus sign
    ("1/8", 0.125),
    ("12.5%", 0.125),
    ("12.5 %", 0.125),
    ("ln(20)", math.log(20)),
    ("log(20)", math.log(20)),  # log is the natural log, as in Python and numpy
    ("LN(20)", math.log(20)),
    ("log2(8)", 3.0),
    ("log10(1000)", 3.0),
    ("sqrt(64)", 8.0),
    ("√64", 8.0),
    ("√(64)", 8.0),
    ("exp(1)", math.e),
    ("e", math.e),
    ("pi", math.pi),
    ("π/2", math.pi / 2),
    ("2^10", 1024.0),
    ("2**10", 1024.0),
    ("2^-1", 0.5),
    ("-2^2", -4.0),  # the power binds tighter than the sign
    ("2^3^2", 512.0),  # right-associative
    ("1,024", 1024.0),
    ("124,439,808", 124439808.0),
    ("1,024.5", 1024.5),
    ("2 * 12 * 1024 * 768 * 4", 75497472.0),
    ("2 × 12 · 3", 72.0),
    ("10 ÷ 4", 2.5),
    ("(1 + 2) * 3", 9.0),
    ("1 - 2 - 3", -4.0),
    ("8 / 2 / 2", 2.0),
    ("-(0.9*log2(0.9))", -(0.9 * math.log2(0.9))),
    ("  42  ", 42.0),
    ("0.02/sqrt(24)", 0.02 / math.sqrt(24)),
    # Forms people type (issue 18): letter x, superscripts, approximations, bare functions,
    # "times", decimal commas where unambiguous.
    ("2.5x10^-4", 2.5e-4),
    ("2.5 x 10^-4", 2.5e-4),
    ("2.5×10⁻⁴", 2.5e-4),
    ("10⁻⁴", 1e-4),
    ("2¹⁰", 1024.0),
    ("≈ 3", 3.0),
    ("~7.46", 7.46),
    ("about 78", 78.0),
    ("approximately 0.5", 0.5),
    ("ln 20", math.log(20)),
    ("log2 8", 3.0),
    ("sqrt 64", 8.0),
    ("20x", 20.0),
    ("20×", 20.0),
    ("7,46", 7.46),
    ("1,5", 1.5),
    ("3,14159", 3.14159),
    ("1,024", 1024.0),
]


@pytest.mark.parametrize("text,value", ACCEPTED)
def test_parser_accepts_the_forms_people_type(text, value):
    parsed = parse_number(text)
    assert parsed.words == []
    assert parsed.value == pytest.approx(value, rel=1e-12)


REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    ("abc", "not a number"),
    ("1,5,3", "write one number"),
    ("1.234,5", "write one number"),
    ("1,024,5", "write one number"),
    ("1 024", "two numbers in a row"),
    ("1.2.3", "two numbers in a row"),
    ("1/0", "division by zero"),
    ("0^-1", "division by zero"),
    ("sqrt(-1)", "negative"),
    ("ln(0)", "undefined"),
    ("log2(-8)", "undefined"),
    ("(-8)^(1/3)", "fractional power"),
    ("2^99999", "exponent is too large"),
    ("10^400", "too large"),
    ("exp(1000)", "too large"),
    ("ln", "parentheses"),
    ("ln * 2", "parentheses"),
    ("(1+2", "not closed"),
    ("sqrt(4", "not closed"),
    ("1+", "ends too early"),
    ("*3", "unexpected"),
    ("3)", "unexpected"),
    ("__import__('os').system('echo hi')", "unexpected character"),
    ("().__class__", "unexpected character"),
    ("open('/etc/passwd')", "unexpected character"),
    ("lambda: 1", "unexpected character"),
    ("lambda", "not a number"),
    ("x" * 201, "longer than"),
    ("(" * 60 + "1" + ")" * 60, "nested"),
    ("2 ; 3", "unexpected character"),
    ("0x10", "after the number"),
    ("1_000", "after the number"),
]


@pytest.mark.parametrize("text,reason", REJECTED)
def test_parser_rejects_everything_else_with_a_reason(text, reason):
    with pytest.raises(Unreadable) as info:
        read_number(text)
    assert reason in str(info.value)


def test_the_parser_never_evaluates_code(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile must never be called on an answer")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    for text, value in ACCEPTED:
        assert parse_number(text).value == pytest.approx(value, rel=1e-12)
    for text, _ in REJECTED:
        with pytest.raises(Unreadable):
            read_number(text)


def test_trailing_words_need_a_unit_family():
    with pytest.raises(Unreadable, match="plain number"):
        read_number("3 bits")
    with pytest.raises(Unreadable, match="plain number"):
        read_number("2e")  # "2" then the word "e": not silently 2*e or 2e0


@pytest.mark.parametrize("text,unit,value", [
    ("18874368", "bytes", 18874368),
    ("18,874,368 bytes", "bytes", 18874368),
    ("18 MiB", "bytes", 18 * 2**20),
    ("18 mib", "bytes", 18 * 2**20),
    ("1.5 GiB", "bytes", 1.5 * 2**30),
    ("64 KB", "bytes", 64_000),
    ("8 bits", "bytes", 1),
    ("3 bits", "bits", 3),
    ("ln(8) nats", "bits", 3),
    ("2.996 nats", "nats", 2.996),
    ("1.4T tokens", "count", 1.4e12),
    ("1.4 trillion", "count", 1.4e12),
    ("124.4M", "count", 124.4e6),
    ("124,439,808 parameters", "count", 124439808),
    ("7B params", "count", 7e9),
    ("312 updates", "count", 312),
    ("12.5%", "percent", 12.5),
    ("12.5", "percent", 12.5),
    ("12.5 percent", "percent", 12.5),
])
def test_units_convert_to_the_base_unit(text, unit, value):
    assert read_number(text, unit).value == pytest.approx(value, rel=1e-12)


def test_unknown_units_are_unreadable():
    with pytest.raises(Unreadable, match="not a unit"):
        read_number("3 seconds", "bytes")
    with pytest.raises(Unreadable, match="not a unit"):
        read_number("3 MiB", "count")


DEFAULT_TOL = Tolerance(abs=0, rel=0.001)


def _numeric(value, unit=None, tol=DEFAULT_TOL, mistakes=()):
    q = Question(id="q", kind="numeric", prompt="?", explanation="because", tags=["t"],
                 source="day30-capstone-and-checkpoint.md, Part 3 Q4", answer=value)
    return Instance(question=q, seed=1, kind="numeric", prompt="?", explanation="because",
                    value=value, tolerance=tol, unit=unit, mistakes=list(mistakes),
                    display=format_number(value))


def test_numeric_tolerance_absolute_and_relative():
    inst = _numeric(2.995732, tol=Tolerance(abs=0.01, rel=0))
    assert check_answer(inst, "3").correct
    assert check_answer(inst, "ln(20)").correct
    assert check_answer(inst, "2.99").correct
    assert check_answer(inst, "2.98").status == "wrong"
    rel = _numeric(1e6, tol=Tolerance(abs=0, rel=0.01))
    assert check_answer(rel, "1.009e6").correct
    assert check_answer(rel, "1.011e6").status == "wrong"


def test_numeric_feedback_names_close_answers_and_known_mistakes():
    inst = _numeric(3.0, unit="bits", tol=Tolerance(abs=0.01, rel=0),
                    mistakes=[Mistake(math.log(8), "That is in nats.")])
    v = check_answer(inst, "2.079")
    assert v.status == "wrong" and "That is in nats." in v.message
    v = check_answer(inst, "2.97")
    assert v.status == "wrong" and "outside the tolerance" in v.message
    v = check_answer(inst, "3 bits")
    assert v.correct


def test_bytes_mb_read_as_mib_is_accepted_with_a_note():
    inst = _numeric(18 * 2**20, unit="bytes")
    v = check_answer(inst, "18 MB")
    assert v.correct and "MiB" in v.message
    assert check_answer(inst, "18 MiB").correct
    assert check_answer(inst, "18.874368 MB").correct
    # 19 MB is 18.87 MB correctly rounded, but coarser than asked: asked again, not wrong.
    assert check_answer(inst, "19 MB").status == "reask"
    assert check_answer(inst, "25 MB").status == "wrong"


def test_percent_questions_and_fractions():
    pct = _numeric(5.0, unit="percent", tol=Tolerance(abs=0.1, rel=0))
    assert check_answer(pct, "5").correct
    assert check_answer(pct, "5%").correct
    v = check_answer(pct, "0.05")
    assert v.status == "reask" and "Did you mean 5 %?" in v.message
    frac = _numeric(0.125, tol=Tolerance(abs=0.001, rel=0))
    assert check_answer(frac, "12.5%").correct
    assert check_answer(frac, "1/8").correct
    assert "100 times too large" in check_answer(frac, "12.5").message


def test_unreadable_is_an_error_not_a_wrong_answer():
    inst = _numeric(3.0)
    for text in ["three", "1,5,3", "", "3 apples", "import os"]:
        v = check_answer(inst, text)
        assert v.status == "unreadable", text
        assert v.message.startswith("Could not read your answer")
        assert "ln(20)" in v.message  # says which forms are accepted


@pytest.mark.parametrize("a,b", [
    ("The Decoder-only!", "decoder only"),
    ("  an   ENCODER–decoder ", "encoder decoder"),
    ("sqrt(d_k)", "sqrt d k"),
    ("√d_k", "sqrt d k"),
    ("Masked LM.", "masked lm"),
])
def test_text_normalisation(a, b):
    assert normalize_text(a) == b


def test_text_matching_ignores_case_space_punctuation_and_articles():
    accepted = ["sqrt(d_k)", "square root of d_k"]
    for given in ["sqrt(d_k)", "SQRT(dk)", "sqrt dk", "√d_k", "the square root of d_k", "√dk"]:
        assert text_matches(given, accepted), given
    for given in ["d_k", "d_model", "sqrt(d_model)", "", "the"]:
        assert not text_matches(given, accepted), given


CHOICES = ["alpha", "beta", "gamma", "delta"]


@pytest.mark.parametrize("text,multiple,picked", [
    ("b", False, [1]),
    ("B", False, [1]),
    ("(b)", False, [1]),
    ("b)", False, [1]),
    ("b) beta", False, [1]),
    ("beta", False, [1]),
    ("  Gamma. ", False, [2]),
    ("a, c", True, [0, 2]),
    ("a c", True, [0, 2]),
    ("c,a,a", True, [0, 2]),
    ("ac", True, [0, 2]),
    ("[a, d]", True, [0, 3]),
    ("a and c", True, [0, 2]),
    ("alpha; delta", True, [0, 3]),
])
def test_choice_answers(text, multiple, picked):
    assert parse_choices(text, CHOICES, multiple) == picked


@pytest.mark.parametrize("text,multiple,reason", [
    ("e", False, "no choice 'e'"),
    ("a, b", False, "pick one"),
    ("epsilon", False, "letter of a choice"),
    ("", True, "empty"),
    ("z", True, "no choice 'z'"),
])
def test_choice_answers_unreadable(text, multiple, reason):
    with pytest.raises(Unreadable, match=reason):
        parse_choices(text, CHOICES, multiple)


def test_multiple_choice_feedback_names_missed_and_extra():
    q = Question(id="q", kind="multiple", prompt="?", explanation="x", tags=["t"], source="s")
    inst = Instance(question=q, seed=1, kind="multiple", prompt="?", explanation="x",
                    choices=CHOICES, correct=[0, 2], display="a) alpha; c) gamma")
    assert check_answer(inst, "c, a").correct
    assert check_answer(inst, ["a", "c"]).correct  # a YAML list on a sheet
    v = check_answer(inst, "a, b")
    assert v.status == "wrong" and "missed c" in v.message
    assert "should not have chosen b" in v.message


@pytest.mark.parametrize("x,text", [
    (18874368, "18,874,368"),
    (2.995732273553991, "2.996"),
    (0.0001121, "0.0001121"),
    (0.5, "0.5"),
    (1.2e-7, "1.2e-07"),
    (-4.0, "-4"),
])
def test_format_number(x, text):
    assert format_number(x) == text
