"""Checks of assignment 5: the KV cache and generation.

The student's ``CachedGPT`` is loaded with the reference's weights and fed tokens step by step
through one ``KVCache`` in the worker; its logits are compared with the reference's logits
computed WITHOUT a cache on the whole sequence, so a cache that merely agrees with itself cannot
pass. The prefill tests put keys and values the grader made up into the cache through its own
``update`` (no token behind them is ever sent), so only a model that really reads its cache gets
the reference's logits: a "cache" that keeps token ids and recomputes everything fails them.
Verdicts rest on logits, tokens and returned tensors; what the worker merely describes (the
number of model calls, ``len(cache)``, the positions given to ``wpe``) feeds hints and a check
worth no points.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
import torch.nn.functional as F

from grader.checks.base import Assignment, CheckFailed, Context, ok
from grader.checks.common import F64_ATOL, F64_RTOL, random_parameters
from grader.checks.compare import assert_close, difference
from grader.checks.expected import FixtureMissing
from grader.checks.harness import Output, new, seeded
from grader.checks.kv_cache import mistakes as catalogue
from grader.diagnosis import Diagnosis, affecting, likely, mistake

ASSIGNMENT = Assignment(
    "kv_cache", "The KV cache and generation",
    course="day30-capstone-and-checkpoint.md Q4; series4 summary Module 4.3 (scaling and "
           "efficiency)",
)
check = ASSIGNMENT.check
MODULE = "kv_cache"

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


def _ref_kv(ref):
    return importlib.import_module(f"{ref.__name__}.kv_cache")


def _ref_model(ref, params, dtype=torch.float64):
    model = _ref_kv(ref).CachedGPT(ref.GPTConfig(**KV)).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in params.items()})
    return model.eval()


def _params(ctx: Context) -> dict[str, torch.Tensor]:
    # std 0.2 (10x GPT-2's init): attention far from uniform and positions that matter, so a
    # wrong offset or a leaking mask moves the logits by far more than the tolerance.
    return ctx.expected("params", lambda ref: random_parameters(
        _ref_kv(ref).CachedGPT(ref.GPTConfig(**KV)), seed=501, std=0.2))


def _tokens(ctx: Context) -> dict[str, torch.Tensor]:
    def make():
        g = seeded(502)
        n = max(PROMPT + STEPS, sum(CHUNKS))
        return {"seq": torch.randint(0, KV["vocab_size"], (BATCH, n), generator=g),
                "prompt": torch.randint(0, KV["vocab_size"], (BATCH, GEN_PROMPT), generator=g)}

    return ctx.inputs("tokens", make)


def _full_reference(ctx: Context) -> dict[str, torch.Tensor]:
    """The reference's logits WITHOUT a cache on the whole sequence, and its cache's contents
    after the chunks (float64)."""
    params, tokens = _params(ctx), _tokens(ctx)

    def compute(ref):
        model = _ref_model(ref, params)
        with torch.no_grad():
            out = {"logits": model(tokens["seq"])[0]}
            cache = _ref_kv(ref).KVCache(KV["n_layer"])
            model(tokens["seq"][:, :sum(CHUNKS)], kv_cache=cache)
        for layer in range(KV["n_layer"]):
            out[f"k.{layer}"], out[f"v.{layer}"] = cache.k[layer], cache.v[layer]
        return out

    return ctx.expected("full_reference", compute)


def _split(seq: torch.Tensor, sizes: list[int]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for i, n in enumerate(sizes):
        out[f"x{i}"] = seq[:, start:start + n].contiguous()
        start += n
    return out


def _prefill(ctx: Context, length: int) -> dict[str, torch.Tensor]:
    """Keys and values of ``length`` made-up cached positions per layer (from the run's secret
    seed; no token sequence has them): what the prefill tests put into the cache."""
    def make(g: torch.Generator):
        shape = (BATCH, KV["n_head"], length, HEAD_DIM)
        return {f"pre.{n}.{layer}": torch.randn(shape, generator=g, dtype=torch.float64)
                for layer in range(KV["n_layer"]) for n in ("k", "v")}

    return ctx.inputs(f"prefill/{length}", make)


def _run_steps(ctx: Context, sizes: list[int], *, uncached_full: bool = False,
               return_cache: bool = False, prefill: int = 0) -> dict[str, Any]:
    """Feed ``seq`` in chunks of ``sizes`` through one cache (first filled with ``prefill``
    made-up positions); optionally one call without a cache on everything fed. Model in float64
    with the reference's weights."""
    params, seq = _params(ctx), _tokens(ctx)["seq"]
    tensors = {**_split(seq, sizes), "full": seq[:, :sum(sizes)].contiguous(),
               **{f"p.{k}": v for k, v in params.items()}}
    if prefill:
        tensors.update(_prefill(ctx, prefill))
    steps = [{"idx": f"x{i}", "cache": True} for i in range(len(sizes))]
    if uncached_full:
        steps.append({"idx": "full", "cache": False})
    reply = ctx.request("cached_steps", {
        "model": {"module": MODULE, "class": "CachedGPT", "args": [_config()]},
        "dtype": "float64", "load": True,
        "cache": new(MODULE, "KVCache", KV["n_layer"]),
        "steps": steps, "return_cache": return_cache,
        "prefill_layers": KV["n_layer"] if prefill else 0,
    }, tensors)
    return {"steps": reply.result["steps"], "tensors": reply.tensors}


