"""Small pure helpers the generators share: number formatting, entropy, softmax, random rows."""

from __future__ import annotations

import math
import random

from ..answers import format_number

DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}


def human(x: float) -> str:
    """``140000000000`` → ``140B``; ``18874368`` → ``18.87M``."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.4g}{suffix}"
    return format_number(x)


def human_bytes(x: float) -> str:
    """``18874368`` → ``18 MiB`` (binary multiples)."""
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(x) >= div:
            return f"{x / div:.4g} {suffix}"
    return f"{format_number(x)} bytes"


def fmt(x: float, digits: int = 4) -> str:
    """``x`` to ``digits`` significant figures, written as people write numbers."""
    return format_number(float(f"{x:.{digits}g}"))


def sci(x: float, digits: int = 4) -> str:
    """A small or large number in e-notation when that reads better (``9.185e-05``)."""
    if x and (abs(x) < 1e-3 or abs(x) >= 1e7):
        return f"{x:.{digits - 1}e}"
    return fmt(x, digits)


def entropy_bits(probs: list[float]) -> float:
    """Shannon entropy in bits, −Σ p log₂ p (zero probabilities contribute nothing)."""
    return -sum(p * math.log2(p) for p in probs if p > 0)


def softmax(xs: list[float]) -> list[float]:
    """The softmax of ``xs`` (shifted by the maximum for stability)."""
    m = max(xs)
    exps = [math.exp(x - m) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def prob_row(rng: random.Random, n: int) -> list[float]:
    """``n`` probabilities with two decimals, each >= 0.01, summing to exactly 1."""
    cuts = sorted(rng.sample(range(1, 100), n - 1))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    return [p / 100 for p in parts]


def show_row(row: list[float]) -> str:
    """A probability row as printed in a prompt: ``[0.10, 0.25, ...]``."""
    return "[" + ", ".join(f"{p:.2f}" for p in row) + "]"


def gpt_params(vocab: int, block: int, layers: int, width: int, bias: bool, tied: bool) -> int:
    """Parameters of a nanoGPT/GPT-2 model (LayerNorms with or without bias, tied head or not)."""
    ln = 2 * width if bias else width
    b = 1 if bias else 0
    per_layer = (
        ln  # ln_1
        + width * 3 * width + b * 3 * width  # attn.c_attn
        + width * width + b * width  # attn.c_proj
        + ln  # ln_2
        + width * 4 * width + b * 4 * width  # mlp.c_fc
        + 4 * width * width + b * width  # mlp.c_proj
    )
    total = vocab * width + block * width + layers * per_layer + ln  # wte, wpe, blocks, ln_f
    if not tied:
        total += vocab * width  # lm_head, no bias
    return total
