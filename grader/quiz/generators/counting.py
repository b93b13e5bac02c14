"""Generators for counting: KV-cache memory and the parameters of GPT models and their parts."""

from __future__ import annotations

import random

from ..answers import format_number
from ..model import Mistake, Tolerance
from .helpers import DTYPES, gpt_params, human, human_bytes
from .registry import Generated, generator

f = format_number


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
    values = 2 * layers * length * width * batch
    return Generated(
        vars={"layers": layers, "length": length, "width": width, "dtype": dtype,
              "dtype_bytes": nbytes, "batch": batch},
        value=value,
        unit="bytes",
        tolerance=Tolerance(abs=0, rel=0.001),
        display=f"{f(value)} bytes ({human_bytes(value)})",
        mistakes=[
            Mistake(value / 2, "Both K and V are cached: there is a factor 2."),
            Mistake(value / layers, "Every layer keeps its own K and V: multiply by the layers."),
            Mistake(value / nbytes, f"That counts values; each takes {nbytes} bytes in {dtype}."),
            Mistake(value * 8, "That is in bits; the question asks for bytes."),
        ],
        hint="Per layer, a K and a V of n × d values each; then multiply by bytes per value.",
        steps=[f"values = 2 (K and V) × {layers} layers × {length} positions × {width} × batch "
               f"{batch} = {f(values)}",
               f"bytes = {f(values)} × {nbytes} ({dtype}) = {f(value)} = {human_bytes(value)}"],
    )


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
    d, b = width, 1 if bias else 0
    ln = 2 * d if bias else d
    attn = 3 * d * d + b * 3 * d + d * d + b * d
    mlp = 8 * d * d + b * 5 * d
    block_total = attn + mlp + 2 * ln
    steps = [
        f"wte = V × d = {f(vocab)} × {d} = {f(vocab * d)}; wpe = {block} × {d} = {f(block * d)}",
        f"per block: attention {f(attn)} (c_attn {d}×{3 * d}" + (" + bias" if bias else "")
        + f", c_proj {d}×{d}" + (" + bias" if bias else "") + f"), MLP {f(mlp)}, two LayerNorms "
        f"{f(2 * ln)}: {f(block_total)}",
        f"{layers} blocks = {f(layers * block_total)}; ln_f = {f(ln)}",
        "lm_head: tied to wte, 0 more" if tied else f"lm_head: V × d = {f(vocab * d)}",
        f"total = {f(value)}",
    ]
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
        display=f"{f(value)} ({human(value)})",
        mistakes=mistakes,
        hint="Add wte, wpe, every block (attention, MLP, two LayerNorms), ln_f, and lm_head "
             "unless it is tied.",
        steps=steps,
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
    steps = [f"c_attn: {d} × {3 * d} = {f(3 * d * d)}" + (f" + bias {3 * d}" if bias else ""),
             f"c_proj: {d} × {d} = {f(d * d)}" + (f" + bias {d}" if bias else ""),
             f"total = {f(value)}"]
    return Generated(
        vars={"d": d, "bias_text": "with biases" if bias else "without biases"},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=f(value),
        mistakes=mistakes,
        hint="Q, K and V come from one d → 3d projection, and the heads are mixed by one more.",
        steps=steps,
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
        display=f(value),
        mistakes=[
            Mistake(2 * d * hidden, "Both Linear layers have biases: 4d + d more."),
            Mistake(d * hidden + hidden,
                    "There are two Linear layers: up (c_fc) and down (c_proj)."),
        ],
        hint="Two Linear layers, each a weight matrix plus a bias of its output size.",
        steps=[f"c_fc: {d} × {hidden} + {hidden} = {f(d * hidden + hidden)}",
               f"c_proj: {hidden} × {d} + {d} = {f(hidden * d + d)}",
               f"total = {f(value)}"],
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
        display=f"{f(value)} ({human(value)})",
        mistakes=[Mistake(2 * value, "Tied weights are one matrix: count V × d once."),
                  Mistake(vocab + d, "The embedding is a V × d matrix: multiply.")],
        hint="The embedding is one V × d matrix; with tying the head reuses it.",
        steps=[f"V × d = {f(vocab)} × {d} = {f(value)}",
               "saved: the separate head's V × d matrix" if ask == "saved"
               else "together: one shared matrix, counted once"],
    )