def _config():
    return new("block", "GPTConfig", **KV)


def _logits(run: dict[str, Any], i: int, what: str) -> torch.Tensor:
    out = Output(run["steps"][i]["output"], run["tensors"], what)
    if out.description["kind"] in ("tuple", "list"):
        return out.item(0).tensor()
    raise CheckFailed(f"{what} returned {out.description['kind']}, expected a tuple "
                      f"(logits, loss) as GPT.forward does")


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
    params, seq = _params(ctx), _tokens(ctx)["seq"]
    pre = _prefill(ctx, prefill) if prefill else {}

    def compute(ref):
        model = _ref_model(ref, params)
        cache = _ref_kv(ref).KVCache(KV["n_layer"])
        for layer in range(KV["n_layer"] if prefill else 0):
            cache.update(layer, pre[f"pre.k.{layer}"], pre[f"pre.v.{layer}"])
        with torch.no_grad():
            out = {f"step{i}": model(x, kv_cache=cache)[0]
                   for i, x in enumerate(_split(seq, sizes).values())}
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
        full, out, start = _full_reference(ctx)["logits"], [], 0
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
        got = _logits(run, i, f"`model(idx, kv_cache=cache)` ({where})")
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
    run = _run_steps(ctx, sizes, uncached_full=True)
    full = _full_reference(ctx)["logits"]
    plain = _logits(run, len(sizes), "`model(idx)` without a cache")
    assert_close(plain, full[:, :sum(sizes)], "without a cache, the logits of `model(idx)`",
                 atol=F64_ATOL, rtol=F64_RTOL,
                 hint="Without kv_cache, CachedGPT.forward must be exactly GPT.forward.")
    worst = _compare_steps(ctx, sizes, run, hint=STEP_HINT)
    singles = [1] * 8
    pre = _run_steps(ctx, singles, prefill=PREFILL_STEPS)
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
    run = _run_steps(ctx, CHUNKS)
    worst = _compare_steps(ctx, CHUNKS, run, hint=CHUNK_HINT)
    sizes = [3, 1, 4]
    pre = _run_steps(ctx, sizes, prefill=PREFILL_CHUNKS)
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
    run = _run_steps(ctx, sizes, prefill=PREFILL_POSITIONS)
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
    run = _run_steps(ctx, CHUNKS, return_cache=True, prefill=prefill)
    pre = _prefill(ctx, prefill)
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
    params, seq = _params(ctx), _tokens(ctx)["seq"][:, :sum(CHUNKS)]

    def compute(ref):
        model = _ref_model(ref, params)
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
    run = _run_steps(ctx, CHUNKS, return_cache=True)
    exp = _full_reference(ctx)
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
    require_value_error(lambda: _run_steps(ctx, [3], prefill=over),
                        f"model(idx, kv_cache=cache) with L = {over} cached and T = 3 new "
                        f"tokens, block_size {KV['block_size']}", "L + T > block_size")
    prompt_len = KV["block_size"] - 5
    require_value_error(
        lambda: ctx.request("generate_runs", {
            "model": {"module": MODULE, "class": "CachedGPT", "args": [_config()]},
            "dtype": "float64", "load": True,
            "function": {"module": MODULE, "function": "generate"},
            "runs": [{"idx": "long", "kwargs": {"max_new_tokens": 7, "temperature": 0.0},
                      "generator_seed": None, "seed": 0}]},
            {"long": torch.zeros(BATCH, prompt_len, dtype=torch.long),
             **{f"p.{k}": v for k, v in _params(ctx).items()}}),
        f"generate(model, idx, 7) with a prompt of {prompt_len} tokens (block_size "
        f"{KV['block_size']})", "a sequence longer than block_size")
    return ok()


