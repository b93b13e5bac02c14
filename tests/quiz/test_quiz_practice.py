"""The practice loop: scripted sessions over io.StringIO, and one through a pseudo-terminal."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.quiz.answers import example_answer, wrong_answer
from grader.quiz.bank import load_banks
from grader.quiz.cli import main
from grader.quiz.instance import instantiate
from grader.quiz.model import derive_seed
from grader.quiz.practice import run_practice
from grader.quiz.store import Store

REPO = Path(__file__).resolve().parents[2]
QUIZZES = REPO / "quizzes"
BANKS = load_banks(QUIZZES)
QUESTIONS = [q for b in BANKS for q in b.questions if q.kind != "recall"]
BY_ID = {q.id: q for q in QUESTIONS}
HEADER = re.compile(r"Question (\d+)/(\d+) \S (\S+) \(attempt (\d+), variant (\w+)\)")


class ScriptedLearner:
    """An input stream that answers like a person: it reads the question just printed and
    answers it right, wrong, unreadably, skips, quits or closes the input, following a plan."""

    def __init__(self, output: io.StringIO, learner: str, plan: list[str]):
        self.output = output
        self.learner = learner
        self.plan = list(plan)
        self.typed: list[str] = []

    def readline(self) -> str:
        if not self.plan:
            return ""
        action = self.plan.pop(0)
        if action == "eof":
            return ""
        *_, qid, attempt, variant = HEADER.findall(self.output.getvalue())[-1]
        inst = instantiate(BY_ID[qid], derive_seed(self.learner, qid, int(attempt)))
        assert inst.variant == variant
        line = {
            "right": lambda: example_answer(inst),
            "wrong": lambda: wrong_answer(inst),
            "unreadable": lambda: "no idea, maybe 3,5?",
            "skip": lambda: "skip",
            "quit": lambda: "quit",
        }[action]()
        self.typed.append(line)
        return line + "\n"


def session(tmp_path, plan, n, questions=QUESTIONS, learner="alice", seed=1, store=None):
    out = io.StringIO()
    inp = ScriptedLearner(out, learner, plan)
    with Store(store or tmp_path / "quiz.sqlite") as st:
        result = run_practice(questions, learner=learner, store=st, input=inp, output=out,
                              n=n, seed=seed, title="all banks")
        history = st.history(learner)
    return result, out.getvalue(), history


def test_a_full_scripted_session(tmp_path):
    # Two tries per question: Q2 is missed twice, Q6 right at the second try.
    plan = ["right", "wrong", "wrong", "unreadable", "right", "skip", "right", "wrong", "right"]
    result, text, history = session(tmp_path, plan, n=6)
    assert result.finished and result.asked == 6 and result.correct == 4
    assert text.count("Question ") == 6
    assert text.count("Why: ") == 6 and text.count("Source: ") == 6
    assert text.count("✓ Correct.") == 4
    assert text.count("✗ Not quite") == 3  # Q2's two misses, Q6's first
    assert text.count("One more try") == 2
    assert text.count("(second try)") == 1
    assert text.count("Skipped. The answer is") == 1
    assert "Could not read your answer 'no idea, maybe 3,5?'" in text
    assert "Try again, or 'skip'." in text
    assert text.rstrip().splitlines()[-3] == "Score: 4/6 (67%)."
    assert "Concepts to revisit:" in text
    # Stored: readable answers and skips, not the unreadable one; SM-2 qualities 5/3/1/0.
    assert [h.correct for h in history] == [True, False, True, False, True, True]
    assert [h.quality for h in history] == [5, 1, 5, 0, 5, 3]
    assert history[3].answer == "(skipped)"
    assert all(h.tags == tuple(BY_ID[h.question_id].tags) for h in history)


def test_end_of_input_ends_gracefully_with_the_score_so_far(tmp_path):
    result, text, history = session(tmp_path, ["right", "wrong", "wrong", "eof"], n=5)
    assert not result.finished and result.asked == 2 and result.correct == 1
    assert "Stopped. Score so far: 1/2 (50%)." in text
    assert len(history) == 2


def test_quit_and_immediate_eof(tmp_path):
    result, text, _ = session(tmp_path, ["quit"], n=3)
    assert result.asked == 0 and "Stopped. Score so far: 0/0." in text
    result, text, _ = session(tmp_path, [], n=3)
    assert result.asked == 0 and "Stopped." in text


def test_a_one_question_pool_repeats_with_new_variants_and_attempts(tmp_path):
    q = BY_ID["kv-bytes"]
    result, text, history = session(tmp_path, ["wrong", "wrong", "right", "right"], n=3,
                                    questions=[q])
    attempts = [int(m[3]) for m in HEADER.findall(text)]
    variants = [m[4] for m in HEADER.findall(text)]
    assert attempts == [1, 2, 3] and len(set(variants)) == 3
    assert [h.attempt for h in history] == [1, 2, 3]
    assert result.correct == 2
    # A later session continues the attempt count from the store.
    _, text2, _ = session(tmp_path, ["right"], n=1, questions=[q])
    assert HEADER.findall(text2)[0][3] == "4"


def test_missed_questions_come_back_sooner(tmp_path):
    store = tmp_path / "weak.sqlite"
    pool = [BY_ID[i] for i in ("kv-bytes", "chinchilla-ratio", "bpe-start", "mask-value",
                               "prenorm", "clip-order", "bf16", "flash-attention")]
    # Miss everything about the KV cache, answer the rest right, over a few sessions.
    asked_kv = []
    for s in range(4):
        out = io.StringIO()

        class Learner(ScriptedLearner):
            def readline(self) -> str:
                qid = HEADER.findall(self.output.getvalue())[-1][2]
                self.plan = ["wrong" if qid == "kv-bytes" else "right"]
                return super().readline()

        with Store(store) as st:
            run_practice(pool, learner="bob", store=st, input=Learner(out, "bob", []), output=out,
                         n=8, seed=s)
        asked_kv.append(sum(1 for m in HEADER.findall(out.getvalue()) if m[2] == "kv-bytes"))
    # Once missed, it keeps coming back: more often than a fair share of 1 in 8.
    assert sum(asked_kv[1:]) > 3, asked_kv


def test_cli_practice_filters_and_errors(tmp_path, monkeypatch, capsys):
    answers = io.StringIO("skip\n" * 4)
    monkeypatch.setattr(sys, "stdin", answers)
    store = tmp_path / "cli.sqlite"
    code = main(["practice", "--tags", "kv-cache", "--learner", "carol", "--store", str(store),
                 "-n", "4", "--seed", "3", "--quizzes", str(QUIZZES)])
    assert code == 0
    out = capsys.readouterr().out
    ids = [m[2] for m in HEADER.findall(out)]
    assert len(ids) == 4 and all("kv-cache" in BY_ID[i].tags for i in ids)
    assert "Score: 0/4 (0%)." in out
    assert main(["practice", "nope", "--quizzes", str(QUIZZES), "--store", str(store)]) == 2
    assert main(["practice", "--tags", "no-such-tag", "--quizzes", str(QUIZZES),
                 "--store", str(store)]) == 2
    assert "Tags:" in capsys.readouterr().err


# ---------------------------------------------------------------------------- a real terminal


class Terminal:
    """A child process on a pseudo-terminal, driven the way a person types."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO,
                                     env=env, close_fds=True, start_new_session=True)
        os.close(slave)
        self.buffer = ""
        self.pos = 0

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.buffer, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got:\n{self.buffer}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    data = b""
                if not data:
                    m = regex.search(self.buffer, self.pos)
                    if m:
                        return m
                    raise AssertionError(f"terminal closed before {pattern!r}:\n{self.buffer}")
                self.buffer += data.decode("utf-8", errors="replace")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_practice_through_a_pseudo_terminal(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8",
               HOME=str(tmp_path), TERM="dumb")
    env.pop("GRADER_QUIZ_STORE", None)
    learner = "pty-learner"
    term = Terminal([sys.executable, "-m", "grader.quiz", "practice", "training-dynamics",
                     "--learner", learner, "--store", str(tmp_path / "pty.sqlite"), "-n", "3",
                     "--seed", "11", "--quizzes", str(QUIZZES)], env)
    try:
        term.expect(r"Quiz practice for pty-learner: 3 questions from training-dynamics")
        # Question 1: answered right.
        m = term.expect(HEADER.pattern)
        inst = instantiate(BY_ID[m[3]], derive_seed(learner, m[3], int(m[4])))
        term.expect(r"> ")
        term.type(example_answer(inst) + "\r")
        term.expect(r"Correct\.")
        term.expect(r"Why: ")
        # Question 2: first something unreadable, then a wrong answer.
        m = term.expect(HEADER.pattern)
        inst = instantiate(BY_ID[m[3]], derive_seed(learner, m[3], int(m[4])))
        term.expect(r"> ")
        term.type("dunno\r")
        term.expect(r"Could not read your answer 'dunno'")
        term.expect(r"> ")
        term.type(wrong_answer(inst) + "\r")
        term.expect(r"Not quite")
        term.expect(r"One more try")
        term.expect(r"> ")
        term.type(wrong_answer(inst) + "\r")
        term.expect(r"The answer is")
        # Question 3: the learner presses Ctrl-D.
        term.expect(HEADER.pattern)
        term.expect(r"> ")
        term.type("\x04")
        term.expect(r"Stopped\. Score so far: 1/2 \(50%\)\.")
    finally:
        code = term.close()
    assert code == 0
    with Store(tmp_path / "pty.sqlite") as st:
        assert [h.correct for h in st.history(learner)] == [True, False]
    assert not (tmp_path / ".grader").exists()  # --store was used, not the home default
