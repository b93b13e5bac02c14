"""Checking learners' answers against an instance: numbers (through :mod:`.numbers` and
:mod:`.units`), choices and short text. Nothing a learner types is ever evaluated as code.

A numeric answer is ``correct`` inside the tolerance; a listed mistake is ``wrong`` with its own
feedback (and a value the course text itself states wrongly says so); a correctly rounded number
coarser than the precision the prompt asks for is ``reask`` ("right to 3 significant figures;
this question wants the exact count"), as is a fraction on a percent question ("did you mean
78 %?"); the right number with the wrong unit earns ``partial`` credit. A multiple-select answer
earns partial credit (right picks minus wrong picks, over the correct choices); a chosen
distractor's own feedback is shown. Short text matches ignoring case, punctuation and articles,
with ``x^(1/2)`` / ``x**0.5`` read as ``sqrt(x)`` and a parenthetical remark allowed
(``T5 (encoder-decoder)``).
"""

from __future__ import annotations

import re
import unicodedata

from .model import Instance, Precision, Tolerance, Verdict, needed_precision, round_sig
from .numbers import FORMS_HELP, MAX_LENGTH, ParsedNumber, Unreadable, format_number, parse_number
from .units import (
    BINARY_NAME,
    COUNT_NOUNS,
    UNIT_FAMILIES,
    ReadNumber,
    known_units,
    read_number,
)

__all__ = [
    "COUNT_NOUNS", "FORMS_HELP", "MAX_LENGTH", "UNIT_FAMILIES", "ParsedNumber", "ReadNumber",
    "Unreadable", "check_answer", "example_answer", "format_number", "known_units", "letter",
    "normalize_text", "parse_choices", "parse_number", "read_number", "text_matches",
    "wrong_answer",
]

# ---------------------------------------------------------------------------- text

_ARTICLES = {"a", "an", "the"}
_SYMBOLS = {"√": " sqrt ", "×": " x ", "−": "-", "–": "-", "—": "-", "π": " pi "}
# "d_k^(1/2)", "d_k**0.5", "d_k^.5" → "sqrt(d_k)": the same square root, written as a power.
_HALF_POWER = re.compile(r"([\w.]+|\([^()]*\))\s*(?:\^|\*\*)\s*(?:\(\s*1\s*/\s*2\s*\)|"
                         r"\(?\s*0?\.5\s*\)?|1/2)")
_PARENTHETICAL = re.compile(r"\(([^()]*)\)")


def normalize_text(text: str) -> str:
    """Case, whitespace, punctuation and articles do not matter: ``"The Decoder-only!"`` →
    ``"decoder only"``; a half power is a square root (``"d_k^(1/2)"`` → ``"sqrt d k"``)."""
    text = unicodedata.normalize("NFKC", str(text))
    text = _HALF_POWER.sub(lambda m: f" sqrt {m.group(1)} ", text)
    for a, b in _SYMBOLS.items():
        text = text.replace(a, b)
    text = text.casefold()
    text = re.sub(r"[\W_]+", " ", text)
    words = text.split()
    kept = [w for w in words if w not in _ARTICLES]
    return " ".join(kept if kept else words)  # "a n" (a BPE pair) is not all articles


def _same(a: str, b: str) -> bool:
    return bool(a) and (a == b or a.replace(" ", "") == b.replace(" ", ""))


def text_matches(given: str, accepted: list[str]) -> bool:
    """Whether ``given`` is one of the ``accepted`` forms (see :func:`normalize_text`); a
    parenthetical remark after a right answer is allowed: ``"T5 (encoder-decoder)"``."""
    forms = [normalize_text(a) for a in accepted]
    g = normalize_text(given)
    if not g:
        return False
    if any(_same(g, n) for n in forms):
        return True
    main = normalize_text(_PARENTHETICAL.sub(" ", str(given)))
    return main != g and any(_same(main, n) for n in forms)


# ---------------------------------------------------------------------------- choices

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def letter(i: int) -> str:
    """The letter of choice ``i`` (0 → ``a``)."""
    return LETTERS[i]


