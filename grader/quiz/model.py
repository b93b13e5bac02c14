"""The quiz data model: questions as written in a bank, and instances as shown to a learner.

A :class:`Question` is what a YAML bank declares. An :class:`Instance` is one concrete variant of
it for one learner and attempt: choices in their shuffled order, a parameterised question's numbers
drawn and its answer computed. Answers are checked against instances (see :mod:`.answers`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("numeric", "single", "multiple", "text", "param", "recall")
ANSWER_KINDS = ("numeric", "single", "multiple", "text")
# ``recall`` questions are self-graded reveal cards: the learner answers in their head, sees the
# model answer and rates their own recall; no automatic verdict (and not on graded sheets).
GRADED_KINDS = ("numeric", "single", "multiple", "text", "param")


def round_sig(x: float, digits: int) -> float:
    """``x`` rounded to ``digits`` significant figures (``round_sig(38597376, 3) == 38600000``)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


@dataclass(frozen=True)
class Tolerance:
    """A numeric answer ``x`` is accepted when ``|x - v| <= max(abs, rel * |v|, half a unit in
    the sig-th significant figure of v)`` (``sig`` 0: no significant-figure term)."""

    abs: float = 0.0
    rel: float = 0.01
    sig: int = 0

    def width(self, value: float) -> float:
        w = max(self.abs, self.rel * abs(value))
        if self.sig and value:
            w = max(w, 0.5 * 10 ** (math.floor(math.log10(abs(value))) - self.sig + 1))
        return w

    def accepts(self, given: float, expected: float) -> bool:
        slack = 1e-12 * max(1.0, abs(expected))  # float noise in the expected value itself
        return abs(given - expected) <= self.width(expected) + slack

    def describe(self, value: float) -> str:
        from .answers import format_number

        parts = []
        if self.sig:
            parts.append(f"{self.sig} significant figures")
        if self.abs:
            parts.append(f"±{format_number(self.abs)}")
        if self.rel:
            parts.append(f"±{format_number(self.rel * 100)}%")
        return " or ".join(parts) if parts else "exact"


@dataclass(frozen=True)
class Precision:
    """The precision an answer must have, stated to the learner: ``exact`` (a whole number),
    ``dp`` (decimal places) or ``sig`` (significant figures), ``digits`` of them."""

    kind: str
    digits: int = 0

    def phrase(self, unit: str | None = None) -> str:
        if self.kind == "exact":
            return "the exact count" if unit == "count" else "the exact value"
        if self.kind == "dp":
            return f"to {self.digits} decimal place{'s' if self.digits != 1 else ''}"
        return f"to {self.digits} significant figure{'s' if self.digits != 1 else ''}"


def needed_precision(value: float, tol: Tolerance) -> Precision:
    """The precision the prompt asks for: the coarsest rounding rule whose rounding error fits
    inside ``tol`` for any number of ``value``'s magnitude (not only for this value's digits, so
    a round answer such as 0.0003 still asks for the figures that tell it from a mistake).

    A whole-number answer with a tolerance under 1 wants the exact value; an absolute-only
    tolerance is stated in decimal places; anything else in significant figures.
    """
    width = tol.width(value)
    if (float(value).is_integer() and not tol.rel and not tol.sig
            and (tol.abs == 0 or 0.5 <= tol.abs < 1)):
        return Precision("exact")
    if tol.abs and not tol.rel and not tol.sig:
        for d in range(0, 13):
            if 0.5 * 10.0**-d <= width * (1 + 1e-9):
                return Precision("dp", d)
    if not value:
        return Precision("dp", 3)
    exponent = math.floor(math.log10(abs(value)))
    for s in range(1, 16):
        if 0.5 * 10.0 ** (exponent - s + 1) <= width * (1 + 1e-9):
            return Precision("sig", s)
    return Precision("sig", 15)


def mistake_clashes(tol: Tolerance, value: float, mistake: float) -> bool:
    """Whether a listed mistake could be marked correct, or confused with the key: its value lies
    inside the key's acceptance window widened by the mistake's own matching window."""
    slack = 1e-12 * max(1.0, abs(value))
    return abs(mistake - value) <= tol.width(value) + tol.width(mistake) + slack


@dataclass(frozen=True)
class Mistake:
    """A known wrong value and what it says about the learner's reasoning. ``course_text``: the
    value a course text itself states wrongly (said explicitly when a learner types it)."""

    value: float
    message: str
    course_text: bool = False


