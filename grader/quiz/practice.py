"""The interactive practice loop: one question at a time, immediate feedback, a score at the end.

It reads lines from any input stream and writes to any output stream, so tests drive it with
``io.StringIO``; on a terminal it uses :func:`input` (line editing, Ctrl-D, Ctrl-C). An unreadable
answer is asked again; ``skip`` shows the answer (and counts as missed); ``quit``, end of input or
Ctrl-C ends the session with the score so far.
"""

from __future__ import annotations

import builtins
import random
import sys
from dataclasses import dataclass, field
from typing import TextIO

from .answers import FORMS_HELP, check_answer, letter
from .instance import instantiate
from .model import Instance, Question, derive_seed
from .scheduler import pick, weakest_tags
from .store import Attempt, Store

QUIT = {"quit", "exit", "q", ":q"}
SKIP = {"skip", "pass", "?", "idk"}
UNIT_HINTS = {
    "bytes": "in bytes; KB/MB/GB or KiB/MiB/GiB also accepted",
    "bits": "in bits",
    "nats": "in nats",
    "count": "a count; 1,024 or 1.4M also work",
    "percent": "a percentage",
}


@dataclass
class Session:
    learner: str
    asked: int = 0
    correct: int = 0
    finished: bool = False  # all questions asked (not stopped early)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def score_line(self) -> str:
        pct = f" ({100 * self.correct / self.asked:.0f}%)" if self.asked else ""
        return f"{self.correct}/{self.asked}{pct}"


class _IO:
    def __init__(self, inp: TextIO | None, out: TextIO | None):
        self.inp = inp if inp is not None else sys.stdin
        self.out = out if out is not None else sys.stdout
        self.tty = (inp is None and out is None and _isatty(sys.stdin) and _isatty(sys.stdout))
        enc = getattr(self.out, "encoding", None) or "utf-8"
        try:
            "✓✗─·".encode(enc)
            self.ok, self.bad, self.rule, self.dot = "✓", "✗", "─", "·"
        except (UnicodeEncodeError, LookupError):
            self.ok, self.bad, self.rule, self.dot = "+", "x", "-", "-"

    def write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def read(self, prompt: str = "> ") -> str | None:
        """A line without its newline, or ``None`` at end of input / Ctrl-C."""
        if self.tty:
            try:
                return builtins.input(prompt)
            except (EOFError, KeyboardInterrupt):
                self.out.write("\n")
                return None
        self.out.write(prompt)
        self.out.flush()
        try:
            line = self.inp.readline()
        except KeyboardInterrupt:
            return None
        if not line:
            self.out.write("\n")
            return None
        return line.rstrip("\r\n")


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def render_question(inst: Instance, number: int, total: int, attempt: int, io: _IO) -> str:
    q = inst.question
    head = (f"{io.rule * 2} Question {number}/{total} {io.dot} {q.id} (attempt {attempt}, "
            f"variant {inst.variant}) {io.dot} {', '.join(q.tags)}")
    lines = [head, inst.prompt]
    if inst.kind in ("single", "multiple"):
        lines += [f"  {letter(i)}) {c}" for i, c in enumerate(inst.choices)]
        lines.append("(one letter)" if inst.kind == "single"
                     else "(all letters that apply, e.g. a, c)")
    elif inst.kind == "numeric" and inst.unit:
        lines.append(f"({UNIT_HINTS[inst.unit]})")
    return "\n".join(lines)


def run_practice(questions: list[Question], *, learner: str, store: Store,
                 input: TextIO | None = None, output: TextIO | None = None, n: int = 10,
                 seed: int | None = None, title: str = "") -> Session:
    """Run a practice session of up to ``n`` questions chosen by weakness from ``questions``."""
    io = _IO(input, output)
    session = Session(learner)
    if not questions:
        io.write("No questions to practise.")
        return session
    by_id = {q.id: q for q in questions}
    items = {q.id: tuple(q.tags) for q in questions}
    history = store.history(learner)
    rng = random.Random(seed)
    io.write(f"Quiz practice for {learner}: {n} question{'s' if n != 1 else ''}"
             + (f" from {title}" if title else "") + ".")
    io.write("Type your answer and press Enter; 'skip' shows the answer, 'quit' or Ctrl-D stops.")
    io.write(f"Numbers: {FORMS_HELP}.")
    for number in range(1, n + 1):
        qid = pick(items, history, rng)
        q = by_id[qid]
        attempt = 1 + sum(1 for a in history if a.question_id == qid)
        inst = instantiate(q, derive_seed(learner, qid, attempt))
        io.write()
        io.write(render_question(inst, number, n, attempt, io))
        verdict = None
        while True:
            line = io.read()
            if line is None or line.strip().lower() in QUIT:
                _finish(io, session, stopped=True)
                return session
            text = line.strip()
            if text.lower() in SKIP:
                break
            verdict = check_answer(inst, text)
            if verdict.status != "unreadable":
                break
            io.write(verdict.message + " Try again, or 'skip'.")
        correct = verdict is not None and verdict.correct
        if verdict is None:
            io.write(f"{io.bad} Skipped. The answer is {inst.display}.")
        elif correct:
            io.write(f"{io.ok} {verdict.message}" + (f" The answer is {inst.display}."
                                                     if inst.kind == "numeric" else ""))
        else:
            io.write(f"{io.bad} {verdict.message}")
        io.write(f"Why: {inst.explanation}")
        io.write(f"Source: {q.source}")
        a = store.record(learner, q.bank, qid, attempt, inst.seed, q.tags,
                         text if verdict is not None else "(skipped)", correct)
        history.append(a)
        session.attempts.append(a)
        session.asked += 1
        session.correct += int(correct)
    session.finished = True
    _finish(io, session, stopped=False)
    return session


def _finish(io: _IO, session: Session, stopped: bool) -> None:
    io.write()
    if stopped:
        io.write(f"Stopped. Score so far: {session.score_line}.")
    else:
        io.write(f"Score: {session.score_line}.")
    weak = weakest_tags(session.attempts)
    if weak:
        io.write(f"Concepts to revisit: {', '.join(weak)}.")
    elif session.asked:
        io.write("No misses this time.")
