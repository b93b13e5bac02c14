"""Issue 18, "quizzes that teach": each test here failed before the fix it names."""

from __future__ import annotations

import io
import math
import random
import re
from pathlib import Path

import pytest

from grader.quiz.answers import check_answer, example_answer, wrong_answer
from grader.quiz.audit import audit
from grader.quiz.bank import load_banks
from grader.quiz.cli import main
from grader.quiz.coverage import ITEMS_FILE, check_quotes, coverage, load_items
from grader.quiz.generators import GENERATORS, Generated, generator
from grader.quiz.instance import fingerprint, instantiate
from grader.quiz.model import Mistake, Question, Tolerance, derive_seed
from grader.quiz.practice import run_practice
from grader.quiz.present import how_to_answer
from grader.quiz.scheduler import DAY, Card, cards, due_queue, mastery_by_concept, sm2
from grader.quiz.sheets import grade_sheet, make_sheet, sheet_seed, sheet_stream
from grader.quiz.store import Attempt, Store

REPO = Path(__file__).resolve().parents[2]
QUIZZES = REPO / "quizzes"
COURSE = Path("/work/shared/course")
BANKS = load_banks(QUIZZES)
BY_ID = {q.id: q for b in BANKS for q in b.questions}
PARAM = [q for q in BY_ID.values() if q.parameterised]


def fixed(qid: str, attempt: int = 1):
    return instantiate(BY_ID[qid], derive_seed("tester", qid, attempt))


class Scripted(random.Random):
    """A Random whose choice()/randrange() return planned values (to rebuild one variant)."""

    def __init__(self, choices, randrange):
        super().__init__(0)
        self.plan = list(choices)
        self.rr = randrange

    def choice(self, seq):
        return self.plan.pop(0)

    def randrange(self, *args):
        return self.rr


# ------------------------------------------------------------------ verdicts that were wrong


def test_lr_cosine_forgetting_min_lr_is_no_longer_correct():
    # The variant: warmup 1000, max_lr 1e-4, min_lr 1e-5, max_steps 10000, step 2751.
    g = GENERATORS["lr_cosine"].generate(Scripted([1e-4, 1000, 10000], 2751))
    assert g.value == pytest.approx(9.185e-05, rel=1e-3)
    q = BY_ID["lr-cosine"]
    inst = instantiate(q, 1)
    inst.value, inst.tolerance, inst.mistakes = g.value, g.tolerance, g.mistakes
    inst.precision = None
    verdict = check_answer(inst, "9.095e-05")
    assert verdict.status == "wrong" and "min_lr" in verdict.message
    assert check_answer(inst, "9.185e-05").correct


def test_a_variant_whose_mistake_falls_inside_the_tolerance_is_redrawn():
    name = "test_clashy"

    @generator(name, kind="numeric", variables=("x",))
    def clashy(rng, opts):
        x = rng.randint(1, 100)
        # Half the draws list a "mistake" equal to the answer: those must never be shown.
        mistake = x if x % 2 else x * 3
        return Generated(vars={"x": x}, value=x, tolerance=Tolerance(abs=0.5, rel=0),
                         mistakes=[Mistake(mistake, "the clash")], steps=[f"x = {x}"])

    try:
        q = Question(id="clashy", kind="param", prompt="{x}?", explanation="", tags=["t"],
                     source="learning-plan.md", generator=name)
        for s in range(60):
            inst = instantiate(q, derive_seed("t", "clashy", s))
            assert inst.value % 2 == 0, "a clashing variant was shown"
            assert check_answer(inst, str(int(inst.value * 3))).status == "wrong"
    finally:
        del GENERATORS[name]


def test_quiz_check_proves_no_listed_mistake_is_accepted_for_any_generator():
    report = audit(BANKS, seeds=12)
    assert report.problems == []
    assert report.generators == len(GENERATORS) and report.mistakes > 1000
    assert report.shared == 0


def test_practice_and_sheets_never_share_a_variant():
    practice, sheet = {}, {}
    for q in PARAM:
        for attempt in range(1, 61):
            inst = instantiate(q, derive_seed("alice", q.id, attempt))
            practice.setdefault(q.generator, set()).add(fingerprint(q.generator, inst.vars))
        for sheet_id in ("default", "midterm-2026"):
            for attempt in (1, 2, 3):
                seed = sheet_seed(sheet_id, "alice", q.id, attempt)
                inst = instantiate(q, seed, sheet_stream(sheet_id))
                sheet.setdefault(q.generator, set()).add(fingerprint(q.generator, inst.vars))
    for name in sheet:
        assert not practice[name] & sheet[name], name
    # And the sheet's own variants change with the instructor's salt.
    q = BY_ID["kv-bytes"]
    a = make_sheet([b for b in BANKS if b.name == "phase2-checkpoint"], "alice", 1, "one")
    b = make_sheet([b for b in BANKS if b.name == "phase2-checkpoint"], "alice", 1, "two")
    assert a != b and "sheet_id: one" in a
    assert sheet_seed("one", "alice", q.id, 1) != derive_seed("alice", q.id, 1)


