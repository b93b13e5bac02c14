"""The interactive practice loop: one question at a time, immediate feedback, a score at the end.

It reads lines from any input stream and writes to any output stream, so tests drive it with
``io.StringIO``; on a terminal it uses :func:`input` (line editing, Ctrl-D, Ctrl-C).

The order: today's due reviews first (SM-2 due dates, :mod:`.scheduler`), then weak spots and new
questions. Each question allows two tries, as Moodle's interactive mode does: a first miss shows
what is wrong and a hint, not the key; the second miss reveals the answer and the worked solution
with this variant's own numbers. An unreadable answer, a correctly rounded but too coarse number,
or a fraction on a percent question is asked again without using a try. ``new`` draws new numbers
for a parameterised question; ``skip`` shows the answer (and counts as missed); ``quit``, end of
input or Ctrl-C ends the session with the score so far. A self-graded card (``kind: recall``)
shows its answer on Enter and asks the learner to rate their own recall.
"""

from __future__ import annotations

import builtins
import random
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from .answers import FORMS_HELP, check_answer, letter
from .instance import instantiate
from .model import Instance, Question, derive_seed
from .present import UNIT_HINTS, how_to_answer  # noqa: F401  (UNIT_HINTS: kept importable here)
from .scheduler import due_queue, next_question, weakest_tags
from .store import Attempt, Store

QUIT = {"quit", "exit", "q", ":q"}
SKIP = {"skip", "pass", "?", "idk"}
NEW = {"new", "another", "new variant"}
TRIES = 2
# SM-2 qualities: right at the first try, right at the second (after the hint), partial, wrong.
QUALITY_FIRST, QUALITY_SECOND, QUALITY_PARTIAL, QUALITY_WRONG, QUALITY_SKIP = 5, 3, 2, 1, 0
# A self-graded card: the learner's rating → (SM-2 quality, counted as recalled).
RATINGS = {"0": (1, False), "1": (3, True), "2": (4, True), "3": (5, True)}
RATING_HELP = "Rate your recall: 0 forgot, 1 hard, 2 good, 3 easy"


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


def render_question(inst: Instance, number: int, total: int, attempt: int, io: _IO,
                    reason: str = "") -> str:
    """The question as printed: a header line, the prompt, its choices and the answer format."""
    q = inst.question
    why = f" {io.dot} review due" if reason == "due" else ""
    head = (f"{io.rule * 2} Question {number}/{total} {io.dot} {q.id} (attempt {attempt}, "
            f"variant {inst.variant}) {io.dot} {', '.join(q.tags)}{why}")
    lines = [head, inst.prompt]
    if inst.kind in ("single", "multiple"):
        lines += [f"  {letter(i)}) {c}" for i, c in enumerate(inst.choices)]
    lines.append(f"({how_to_answer(inst)})")
    return "\n".join(lines)


def _reveal(io: _IO, inst: Instance) -> None:
    if inst.steps:
        io.write("Worked solution:")
        for step in inst.steps:
            io.write(f"  {step}")
    io.write(f"Why: {inst.explanation}")
    io.write(f"Source: {inst.question.source}")


@dataclass
class _Outcome:
    correct: bool
    quality: int
    credit: float
    answer: str


