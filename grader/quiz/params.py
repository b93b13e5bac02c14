"""Parameterised questions: numbers drawn per learner and attempt, answers computed by code.

A bank's ``kind: param`` question names a generator here; the generator draws its numbers from
a seeded :class:`random.Random` and returns the template variables (used in the question's
``prompt`` and ``explanation``) and the answer. Each generator declares its variables so that a
bank's templates are checked when the bank is loaded.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .answers import format_number
from .model import Mistake, Tolerance


@dataclass
class Generated:
    """What a generator drew: template variables and the answer (numeric, choice or text)."""

    vars: dict[str, Any]
    kind: str = "numeric"
    value: float | None = None
    unit: str | None = None
    tolerance: Tolerance | None = None
    mistakes: list[Mistake] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    correct: list[str] = field(default_factory=list)
    shuffle: bool = True
    accepted: list[str] = field(default_factory=list)
    display: str = ""


@dataclass(frozen=True)
class Generator:
    name: str
    func: Callable[[random.Random, dict[str, Any]], Generated]
    kind: str
    variables: tuple[str, ...]
    options: dict[str, Any]
    doc: str

    def generate(self, rng: random.Random, options: dict[str, Any] | None = None) -> Generated:
        opts = dict(self.options)
        opts.update(options or {})
        return self.func(rng, opts)


GENERATORS: dict[str, Generator] = {}


def generator(name: str, *, kind: str, variables: tuple[str, ...], options: dict | None = None):
    def register(func: Callable[[random.Random, dict[str, Any]], Generated]):
        GENERATORS[name] = Generator(
            name, func, kind, variables, dict(options or {}), (func.__doc__ or "").strip()
        )
        return func

    return register


# ---------------------------------------------------------------------------- helpers

DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}


def human(x: float) -> str:
    """``140000000000`` → ``140B``; ``18874368`` → ``18.87M``."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.4g}{suffix}"
    return format_number(x)


def human_bytes(x: float) -> str:
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(x) >= div:
            return f"{x / div:.4g} {suffix}"
    return f"{format_number(x)} bytes"


def fmt(x: float, digits: int = 4) -> str:
    return format_number(float(f"{x:.{digits}g}"))