# ------------------------------------------------------------------------------ generation


def _generate(ctx: Context, runs: list[dict[str, Any]], dtype: str) -> list[dict[str, Any]]:
    params, tokens = _params(ctx), _tokens(ctx)
    reply = ctx.request("generate_runs", {
        "model": {"module": MODULE, "class": "CachedGPT", "args": [_config()]},
        "dtype": dtype, "load": True,
        "function": {"module": MODULE, "function": "generate"},
        "runs": runs,
    }, {"prompt": tokens["prompt"], **{f"p.{k}": v for k, v in params.items()}})
    out = []
    for i, run in enumerate(reply.result["runs"]):
        what = f"`generate(model, idx, {_kwargs_text(runs[i])})`"
        tokens_out = Output(run["output"], reply.tensors, what).tensor()
        out.append({"tokens": tokens_out, "calls": run["calls"], "what": what})
    return out


def _kwargs_text(run: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in run.get("kwargs", {}).items()]
    if run.get("generator_seed") is not None:
        parts.append(f"generator=<seeded {run['generator_seed']}>")
    return ", ".join(parts)


def _gen_run(temperature: float, top_k: int | None = None, use_cache: bool = True,
             generator_seed: int | None = None, n: int = GEN_NEW) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": n, "temperature": temperature,
                              "use_cache": use_cache}
    if top_k is not None:
        kwargs["top_k"] = top_k
    return {"idx": "prompt", "kwargs": kwargs, "generator_seed": generator_seed, "seed": 0}


def _reference_generation(ctx: Context, key: str, settings: list[dict[str, Any]]):
    """The reference's ``generate`` in float64 with the same weights and generator seeds."""
    params, prompt = _params(ctx), _tokens(ctx)["prompt"]

    def compute(ref):
        model = _ref_model(ref, params)
        out = {}
        for i, s in enumerate(settings):
            kw = dict(s["kwargs"])
            gen = (torch.Generator().manual_seed(s["generator_seed"])
                   if s.get("generator_seed") is not None else None)
            out[str(i)] = _ref_kv(ref).generate(model, prompt, generator=gen, **kw)
        return out

    return ctx.expected(key, compute)


def _check_tokens(got: torch.Tensor, expected: torch.Tensor, what: str, hint: str = "") -> None:
    prompt = GEN_PROMPT
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(f"{what} returned shape {tuple(got.shape)}, expected "
                          f"{tuple(expected.shape)} (the prompt followed by the new tokens)")
    if got.dtype != torch.long:
        raise CheckFailed(f"{what} returned dtype {got.dtype}, expected torch.long token ids")
    if not torch.equal(got[:, :prompt], expected[:, :prompt]):
        raise CheckFailed(f"{what} does not start with the prompt: return the prompt followed "
                          "by the new tokens")
    if not torch.equal(got, expected):
        row, col = (got != expected).nonzero()[0].tolist()
        raise CheckFailed(
            f"{what} differs from the expected tokens first at row {row}, new token "
            f"{col - prompt} (yours {int(got[row, col])}, expected {int(expected[row, col])})",
            hint=hint, actual=got.tolist(), expected=expected.tolist())


GREEDY = [_gen_run(0.0, use_cache=True), _gen_run(0.0, use_cache=False)]


@check("greedy", "Greedy generation is the same with and without the cache", 3,
       needs=("CachedGPT", "generate"))
def greedy(ctx: Context):
    """``generate(model, idx, 24, temperature=0)`` (greedy) returns ``(B, T0 + 24)`` tokens, the
    prompt first, identical with ``use_cache=True`` and ``use_cache=False``, and equal to the
    reference's greedy tokens (model in float32, as it is used; the reference's top-2 logit gaps
    along this path are far above float32 rounding)."""
    cached, uncached = _generate(ctx, GREEDY, "float32")
    expected = _reference_generation(ctx, "greedy", GREEDY)["0"]
    _check_tokens(uncached["tokens"], expected, uncached["what"],
                  hint="temperature=0 is greedy decoding: append argmax of the last position's "
                       "logits at every step.")
    _check_tokens(cached["tokens"], uncached["tokens"], cached["what"] + " (with the cache)",
                  hint="With the cache the tokens must be the same as without it: the cached "
                       "forward must give the same logits (see cached_steps).")
    return ok(tokens=GEN_NEW)