def parse_choices(text: str, choices: list[str], multiple: bool) -> list[int]:
    """The chosen indices: letters (``b``, ``(b)``, ``b) its text``, ``a, c``, ``a c``, ``ac``) or
    the text of a choice."""
    raw = str(text).strip()
    if not raw:
        raise Unreadable("the answer is empty")
    n = len(choices)
    span = f"a–{letter(n - 1)}"
    by_text = {normalize_text(c): i for i, c in enumerate(choices)}
    low = raw.lower()
    labelled = re.fullmatch(r"\(?([a-z])[).:]\s+.+", low, flags=re.S)
    parts = [p for p in re.split(r"[\s,;/&+()\[\]]+", low) if p and p != "and"]
    letters: list[str] | None = None
    if labelled and not multiple:
        letters = [labelled.group(1)]
    elif parts and all(len(p) == 1 and p.isalpha() and p.isascii() for p in parts):
        letters = parts
    elif (
        multiple
        and len(parts) == 1
        and re.fullmatch(r"[a-z]{2,26}", parts[0])
        and len(set(parts[0])) == len(parts[0])
        and normalize_text(raw) not in by_text
    ):
        letters = list(parts[0])
    if letters is not None:
        picked: list[int] = []
        for p in letters:
            idx = LETTERS.index(p)
            if idx >= n:
                raise Unreadable(f"there is no choice '{p}'; answer with a letter {span}")
            if idx not in picked:
                picked.append(idx)
        if not multiple and len(picked) > 1:
            raise Unreadable(f"pick one choice ({span}), not several")
        return sorted(picked)
    # The text of a choice (several separated by ';' or new lines for multiple choice).
    pieces = [raw] if not multiple else [p for p in re.split(r"[;\n]+", raw) if p.strip()]
    picked = []
    for piece in pieces:
        idx = by_text.get(normalize_text(piece))
        if idx is None:
            raise Unreadable(f"answer with the letter of a choice ({span})")
        if idx not in picked:
            picked.append(idx)
    return sorted(picked)


# ---------------------------------------------------------------------------- checking


def unreadable_message(given: str, reason: str, inst: Instance | None = None) -> str:
    """The message for an answer that could not be read, with how to write one."""
    if inst is not None and inst.kind in ("single", "multiple"):
        how = f"the letter of a choice (a–{letter(len(inst.choices) - 1)})"
        if inst.kind == "multiple":
            how = "the letters of all correct choices, e.g. a, c"
        return f"Could not read your answer {given!r}: {reason}. Answer with {how}."
    if inst is not None and inst.kind == "text":
        return f"Could not read your answer {given!r}: {reason}. Write a short answer."
    return f"Could not read your answer {given!r}: {reason}. Write a number such as {FORMS_HELP}."


def check_answer(inst: Instance, given: object) -> Verdict:
    """Check one answer against an instance. Never raises for bad input: that is ``unreadable``."""
    text = "" if given is None else given if isinstance(given, str) else _join(given)
    text = text.strip()
    try:
        if inst.kind == "numeric":
            return _check_numeric(inst, text)
        if inst.kind in ("single", "multiple"):
            return _check_choices(inst, text)
        return _check_text(inst, text)
    except Unreadable as exc:
        message = unreadable_message(text, str(exc), inst)
        return Verdict("unreadable", message, given=text, accepted=inst.display)


