"""The KV cache assignment's task: the small GPT, its weights and tokens, the reference's
uncached logits, and one worker run of the student's model through one cache.

Shared by :mod:`.cache` (the cache's checks) and :mod:`.generation` (``generate``'s checks).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from grader.checks.base import CheckFailed, Context
from grader.checks.common import random_parameters
from grader.checks.expected import derive_seed
from grader.checks.harness import Output, new
from grader.checks.kv_cache import MODULE

# A small GPT: several heads and layers, an odd vocabulary, room for a prompt and 32 steps.
KV = {"block_size": 48, "vocab_size": 97, "n_layer": 2, "n_head": 4, "n_embd": 32}
HEAD_DIM = KV["n_embd"] // KV["n_head"]
BATCH = 2
PROMPT = 5
STEPS = 32  # single-token steps after the prompt
# Multi-token chunks, the first one into an empty cache: the new queries are then the last T of
# L + T keys, which only a causal_mask(T, L + T) handles (T = 1 needs no mask at all).
CHUNKS = [3, 4, 1, 6, 2, 5]
GEN_PROMPT = 6
GEN_NEW = 24


def ref_kv(ref):
    """The reference's ``kv_cache`` module, beside the reference package ``ref``."""
    return importlib.import_module(f"{ref.__name__}.kv_cache")


def ref_model(ref, params, dtype=torch.float64):
    """The reference's ``CachedGPT`` with ``params`` loaded, in ``dtype``, in eval mode."""
    model = ref_kv(ref).CachedGPT(ref.GPTConfig(**KV)).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in params.items()})
    return model.eval()


def task_params(ctx: Context) -> dict[str, torch.Tensor]:
    """The weights both models run with (a recorded expected value, so fixtures carry them):
    random, and drawn again until the greedy path from the generation prompt is one that
    generation's checks can judge (:func:`greedy_path_is_telling`)."""
    # std 0.2 (10x GPT-2's init): attention far from uniform and positions that matter, so a
    # wrong offset or a leaking mask moves the logits by far more than the tolerance.
    # Drawn from the run's secret seed, as the tokens are: the bundle's fixtures hold the
    # public seed's weights and logits, which a table keyed by the weights would replay.
    seed, prompt = ctx.seed_for("params"), task_tokens(ctx)["prompt"]
    return ctx.expected("params", lambda ref: telling_params(ref, seed, prompt))


# What a greedy path must show to judge generate by. About one draw in ten sends a row into a
# fixed point (the same token 24 times, the tied embedding predicting its own token), where the
# positions no longer change the argmax: a lost cache offset then generated the right tokens.
# Every such miss in 1,000 draws had one distinct token in a row; three leaves a margin. And a
# top-2 logit gap of at least 1e-3 (logits ~4; float32 rounding moves them by ~1e-6) keeps a
# correct float32 model on the float64 path, and temperature 1e-5 from sampling off it.
MIN_DISTINCT = 3
MIN_GAP = 1e-3
MAX_DRAWS = 64


