"""Checks of the cache itself: the cached forward's logits against the reference's uncached
ones (single steps, chunks, positions after a prefilled cache), what the cache holds, and the
block_size limit. A failing call is named by the planted cache, attention, mask and block
mistakes it matches."""

from __future__ import annotations

from typing import Any

import torch

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.common import F64_ATOL, F64_RTOL
from grader.checks.compare import assert_close, difference
from grader.checks.kv_cache import ASSIGNMENT, MODULE
from grader.checks.kv_cache import mistakes as catalogue
from grader.checks.kv_cache.task import (
    BATCH,
    CHUNKS,
    HEAD_DIM,
    KV,
    PROMPT,
    STEPS,
    full_reference,
    model_config,
    prefill_kv,
    ref_kv,
    ref_model,
    run_steps,
    split_chunks,
    step_logits,
    task_params,
    task_tokens,
)
from grader.diagnosis import Diagnosis, affecting

check = ASSIGNMENT.check


def _describe_step(sizes: list[int], i: int, prefill: int = 0) -> str:
    before = prefill + sum(sizes[:i])
    n = sizes[i]
    toks = "token" if n == 1 else "tokens"
    if before == 0:
        return f"the first call ({n} {toks} into an empty cache)"
    if prefill and i == 0:
        return (f"the first call ({n} new {toks} over a cache filled with {prefill} made-up "
                f"positions)")
    where = (f"position {before}" if n == 1 else f"positions {before}..{before + n - 1}")
    return f"call {i + 1} ({n} new {toks} at {where}, {before} cached)"


# Every known mistake that can change the cached path's values: the cache's own and those of
# the attention, mask and block it is built from.
CACHED_MISTAKES = tuple(dict.fromkeys(
    catalogue.KV_CACHE + affecting("attention", "causal_mask", "block", "kv_cache")))


def _cached_compute(ctx: Context, sizes: list[int], prefill: int):
    params, seq = task_params(ctx), task_tokens(ctx)["seq"]
    pre = prefill_kv(ctx, prefill) if prefill else {}

    def compute(ref):
        model = ref_model(ref, params)
        cache = ref_kv(ref).KVCache(KV["n_layer"])
        for layer in range(KV["n_layer"] if prefill else 0):
            cache.update(layer, pre[f"pre.k.{layer}"], pre[f"pre.v.{layer}"])
        with torch.no_grad():
            out = {f"step{i}": model(x, kv_cache=cache)[0]
                   for i, x in enumerate(split_chunks(seq, sizes).values())}
        for layer in range(KV["n_layer"]):
            out[f"k.{layer}"], out[f"v.{layer}"] = cache.k[layer], cache.v[layer]
        return out

    key = f"cached/{prefill}/" + ",".join(map(str, sizes))
    return key, compute


def _cached_diagnosis(ctx: Context, sizes: list[int], prefill: int = 0) -> Diagnosis:
    """The known mistakes of the cached path: the reference's cached logits of each call,
    rerun with each mistake planted."""
    key, compute = _cached_compute(ctx, sizes, prefill)
    return Diagnosis(ctx, key, compute, CACHED_MISTAKES)


def _expected_steps(ctx: Context, sizes: list[int], prefill: int) -> list[torch.Tensor]:
    if not prefill:
        full, out, start = full_reference(ctx)["logits"], [], 0
        for n in sizes:
            out.append(full[:, start:start + n])
            start += n
        return out
    exp = ctx.expected(*_cached_compute(ctx, sizes, prefill))
    return [exp[f"step{i}"] for i in range(len(sizes))]


def _compare_steps(ctx: Context, sizes: list[int], run: dict[str, Any], hint: str,
                   prefill: int = 0) -> float:
    expected = _expected_steps(ctx, sizes, prefill)
    diagnosis = _cached_diagnosis(ctx, sizes, prefill)
    worst = 0.0
    for i, want in enumerate(expected):
        where = _describe_step(sizes, i, prefill)
        got = step_logits(run, i, f"`model(idx, kv_cache=cache)` ({where})")
        try:
            assert_close(got, want, f"with the cache, the logits of {where}", atol=F64_ATOL,
                         rtol=F64_RTOL, hint=hint, diagnose=diagnosis.on(f"step{i}"))
        except CheckFailed as failure:
            named = failure.details.get("likely_mistake")
            if named:  # the diagnosis's words, not the check's fixed guess
                failure.hint = named["hint"]
            elif prefill:
                failure.hint = (hint + " Here the cache was filled through cache.update with "
                                f"{prefill} positions whose tokens were never sent: the model "
                                "must attend to the keys and values its cache holds.")
            raise
        worst = max(worst, difference(got, want).max_abs)
    return worst


