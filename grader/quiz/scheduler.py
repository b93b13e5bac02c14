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
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

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
