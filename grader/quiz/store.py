"""Each learner's practice attempts, in a local SQLite file (the standard library's ``sqlite3``).

Default location: ``~/.grader/quiz.sqlite``, overridden by ``GRADER_QUIZ_STORE`` or ``--store``.
Only readable answers are stored (an unreadable answer is asked again, not counted).
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
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_learner ON attempts (learner, id);
"""


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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def record(self, learner: str, bank: str, question_id: str, attempt: int, seed: int,
               tags: list[str] | tuple[str, ...], answer: str, correct: bool,
               at: float | None = None) -> Attempt:
        cur = self.db.execute(
            "INSERT INTO attempts (learner, bank, question_id, attempt, seed, tags, answer, "
            "correct, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (learner, bank, question_id, attempt, seed, json.dumps(list(tags)), answer,
             int(correct), time.time() if at is None else at),
        )
        self.db.commit()
        return Attempt(question_id, tuple(tags), bool(correct), int(cur.lastrowid or 0), bank,
                       attempt, answer, at or 0.0)

    def history(self, learner: str) -> list[Attempt]:
        rows = self.db.execute(
            "SELECT id, question_id, tags, correct, bank, attempt, answer, at FROM attempts "
            "WHERE learner = ? ORDER BY id", (learner,),
        ).fetchall()
        return [Attempt(qid, tuple(json.loads(tags)), bool(ok), seq, bank, attempt, answer, at)
                for seq, qid, tags, ok, bank, attempt, answer, at in rows]

    def attempts_of(self, learner: str, question_id: str) -> int:
        (n,) = self.db.execute(
            "SELECT COUNT(*) FROM attempts WHERE learner = ? AND question_id = ?",
            (learner, question_id),
        ).fetchone()
        return int(n)
