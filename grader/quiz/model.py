"""The quiz data model: questions as written in a bank, and instances as shown to a learner.

A :class:`Question` is what a YAML bank declares. An :class:`Instance` is one concrete variant of
it for one learner and attempt: choices in their shuffled order, a parameterised question's numbers
drawn and its answer computed. Answers are checked against instances (see :mod:`.answers`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("numeric", "single", "multiple", "text", "param")
ANSWER_KINDS = ("numeric", "single", "multiple", "text")


@dataclass(frozen=True)
class Tolerance:
    """A numeric answer ``x`` is accepted when ``|x - v| <= max(abs, rel * |v|)``."""

    abs: float = 0.0
    rel: float = 0.01

    def width(self, value: float) -> float:
        return max(self.abs, self.rel * abs(value))

    def accepts(self, given: float, expected: float) -> bool:
        slack = 1e-12 * max(1.0, abs(expected))  # float noise in the expected value itself
        return abs(given - expected) <= self.width(expected) + slack

    def describe(self, value: float) -> str:
        from .answers import format_number

        parts = []
        if self.abs:
            parts.append(f"±{format_number(self.abs)}")
        if self.rel:
            parts.append(f"±{format_number(self.rel * 100)}%")
        return " or ".join(parts) if parts else "exact"


@dataclass(frozen=True)
class Mistake:
    """A known wrong value and what it says about the learner's reasoning."""

    value: float
    message: str


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
    # text
    accepted: list[str] = field(default_factory=list)
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

    @property
    def id(self) -> str:
        return self.question.id

    @property
    def variant(self) -> str:
        return variant_code(self.seed)


@dataclass
class Verdict:
    """The outcome of checking one answer: ``correct``, ``wrong`` or ``unreadable``."""

    status: str
    message: str
    given: str = ""  # the answer as typed
    read_as: str = ""  # how it was understood (e.g. "18 MiB = 18,874,368 bytes")
    accepted: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"


def derive_seed(learner: str, question_id: str, attempt: int) -> int:
    """The variant seed of a question for a learner and attempt (stable across runs and machines).

    SHA-256 of the three parts, never Python's salted ``hash()``; 63 bits so that it fits SQLite's
    signed integers.
    """
    text = f"{learner}\x1f{question_id}\x1f{int(attempt)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def variant_code(seed: int) -> str:
    """A short code naming a variant, printed on sheets and in practice."""
    return f"{seed:016x}"[:8]
