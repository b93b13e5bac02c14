"""Parameterised questions: seeds, reproducibility, and each generator's answer checked
independently of the code that computes it."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from grader.quiz.answers import check_answer
from grader.quiz.bank import load_banks
from grader.quiz.generators import GENERATORS, bpe_merge_word, gpt_params
from grader.quiz.instance import instantiate
from grader.quiz.model import derive_seed, variant_code

REPO = Path(__file__).resolve().parents[2]
BANKS = load_banks(REPO / "quizzes")
BY_ID = {q.id: q for b in BANKS for q in b.questions}
SEEDS = range(30)


def test_seed_is_stable_sha256_not_python_hash():
    seed = derive_seed("alice", "kv-bytes", 1)
    assert seed == derive_seed("alice", "kv-bytes", 1)
    assert 0 <= seed < 2**63
    assert seed != derive_seed("alice", "kv-bytes", 2)
    assert seed != derive_seed("bob", "kv-bytes", 1)
    assert seed != derive_seed("alice", "kv-bytes2", 1)
    # Pinned: changing the derivation would silently change every learner's variants.
    assert variant_code(seed) == f"{seed:016x}"[:8]
    code = ("from grader.quiz.model import derive_seed; "
            "print(derive_seed('alice', 'kv-bytes', 1))")
    outs = set()
    for hashseed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed, PYTHONPATH=str(REPO))
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, check=True).stdout.strip())
    assert outs == {str(seed)}


def test_same_seed_same_variant_other_seed_other_variant():
    q = BY_ID["kv-bytes"]
    a = instantiate(q, derive_seed("alice", q.id, 1))
    b = instantiate(q, derive_seed("alice", q.id, 1))
    assert (a.prompt, a.value, a.explanation) == (b.prompt, b.value, b.explanation)
    variants = {instantiate(q, derive_seed(name, q.id, 1)).prompt
                for name in ("alice", "bob", "carol", "dan", "eve", "frank")}
    assert len(variants) >= 4


def test_choices_are_shuffled_per_attempt_but_reproducibly():
    q = BY_ID["attn-projections"]
    orders = {tuple(instantiate(q, derive_seed("alice", q.id, k)).choices) for k in range(1, 13)}
    assert len(orders) > 3
    one = instantiate(q, 99)
    assert one.choices == instantiate(q, 99).choices
    assert sorted(one.choices) == sorted(q.choices)
    assert {one.choices[i] for i in one.correct} == set(q.correct)
    fixed = BY_ID["schedule-best"]  # shuffle: false
    assert instantiate(fixed, 5).choices == fixed.choices


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_provide_exactly_their_declared_variables(name):
    gen = GENERATORS[name]
    for s in SEEDS:
        g = gen.generate(random.Random(s))
        assert set(g.vars) == set(gen.variables), name
        assert g.kind == gen.kind
        if g.kind == "numeric":
            assert g.value is not None and math.isfinite(g.value)
            for m in g.mistakes:
                assert m.message.endswith((".", "?", ")")), m


def test_gpt2_small_has_124_439_808_parameters():
    assert gpt_params(50257, 1024, 12, 768, bias=True, tied=True) == 124_439_808
    assert gpt_params(50257, 1024, 12, 768, bias=True, tied=False) == 124_439_808 + 50257 * 768
    # bias=False (nanoGPT's option): no Linear biases, LayerNorm weights only.
    no_bias = gpt_params(50257, 1024, 12, 768, bias=False, tied=True)
    biases = 12 * (3 * 768 + 768 + 4 * 768 + 768) + (2 * 12 + 1) * 768
    assert no_bias == 124_439_808 - biases


def _count_by_layers(vocab, block, layers, d, bias, tied):
    """The parameter count, by listing every tensor's shape (independent of gpt_params)."""
    shapes = [(vocab, d), (block, d)]
    for _ in range(layers):
        shapes += [(d,), (3 * d, d), (d, d), (d,), (4 * d, d), (d, 4 * d)]
        if bias:
            shapes += [(d,), (3 * d,), (d,), (d,), (4 * d,), (d,)]
    shapes += [(d,)] + ([(d,)] if bias else [])
    if not tied:
        shapes.append((vocab, d))
    return sum(math.prod(s) for s in shapes)