# Tolerance: the student's model runs in float64 with the reference's weights. Cached and
# uncached logits differ only in the order of the sums (~1e-15 here; ~3e-7 in float32, which is
# why the comparison is not done in float32), so F64_ATOL = 1e-6 is loose for a correct cache
# and tight for every bug of the catalogue (a lost position offset, a missing or unshifted mask,
# an overwritten cache move logits by 1e-2 or more).


STEP_HINT = ("Each new token's keys and values are appended to the cache of every layer; its "
             "query attends all cached positions and itself, and its position embedding is "
             "wpe[L] where L = len(cache) before the call.")
CHUNK_HINT = ("A chunk of T new tokens over L cached ones needs the shifted mask causal_mask(T, "
              "L + T): new token i may see every cached position and the new ones up to "
              "itself, not the later new tokens.")
PREFILL_STEPS, PREFILL_CHUNKS, PREFILL_POSITIONS = 7, 5, 9


@check("cached_steps", "Cached logits equal uncached logits at every step (32 steps)", 4,
       needs=("KVCache", "CachedGPT"))
def cached_steps(ctx: Context):
    """A prompt of 5 tokens, then 32 single tokens, fed through ONE ``KVCache`` with
    ``model(idx, kv_cache=cache)``: every call's logits ``(B, T, V)`` equal the logits that
    ``GPT.forward`` computes without a cache on the whole sequence, at the same positions
    (float64); ``model(seq)`` without a cache is ``GPT.forward``. And a cache first filled
    through ``cache.update`` with 7 positions of made-up keys and values (their tokens are
    never sent), then 8 single tokens: the logits equal the reference model's with the same
    cache, which only a model that reads its cache can compute."""
    sizes = [PROMPT] + [1] * STEPS
    run = run_steps(ctx, sizes, uncached_full=True)
    full = full_reference(ctx)["logits"]
    plain = step_logits(run, len(sizes), "`model(idx)` without a cache")
    assert_close(plain, full[:, :sum(sizes)], "without a cache, the logits of `model(idx)`",
                 atol=F64_ATOL, rtol=F64_RTOL,
                 hint="Without kv_cache, CachedGPT.forward must be exactly GPT.forward.")
    worst = _compare_steps(ctx, sizes, run, hint=STEP_HINT)
    singles = [1] * 8
    pre = run_steps(ctx, singles, prefill=PREFILL_STEPS)
    worst = max(worst, _compare_steps(ctx, singles, pre, STEP_HINT, prefill=PREFILL_STEPS))
    return ok(steps=len(sizes), max_abs_diff=worst)


@check("cached_chunks", "Cached logits equal uncached logits for multi-token chunks", 3,
       needs=("KVCache", "CachedGPT"))
def cached_chunks(ctx: Context):
    """Chunks of 3, 4, 1, 6, 2 and 5 tokens through one cache: each call's logits equal the
    uncached logits at those positions (float64); and chunks of 3, 1 and 4 over a cache first
    filled with 5 made-up positions equal the reference's with the same cache. With T > 1 new
    tokens over L cached ones, the new queries are the last T of L + T keys:
    ``causal_mask(T, L + T)``."""
    run = run_steps(ctx, CHUNKS)
    worst = _compare_steps(ctx, CHUNKS, run, hint=CHUNK_HINT)
    sizes = [3, 1, 4]
    pre = run_steps(ctx, sizes, prefill=PREFILL_CHUNKS)
    worst = max(worst, _compare_steps(ctx, sizes, pre, CHUNK_HINT, prefill=PREFILL_CHUNKS))
    return ok(chunks=CHUNKS, max_abs_diff=worst)


