"""Each learner's practice attempts, in a local SQLite file (the standard library's ``sqlite3``).

Default location: ``~/.grader/quiz.sqlite``, overridden by ``GRADER_QUIZ_STORE`` or ``--store``.
Only readable answers are stored (an unreadable answer is asked again, not counted). Each attempt
keeps its ``credit`` (0..1) and its recall ``quality`` (0..5, as in SM-2: 5 right at once, 3 right
after a hint, 1 wrong, 0 skipped; self-graded cards store the learner's own rating), from which
:mod:`.scheduler` computes due dates.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "GRADER_QUIZ_STORE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    learner TEXT NOT NULL,
    bank TEXT NOT NULL,
    question_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    tags TEXT NOT NULL,
    answer TEXT NOT NULL,
    correct INTEGER NOT NULL,
    at REAL NOT NULL,
    quality INTEGER,
    credit REAL
);
CREATE INDEX IF NOT EXISTS attempts_learner ON attempts (learner, id);
"""
# Columns added after the first release: a history written before them gains them on open.
_ADDED = {"quality": "INTEGER", "credit": "REAL"}


@dataclass(frozen=True)
class Attempt:
    """One answered question, in the order the learner answered (``seq`` grows)."""

    question_id: str
    tags: tuple[str, ...]
    correct: bool
    seq: int = 0
    bank: str = ""
    attempt: int = 1
    answer: str = ""
    at: float = 0.0
    quality: int | None = None  # 0..5 (SM-2); None in histories older than the column
    credit: float | None = None

    @property
    def grade(self) -> int:
        """The SM-2 quality of this attempt (old records: 4 when right, 1 when wrong)."""
        if self.quality is not None:
            return int(self.quality)
        return 4 if self.correct else 1

    @property
    def score(self) -> float:
        """The credit earned, 0..1."""
        if self.credit is not None:
            return float(self.credit)
        return 1.0 if self.correct else 0.0


def default_store_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path.home() / ".grader" / "quiz.sqlite"


class Store:
    """The attempt history. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = default_store_path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        self.db.executescript(_SCHEMA)
        have = {row[1] for row in self.db.execute("PRAGMA table_info(attempts)")}
        for column, kind in _ADDED.items():
            if column not in have:
                self.db.execute(f"ALTER TABLE attempts ADD COLUMN {column} {kind}")
        self.db.commit()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def record(self, learner: str, bank: str, question_id: str, attempt: int, seed: int,
               tags: list[str] | tuple[str, ...], answer: str, correct: bool,
               at: float | None = None, quality: int | None = None,
               credit: float | None = None) -> Attempt:
        """Store one answered question and return it as an :class:`Attempt`."""
        at = time.time() if at is None else at
        if quality is None:
            quality = 5 if correct else 1
        if credit is None:
            credit = 1.0 if correct else 0.0
        cur = self.db.execute(
            "INSERT INTO attempts (learner, bank, question_id, attempt, seed, tags, answer, "
            "correct, at, quality, credit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (learner, bank, question_id, attempt, seed, json.dumps(list(tags)), answer,
             int(correct), at, int(quality), float(credit)),
        )
        self.db.commit()
        return Attempt(question_id, tuple(tags), bool(correct), int(cur.lastrowid or 0), bank,
                       attempt, answer, at, int(quality), float(credit))

    def history(self, learner: str) -> list[Attempt]:
        """Every attempt of ``learner``, oldest first."""
        rows = self.db.execute(
            "SELECT id, question_id, tags, correct, bank, attempt, answer, at, quality, credit "
            "FROM attempts WHERE learner = ? ORDER BY id", (learner,),
        ).fetchall()
        return [Attempt(qid, tuple(json.loads(tags)), bool(ok), seq, bank, attempt, answer, at,
                        quality, credit)
                for seq, qid, tags, ok, bank, attempt, answer, at, quality, credit in rows]

    def attempts_of(self, learner: str, question_id: str) -> int:
        """How many attempts ``learner`` has made at ``question_id``."""
        (n,) = self.db.execute(
            "SELECT COUNT(*) FROM attempts WHERE learner = ? AND question_id = ?",
            (learner, question_id),
        ).fetchone()
        return int(n)
