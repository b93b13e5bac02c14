"""Generators for attention: entropy of attention rows, scaled scores, softmax and temperature,
the causal mask, head dimensions and the memory of the attention matrix."""

from __future__ import annotations

import math
import random

from ..answers import format_number
from ..model import Mistake, Tolerance
from .helpers import DTYPES, entropy_bits, fmt, human_bytes, prob_row, show_row, softmax
from .registry import Generated, generator


def _entropy_steps(row: list[float]) -> list[str]:
    terms = [f"−{p:.2f} × log₂ {p:.2f} = {-p * math.log2(p):.3f}" for p in row]
    return terms + [f"H = {' + '.join(f'{-p * math.log2(p):.3f}' for p in row)} = "
                    f"{entropy_bits(row):.3f} bits"]


@generator("attention_entropy", kind="numeric", variables=("n", "row", "max_bits"))
def attention_entropy(rng: random.Random, opts: dict) -> Generated:
    """Entropy in bits of a random attention row."""
    n = rng.choice([4, 5, 6, 8])
    row = prob_row(rng, n)
    h = entropy_bits(row)
    return Generated(
        vars={"n": n, "row": show_row(row), "max_bits": fmt(math.log2(n))},
        value=h,
        unit="bits",
        tolerance=Tolerance(abs=0.01, rel=0),
        display=f"{h:.3f} bits",
        mistakes=[
            Mistake(h * math.log(2), "That is the entropy in nats (natural log); bits use log₂."),
            Mistake(h * math.log10(2), "That uses log₁₀; entropy in bits uses log₂."),
        ],
        hint="Sum −p × log₂ p over every weight of the row (log base 2, since the answer is in "
             "bits).",
        steps=_entropy_steps(row) + [f"(the maximum, for a uniform row of {n}, is log₂ {n} = "
                                     f"{fmt(math.log2(n))} bits)"],
    )


@generator("sharper_row", kind="single", variables=("row_a", "row_b", "h_a", "h_b"))
def sharper_row(rng: random.Random, opts: dict) -> Generated:
    """Which of two random attention rows is sharper (lower entropy)?"""
    while True:
        a, b = prob_row(rng, 5), prob_row(rng, 5)
        ha, hb = entropy_bits(a), entropy_bits(b)
        if abs(ha - hb) >= 0.15:
            break
    sharper, other = ("Row A", "Row B") if ha < hb else ("Row B", "Row A")
    h_sharp, h_other = min(ha, hb), max(ha, hb)
    return Generated(
        vars={"row_a": show_row(a), "row_b": show_row(b), "h_a": f"{ha:.3f}", "h_b": f"{hb:.3f}"},
        kind="single",
        choices=["Row A", "Row B"],
        correct=[sharper],
        shuffle=False,
        feedback={other: f"{other} has the higher entropy ({h_other:.3f} bits against "
                         f"{h_sharp:.3f}): it is spread more evenly, so it is the less sharp."},
        hint="Sharper means lower entropy: compute H = −Σ p log₂ p for both rows.",
        steps=[f"H(A) = {ha:.3f} bits", f"H(B) = {hb:.3f} bits",
               f"The lower entropy is {h_sharp:.3f} bits: {sharper} is sharper by "
               f"{h_other - h_sharp:.3f} bits."],
    )


@generator("effective_span", kind="numeric", variables=("bits",))
def effective_span(rng: random.Random, opts: dict) -> Generated:
    """Effective number of attended positions 2^H for an entropy of H bits."""
    bits = round(rng.uniform(0.3, 4.0), 2)
    value = 2**bits
    return Generated(
        vars={"bits": f"{bits:.2f}"},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{value:.3f} positions",
        mistakes=[Mistake(math.exp(bits), "That is e^H: for an entropy in bits use 2^H.")],
        hint="A uniform row over k positions has entropy log₂ k bits; invert that.",
        steps=[f"k = 2^H = 2^{bits:.2f} = {value:.3f} positions"],
    )