def test_gpt_param_count_generator_matches_an_independent_count():
    q = BY_ID["gpt-param-count"]
    for s in SEEDS:
        inst = instantiate(q, derive_seed("t", q.id, s))
        text = inst.prompt
        m = re.search(r"vocabulary ([\d,]+), block_size (\d+), (\d+) layers, \d+ heads, "
                      r"d_model (\d+)", text)
        assert m, text
        vocab, block, layers, d = (int(g.replace(",", "")) for g in m.groups())
        bias = "with biases" in text
        tied = "tied to the token embedding" in text
        assert inst.value == _count_by_layers(vocab, block, layers, d, bias, tied), text


def test_kv_cache_bytes_formula():
    g = GENERATORS["kv_cache_bytes"]
    for s in SEEDS:
        out = g.generate(random.Random(s))
        v = out.vars
        expected = 2 * v["layers"] * v["length"] * v["width"] * v["dtype_bytes"] * v["batch"]
        assert out.value == expected
        assert {"float32": 4, "bfloat16": 2, "float16": 2}[v["dtype"]] == v["dtype_bytes"]
    assert g.generate(random.Random(0), {"batch": 4}).vars["batch"] == 4


def test_attention_entropy_against_numpy():
    g = GENERATORS["attention_entropy"]
    for s in SEEDS:
        out = g.generate(random.Random(s))
        row = np.array([float(x) for x in out.vars["row"].strip("[]").split(",")])
        assert row.sum() == pytest.approx(1.0) and (row > 0).all()
        assert out.value == pytest.approx(float(-(row * np.log2(row)).sum()), abs=1e-12)


def test_softmax_and_temperature_against_numpy():
    for s in SEEDS:
        out = GENERATORS["softmax_prob"].generate(random.Random(s))
        x = np.array(json.loads(out.vars["logits"]), dtype=float)
        p = np.exp(x) / np.exp(x).sum()
        assert out.value == pytest.approx(p[out.vars["position"] - 1])
        out = GENERATORS["temperature_prob"].generate(random.Random(s))
        x = np.array(json.loads(out.vars["logits"]), dtype=float) / out.vars["temperature"]
        p = np.exp(x) / np.exp(x).sum()
        assert out.value == pytest.approx(p.max())


def _independent_pairs(corpus: str) -> Counter:
    pairs: Counter = Counter()
    for line in corpus.strip().splitlines():
        word, count = line.split(" ×")
        word = word.strip()
        for i in range(len(word) - 1):
            pairs[word[i:i + 2]] += int(count)
    return pairs


def test_bpe_first_merge_is_the_unique_most_frequent_pair():
    q = BY_ID["bpe-first-merge"]
    for s in SEEDS:
        inst = instantiate(q, derive_seed("t", q.id, s))
        corpus = inst.prompt.split("characters:\n")[1].split("\nWhich pair")[0]
        (best, n1), (_, n2) = _independent_pairs(corpus).most_common(2)
        assert n1 > n2
        assert check_answer(inst, best).correct
        assert check_answer(inst, f"{best[0]} {best[1]}").correct
        assert check_answer(inst, f"('{best[0]}', '{best[1]}')").correct
        assert check_answer(inst, best[::-1]).status == "wrong"


def test_bpe_tokens_after_merge():
    assert bpe_merge_word(list("lower"), ("o", "w")) == ["l", "ow", "e", "r"]
    assert bpe_merge_word(list("abab"), ("a", "b")) == ["ab", "ab"]
    g = GENERATORS["bpe_tokens_after_merge"]
    for s in SEEDS:
        out = g.generate(random.Random(s))
        pairs = _independent_pairs(out.vars["corpus"])
        (_, n), = pairs.most_common(1)
        assert out.value == out.vars["before"] - n  # no doubled letters: no overlapping pairs