def _join(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-300


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def rounded_form(got: ReadNumber, value: float, precision: Precision) -> str | None:
    """When ``got`` is ``value`` correctly rounded but coarser than ``precision`` asks: what it
    is right to (``"3 significant figures"``); otherwise ``None``."""
    if not value:
        return None
    if precision.kind == "dp":
        d = got.decimals
        if d is not None and d < precision.digits and _close(got.value, round(value, d)):
            return _plural(d, "decimal place")
    s = got.sig
    # Two figures at least: any one-figure guess is "a rounding" of something nearby.
    if s is not None and s >= 2 and (precision.kind == "exact" or s < precision.digits or
                          precision.kind == "dp"):
        if _close(got.value, round_sig(value, s)):
            return _plural(s, "significant figure")
    return None


def mistake_matches(tol: Tolerance, given: float, mistake: float) -> bool:
    """Whether ``given`` is the listed mistake (inside the tolerance around the mistake)."""
    return Tolerance(abs=tol.abs, rel=max(tol.rel, 1e-9), sig=tol.sig).accepts(given, mistake)


def _check_numeric(inst: Instance, text: str) -> Verdict:
    assert inst.value is not None
    got = read_number(text, inst.unit)
    expected = inst.value
    tol = inst.tolerance
    reveal = f" The answer is {inst.display}."

    def verdict(status: str, feedback: str, credit: float = 0.0) -> Verdict:
        told = f"Not quite: you answered {got.read_as}." if status == "wrong" else ""
        feedback = " ".join(p for p in (told, feedback) if p)
        return Verdict(status, feedback + reveal, text, got.read_as, inst.display, feedback,
                       credit)

    if tol.accepts(got.value, expected):
        return Verdict("correct", "Correct.", text, got.read_as, inst.display)
    if got.alternative is not None and tol.accepts(got.alternative, expected):
        word = got.unit_word
        binary = BINARY_NAME[word]
        return Verdict(
            "correct",
            f"Correct (read as {binary}; strictly, {word.upper() if len(word) == 2 else word} "
            f"means a power of 1000 and {binary} a power of 1024).",
            text, got.read_as, inst.display,
        )
    named = []  # several mistakes may give the same number: name every one
    for mistake in inst.mistakes:
        if mistake_matches(tol, got.value, mistake.value):
            text_says = ("That is the value the course text states, but the text is wrong "
                         "here: ") if mistake.course_text else ""
            if text_says + mistake.message not in named:
                named.append(text_says + mistake.message)
    if named:
        return verdict("wrong", " Or: ".join(named))
    precision = inst.precision or needed_precision(expected, tol)
    right_to = rounded_form(got, expected, precision)
    if right_to:
        wants = precision.phrase(inst.unit)
        return verdict("reask", f"Right to {right_to}, but this question wants {wants}: "
                       "give more digits.")
    if inst.unit == "percent" and not got.percent and tol.accepts(got.value * 100, expected):
        pct = format_number(got.value * 100)
        return verdict("reask", f"Did you mean {pct} %? This question asks for a percentage: "
                       f"write {pct} or {pct}%.")
    if (got.unit_word and inst.unit in ("bytes", "bits", "nats") and got.number is not None
            and got.value != got.number and tol.accepts(got.number, expected)):
        base = UNIT_FAMILIES[inst.unit][0]
        return verdict("partial", f"The number is right but not the unit: {got.read_as}, and "
                       f"the answer is in {base}. Half credit.", credit=0.5)
    hint = ""
    width = tol.width(expected)
    if width and abs(got.value - expected) <= 5 * width:
        hint = (f"Close, but outside the tolerance ({tol.describe(expected)}): the question "
                f"wants {precision.phrase(inst.unit)}; keep more digits.")
    elif expected and inst.unit != "percent" and tol.accepts(got.value / 100, expected):
        hint = "That is 100 times too large: give a fraction, not a percentage."
    return verdict("wrong", hint)


def _check_choices(inst: Instance, text: str) -> Verdict:
    picked = parse_choices(text, inst.choices, inst.kind == "multiple")
    read_as = ", ".join(letter(i) for i in picked)
    if sorted(picked) == sorted(inst.correct):
        return Verdict("correct", "Correct.", text, read_as, inst.display)
    notes = [f"{letter(i)}) {inst.feedback[i]}" if inst.kind == "multiple" else inst.feedback[i]
             for i in picked if i not in inst.correct and i in inst.feedback]
    credit = 0.0
    if inst.kind == "multiple":
        hits = sum(1 for i in picked if i in inst.correct)
        wrong_picks = len(picked) - hits
        credit = max(0.0, (hits - wrong_picks) / len(inst.correct))
        missed = [letter(i) for i in inst.correct if i not in picked]
        extra = [letter(i) for i in picked if i not in inst.correct]
        parts = []
        if missed:
            parts.append(f"missed {len(missed)} correct choice{'s' if len(missed) > 1 else ''}")
        if extra:
            parts.append("should not have chosen " + ", ".join(extra))
        notes.insert(0, "(" + "; ".join(parts) + ")")
        if credit:
            notes.append(f"Partial credit: {credit:.0%}.")
    status = "partial" if credit > 0 else "wrong"
    feedback = " ".join([f"Not quite: you chose {read_as}.", *notes])
    message = feedback + f" The answer is {inst.display}."
    if inst.kind == "multiple":
        missed = [letter(i) for i in inst.correct if i not in picked]
        if missed:
            message += f" (missed {', '.join(missed)})"
    return Verdict(status, message, text, read_as, inst.display, feedback, credit)


def _check_text(inst: Instance, text: str) -> Verdict:
    if not normalize_text(text):
        raise Unreadable("the answer is empty")
    if text_matches(text, inst.accepted):
        return Verdict("correct", "Correct.", text, text, inst.display)
    feedback = f"Not quite: you answered {text!r}."
    return Verdict("wrong", f"{feedback} The answer is {inst.display}.", text, text, inst.display,
                   feedback)


# ---------------------------------------------------------------------------- for tests and checks


def example_answer(inst: Instance) -> str:
    """An answer that must be accepted (used by ``quiz check`` and the tests)."""
    if inst.kind == "numeric":
        assert inst.value is not None
        v = float(inst.value)
        return str(int(v)) if v.is_integer() else repr(v)
    if inst.kind in ("single", "multiple"):
        return ", ".join(letter(i) for i in inst.correct)
    return inst.accepted[0]


def wrong_answer(inst: Instance) -> str:
    """An answer that must be rejected as wrong (not unreadable)."""
    if inst.kind == "numeric":
        v = float(inst.value or 0.0)
        wrong = v + 10 * inst.tolerance.width(v) + (abs(v) if v else 1.0)
        return repr(wrong)
    if inst.kind == "single":
        other = next(i for i in range(len(inst.choices)) if i not in inst.correct)
        return letter(other)
    if inst.kind == "multiple":  # only distractors: no partial credit
        wrong_ones = [i for i in range(len(inst.choices)) if i not in inst.correct]
        return ", ".join(letter(i) for i in wrong_ones[:2])
    return "certainly not the answer"