@check("one_token_per_step", "With the cache each step feeds only the newest token", 0,
       needs=("CachedGPT", "generate"))
def one_token_per_step(ctx: Context):
    """Worth no points unless an instructor weights it: how many tokens reach the model can be
    counted only inside the worker (whose counters the student's code can rewrite), and a
    generate that ignores its cache returns the very same tokens, so it cannot be observed from
    outside. Counting what reaches the model (its forward is wrapped, nothing is timed): with
    ``use_cache=True`` the model is called ``max_new_tokens`` times, first with the whole prompt
    ``(B, T0)`` and a cache, then with ONLY the newest token ``(B, 1)`` and the same cache; with
    ``use_cache=False`` call i gets the whole sequence ``(B, T0 + i)`` and no cache."""
    cached, uncached = _generate(ctx, GREEDY, "float32")
    b = BATCH
    want_cached = [[b, GEN_PROMPT]] + [[b, 1]] * (GEN_NEW - 1)
    want_plain = [[b, GEN_PROMPT + i] for i in range(GEN_NEW)]
    for run, want, with_cache in ((cached, want_cached, True), (uncached, want_plain, False)):
        shapes = [c["shape"] for c in run["calls"]]
        label = "use_cache=True" if with_cache else "use_cache=False"
        if not shapes:
            raise CheckFailed(f"with {label}, generate never called the model",
                              hint="Call model(idx, kv_cache=cache) / model(idx).")
        if len(shapes) != len(want):
            raise CheckFailed(
                f"with {label}, generate called the model {len(shapes)} times for "
                f"{GEN_NEW} new tokens; expected {GEN_NEW} (one call per new token, none after "
                f"the last one)", calls=shapes)
        if shapes != want:
            i = next(j for j, (s, w) in enumerate(zip(shapes, want, strict=True)) if s != w)
            got = "x".join(map(str, shapes[i])) if shapes[i] else "?"
            need = "x".join(map(str, want[i]))
            raise CheckFailed(
                f"with {label}, call {i + 1} of the model got tokens of shape ({got}), "
                f"expected ({need})" + (": after the prompt each step must feed ONLY the "
                                        "newest token; the cache holds the rest"
                                        if with_cache and i > 0 else ""),
                hint="With the cache, call the model once on the prompt, then on idx[:, -1:] "
                     "with the same cache; without it, on the whole sequence.", calls=shapes)
        flags = {c["cache"] for c in run["calls"]}
        if flags != {with_cache}:
            raise CheckFailed(f"with {label}, "
                              + ("some calls got no cache" if with_cache else
                                 "a cache was passed to the model"), calls=shapes)
    tokens = sum(s[0] * s[1] for s in want_cached)
    plain = sum(s[0] * s[1] for s in want_plain)
    return ok(tokens_fed_cached=tokens, tokens_fed_uncached=plain)


# Sampling runs in float64, like the reference, so that the probabilities passed to
# torch.multinomial agree to ~1e-15 and equal generator seeds draw equal tokens.
SAMPLING_PUBLIC = [
    _gen_run(1.0, top_k=1, generator_seed=11),   # top_k = 1 is greedy
    _gen_run(1e-5, generator_seed=12),           # temperature -> 0 tends to greedy
    _gen_run(1.0, generator_seed=13),            # the same seed twice: the same tokens
    _gen_run(1.0, generator_seed=13),
    _gen_run(1.0, generator_seed=14),            # another seed: other tokens
    _gen_run(0.0),                               # greedy itself
]


@check("sampling", "Sampling: top_k=1 and temperature -> 0 are greedy; a seed fixes the sample",
       2, needs=("CachedGPT", "generate"))
def sampling(ctx: Context):
    """With a ``generator``: ``top_k=1`` gives the greedy tokens, a tiny temperature (1e-5)
    gives the greedy tokens, two generators seeded alike give the same tokens and a differently
    seeded one other tokens (model in float64)."""
    runs = _generate(ctx, SAMPLING_PUBLIC, "float64")
    greedy_tokens = _reference_generation(ctx, "greedy64", [SAMPLING_PUBLIC[-1]])["0"]
    _check_tokens(runs[5]["tokens"], greedy_tokens, runs[5]["what"])
    _check_tokens(runs[0]["tokens"], greedy_tokens, runs[0]["what"],
                  hint="top_k=1 keeps only the largest logit: sampling must then pick it.")
    _check_tokens(runs[1]["tokens"], greedy_tokens, runs[1]["what"],
                  hint="Divide the logits by the temperature: as it goes to 0 the softmax puts "
                       "all the probability on the largest logit.")
    _check_tokens(runs[3]["tokens"], runs[2]["tokens"], runs[3]["what"] + " (called twice)",
                  hint="Sample with torch.multinomial(probs, 1, generator=generator).")
    if torch.equal(runs[4]["tokens"], runs[2]["tokens"]):
        raise CheckFailed("generators with different seeds gave exactly the same tokens: is the "
                          "`generator` argument used (torch.multinomial(..., "
                          "generator=generator))?")
    return ok()