@check("positions", "Positions continue after the cached ones", 2,
       needs=("KVCache", "CachedGPT"))
def positions(ctx: Context):
    """Over a cache filled with 9 made-up positions, two single tokens (no mask matters for
    one query) sit at positions 9 and 10: their logits equal the reference's with the same
    cache. Judged by the logits; the positions the worker saw given to ``transformer.wpe``
    only word the hint."""
    sizes = [1, 1]
    run = run_steps(ctx, sizes, prefill=PREFILL_POSITIONS)
    try:
        _compare_steps(ctx, sizes, run, hint=(
            "The tokens after the cache must get the position embeddings of positions L, "
            "L+1, ... (L = number of cached positions), not 0, 1, ..."),
            prefill=PREFILL_POSITIONS)
    except CheckFailed as failure:
        used = [p for seen in run["steps"][0]["positions"] for p in seen]
        if used and used != [PREFILL_POSITIONS]:
            failure.message += (f" (the worker saw positions {used[:8]} given to "
                                f"transformer.wpe, expected [{PREFILL_POSITIONS}])")
        raise
    return ok()


@check("cache_shapes", "The cache holds (B, n_head, L, head_dim) per layer and grows by the "
       "new tokens", 2, needs=("KVCache", "CachedGPT"))
def cache_shapes(ctx: Context):
    """A cache filled through ``cache.update`` with 4 made-up positions, then fed the chunks:
    every layer's ``cache.k[layer]`` and ``cache.v[layer]`` (the tensors themselves) have shape
    ``(B, n_head, 4 + fed, head_dim)``, float64 like the model, and still begin with exactly
    the 4 positions put in: the cache keeps what it was given and grows by exactly the new
    tokens. (``len(cache)`` is judged by its effect on the positions, in the other checks.)"""
    prefill = 4
    run = run_steps(ctx, CHUNKS, return_cache=True, prefill=prefill)
    pre = prefill_kv(ctx, prefill)
    total = prefill + sum(CHUNKS)
    expected = [BATCH, KV["n_head"], total, HEAD_DIM]
    claimed = run["steps"][-1]["cache"].get("length")
    for layer in range(KV["n_layer"]):
        for name in ("k", "v"):
            got = run["tensors"].get(f"cache.{name}.{layer}")
            if got is None:
                raise CheckFailed(f"after the chunks, cache.{name}[{layer}] is not a tensor",
                                  hint="k and v hold one tensor per layer once it is updated.")
            if list(got.shape) != expected:
                raise CheckFailed(
                    f"after {prefill} positions and chunks of {CHUNKS}, cache.{name}[{layer}] "
                    f"has shape {tuple(got.shape)}, expected {tuple(expected)} = (batch, "
                    f"n_head, length, head_dim)" + (f"; len(cache) says {claimed}"
                                                    if claimed not in (None, total) else ""),
                    hint="Append the new (B, n_head, T, head_dim) keys and values along dim 2; "
                         "keep exactly the cached positions.",
                    actual_shape=list(got.shape), expected_shape=expected)
            if got.dtype != torch.float64:
                raise CheckFailed(f"cache.{name}[{layer}] is {got.dtype} in a float64 model; "
                                  "keep the dtype of the keys and values")
            if not torch.equal(got[:, :, :prefill], pre[f"pre.{name}.{layer}"]):
                raise CheckFailed(f"cache.{name}[{layer}] no longer begins with the {prefill} "
                                  f"positions put in with cache.update",
                                  hint="update appends: the cached positions stay as they are.")
    # What grew must be real keys and values: layer 0's depend only on each new token and its
    # position, so each must be the key/value of that token at SOME position (a wrong position
    # offset is the positions check's business), never made up.
    keys = _layer0_table(ctx)
    for name in ("k", "v"):
        got = run["tensors"][f"cache.{name}.0"][:, :, prefill:].permute(0, 2, 1, 3)  # B N h d
        table = keys[name]  # B, N, P, h, d
        if got.shape != table[:, :, 0].shape:
            continue  # the shape was judged above
        err = (got.unsqueeze(2) - table).abs().amax(dim=(-1, -2))  # B, N, P
        tol = F64_ATOL + F64_RTOL * table.abs().amax(dim=(-1, -2))
        if not bool((err <= tol).any(dim=-1).all()):
            raise CheckFailed(f"the {'keys' if name == 'k' else 'values'} the cache holds for "
                              f"the new tokens (layer 0) are not the ones the attention computes "
                              f"for those tokens (at any position)",
                              hint="update must store the new tokens' keys and values as "
                                   "c_attn computes them, split into heads.")
    return ok(length=total)