@generator("attention_score", kind="numeric", variables=("q", "k", "d_k", "dot"))
def attention_score(rng: random.Random, opts: dict) -> Generated:
    """Scaled attention score q·k/sqrt(d_k) for small integer vectors."""
    d_k = rng.choice([4, 8, 9])
    while True:
        q = [rng.randint(-3, 3) for _ in range(d_k)]
        k = [rng.randint(-3, 3) for _ in range(d_k)]
        dot = sum(a * b for a, b in zip(q, k, strict=True))
        if dot != 0:
            break
    value = dot / math.sqrt(d_k)
    products = " + ".join(f"({a})({b})" for a, b in zip(q, k, strict=True))
    return Generated(
        vars={"q": str(q), "k": str(k), "d_k": d_k, "dot": dot},
        value=value,
        tolerance=Tolerance(abs=0.01, rel=0.005),
        display=f"{value:.4g}",
        mistakes=[
            Mistake(dot, "That is the raw dot product: divide by √d_k."),
            Mistake(dot / d_k, "That divides by d_k; the scale is √d_k."),
        ],
        hint="Take the dot product, then scale it the way softmax(QKᵀ/√d_k) does.",
        steps=[f"q·k = {products} = {dot}", f"√d_k = √{d_k} = {fmt(math.sqrt(d_k))}",
               f"score = {dot} / {fmt(math.sqrt(d_k))} = {value:.4g}"],
    )


@generator("sqrt_dk_scaling", kind="numeric", variables=("d_k", "quantity", "sqrt_dk"))
def sqrt_dk_scaling(rng: random.Random, opts: dict) -> Generated:
    """Variance/std of q·k for unit-normal entries, and the scale that brings it back to 1."""
    d_k = rng.choice([16, 25, 32, 36, 64, 100, 128, 256, 512])
    ask = rng.choice(["variance", "std", "divisor"])
    quantity = {
        "variance": "the variance of the unscaled score q·k",
        "std": "the standard deviation of the unscaled score q·k",
        "divisor": "the number to divide q·k by so that the scaled score has variance 1",
    }[ask]
    value = d_k if ask == "variance" else math.sqrt(d_k)
    other = math.sqrt(d_k) if ask == "variance" else d_k
    hint = (
        "That is the standard deviation √d_k; the variance is d_k."
        if ask == "variance"
        else "That is the variance d_k; its square root √d_k is the standard deviation."
    )
    steps = [f"q·k = Σ q_i k_i over {d_k} terms; each term has mean 0 and variance 1 × 1 = 1",
             f"independent terms add variances: Var(q·k) = {d_k}"]
    if ask != "variance":
        steps.append(f"std = √{d_k} = {fmt(math.sqrt(d_k))}"
                     + (": dividing by it gives variance 1" if ask == "divisor" else ""))
    return Generated(
        vars={"d_k": d_k, "quantity": quantity, "sqrt_dk": fmt(math.sqrt(d_k))},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.005),
        display=fmt(value),
        mistakes=[Mistake(other, hint)],
        hint="q·k is a sum of d_k independent products, each of variance 1.",
        steps=steps,
    )


@generator("softmax_prob", kind="numeric", variables=("logits", "position"))
def softmax_prob(rng: random.Random, opts: dict) -> Generated:
    """One entry of the softmax of a small vector."""
    n = rng.choice([3, 4])
    logits = [rng.randint(-2, 4) for _ in range(n)]
    while len(set(logits)) == 1:
        logits = [rng.randint(-2, 4) for _ in range(n)]
    i = rng.randrange(n)
    probs = softmax(logits)
    value = probs[i]
    mistakes = [Mistake(1 / n, "That is the uniform weight 1/n; softmax weights follow e^x.")]
    if sum(logits) != 0 and 0 < logits[i] / sum(logits) < 1:
        mistakes.append(Mistake(logits[i] / sum(logits),
                                "That divides x by Σx; softmax uses e^x / Σe^x."))
    exps = [math.exp(x) for x in logits]
    return Generated(
        vars={"logits": str(logits), "position": i + 1},
        value=value,
        tolerance=Tolerance(abs=0.001, rel=0),
        display=f"{value:.3f}",
        mistakes=mistakes,
        hint="softmax(x)_i = e^(x_i) / Σ_j e^(x_j): exponentiate every entry first.",
        steps=["e^x: " + ", ".join(f"e^{x} = {fmt(e)}" for x, e in zip(logits, exps, strict=True)),
               f"Σ e^x = {fmt(sum(exps))}",
               f"entry {i + 1}: {fmt(exps[i])} / {fmt(sum(exps))} = {value:.3f}"],
    )