# ------------------------------------------------------------------ rounded numbers, precision


def test_a_correctly_rounded_count_is_asked_again_not_marked_wrong():
    inst = fixed("gpt2-param-count")
    v = check_answer(inst, "124.4M")
    assert v.status == "reask"
    assert "Right to 4 significant figures" in v.message and "exact count" in v.message
    assert check_answer(inst, "124M").status == "reask"
    assert check_answer(inst, "124,439,808").correct
    assert check_answer(inst, "125.4M").status == "wrong"
    # The prompt says an exact count is wanted.
    assert "exact count" in how_to_answer(inst)


def test_the_summary_round_numbers_get_their_own_message_and_read_as_million():
    inst = fixed("embedding-params-gpt2")
    v = check_answer(inst, "38.4M")
    assert v.status == "wrong" and "50K × 768" in v.message
    assert v.read_as == "38.4 million = 38,400,000"  # not "38.4 m", which reads like metres
    assert check_answer(inst, "38.6M").status == "reask"


def test_precision_is_stated_and_coarser_right_answers_are_asked_again():
    inst = fixed("ppl-val")
    assert "3 significant figures" in how_to_answer(inst)
    assert check_answer(inst, "1.3").status == "reask"
    assert check_answer(inst, "1.32").correct
    assert "1.32 equally likely" in inst.explanation
    q = BY_ID["temperature-prob"]
    for s in range(150):
        t = instantiate(q, derive_seed("x", q.id, s))
        assert t.value < 0.99, "a variant whose answer is 1.000 tests nothing"
        assert "3 decimal places" in how_to_answer(t)
        coarse = f"{t.value:.2f}"
        if abs(float(coarse) - t.value) > 0.001:
            assert check_answer(t, coarse).status == "reask"


def test_a_fraction_on_a_percent_question_is_asked_again():
    inst = fixed("effective-span-reduction")
    v = check_answer(inst, "0.78")
    assert v.status == "reask" and "Did you mean 78 %?" in v.message
    assert check_answer(inst, "about 78%").correct


# ---------------------------------------------------------------------------- answers people type


@pytest.mark.parametrize("qid,answer", [
    ("loss-init-20", "ln 20"),
    ("loss-init-20", "≈ 3"),
    ("effective-span-course", "~7.46"),
    ("effective-span-course", "7,46"),
    ("chinchilla-ratio", "20x"),
    ("chinchilla-ratio", "20×"),
    ("chinchilla-ratio", "20 tokens"),
    ("llama3-tokens-per-param", "1.875k"),
    ("ffn-hidden", "3072 dims"),
    ("mask-row-count", "3 entries"),
    ("init-scaled-residual", "0.02/sqrt(24)"),
    ("attn-equation-scale", "d_k^(1/2)"),
    ("attn-equation-scale", "d_k**0.5"),
    ("arch-encoder-decoder", "T5 (encoder-decoder)"),
])
def test_forms_people_type_are_accepted(qid, answer):
    v = check_answer(fixed(qid), answer)
    assert v.correct, (qid, answer, v.message)


def test_scientific_forms_and_byte_words():
    q = Question(id="q", kind="numeric", prompt="?", explanation="e", tags=["t"],
                 source="learning-plan.md", answer=2.5e-4, tolerance=Tolerance(rel=0.01))
    inst = instantiate(q, 1)
    for typed in ("2.5x10^-4", "2.5 × 10⁻⁴", "2.5e-4", "about 2.5e-4"):
        assert check_answer(inst, typed).correct, typed
    b = Question(id="b", kind="numeric", prompt="?", explanation="e", tags=["t"],
                 source="learning-plan.md", answer=1.5e9, unit="bytes",
                 tolerance=Tolerance(rel=0.001))
    assert check_answer(instantiate(b, 1), "1.5 gigabytes").correct


# ---------------------------------------------------------------------------- feedback that teaches


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_shows_a_worked_solution_with_its_numbers(name):
    gen = GENERATORS[name]
    for s in range(15):
        g = gen.generate(random.Random(s), {})
        assert g.steps, name
        assert g.hint, name
        text = " ".join(g.steps)
        if g.kind == "numeric":
            assert any(ch.isdigit() for ch in text)


def test_lr_cosine_solution_shows_ratio_factor_and_value():
    g = GENERATORS["lr_cosine"].generate(Scripted([1e-4, 1000, 10000], 2751), {})
    ratio = (2751 - 1000) / 9000
    coeff = 0.5 * (1 + math.cos(math.pi * ratio))
    text = "\n".join(g.steps)
    assert f"{ratio:.4f}" in text and f"{coeff:.4f}" in text and "9.185e-05" in text