def _layer0_table(ctx: Context) -> dict[str, torch.Tensor]:
    """Layer 0's key and value of each token of the chunks at every position, (B, N, P, h, d):
    what a genuine cache can hold for them, whatever offset it used."""
    params, seq = task_params(ctx), task_tokens(ctx)["seq"][:, :sum(CHUNKS)]

    def compute(ref):
        model = ref_model(ref, params)
        block = model.transformer.h[0]
        pos = torch.arange(KV["block_size"])
        with torch.no_grad():
            x = model.transformer.wte(seq)[:, :, None] + model.transformer.wpe(pos)[None, None]
            _, k, v = block.attn.c_attn(block.ln_1(x)).split(KV["n_embd"], dim=-1)
        shape = (*x.shape[:3], KV["n_head"], HEAD_DIM)
        return {"k": k.reshape(shape), "v": v.reshape(shape)}

    return ctx.expected("layer0_table", compute)


@check("cache_contents", "The cache holds the keys and values of every position", 2,
       hidden=True, needs=("KVCache", "CachedGPT"))
def cache_contents(ctx: Context):
    """After the chunks, every layer's cached keys and values equal the reference's keys and
    values of all positions (heads split as in ``MultiHeadAttention``; float64)."""
    run = run_steps(ctx, CHUNKS, return_cache=True)
    exp = full_reference(ctx)
    for layer in range(KV["n_layer"]):
        for name, label in (("k", "keys"), ("v", "values")):
            key = f"cache.{name}.{layer}"
            if key not in run["tensors"]:
                raise CheckFailed(f"cache.{name}[{layer}] is not a tensor after the chunks")
            assert_close(run["tensors"][key], exp[f"{name}.{layer}"],
                         f"the cached {label} of layer {layer}", atol=F64_ATOL, rtol=F64_RTOL,
                         hint="Cache the keys and values after c_attn and the split into heads "
                              "(B, n_head, T, head_dim), in the order the tokens came.")
    return ok()


@check("limits", "Past block_size: the cached forward and generate raise ValueError", 0,
       needs=("KVCache", "CachedGPT", "generate"))
def limits(ctx: Context):
    """``model(idx, kv_cache=cache)`` with L + T > block_size raises ``ValueError`` (a cache
    filled with block_size - 2 made-up positions, then 3 tokens), and ``generate`` whose
    longest sequence would exceed block_size raises ``ValueError``. Worth no points unless an
    instructor weights it: that an exception was raised is reported by the worker, which the
    student's code can rewrite, and "before generating anything" cannot be seen from outside."""
    from grader.checks.common import require_value_error

    over = KV["block_size"] - 2
    require_value_error(lambda: run_steps(ctx, [3], prefill=over),
                        f"model(idx, kv_cache=cache) with L = {over} cached and T = 3 new "
                        f"tokens, block_size {KV['block_size']}", "L + T > block_size")
    prompt_len = KV["block_size"] - 5
    require_value_error(
        lambda: ctx.request("generate_runs", {
            "model": {"module": MODULE, "class": "CachedGPT", "args": [model_config()]},
            "dtype": "float64", "load": True,
            "function": {"module": MODULE, "function": "generate"},
            "runs": [{"idx": "long", "kwargs": {"max_new_tokens": 7, "temperature": 0.0},
                      "generator_seed": None, "seed": 0}]},
            {"long": torch.zeros(BATCH, prompt_len, dtype=torch.long),
             **{f"p.{k}": v for k, v in task_params(ctx).items()}}),
        f"generate(model, idx, 7) with a prompt of {prompt_len} tokens (block_size "
        f"{KV['block_size']})", "a sequence longer than block_size")
    return ok()