def _ask(io: _IO, inst: Instance) -> _Outcome | str | None:
    """Ask one variant: an outcome, ``"new"`` (new numbers wanted) or ``None`` (stop)."""
    tries = 0
    last = ""
    while True:
        line = io.read()
        if line is None or line.strip().lower() in QUIT:
            return None
        text = line.strip()
        if text.lower() in NEW:
            if inst.question.parameterised:
                return "new"
            io.write("This question has no other numbers: answer it, or 'skip'.")
            continue
        if not text:
            io.write("Type an answer, or 'skip'.")
            continue
        if text.lower() in SKIP:
            io.write(f"{io.bad} Skipped. The answer is {inst.display}.")
            _reveal(io, inst)
            return _Outcome(False, QUALITY_SKIP, 0.0, "(skipped)")
        verdict = check_answer(inst, text)
        if verdict.again:
            io.write(verdict.message if verdict.status == "unreadable" else verdict.feedback)
            io.write("Try again, or 'skip'." if verdict.status == "unreadable"
                     else "Try again (this does not use up a try), or 'skip'.")
            continue
        tries += 1
        last = text
        if verdict.correct:
            extra = f" The answer is {inst.display}." if inst.kind == "numeric" else ""
            io.write(f"{io.ok} {verdict.message}{extra}"
                     + (" (second try)" if tries > 1 else ""))
            _reveal(io, inst)
            return _Outcome(True, QUALITY_FIRST if tries == 1 else QUALITY_SECOND, 1.0, last)
        if tries < TRIES:
            io.write(f"{io.bad} {verdict.feedback}")
            if inst.hint:
                io.write(f"Hint: {inst.hint}")
            io.write("One more try" + (" ('new' for other numbers, 'skip' for the answer)."
                                       if inst.question.parameterised else " ('skip' for the "
                                       "answer)."))
            continue
        io.write(f"{io.bad} {verdict.message}")
        _reveal(io, inst)
        quality = QUALITY_PARTIAL if verdict.status == "partial" else QUALITY_WRONG
        return _Outcome(False, quality, verdict.credit, last)


def _recall(io: _IO, inst: Instance) -> _Outcome | None:
    """A self-graded reveal card: Enter shows the answer, then the learner rates their recall."""
    line = io.read("(Enter to reveal) ")
    if line is None or line.strip().lower() in QUIT:
        return None
    io.write(f"Answer: {inst.explanation}")
    io.write(f"Source: {inst.question.source}")
    while True:
        line = io.read(f"{RATING_HELP}: ")
        if line is None or line.strip().lower() in QUIT:
            return None
        rating = line.strip()
        if rating in RATINGS:
            quality, recalled = RATINGS[rating]
            return _Outcome(recalled, quality, 1.0 if recalled else 0.0, f"(self-rated {rating})")
        io.write("Type 0, 1, 2 or 3.")


def run_practice(questions: list[Question], *, learner: str, store: Store,
                 input: TextIO | None = None, output: TextIO | None = None, n: int = 10,
                 seed: int | None = None, title: str = "", now: float | None = None) -> Session:
    """Run a practice session of up to ``n`` questions: due reviews first, then weak spots."""
    io = _IO(input, output)
    session = Session(learner)
    if not questions:
        io.write("No questions to practise.")
        return session
    by_id = {q.id: q for q in questions}
    items = {q.id: tuple(q.tags) for q in questions}
    history = store.history(learner)
    rng = random.Random(seed)
    clock = (lambda: now) if now is not None else time.time
    due = len(due_queue(items, history, clock()))
    io.write(f"Quiz practice for {learner}: {n} question{'s' if n != 1 else ''}"
             + (f" from {title}" if title else "") + "."
             + (f" Due for review today: {due}." if due else ""))
    io.write("Type your answer and press Enter; two tries per question. 'new' draws new numbers, "
             "'skip' shows the answer, 'quit' or Ctrl-D stops.")
    io.write(f"Numbers: {FORMS_HELP}.")
    for number in range(1, n + 1):
        reason, qid = next_question(items, history, rng, clock())
        q = by_id[qid]
        attempt = 1 + sum(1 for a in history if a.question_id == qid)
        fresh = 0
        while True:
            seed_id = qid if not fresh else f"{qid}#new{fresh}"
            inst = instantiate(q, derive_seed(learner, seed_id, attempt))
            io.write()
            io.write(render_question(inst, number, n, attempt, io, reason))
            outcome = _recall(io, inst) if inst.kind == "recall" else _ask(io, inst)
            if outcome != "new":
                break
            fresh += 1
            io.write("New numbers:")
        if outcome is None:
            _finish(io, session, stopped=True)
            return session
        assert isinstance(outcome, _Outcome)
        a = store.record(learner, q.bank, qid, attempt, inst.seed, q.tags, outcome.answer,
                         outcome.correct, at=clock(), quality=outcome.quality,
                         credit=outcome.credit)
        history.append(a)
        session.attempts.append(a)
        session.asked += 1
        session.correct += int(outcome.correct)
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
    if session.asked:
        io.write("Progress by concept: grader quiz progress")