@dataclass
class Question:
    """One question of a bank, as declared in YAML (validated by :mod:`.schema`)."""

    id: str
    kind: str
    prompt: str
    explanation: str
    tags: list[str]
    source: str
    bank: str = ""
    points: float = 1.0
    title: str = ""
    # numeric
    answer: float | None = None
    answer_text: str = ""
    tolerance: Tolerance = field(default_factory=Tolerance)
    unit: str | None = None
    mistakes: list[Mistake] = field(default_factory=list)
    # choices
    choices: list[str] = field(default_factory=list)
    correct: list[str] = field(default_factory=list)
    shuffle: bool = True
    feedback: dict[str, str] = field(default_factory=dict)  # choice text -> why it is wrong
    # text
    accepted: list[str] = field(default_factory=list)
    # all kinds
    hint: str = ""  # shown after a first miss, before the answer is revealed
    solution: list[str] = field(default_factory=list)  # worked steps (fixed questions)
    covers: list[str] = field(default_factory=list)  # course item ids (quizzes/course-items.yaml)
    passage: str = ""  # the course text's words this question is written from
    # param
    generator: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    tolerance_override: Tolerance | None = None
    line: int = 0

    @property
    def parameterised(self) -> bool:
        return self.kind == "param"

    @property
    def name(self) -> str:
        """A short human name: the ``title`` or the start of the prompt."""
        if self.title:
            return self.title
        first = " ".join(self.prompt.split())
        return first if len(first) <= 70 else first[:67].rstrip() + "..."


@dataclass
class Bank:
    """A YAML file of questions. ``name`` is the file's stem."""

    name: str
    title: str
    path: Path
    questions: list[Question]
    description: str = ""

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    @property
    def parameterised(self) -> int:
        return sum(q.parameterised for q in self.questions)


@dataclass
class Instance:
    """One concrete variant of a question, ready to show and to check answers against."""

    question: Question
    seed: int
    kind: str
    prompt: str
    explanation: str
    value: float | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    unit: str | None = None
    mistakes: list[Mistake] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    correct: list[int] = field(default_factory=list)  # indices into ``choices`` (display order)
    accepted: list[str] = field(default_factory=list)
    display: str = ""  # the accepted answer as shown to the learner
    feedback: dict[int, str] = field(default_factory=dict)  # display index -> distractor feedback
    hint: str = ""
    steps: list[str] = field(default_factory=list)  # worked solution, this variant's numbers
    precision: Precision | None = None  # numeric: what the prompt asks for
    vars: dict[str, Any] = field(default_factory=dict)  # a parameterised variant's numbers
    stream: str = ""  # "" (practice) or "sheet"

    @property
    def id(self) -> str:
        return self.question.id

    @property
    def variant(self) -> str:
        return variant_code(self.seed)


VERDICTS = ("correct", "partial", "wrong", "reask", "unreadable")


@dataclass
class Verdict:
    """The outcome of checking one answer.

    ``correct``; ``partial`` (some credit: part of a multiple-select, or the right number in the
    wrong unit); ``wrong``; ``reask`` (not wrong: a correctly rounded but too coarse number, or a
    fraction on a percent question; ask again); ``unreadable`` (could not be read; ask again).
    ``message`` reveals the key; ``feedback`` says what is wrong without revealing it (for a
    second try).
    """

    status: str
    message: str
    given: str = ""  # the answer as typed
    read_as: str = ""  # how it was understood (e.g. "18 MiB = 18,874,368 bytes")
    accepted: str = ""
    feedback: str = ""
    credit: float = 0.0  # the fraction of the points earned

    def __post_init__(self) -> None:
        if self.status == "correct" and not self.credit:
            self.credit = 1.0
        if not self.feedback:
            self.feedback = self.message

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def again(self) -> bool:
        """Ask the same question again (nothing is recorded)."""
        return self.status in ("reask", "unreadable")


def derive_seed(learner: str, question_id: str, attempt: int, stream: str = "") -> int:
    """The variant seed of a question for a learner and attempt (stable across runs and machines).

    SHA-256 of the parts, never Python's salted ``hash()``; 63 bits so that it fits SQLite's
    signed integers. ``stream`` separates seed streams: ``""`` is practice; a graded sheet passes
    ``"sheet:" + its salt``, so a sheet never shares practice's seeds.
    """
    text = f"{learner}\x1f{question_id}\x1f{int(attempt)}"
    if stream:
        text = f"{stream}\x1e{text}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def variant_code(seed: int) -> str:
    """A short code naming a variant, printed on sheets and in practice."""
    return f"{seed:016x}"[:8]