def test_per_distractor_feedback_and_partial_credit():
    inst = fixed("power-law-loglog")
    wrong = next(i for i in range(len(inst.choices)) if i not in inst.correct)
    v = check_answer(inst, "abcdefghij"[wrong])
    assert v.status == "wrong" and inst.feedback[wrong] in v.message
    kv = fixed("kv-what")
    one = "abcdefghij"[kv.correct[0]]
    v = check_answer(kv, one)
    assert v.status == "partial" and v.credit == pytest.approx(1 / len(kv.correct))
    ent = fixed("entropy-epoch20")
    v = check_answer(ent, "2.7315 nats")  # the right number, the wrong unit
    assert v.status == "partial" and v.credit == 0.5 and "not the unit" in v.message


def test_the_course_texts_wrong_entropies_are_named():
    for qid, stated, computed in (("entropy-epoch20", "2.12", "2.73"),
                                  ("entropy-epoch50", "1.93", "2.53")):
        v = check_answer(fixed(qid), stated)
        assert v.status == "wrong"
        assert "course text states" in v.message and computed in v.message


def test_a_sheet_gives_partial_credit_and_a_worked_solution():
    bank = next(b for b in BANKS if b.name == "phase2-checkpoint")
    text = make_sheet([bank], "dora")
    seed = sheet_seed("default", "dora", "kv-what", 1)
    kv = instantiate(BY_ID["kv-what"], seed, sheet_stream("default"))
    one = "abcdefghij"[kv.correct[0]]
    text = re.sub(r"(- id: kv-what\n(?:  .*\n)*?  answer:)", rf"\1 {one}", text)
    result = grade_sheet(text, [bank])
    check = next(c for _, c in result.all_checks() if c.id == "kv-what")
    assert 0 < check.score < check.max_score
    kvb = next(c for _, c in result.all_checks() if c.id == "kv-bytes")
    assert kvb.details["worked_solution"]


class Typist:
    """Types planned lines; records what was printed before each line."""

    def __init__(self, out: io.StringIO, lines):
        self.out, self.lines, self.seen = out, list(lines), []

    def readline(self):
        self.seen.append(self.out.getvalue())
        return (self.lines.pop(0) + "\n") if self.lines else ""


def test_a_second_try_with_a_hint_before_the_answer_is_revealed(tmp_path):
    q = BY_ID["gpt2-sublayers"]
    out = io.StringIO()
    inp = Typist(out, ["13", "24"])
    with Store(tmp_path / "s.sqlite") as st:
        session = run_practice([q], learner="tester", store=st, input=inp, output=out, n=1)
        history = st.history("tester")
    assert "Hint:" in inp.seen[1] and "One more try" in inp.seen[1]
    assert "The answer is" not in inp.seen[1]
    assert session.correct == 1 and history[0].quality == 3
    assert "(second try)" in out.getvalue() and "Worked solution:" in out.getvalue()


def test_new_draws_a_new_variant_of_a_parameterised_question(tmp_path):
    q = BY_ID["kv-bytes"]
    out = io.StringIO()
    inp = Typist(out, ["new", "skip"])
    with Store(tmp_path / "s.sqlite") as st:
        run_practice([q], learner="tester", store=st, input=inp, output=out, n=1)
        assert len(st.history("tester")) == 1
    headers = re.findall(r"variant (\w+)\)", out.getvalue())
    assert len(headers) == 2 and headers[0] != headers[1]
    assert "New numbers:" in out.getvalue()


def test_a_self_graded_card_reveals_then_records_the_rating(tmp_path):
    q = BY_ID["card-sudden-jump"]
    out = io.StringIO()
    inp = Typist(out, ["", "5", "2"])
    with Store(tmp_path / "s.sqlite") as st:
        session = run_practice([q], learner="tester", store=st, input=inp, output=out, n=1)
        (a,) = st.history("tester")
    assert "Answer: " in out.getvalue() and "Type 0, 1, 2 or 3." in out.getvalue()
    assert a.correct and a.quality == 4 and session.correct == 1
    assert "card-sudden-jump" not in make_sheet([b for b in BANKS if b.name ==
                                                 "training-dynamics"], "x")


# ---------------------------------------------------------------------------- spacing by time