def telling_params(ref, seed: int, prompt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The first of the weights drawn from ``seed`` (then from seeds derived from it) whose
    reference greedy path from ``prompt`` is telling; in the (~1e-35) case that none of
    :data:`MAX_DRAWS` is, the last."""
    model = ref_kv(ref).CachedGPT(ref.GPTConfig(**KV)).to(torch.float64).eval()
    for draw in range(MAX_DRAWS):
        params = random_parameters(model, std=0.2,
                                   seed=seed if draw == 0 else derive_seed(seed, f"draw {draw}"))
        model.load_state_dict(params)
        if greedy_path_is_telling(model, ref_kv(ref).generate, prompt):
            break
    return params


def greedy_path_is_telling(model, generate, prompt: torch.Tensor) -> bool:
    """Whether ``generate(model, prompt, GEN_NEW, temperature=0)`` takes a path on which a wrong
    model shows: every row generates at least :data:`MIN_DISTINCT` distinct tokens, and at
    every step the chosen token's logit leads the next one by at least :data:`MIN_GAP`."""
    with torch.no_grad():
        path = generate(model, prompt, GEN_NEW, temperature=0)
        logits = model(path[:, :-1])[0][:, prompt.size(1) - 1:]
    if min(len(set(row)) for row in path[:, prompt.size(1):].tolist()) < MIN_DISTINCT:
        return False
    top = logits.topk(2, dim=-1).values
    return bool((top[..., 0] - top[..., 1]).min() >= MIN_GAP)


def task_tokens(ctx: Context) -> dict[str, torch.Tensor]:
    """The token sequence fed in steps and chunks (``seq``) and the generation prompt."""
    def make(g: torch.Generator):
        n = max(PROMPT + STEPS, sum(CHUNKS))
        return {"seq": torch.randint(0, KV["vocab_size"], (BATCH, n), generator=g),
                "prompt": torch.randint(0, KV["vocab_size"], (BATCH, GEN_PROMPT), generator=g)}

    return ctx.inputs("tokens", make)


def full_reference(ctx: Context) -> dict[str, torch.Tensor]:
    """The reference's logits WITHOUT a cache on the whole sequence, and its cache's contents
    after the chunks (float64)."""
    params, tokens = task_params(ctx), task_tokens(ctx)

    def compute(ref):
        model = ref_model(ref, params)
        with torch.no_grad():
            out = {"logits": model(tokens["seq"])[0]}
            cache = ref_kv(ref).KVCache(KV["n_layer"])
            model(tokens["seq"][:, :sum(CHUNKS)], kv_cache=cache)
        for layer in range(KV["n_layer"]):
            out[f"k.{layer}"], out[f"v.{layer}"] = cache.k[layer], cache.v[layer]
        return out

    return ctx.expected("full_reference", compute)


def split_chunks(seq: torch.Tensor, sizes: list[int]) -> dict[str, torch.Tensor]:
    """``seq`` cut into consecutive chunks of ``sizes`` tokens, named ``x0``, ``x1``, ..."""
    out, start = {}, 0
    for i, n in enumerate(sizes):
        out[f"x{i}"] = seq[:, start:start + n].contiguous()
        start += n
    return out


def prefill_kv(ctx: Context, length: int) -> dict[str, torch.Tensor]:
    """Keys and values of ``length`` made-up cached positions per layer (from the run's secret
    seed; no token sequence has them): what the prefill tests put into the cache."""
    def make(g: torch.Generator):
        shape = (BATCH, KV["n_head"], length, HEAD_DIM)
        return {f"pre.{n}.{layer}": torch.randn(shape, generator=g, dtype=torch.float64)
                for layer in range(KV["n_layer"]) for n in ("k", "v")}

    return ctx.inputs(f"prefill/{length}", make)


def run_steps(ctx: Context, sizes: list[int], *, uncached_full: bool = False,
              return_cache: bool = False, prefill: int = 0) -> dict[str, Any]:
    """Feed ``seq`` in chunks of ``sizes`` through one cache (first filled with ``prefill``
    made-up positions); optionally one call without a cache on everything fed. Model in float64
    with the reference's weights."""
    params, seq = task_params(ctx), task_tokens(ctx)["seq"]
    tensors = {**split_chunks(seq, sizes), "full": seq[:, :sum(sizes)].contiguous(),
               **{f"p.{k}": v for k, v in params.items()}}
    if prefill:
        tensors.update(prefill_kv(ctx, prefill))
    steps = [{"idx": f"x{i}", "cache": True} for i in range(len(sizes))]
    if uncached_full:
        steps.append({"idx": "full", "cache": False})
    reply = ctx.request("cached_steps", {
        "model": {"module": MODULE, "class": "CachedGPT", "args": [model_config()]},
        "dtype": "float64", "load": True,
        "cache": new(MODULE, "KVCache", KV["n_layer"]),
        "steps": steps, "return_cache": return_cache,
        "prefill_layers": KV["n_layer"] if prefill else 0,
    }, tensors)
    return {"steps": reply.result["steps"], "tensors": reply.tensors}


def model_config():
    """The worker-side ``GPTConfig(**KV)`` the student's model is built with."""
    return new("block", "GPTConfig", **KV)


def step_logits(run: dict[str, Any], i: int, what: str) -> torch.Tensor:
    """The logits of call ``i`` of a :func:`run_steps` run (``CheckFailed`` if not a tuple)."""
    out = Output(run["steps"][i]["output"], run["tensors"], what)
    if out.description["kind"] in ("tuple", "list"):
        return out.item(0).tensor()
    raise CheckFailed(f"{what} returned {out.description['kind']}, expected a tuple "
                      f"(logits, loss) as GPT.forward does")