@pytest.mark.parametrize("name,check", [
    ("perplexity_from_loss", lambda v, out: v == pytest.approx(math.exp(float(out["loss"])))),
    ("loss_from_perplexity", lambda v, out: v == pytest.approx(math.log(float(out["ppl"])))),
    ("loss_at_init", lambda v, out: v == pytest.approx(math.log(_int(out["vocab"])))),
    ("effective_span", lambda v, out: v == pytest.approx(2 ** float(out["bits"]))),
    ("chinchilla_tokens", lambda v, out: v == pytest.approx(20 * _count(out["params"]))),
    ("chinchilla_params", lambda v, out: v == pytest.approx(_count(out["tokens"]) / 20)),
    ("head_dim", lambda v, out: v * out["heads"] == out["d_model"]),
    ("updates_per_epoch", lambda v, out: v == _int(out["examples"]) // out["batch"]),
    ("total_updates", lambda v, out: v == out["epochs"] * (
        int(out["examples"].replace(",", "")) // out["batch"])),
    ("attention_score", lambda v, out: v == pytest.approx(
        float(np.dot(json.loads(out["q"]), json.loads(out["k"]))) / math.sqrt(out["d_k"]))),
    ("attention_matrix_bytes", lambda v, out: v == out["batch"] * out["heads"]
     * out["length"] ** 2 * out["dtype_bytes"]),
    ("ffn_params", lambda v, out: v == 8 * out["d"] ** 2 + 5 * out["d"]),
    ("mha_params", lambda v, out: v == 4 * out["d"] ** 2 + (
        4 * out["d"] if out["bias_text"] == "with biases" else 0)),
    ("embedding_params", lambda v, out: v == int(out["vocab"].replace(",", "")) * out["d"]),
    ("bpe_vocab_size", lambda v, out: v == out["base"] + int(out["merges"].replace(",", ""))
     + out["special"]),
    ("causal_mask_count", lambda v, out: v == sum(
        1 for i in range(out["n"]) for j in range(out["n"])
        if (j > i) == ("masked" in out["which"] and "not masked" not in out["which"]))),
])
def test_generator_answers_independently(name, check):
    for s in SEEDS:
        out = GENERATORS[name].generate(random.Random(s))
        assert check(out.value, out.vars), (name, out.vars, out.value)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _count(text: str) -> float:
    return float(text[:-1]) * {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[text[-1]]


def test_sqrt_dk_and_grad_fit_and_lr_cosine():
    for s in SEEDS:
        out = GENERATORS["sqrt_dk_scaling"].generate(random.Random(s))
        d_k = out.vars["d_k"]
        expected = d_k if out.vars["quantity"].startswith("the variance") else math.sqrt(d_k)
        assert out.value == pytest.approx(expected)
        out = GENERATORS["grad_decay_fit"].generate(random.Random(s))
        v = out.vars
        g1, g2 = float(v["g1"]), float(v["g2"])
        assert g1 * out.value ** (v["t2"] - v["t1"]) == pytest.approx(g2, rel=1e-9)
        out = GENERATORS["lr_cosine"].generate(random.Random(s))
        v = out.vars
        mx, mn = float(v["max_lr"]), float(v["min_lr"])
        assert mn <= out.value <= mx
        ratio = (v["step"] - v["warmup"]) / (v["max_steps"] - v["warmup"])
        assert out.value == pytest.approx(mn + 0.5 * (1 + math.cos(math.pi * ratio)) * (mx - mn))


def test_sharper_row_choice():
    q = BY_ID["entropy-which-sharper"]
    for s in SEEDS:
        inst = instantiate(q, derive_seed("t", q.id, s))
        rows = [line.split(": ")[1] for line in inst.prompt.splitlines() if "Row" in line]
        ents = [-sum(p * math.log2(p) for p in json.loads(r)) for r in rows]
        sharper = "Row A" if ents[0] < ents[1] else "Row B"
        assert [inst.choices[i] for i in inst.correct] == [sharper]


def test_known_mistakes_get_specific_feedback():
    q = BY_ID["kv-bytes"]
    inst = instantiate(q, derive_seed("alice", q.id, 1))
    v = check_answer(inst, str(int(inst.value // 2)))
    assert v.status == "wrong" and "factor 2" in v.message
    q = BY_ID["entropy-random-row"]
    inst = instantiate(q, derive_seed("alice", q.id, 1))
    v = check_answer(inst, repr(inst.value * math.log(2)))
    assert v.status == "wrong" and "nats" in v.message
    # ...and the same value given with its unit is right.
    assert check_answer(inst, f"{inst.value * math.log(2)!r} nats").correct


def test_new_generators_against_independent_computations():
    for s in SEEDS:
        rng = random.Random
        v = GENERATORS["warmup_steps"].generate(rng(s))
        steps = _int(v.vars["max_steps"])
        warm = round(0.05 * steps)
        assert v.value == (warm if v.vars["phase"] == "the linear warmup" else steps - warm)
        v = GENERATORS["update_size"].generate(rng(s))
        assert v.value == pytest.approx(float(v.vars["lr"]) * float(v.vars["grad"]))
        v = GENERATORS["loss_time_constant"].generate(rng(s))
        l0, lf, t, lt = (float(v.vars[k]) for k in ("l0", "lf", "t", "lt"))
        tau = v.value if "time constant" in v.vars["ask"] else v.value / np.log(100)
        assert lf + (l0 - lf) * np.exp(-t / tau) == pytest.approx(lt, rel=1e-9)
        v = GENERATORS["loss_change"].generate(rng(s))
        total = float(v.vars["end"]) - float(v.vars["start"])
        per = total / (v.vars["e2"] - v.vars["e1"])
        assert v.value == pytest.approx(total if "total" in v.vars["ask"] else per)
        v = GENERATORS["power_law_ratio"].generate(rng(s))
        assert v.value == pytest.approx(np.power(float(v.vars["factor"]),
                                                 -float(v.vars["alpha"])))
        v = GENERATORS["power_law_fit"].generate(rng(s))
        xs = np.log([_count(v.vars["n1"]), _count(v.vars["n2"])])
        ys = np.log([float(v.vars["l1"]), float(v.vars["l2"])])
        slope, _ = np.polyfit(xs, ys, 1)  # the Day 30 script's own fit
        assert v.value == pytest.approx(-slope, rel=1e-9)
        v = GENERATORS["arithmetic_intensity"].generate(rng(s))
        m, k, n = v.vars["m"], v.vars["k"], v.vars["n"]
        # Bytes of the two inputs and the output as 2-byte arrays (no product computed).
        moved = sum(np.empty(shape, np.float16).nbytes for shape in ((m, k), (k, n), (m, n)))
        assert v.value == pytest.approx(2 * m * k * n / moved)


NEW_FIXED_KEYS = {
    # question id → the key computed independently of the bank (numpy, plain arithmetic)
    "kaplan-ratio": 0.19 / 0.076,  # = 2.5
    "compute-to-halve": float(np.power(2.0, 1 / 0.05)),  # 2^20 = 1,048,576
    "ridge-point": 312e12 / 2e12,  # 156 FLOPs per byte
    "baseline-cosine-midpoint": 3e-5 + 0.5 * (1 + np.cos(np.pi * 0.5)) * (3e-4 - 3e-5),
    "ema-smoothing": 0.01 * 2.0 + (1 - 0.01) * 3.0,  # 2.99
    "kl-penalised-reward": 2.0 - 0.1 * 5.0,  # 1.5
    "gpt2-sublayers": 12 * 2,
    "param-total-change": 0.342 - 0.023,  # 0.319
    "update-size-course": 0.001 * 0.05,  # 5e-5
    "separation-ratio": 1.2 / 0.3,  # 4
    "initial-prob-from-loss": float(np.exp(-4.614)),  # 0.00991
    "loss-improvement-pct": 100 * (1 - 1.5509 / 3.8095),  # 59.29 %, the summary's 59.3 %
    "speed-ratio": 2.4 / 0.01,  # 240
}


@pytest.mark.parametrize("qid", sorted(NEW_FIXED_KEYS))
def test_new_fixed_answer_keys_independently(qid):
    q = BY_ID[qid]
    assert q.answer == pytest.approx(NEW_FIXED_KEYS[qid], rel=1e-9)
    inst = instantiate(q, 1)
    assert check_answer(inst, repr(float(NEW_FIXED_KEYS[qid]))).correct


def test_the_validation_summary_sanity_numbers():
    # ln 25 = 3.22 (the uniform loss the summary's 4.614 should be near); ln 37 = 3.61.
    assert np.log(25) == pytest.approx(3.2189, abs=1e-4)
    assert np.log(37) == pytest.approx(3.6109, abs=1e-4)
    assert "3.22" in BY_ID["initial-loss-vs-ln-v"].prompt
