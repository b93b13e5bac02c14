"""Choosing the next practice question by weakness. Pure functions of the attempt history.

Time is counted in answers (the learner's attempts, oldest first), so a session resumes where the
last one stopped. For each question::

    priority = base + CONCEPT_WEIGHT * concept_weakness
    base     = NEW                                                if never answered, else
               (1 + MISS_WEIGHT * recent_misses) * 0.5 ** streak * (1 + since / SPACING)
    recent_misses    = Σ over its wrong answers of MISS_DECAY ** age   (age 0 = the latest answer)
    streak           = its correct answers in a row, counted back from its latest answer
    since            = answers (to any question) since it was last asked
    concept_weakness = max over its tags of the recency-weighted miss rate of that tag
                       (weights CONCEPT_DECAY ** age, over every question with the tag)

and a question answered in the last ``COOLDOWN`` answers is damped by ``COOLDOWN_FACTOR`` so it
comes back soon, not at once. So a question missed recently outranks a new one until it is answered
correctly; so do new questions on a concept the learner keeps missing; a mastered question (a
streak of correct answers) comes back less and less often, and more likely again the longer it has
not been asked (spaced repetition). The next question is drawn with probability proportional to
``priority ** SHARPNESS`` from a seeded generator.

Time counts too: every answer also updates the question's SM-2 card (:func:`sm2`: due in 1 day,
then 6, then interval × ease; a miss resets it to 1 day), and a practice session serves today's
due reviews first (:func:`next_question`), then the weakness-based pick. :func:`mastery_by_concept`
is the ``grader quiz progress`` view. SM-2 is written here rather than taken from a library: a
dozen lines, deterministic, and its state is replayed from the stored history, so the database
keeps only attempts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .store import Attempt

NEW = 1.0
MISS_WEIGHT = 2.0
MISS_DECAY = 0.7
CONCEPT_WEIGHT = 1.0
CONCEPT_DECAY = 0.9
COOLDOWN = 2
COOLDOWN_FACTOR = 0.05
SPACING = 10.0
SHARPNESS = 2.0


def priorities(items: Mapping[str, Sequence[str]], history: Sequence[Attempt]) -> dict[str, float]:
    """The priority of every question (``items`` maps question id → its concept tags)."""
    n = len(history)
    recent_miss: dict[str, float] = {}
    streak: dict[str, int] = {}
    last: dict[str, int] = {}
    tag_total: dict[str, float] = {}
    tag_miss: dict[str, float] = {}
    for index, a in enumerate(history):
        age = n - 1 - index
        last[a.question_id] = index
        if not a.correct:
            recent_miss[a.question_id] = recent_miss.get(a.question_id, 0.0) + MISS_DECAY**age
            streak[a.question_id] = 0
        else:
            streak[a.question_id] = streak.get(a.question_id, 0) + 1
        w = CONCEPT_DECAY**age
        for tag in set(a.tags):
            tag_total[tag] = tag_total.get(tag, 0.0) + w
            if not a.correct:
                tag_miss[tag] = tag_miss.get(tag, 0.0) + w
    recent = {a.question_id for a in history[-COOLDOWN:]} if COOLDOWN else set()
    result = {}
    for qid, tags in items.items():
        if qid in streak:
            since = n - 1 - last[qid]
            base = ((1 + MISS_WEIGHT * recent_miss.get(qid, 0.0)) * 0.5 ** streak[qid]
                    * (1 + since / SPACING))
        else:
            base = NEW
        concept = max(
            (tag_miss.get(t, 0.0) / tag_total[t] for t in tags if tag_total.get(t)), default=0.0
        )
        p = base + CONCEPT_WEIGHT * concept
        if qid in recent:
            p *= COOLDOWN_FACTOR
        result[qid] = p
    return result


def pick(items: Mapping[str, Sequence[str]], history: Sequence[Attempt],
         rng: random.Random) -> str:
    """The next question id, drawn with probability ∝ priority ** SHARPNESS."""
    if not items:
        raise ValueError("no questions to choose from")
    prio = priorities(items, history)
    ids = list(items)
    weights = [prio[q] ** SHARPNESS for q in ids]
    return rng.choices(ids, weights=weights, k=1)[0]


def weakest_tags(history: Sequence[Attempt], limit: int = 3) -> list[str]:
    """The concepts missed most in ``history`` (most misses first), for end-of-session advice."""
    misses: dict[str, int] = {}
    for a in history:
        if not a.correct:
            for t in a.tags:
                misses[t] = misses.get(t, 0) + 1
    return [t for t, _ in sorted(misses.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


# ---------------------------------------------------------------------------- time: SM-2

DAY = 86400.0
EASE_START = 2.5
EASE_MIN = 1.3
PASS_QUALITY = 3  # SM-2: a quality of 3 or more is a successful recall
SITTING = 3600.0  # seconds: answers this recent belong to the current sitting


@dataclass(frozen=True)
class Card:
    """One question's review state after replaying its attempts (SuperMemo's SM-2).

    ``due`` is a time stamp (seconds); ``interval`` is in days; ``reps`` counts successful
    reviews in a row; ``ease`` is the interval multiplier (never below 1.3).
    """

    question_id: str
    reps: int = 0
    interval: float = 0.0
    ease: float = EASE_START
    due: float = 0.0
    last: float = 0.0
    reviews: int = 0


def sm2(card: Card, quality: int, at: float) -> Card:
    """The state after one review of ``quality`` (0..5) at time ``at`` (the SM-2 rule)::

        quality >= 3: interval = 1, 6, then interval × ease (days); reps += 1
        quality <  3: reps = 0, interval = 1 day (the question comes back tomorrow)
        ease += 0.1 − (5 − q) × (0.08 + (5 − q) × 0.02), at least 1.3
    """
    q = max(0, min(5, int(quality)))
    if q >= PASS_QUALITY:
        interval = 1.0 if card.reps == 0 else 6.0 if card.reps == 1 else card.interval * card.ease
        reps = card.reps + 1
    else:
        interval, reps = 1.0, 0
    ease = max(EASE_MIN, card.ease + 0.1 - (5 - q) * (0.08 + (5 - q) * 0.02))
    return Card(card.question_id, reps, interval, ease, at + interval * DAY, at, card.reviews + 1)


def cards(history: Sequence[Attempt]) -> dict[str, Card]:
    """Every answered question's review state, from the timed history (pure)."""
    out: dict[str, Card] = {}
    for a in history:
        card = out.get(a.question_id) or Card(a.question_id)
        out[a.question_id] = sm2(card, a.grade, a.at)
    return out


