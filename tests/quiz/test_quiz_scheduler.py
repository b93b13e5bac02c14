"""The weakness-based choice of the next question: a pure function of the history."""

from __future__ import annotations

import copy
import random
from collections import Counter

from grader.quiz.scheduler import pick, priorities, weakest_tags
from grader.quiz.store import Attempt, Store

ITEMS = {
    "missed": ("kv-cache",),
    "mastered": ("bpe",),
    "new": ("softmax",),
    "same-concept": ("kv-cache",),
    "other": ("scaling",),
    "filler-1": ("filler",),
    "filler-2": ("filler",),
}


def a(qid: str, correct: bool) -> Attempt:
    return Attempt(qid, ITEMS.get(qid, ("filler",)), correct)


def history() -> list[Attempt]:
    return [
        a("mastered", True), a("mastered", True), a("mastered", True),
        a("other", True),
        a("missed", False),
        a("filler-1", True), a("filler-2", True),  # the miss is no longer "just asked"
    ]


def test_weak_before_new_before_mastered():
    p = priorities(ITEMS, history())
    assert p["missed"] > p["new"] > p["mastered"]
    assert p["missed"] > p["other"]  # answered right once: lower than a recent miss


def test_a_missed_concept_lifts_its_other_questions():
    p = priorities(ITEMS, history())
    assert p["same-concept"] > p["new"]  # never asked, but its concept was missed


def test_a_question_just_asked_is_held_back_briefly():
    h = history() + [a("new", False)]
    p = priorities(ITEMS, h)
    assert p["new"] < p["missed"] and p["new"] < p["other"]  # cooling down
    later = h + [a("filler-1", True), a("filler-2", True)]
    assert priorities(ITEMS, later)["new"] > priorities(ITEMS, later)["other"]


def test_misses_fade_and_streaks_lower_priority():
    h = history()
    recent = priorities(ITEMS, h)["missed"]
    older = priorities(ITEMS, h + [a("filler-1", True)] * 6)["missed"]
    assert older < recent
    fixed = priorities(ITEMS, h + [a("missed", True), a("filler-1", True), a("filler-2", True)])
    assert fixed["missed"] < recent
    p1 = priorities(ITEMS, [a("mastered", True)] + [a("filler-1", True)] * 3)["mastered"]
    p3 = priorities(ITEMS, [a("mastered", True)] * 3 + [a("filler-1", True)] * 3)["mastered"]
    assert p3 < p1


def test_mastered_questions_come_back_with_time():
    mastered = [a("mastered", True)] * 3
    soon = priorities(ITEMS, mastered + [a("filler-1", True)] * 3)["mastered"]
    late = priorities(ITEMS, mastered + [a("filler-1", True)] * 80)["mastered"]
    assert soon < late
    assert late >= priorities(ITEMS, [])["mastered"]  # as likely as a new one by then


def test_priorities_are_pure():
    h = history()
    before = copy.deepcopy(h)
    assert priorities(ITEMS, h) == priorities(ITEMS, h)
    assert h == before
    assert priorities(ITEMS, []) == {q: 1.0 for q in ITEMS}


def test_pick_prefers_weak_items_over_many_draws():
    h = history()
    counts = Counter(pick(ITEMS, h, random.Random(s)) for s in range(3000))
    assert counts["missed"] > counts["new"] > counts["mastered"]
    assert counts["missed"] > 2 * counts["mastered"]
    assert counts["mastered"] > 0  # mastered ones still come back, less often


def test_pick_is_reproducible_with_a_seed():
    h = history()
    assert [pick(ITEMS, h, random.Random(7)) for _ in range(5)] == \
           [pick(ITEMS, h, random.Random(7)) for _ in range(5)]


def test_weakest_tags():
    h = [a("missed", False), a("same-concept", False), a("other", False), a("new", True)]
    assert weakest_tags(h) == ["kv-cache", "scaling"]


def test_store_round_trip(tmp_path):
    path = tmp_path / "deep" / "quiz.sqlite"
    with Store(path) as store:
        store.record("alice", "bank", "q1", 1, 123, ["t1", "t2"], "42", False, at=1.0)
        store.record("bob", "bank", "q1", 1, 456, ["t1"], "7", True, at=2.0)
        store.record("alice", "bank", "q1", 2, 789, ["t1", "t2"], "43", True, at=3.0)
    with Store(path) as store:
        h = store.history("alice")
        assert [(x.question_id, x.correct, x.attempt, x.tags) for x in h] == [
            ("q1", False, 1, ("t1", "t2")), ("q1", True, 2, ("t1", "t2"))]
        assert store.attempts_of("alice", "q1") == 2
        assert store.attempts_of("bob", "q1") == 1
        assert store.history("nobody") == []


def test_store_default_path(monkeypatch, tmp_path):
    from grader.quiz.store import default_store_path

    monkeypatch.delenv("GRADER_QUIZ_STORE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store_path() == tmp_path / ".grader" / "quiz.sqlite"
    monkeypatch.setenv("GRADER_QUIZ_STORE", str(tmp_path / "x.sqlite"))
    assert default_store_path() == tmp_path / "x.sqlite"
    assert default_store_path("given.sqlite").name == "given.sqlite"


def test_an_old_history_gains_the_quality_and_credit_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, learner TEXT NOT NULL,
          bank TEXT NOT NULL, question_id TEXT NOT NULL, attempt INTEGER NOT NULL,
          seed INTEGER NOT NULL, tags TEXT NOT NULL, answer TEXT NOT NULL,
          correct INTEGER NOT NULL, at REAL NOT NULL);
        INSERT INTO attempts (learner, bank, question_id, attempt, seed, tags, answer, correct, at)
          VALUES ('ann', 'b', 'q1', 1, 5, '["t"]', '42', 1, 10.0);
    """)
    db.commit()
    db.close()
    with Store(path) as store:
        (old,) = store.history("ann")
        assert old.quality is None and old.grade == 4 and old.score == 1.0
        new = store.record("ann", "b", "q1", 2, 6, ["t"], "41", False, at=20.0, quality=1,
                           credit=0.5)
        assert (new.quality, new.credit) == (1, 0.5)
        assert [a.grade for a in store.history("ann")] == [4, 1]