@generator("temperature_prob", kind="numeric", variables=("logits", "temperature", "top"))
def temperature_prob(rng: random.Random, opts: dict) -> Generated:
    """Probability of the top token of softmax(logits / T)."""
    while True:
        logits = [round(rng.uniform(-1, 3), 1) for _ in range(3)]
        t = rng.choice([0.25, 0.5, 0.7, 1.5, 2.0, 5.0])
        top = max(range(3), key=lambda j: logits[j])
        value = softmax([x / t for x in logits])[top]
        # A variant whose answer rounds to 1.000 tests nothing (every sharpened guess is right).
        if len(set(logits)) == 3 and value < 0.99:
            break
    scaled = [x / t for x in logits]
    exps = [math.exp(x) for x in scaled]
    return Generated(
        vars={"logits": str(logits), "temperature": t, "top": logits[top]},
        value=value,
        tolerance=Tolerance(abs=0.001, rel=0),
        display=f"{value:.3f}",
        mistakes=[
            Mistake(softmax(logits)[top],
                    "That ignores the temperature (T = 1): divide the logits by T."),
            Mistake(softmax([x * t for x in logits])[top],
                    "That multiplies the logits by T; divide them."),
        ],
        hint="Divide every logit by T first, then take the softmax.",
        steps=[f"logits / T = {logits} / {t} = [{', '.join(fmt(x) for x in scaled)}]",
               "e^(x/T): [" + ", ".join(fmt(e) for e in exps) + f"], sum {fmt(sum(exps))}",
               f"p(top) = {fmt(exps[top])} / {fmt(sum(exps))} = {value:.3f}"],
    )


@generator("causal_mask_count", kind="numeric", variables=("n", "which"))
def causal_mask_count(rng: random.Random, opts: dict) -> Generated:
    """Masked or visible entries of an n×n causal mask."""
    n = rng.randint(3, 64)
    masked = rng.random() < 0.5
    value = n * (n - 1) // 2 if masked else n * (n + 1) // 2
    other = n * (n + 1) // 2 if masked else n * (n - 1) // 2
    which = (
        "are set to −∞ (masked out)" if masked else "are left visible (0 added, not masked)"
    )
    steps = [f"the mask is {n} × {n} = {n * n} entries",
             f"visible: j ≤ i, the diagonal and below: {n} × {n + 1} / 2 = {n * (n + 1) // 2}",
             f"masked: j > i, above the diagonal: {n} × {n - 1} / 2 = {n * (n - 1) // 2}"]
    return Generated(
        vars={"n": n, "which": which},
        value=value,
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=[
            Mistake(other, "That counts the other part: the diagonal (each token sees itself) is "
                    "visible, only j > i is masked."),
            Mistake(n * n / 2, "n²/2 forgets the diagonal: the diagonal is visible."),
        ],
        hint="Row i of the mask sees positions 1..i: add up the row counts.",
        steps=steps,
    )


@generator("head_dim", kind="numeric", variables=("d_model", "heads"))
def head_dim(rng: random.Random, opts: dict) -> Generated:
    """d_k = d_model / n_heads."""
    heads = rng.choice([2, 4, 6, 8, 12, 16, 20, 32])
    d_k = rng.choice([16, 32, 48, 64, 80, 96, 128])
    d_model = heads * d_k
    return Generated(
        vars={"d_model": d_model, "heads": heads},
        value=d_k,
        tolerance=Tolerance(abs=0, rel=0),
        display=str(d_k),
        mistakes=[Mistake(d_model * heads, "Heads split d_model, they do not multiply it.")],
        hint="The heads share d_model between them (\"split, not multiplied\").",
        steps=[f"d_k = d_model / n_heads = {d_model} / {heads} = {d_k}"],
    )


@generator("attention_matrix_bytes", kind="numeric",
           variables=("batch", "heads", "length", "dtype", "dtype_bytes"))
def attention_matrix_bytes(rng: random.Random, opts: dict) -> Generated:
    """Memory of the materialised attention weights (what flash attention avoids storing)."""
    batch = rng.choice([1, 2, 4, 8, 16])
    heads = rng.choice([4, 8, 12, 16])
    length = rng.choice([256, 512, 1024, 2048, 4096])
    dtype = rng.choice(list(DTYPES))
    nbytes = DTYPES[dtype]
    value = batch * heads * length * length * nbytes
    entries = batch * heads * length * length
    return Generated(
        vars={"batch": batch, "heads": heads, "length": length, "dtype": dtype,
              "dtype_bytes": nbytes},
        value=value,
        unit="bytes",
        tolerance=Tolerance(abs=0, rel=0.001),
        display=f"{format_number(value)} bytes ({human_bytes(value)})",
        mistakes=[
            Mistake(value / heads, "Every head has its own n × n matrix: multiply by the heads."),
            Mistake(value / length, "The matrix is n × n: the length appears squared."),
            Mistake(value / nbytes, f"That counts entries; each takes {nbytes} bytes in {dtype}."),
        ],
        hint="One n × n matrix per head and per sequence of the batch; then bytes per entry.",
        steps=[f"entries = batch × heads × n × n = {batch} × {heads} × {length} × {length} = "
               f"{format_number(entries)}",
               f"bytes = {format_number(entries)} × {nbytes} ({dtype}) = {format_number(value)} "
               f"= {human_bytes(value)}"],
    )