def due_queue(items: Mapping[str, Sequence[str]], history: Sequence[Attempt], now: float
              ) -> list[str]:
    """Today's reviews: questions of ``items`` whose due time has come, most overdue first."""
    state = cards(history)
    due = [(c.due, qid) for qid, c in state.items() if qid in items and c.due <= now]
    return [qid for _, qid in sorted(due)]


def next_question(items: Mapping[str, Sequence[str]], history: Sequence[Attempt],
                  rng: random.Random, now: float) -> tuple[str, str]:
    """The next question and why: ``("due", id)`` for a review whose time has come (not one just
    asked), else the weakness-based :func:`pick` (``"weak"`` / ``"new"``)."""
    # Held back only if asked moments ago (this sitting), not if it was the last answer of a
    # session days ago.
    recent = ({a.question_id for a in history[-COOLDOWN:] if now - a.at < SITTING}
              if COOLDOWN else set())
    for qid in due_queue(items, history, now):
        if qid not in recent:
            return "due", qid
    qid = pick(items, history, rng)
    return ("weak" if any(a.question_id == qid for a in history) else "new"), qid


@dataclass
class Mastery:
    """One concept's progress: its questions, how many were answered, the recency-weighted
    credit over them (unanswered count as 0), how many are due, and the next due time."""

    tag: str
    questions: int
    seen: int
    mastery: float
    due: int
    next_due: float | None


RECENCY = 0.5  # within a question, each older attempt counts half as much as the next


def question_mastery(attempts: Sequence[Attempt]) -> float:
    """How well a question is answered lately: the credit of its attempts, weighted
    ``RECENCY ** age`` (the latest counts most); 0 for a question never answered."""
    if not attempts:
        return 0.0
    weights = [RECENCY ** (len(attempts) - 1 - i) for i in range(len(attempts))]
    return sum(w * a.score for w, a in zip(weights, attempts, strict=True)) / sum(weights)


def mastery_by_concept(items: Mapping[str, Sequence[str]], history: Sequence[Attempt],
                       now: float) -> list[Mastery]:
    """Per concept tag of ``items``: mastery, answered questions, due reviews (pure)."""
    by_question: dict[str, list[Attempt]] = {}
    for a in history:
        by_question.setdefault(a.question_id, []).append(a)
    state = cards(history)
    tags: dict[str, list[str]] = {}
    for qid, qtags in items.items():
        for t in qtags:
            tags.setdefault(t, []).append(qid)
    out = []
    for tag, qids in sorted(tags.items()):
        seen = [q for q in qids if q in by_question]
        score = sum(question_mastery(by_question.get(q, [])) for q in qids) / len(qids)
        dues = [state[q].due for q in seen]
        out.append(Mastery(tag, len(qids), len(seen), score, sum(d <= now for d in dues),
                           min(dues) if dues else None))
    return out