SAMPLING_HIDDEN = [
    _gen_run(1.0, generator_seed=21),
    _gen_run(0.7, top_k=5, generator_seed=22),
    _gen_run(1.8, top_k=20, generator_seed=23),
    _gen_run(0.7, top_k=5, use_cache=False, generator_seed=22),
]


@check("sampling_reference", "Sampling equals the reference's with the same generator", 2,
       hidden=True, needs=("CachedGPT", "generate"))
def sampling_reference(ctx: Context):
    """For several temperatures and ``top_k``, with and without the cache, the sampled tokens
    equal the reference's with an equally seeded generator: softmax of the last logits divided
    by the temperature, restricted to the ``top_k`` largest, one ``torch.multinomial`` call per
    step (float64)."""
    runs = _generate(ctx, SAMPLING_HIDDEN, "float64")
    expected = _reference_generation(ctx, "sampling", SAMPLING_HIDDEN)
    for i, run in enumerate(runs):
        exp = expected[str(i)]
        if run["tokens"].shape == exp.shape and not torch.equal(run["tokens"], exp):
            try:
                variants = _variant_tokens(ctx, i, SAMPLING_HIDDEN[i])
            except FixtureMissing:  # fixtures recorded on a correct run hold no variants
                variants = {}
            for name, tokens in variants.items():
                if torch.equal(run["tokens"], tokens):
                    raise CheckFailed(
                        f"{run['what']} gives other tokens than the reference: exactly those of "
                        f"a generate where {VARIANTS[name]}", hint=mistake(name).hint,
                        actual=run["tokens"].tolist(), expected=exp.tolist(), **likely(name))
        _check_tokens(run["tokens"], exp, run["what"],
                      hint="probs = softmax(top_k-filtered logits[:, -1] / temperature); next = "
                           "torch.multinomial(probs, 1, generator=generator), once per step.")
    return ok()


# Known mistakes, replayed with the reference model (through the expected-value seam, so a
# student bundle's fixtures carry them too) to name the one a student made.
VARIANTS = {
    "temperature_multiplies": "the logits are multiplied by the temperature instead of divided",
    "temperature_ignored": "the temperature is ignored",
    "top_k_ignored": "top_k is ignored",
    "top_k_plus_one": "top_k keeps one token too many",
    "top_k_minus_one": "top_k keeps one token too few",
}


def _keep_top(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    if k is None or k < 1:
        return logits
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[:, [-1]]
    return logits.masked_fill(logits < kth, float("-inf"))


def _variant_tokens(ctx: Context, i: int, setting: dict[str, Any]) -> dict[str, torch.Tensor]:
    kw = setting["kwargs"]
    temp, k = kw["temperature"], kw.get("top_k")
    variants = {
        "temperature_multiplies": lambda lg: _keep_top(lg * temp, k),
        "temperature_ignored": lambda lg: _keep_top(lg, k),
    }
    if k is not None:
        variants["top_k_ignored"] = lambda lg: lg / temp
        variants["top_k_plus_one"] = lambda lg: _keep_top(lg / temp, k + 1)
        variants["top_k_minus_one"] = lambda lg: _keep_top(lg / temp, k - 1)
    params, prompt = _params(ctx), _tokens(ctx)["prompt"]

    def compute(ref):
        model = _ref_model(ref, params)
        out = {}
        for name, scale in variants.items():
            g = torch.Generator().manual_seed(setting["generator_seed"])
            idx = prompt
            with torch.no_grad():
                for _ in range(kw["max_new_tokens"]):
                    probs = F.softmax(scale(model(idx)[0][:, -1, :]), dim=-1)
                    idx = torch.cat([idx, torch.multinomial(probs, 1, generator=g)], dim=1)
            out[name] = idx
        return out

    return ctx.expected(f"sampling_variants/{i}", compute)