def entropy_bits(probs: list[float]) -> float:
    return -sum(p * math.log2(p) for p in probs if p > 0)


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    exps = [math.exp(x - m) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def _row(rng: random.Random, n: int) -> list[float]:
    """``n`` probabilities with two decimals, each >= 0.01, summing to exactly 1."""
    cuts = sorted(rng.sample(range(1, 100), n - 1))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    return [p / 100 for p in parts]


def _show_row(row: list[float]) -> str:
    return "[" + ", ".join(f"{p:.2f}" for p in row) + "]"


# ---------------------------------------------------------------------------- attention


@generator("attention_entropy", kind="numeric", variables=("n", "row", "max_bits"))
def attention_entropy(rng: random.Random, opts: dict) -> Generated:
    """Entropy in bits of a random attention row."""
    n = rng.choice([4, 5, 6, 8])
    row = _row(rng, n)
    h = entropy_bits(row)
    return Generated(
        vars={"n": n, "row": _show_row(row), "max_bits": fmt(math.log2(n))},
        value=h,
        unit="bits",
        tolerance=Tolerance(abs=0.01, rel=0),
        display=f"{h:.3f} bits",
        mistakes=[
            Mistake(h * math.log(2), "That is the entropy in nats (natural log); bits use log₂."),
            Mistake(h * math.log10(2), "That uses log₁₀; entropy in bits uses log₂."),
        ],
    )


@generator("sharper_row", kind="single", variables=("row_a", "row_b", "h_a", "h_b"))
def sharper_row(rng: random.Random, opts: dict) -> Generated:
    """Which of two random attention rows is sharper (lower entropy)?"""
    while True:
        a, b = _row(rng, 5), _row(rng, 5)
        ha, hb = entropy_bits(a), entropy_bits(b)
        if abs(ha - hb) >= 0.15:
            break
    sharper = "Row A" if ha < hb else "Row B"
    return Generated(
        vars={"row_a": _show_row(a), "row_b": _show_row(b), "h_a": f"{ha:.3f}", "h_b": f"{hb:.3f}"},
        kind="single",
        choices=["Row A", "Row B"],
        correct=[sharper],
        shuffle=False,
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
    return Generated(
        vars={"q": str(q), "k": str(k), "d_k": d_k, "dot": dot},
        value=value,
        tolerance=Tolerance(abs=0.01, rel=0.005),
        display=f"{value:.4g}",
        mistakes=[
            Mistake(dot, "That is the raw dot product: divide by √d_k."),
            Mistake(dot / d_k, "That divides by d_k; the scale is √d_k."),
        ],
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
    return Generated(
        vars={"d_k": d_k, "quantity": quantity, "sqrt_dk": fmt(math.sqrt(d_k))},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.005),
        display=fmt(value),
        mistakes=[Mistake(other, hint)],
    )


@generator("softmax_prob", kind="numeric", variables=("logits", "position"))
def softmax_prob(rng: random.Random, opts: dict) -> Generated:
    """One entry of the softmax of a small vector."""
    n = rng.choice([3, 4])
    logits = [rng.randint(-2, 4) for _ in range(n)]
    while len(set(logits)) == 1:
        logits = [rng.randint(-2, 4) for _ in range(n)]
    i = rng.randrange(n)
    value = softmax(logits)[i]
    mistakes = [Mistake(1 / n, "That is the uniform weight 1/n; softmax weights follow e^x.")]
    if sum(logits) != 0 and 0 < logits[i] / sum(logits) < 1:
        mistakes.append(Mistake(logits[i] / sum(logits),
                                "That divides x by Σx; softmax uses e^x / Σe^x."))
    return Generated(
        vars={"logits": str(logits), "position": i + 1},
        value=value,
        tolerance=Tolerance(abs=0.001, rel=0),
        display=f"{value:.3f}",
        mistakes=mistakes,
    )


@generator("temperature_prob", kind="numeric", variables=("logits", "temperature", "top"))
def temperature_prob(rng: random.Random, opts: dict) -> Generated:
    """Probability of the top token of softmax(logits / T)."""
    while True:
        logits = [round(rng.uniform(-1, 3), 1) for _ in range(3)]
        if len(set(logits)) == 3:
            break
    t = rng.choice([0.25, 0.5, 0.7, 1.5, 2.0, 5.0])
    top = max(range(3), key=lambda j: logits[j])
    value = softmax([x / t for x in logits])[top]
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
    )


# ---------------------------------------------------------------------------- memory & counting


@generator("kv_cache_bytes", kind="numeric",
           variables=("layers", "length", "width", "dtype", "dtype_bytes", "batch"),
           options={"batch": 1})
def kv_cache_bytes(rng: random.Random, opts: dict) -> Generated:
    """KV cache memory 2 × L × n × d × sizeof(dtype) × batch."""
    layers = rng.choice([4, 6, 8, 12, 16, 24, 32])
    length = rng.choice([128, 256, 512, 1024, 2048, 4096])
    width = rng.choice([256, 384, 512, 768, 1024, 2048, 4096])
    dtype = rng.choice(list(DTYPES))
    nbytes = DTYPES[dtype]
    batch = int(opts["batch"])
    value = 2 * layers * length * width * nbytes * batch
    return Generated(
        vars={"layers": layers, "length": length, "width": width, "dtype": dtype,
              "dtype_bytes": nbytes, "batch": batch},
        value=value,
        unit="bytes",
        tolerance=Tolerance(abs=0, rel=0.001),
        display=f"{format_number(value)} bytes ({human_bytes(value)})",
        mistakes=[
            Mistake(value / 2, "Both K and V are cached: there is a factor 2."),
            Mistake(value / layers, "Every layer keeps its own K and V: multiply by the layers."),
            Mistake(value / nbytes, f"That counts values; each takes {nbytes} bytes in {dtype}."),
            Mistake(value * 8, "That is in bits; the question asks for bytes."),
        ],
    )


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


@generator("gpt_param_count", kind="numeric",
           variables=("vocab", "block", "layers", "width", "heads", "bias_text", "tied_text"))
def gpt_param_count(rng: random.Random, opts: dict) -> Generated:
    """Exact parameter count of a random GPT configuration."""
    vocab = rng.choice([65, 256, 1024, 4096, 8192, 32000, 50257, 50304])
    block = rng.choice([64, 128, 256, 512, 1024])
    layers = rng.choice([2, 3, 4, 6, 8, 12])
    heads = rng.choice([2, 4, 6, 8, 12])
    width = heads * rng.choice([16, 32, 64])
    bias = rng.random() < 0.6
    tied = rng.random() < 0.7
    value = gpt_params(vocab, block, layers, width, bias, tied)
    mistakes = [
        Mistake(value - block * width, "The learned position embedding wpe has block_size × d "
                "parameters too."),
    ]
    if tied:
        mistakes.append(Mistake(value + vocab * width, "With weight tying lm_head shares wte's "
                                "matrix: count it once."))
    else:
        mistakes.append(Mistake(value - vocab * width, "Without weight tying lm_head has its own "
                                "V × d matrix."))
    if bias:
        no_bias = gpt_params(vocab, block, layers, width, False, tied)
        mistakes.append(Mistake(no_bias, "Linear layers have biases here, and LayerNorms a bias "
                                "as well as a weight."))
    else:
        mistakes.append(Mistake(value + (2 * layers + 1) * width, "Without bias a LayerNorm has "
                                "only its weight (d parameters)."))
    mistakes.append(Mistake(value - (2 * layers + 1) * (2 if bias else 1) * width,
                            "Count the LayerNorms: ln_1 and ln_2 per block, and ln_f."))
    return Generated(
        vars={
            "vocab": f"{vocab:,}", "block": block, "layers": layers, "width": width,
            "heads": heads,
            "bias_text": "with biases (Linear layers and LayerNorms have biases)" if bias
            else "without biases (bias=False: no Linear biases, LayerNorms have a weight only)",
            "tied_text": "tied to the token embedding (weight tying)" if tied
            else "a separate V × d matrix without bias (no weight tying)",
        },
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=f"{format_number(value)} ({human(value)})",
        mistakes=mistakes,
    )


@generator("mha_params", kind="numeric", variables=("d", "bias_text"))
def mha_params(rng: random.Random, opts: dict) -> Generated:
    """Parameters of one attention layer: c_attn (d → 3d) and c_proj (d → d)."""
    d = rng.choice([64, 128, 192, 256, 384, 512, 768, 1024])
    bias = rng.random() < 0.5
    value = 4 * d * d + (4 * d if bias else 0)
    mistakes = [Mistake(3 * d * d + (3 * d if bias else 0),
                        "Count the output projection c_proj (d × d) too.")]
    if bias:
        mistakes.append(Mistake(4 * d * d, "The projections have biases here: 3d + d more."))
    return Generated(
        vars={"d": d, "bias_text": "with biases" if bias else "without biases"},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
    )


@generator("ffn_params", kind="numeric", variables=("d", "hidden"))
def ffn_params(rng: random.Random, opts: dict) -> Generated:
    """Parameters of the MLP d → 4d → d with biases."""
    d = rng.choice([64, 128, 256, 384, 512, 768, 1024, 1600])
    hidden = 4 * d
    value = 2 * d * hidden + hidden + d
    return Generated(
        vars={"d": d, "hidden": hidden},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=[
            Mistake(2 * d * hidden, "Both Linear layers have biases: 4d + d more."),
            Mistake(d * hidden + hidden,
                    "There are two Linear layers: up (c_fc) and down (c_proj)."),
        ],
    )


@generator("embedding_params", kind="numeric", variables=("vocab", "d", "ask"))
def embedding_params(rng: random.Random, opts: dict) -> Generated:
    """Token-embedding size V × d, or what weight tying saves."""
    vocab = rng.choice([256, 1000, 8192, 32000, 50257, 50304, 100277])
    d = rng.choice([128, 256, 512, 768, 1024, 2048])
    ask = rng.choice(["saved", "total"])
    value = vocab * d
    text = (
        "How many parameters does weight tying save (compared with a separate lm_head "
        "without bias)?"
        if ask == "saved"
        else "How many parameters do the token embedding and the tied output head have together?"
    )
    return Generated(
        vars={"vocab": f"{vocab:,}", "d": d, "ask": text},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=f"{format_number(value)} ({human(value)})",
        mistakes=[Mistake(2 * value, "Tied weights are one matrix: count V × d once."),
                  Mistake(vocab + d, "The embedding is a V × d matrix: multiply.")],
    )


@generator("chinchilla_tokens", kind="numeric", variables=("params",))
def chinchilla_tokens(rng: random.Random, opts: dict) -> Generated:
    """Compute-optimal tokens D ≈ 20 N."""
    mant = rng.choice([1, 1.3, 2.7, 3, 6.7, 7, 8, 13, 30, 65, 70, 124, 175, 350])
    scale = rng.choice([1e6, 1e9])
    n = mant * scale
    value = 20 * n
    return Generated(
        vars={"params": human(n)},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{format_number(value)} tokens ({human(value)})",
        mistakes=[Mistake(n / 20, "The rule is 20 tokens per parameter: multiply by 20.")],
    )


@generator("chinchilla_params", kind="numeric", variables=("tokens",))
def chinchilla_params(rng: random.Random, opts: dict) -> Generated:
    """Compute-optimal parameters N ≈ D / 20 for a token budget."""
    mant = rng.choice([2, 4, 10, 20, 60, 140, 300, 400, 1000, 1400, 2000])
    scale = rng.choice([1e6, 1e9])
    d = mant * scale
    value = d / 20
    return Generated(
        vars={"tokens": human(d)},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{format_number(value)} parameters ({human(value)})",
        mistakes=[Mistake(d * 20, "The rule is D ≈ 20 N, so N ≈ D / 20.")],
    )


# ---------------------------------------------------------------------------- tokenisation

_LETTERS = "abcdeghilnorstuw"


def _bpe_corpus(rng: random.Random) -> tuple[dict[str, int], tuple[str, str], int]:
    """A tiny corpus (word → count) whose most frequent adjacent pair is unique."""
    while True:
        alphabet = rng.sample(_LETTERS, rng.randint(4, 5))
        words: dict[str, int] = {}
        while len(words) < rng.randint(3, 5):
            length = rng.randint(2, 5)
            w = [rng.choice(alphabet)]
            while len(w) < length:
                c = rng.choice(alphabet)
                if c != w[-1]:  # no doubled letters: pair counts are then unambiguous
                    w.append(c)
            words.setdefault("".join(w), rng.randint(1, 7))
        pairs = bpe_pair_counts(words)
        (best, top), *rest = pairs.most_common()
        if not rest or rest[0][1] < top:
            return words, best, top


def bpe_pair_counts(words: dict[str, int]) -> Counter:
    pairs: Counter = Counter()
    for w, c in words.items():
        for a, b in zip(w, w[1:], strict=False):
            pairs[(a, b)] += c
    return pairs


def bpe_merge_word(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def _show_corpus(words: dict[str, int]) -> str:
    return "\n".join(f"  {w} ×{c}" for w, c in words.items())


@generator("bpe_first_merge", kind="text", variables=("corpus", "count"))
def bpe_first_merge(rng: random.Random, opts: dict) -> Generated:
    """The first BPE merge of a random tiny corpus."""
    words, (a, b), top = _bpe_corpus(rng)
    return Generated(
        vars={"corpus": _show_corpus(words), "count": top},
        kind="text",
        accepted=[a + b, f"{a} {b}", f"{a} + {b}"],
        display=f"'{a}' + '{b}' → '{a}{b}' ({top} occurrences)",
    )


@generator("bpe_tokens_after_merge", kind="numeric",
           variables=("corpus", "before", "pair", "merged"))
def bpe_tokens_after_merge(rng: random.Random, opts: dict) -> Generated:
    """Total token count of a tiny corpus after its first BPE merge."""
    words, pair, top = _bpe_corpus(rng)
    before = sum(len(w) * c for w, c in words.items())
    after = sum(len(bpe_merge_word(list(w), pair)) * c for w, c in words.items())
    return Generated(
        vars={"corpus": _show_corpus(words), "before": before, "pair": f"'{pair[0]}' + '{pair[1]}'",
              "merged": pair[0] + pair[1]},
        value=after,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=f"{after} tokens",
        mistakes=[Mistake(before, "That is the count before the merge: each merge of the pair "
                          "replaces two tokens by one.")],
    )


@generator("bpe_vocab_size", kind="numeric", variables=("base", "base_text", "merges", "special"))
def bpe_vocab_size(rng: random.Random, opts: dict) -> Generated:
    """Vocabulary size = base symbols + merges + special tokens."""
    base, base_text = rng.choice([(256, "the 256 byte values"), (65, "65 characters"),
                                  (100, "100 characters")])
    merges = rng.choice([1000, 5000, 10000, 30000, 32000, 50000, 100000])
    special = rng.choice([0, 1, 1, 2, 4])
    value = base + merges + special
    mistakes = [Mistake(merges, "The base symbols stay in the vocabulary: add them.")]
    if special:
        mistakes.append(Mistake(base + merges, "Count the special tokens too."))
    return Generated(
        vars={"base": base, "base_text": base_text, "merges": f"{merges:,}", "special": special},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
    )


# ---------------------------------------------------------------------------- training dynamics


@generator("perplexity_from_loss", kind="numeric", variables=("loss",))
def perplexity_from_loss(rng: random.Random, opts: dict) -> Generated:
    """Perplexity exp(loss) of a cross-entropy loss in nats."""
    loss = round(rng.uniform(0.03, 5.0), 2)
    value = math.exp(loss)
    return Generated(
        vars={"loss": f"{loss:.2f}"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=fmt(value),
        mistakes=[
            Mistake(2**loss, "That is 2^loss; cross-entropy in nats gives perplexity e^loss."),
            Mistake(10**loss, "That is 10^loss; perplexity is e^loss."),
        ],
    )


@generator("loss_from_perplexity", kind="numeric", variables=("ppl",))
def loss_from_perplexity(rng: random.Random, opts: dict) -> Generated:
    """Cross-entropy loss ln(perplexity)."""
    ppl = round(rng.uniform(1.2, 120.0), 1)
    value = math.log(ppl)
    return Generated(
        vars={"ppl": f"{ppl:.1f}"},
        value=value,
        tolerance=Tolerance(abs=0.005, rel=0.005),
        display=f"{value:.3f} nats",
        unit="nats",
        mistakes=[Mistake(math.log2(ppl), "That is log₂: the loss in nats is ln(perplexity)."),
                  Mistake(math.log10(ppl), "That is log₁₀: the loss is ln(perplexity).")],
    )


@generator("loss_at_init", kind="numeric", variables=("vocab",))
def loss_at_init(rng: random.Random, opts: dict) -> Generated:
    """Expected cross-entropy at initialisation: ln V for a uniform prediction."""
    vocab = rng.choice([2, 10, 20, 26, 65, 100, 256, 1000, 4096, 32000, 50257, 50304, 100277])
    value = math.log(vocab)
    mistakes = [Mistake(1 / vocab, "1/V is the probability of each token; the loss is −ln(1/V).")]
    if vocab > 2:
        mistakes += [Mistake(math.log2(vocab), "That is log₂ V (bits); PyTorch's cross-entropy "
                             "uses the natural log.")]
    mistakes.append(Mistake(math.log10(vocab), "That is log₁₀ V; the loss uses the natural log."))
    return Generated(
        vars={"vocab": f"{vocab:,}"},
        value=value,
        tolerance=Tolerance(abs=0.01, rel=0.002),
        display=f"{value:.3f}",
        mistakes=mistakes,
    )


@generator("updates_per_epoch", kind="numeric", variables=("examples", "batch"))
def updates_per_epoch(rng: random.Random, opts: dict) -> Generated:
    """Optimizer updates per epoch, the last incomplete batch dropped."""
    batch = rng.choice([8, 16, 32, 64, 128, 256, 512])
    examples = rng.randrange(1000, 100001, 10)
    value = examples // batch
    mistakes = [Mistake(examples * batch, "Divide the examples by the batch size.")]
    if examples % batch:
        mistakes.append(Mistake(value + 1, "That counts the incomplete last batch, which is "
                                "dropped here: round down."))
    return Generated(
        vars={"examples": f"{examples:,}", "batch": batch},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
    )


@generator("total_updates", kind="numeric", variables=("examples", "batch", "epochs", "per_epoch"))
def total_updates(rng: random.Random, opts: dict) -> Generated:
    """Total optimizer updates over several epochs."""
    batch = rng.choice([16, 32, 64, 128])
    examples = rng.randrange(2000, 50001, 100)
    epochs = rng.choice([3, 5, 10, 20, 50, 100])
    per = examples // batch
    value = epochs * per
    mistakes = [Mistake(epochs * examples, "That is the number of examples seen; an update uses "
                        "a whole batch.")]
    if examples % batch:
        mistakes.append(Mistake(epochs * (per + 1), "The incomplete last batch is dropped."))
    return Generated(
        vars={"examples": f"{examples:,}", "batch": batch, "epochs": epochs, "per_epoch": per},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
    )


@generator("grad_decay_fit", kind="numeric", variables=("t1", "g1", "t2", "g2", "a"))
def grad_decay_fit(rng: random.Random, opts: dict) -> Generated:
    """The factor b of an exponential fit |∇| = a·b^epoch through two measurements."""
    a = round(rng.uniform(0.5, 3.0), 2)
    b = round(rng.uniform(0.8, 0.97), 3)
    t1 = rng.randint(1, 5)
    t2 = rng.randint(t1 + 10, 50)
    g1 = float(f"{a * b**t1:.4g}")
    g2 = float(f"{a * b**t2:.4g}")
    value = (g2 / g1) ** (1 / (t2 - t1))
    a_fit = g1 / value**t1
    return Generated(
        vars={"t1": t1, "g1": fmt(g1), "t2": t2, "g2": fmt(g2), "a": fmt(a_fit)},
        value=value,
        tolerance=Tolerance(abs=0.002, rel=0),
        display=f"{value:.4f}",
        mistakes=[
            Mistake(g2 / g1, "That is b^(t2 − t1): take the (t2 − t1)-th root."),
            Mistake(1 - (1 - g2 / g1) / (t2 - t1), "The decay is multiplicative, not linear: "
                    "b = (g2/g1)^(1/(t2 − t1))."),
        ],
    )


@generator("lr_cosine", kind="numeric",
           variables=("max_lr", "min_lr", "warmup", "max_steps", "step"))
def lr_cosine(rng: random.Random, opts: dict) -> Generated:
    """Learning rate in the cosine-decay phase after linear warmup."""
    max_lr = rng.choice([1e-4, 3e-4, 6e-4, 1e-3])
    min_lr = max_lr / 10
    warmup = rng.choice([100, 200, 500, 1000])
    max_steps = rng.choice([5000, 10000, 20000])
    step = rng.randrange(warmup + 1, max_steps, 50)
    ratio = (step - warmup) / (max_steps - warmup)
    coeff = 0.5 * (1 + math.cos(math.pi * ratio))
    value = min_lr + coeff * (max_lr - min_lr)
    return Generated(
        vars={"max_lr": f"{max_lr:g}", "min_lr": f"{min_lr:g}", "warmup": warmup,
              "max_steps": max_steps, "step": step},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{value:.4g}",
        mistakes=[
            Mistake(coeff * max_lr, "The cosine decays to min_lr, not to 0: lr = min_lr + "
                    "coeff × (max_lr − min_lr)."),
            Mistake(min_lr + 0.5 * (1 + math.cos(math.pi * step / max_steps)) * (max_lr - min_lr),
                    "The decay starts after the warmup: ratio = (step − warmup) / "
                    "(max_steps − warmup)."),
        ],
    )


def render(template: str, variables: dict[str, Any]) -> str:
    """Fill a bank template; only plain ``{name}`` / ``{name:spec}`` fields (checked on load)."""
    return template.format_map(variables)