def test_sm2_intervals_and_due_dates():
    c = sm2(Card("q"), 5, 0.0)
    assert c.interval == 1 and c.due == DAY
    c = sm2(c, 5, DAY)
    assert c.interval == 6
    c = sm2(c, 5, 7 * DAY)
    assert c.interval == pytest.approx(6 * 2.7)
    c = sm2(c, 1, 30 * DAY)  # a miss: back to one day, ease down
    assert c.interval == 1 and c.reps == 0 and c.ease < 2.8
    history = [Attempt("a", ("t",), True, at=0.0, quality=5),
               Attempt("b", ("t",), False, at=0.0, quality=1)]
    assert due_queue({"a": ("t",), "b": ("t",)}, history, 0.5 * DAY) == []
    assert due_queue({"a": ("t",), "b": ("t",)}, history, 1.5 * DAY) == ["a", "b"]
    assert set(cards(history)) == {"a", "b"}


def test_practice_serves_due_reviews_first_and_progress_shows_mastery(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    pool = [BY_ID[i] for i in ("prenorm", "bf16", "clip-order", "flash-attention", "merge-table")]
    with Store(store) as st:
        st.record("alice", "gpt-from-scratch", "merge-table", 1, 1, ["bpe"], "a", True,
                  at=0.0, quality=5)
        out = io.StringIO()
        run_practice(pool, learner="alice", store=st, input=Typist(out, ["quit"]), output=out,
                     n=3, seed=0, now=2 * DAY)
    first = re.search(r"Question 1/3 \S (\S+)", out.getvalue()).group(1)
    assert first == "merge-table" and "review due" in out.getvalue()
    assert "Due for review today: 1." in out.getvalue()
    rows = {r.tag: r for r in mastery_by_concept({q.id: tuple(q.tags) for q in pool},
                                                 [Attempt("merge-table", ("bpe",), True,
                                                          at=0.0, quality=5)], 2 * DAY)}
    assert rows["bpe"].seen == 1 and rows["bpe"].due == 1
    assert main(["progress", "--learner", "alice", "--store", str(store),
                 "--quizzes", str(QUIZZES)]) == 0
    printed = capsys.readouterr().out
    assert "Progress of alice" in printed and re.search(r"tokenization\s+#", printed)


# ---------------------------------------------------------------------------- coverage


def test_coverage_of_the_course_items_is_at_least_85_percent():
    items = load_items(QUIZZES / ITEMS_FILE)
    cov = coverage(BANKS, items)
    assert cov.share >= 0.85 and not cov.unknown
    for must in ("d30-scaling-power-law", "d30-kaplan-alpha", "s4-compute-power-law",
                 "s12-update-size", "s12-time-constant", "s12-separation-ratio",
                 "s4-residual-stream", "s4-warmup-5pct", "s4-arithmetic-intensity",
                 "s4-sft-format", "s4-rlhf-ppo", "s4-dpo", "s4-kl-penalty",
                 "v-initial-loss-vs-lnv", "lp-grokking"):
        assert must in cov.covered, must
    new = [q for q in BY_ID.values() if q.passage]
    assert len(new) >= 40 and all(q.covers for q in new)


def test_a_question_citing_an_unknown_item_fails_quiz_check(tmp_path, capsys):
    for f in QUIZZES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    bank = tmp_path / "scaling-and-efficiency.yaml"
    bank.write_text(bank.read_text().replace("covers: [d30-kaplan-alpha]",
                                             "covers: [no-such-item]", 1))
    assert main(["check", "--quizzes", str(tmp_path), "--seeds", "2"]) == 1
    assert "covers unknown course item(s) no-such-item" in capsys.readouterr().err


@pytest.mark.skipif(not COURSE.is_dir(), reason="the course texts are not on this machine")
def test_every_quote_and_passage_is_in_the_course_texts():
    items = load_items(QUIZZES / ITEMS_FILE)
    assert check_quotes(items, COURSE) == []
    assert main(["check", "--quizzes", str(QUIZZES), "--seeds", "2", "--course",
                 str(COURSE)]) == 0


def test_example_and_wrong_answers_still_hold_for_the_new_questions():
    for q in BY_ID.values():
        if q.kind in ("recall", "param"):
            continue
        inst = fixed(q.id)
        assert check_answer(inst, example_answer(inst)).correct, q.id
        assert check_answer(inst, wrong_answer(inst)).status == "wrong", q.id


def test_quiz_check_requires_distractor_feedback_and_hints(tmp_path, capsys):
    for f in QUIZZES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    bank = tmp_path / "gpt-from-scratch.yaml"
    text = bank.read_text()
    text = re.sub(r'\n      "Q and K share one projection matrix": "[^"]*"', "", text, count=1)
    text = re.sub(r'\n    hint: "The FFN expands the width by a factor of 4."', "", text, count=1)
    bank.write_text(text)
    assert main(["check", "--quizzes", str(tmp_path), "--seeds", "2"]) == 1
    err = capsys.readouterr().err
    assert "question 'tying-what': no feedback for the distractor(s) 'Q and K share" in err
    assert "question 'ffn-hidden': no hint for a second try" in err
