"""Checks of ``generate``: greedy decoding with and without the cache, one token per cached
step, and sampling (temperature, ``top_k``, a seeded generator) against the reference's. A
sample that differs is named by the planted sampling mistakes whose tokens it equals."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.expected import FixtureMissing
from grader.checks.harness import Output
from grader.checks.kv_cache import ASSIGNMENT, MODULE
from grader.checks.kv_cache.task import (
    BATCH,
    GEN_NEW,
    GEN_PROMPT,
    model_config,
    ref_kv,
    ref_model,
    task_params,
    task_tokens,
)
from grader.diagnosis import mistake
from grader.diagnosis.hook import named

check = ASSIGNMENT.check


def _generate(ctx: Context, runs: list[dict[str, Any]], dtype: str) -> list[dict[str, Any]]:
    params, tokens = task_params(ctx), task_tokens(ctx)
    reply = ctx.request("generate_runs", {
        "model": {"module": MODULE, "class": "CachedGPT", "args": [model_config()]},
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
    params, prompt = task_params(ctx), task_tokens(ctx)["prompt"]

    def compute(ref):
        model = ref_model(ref, params)
        out = {}
        for i, s in enumerate(settings):
            kw = dict(s["kwargs"])
            gen = (torch.Generator().manual_seed(s["generator_seed"])
                   if s.get("generator_seed") is not None else None)
            out[str(i)] = ref_kv(ref).generate(model, prompt, generator=gen, **kw)
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


def _greedy_runs(ctx: Context) -> list[dict[str, Any]]:
    """The greedy runs with and without the cache: one worker run for the checks that judge
    its tokens and its calls."""
    return ctx.once("greedy_runs", lambda: _generate(ctx, GREEDY, "float32"))


@check("greedy", "Greedy generation is the same with and without the cache", 3,
       needs=("CachedGPT", "generate"))
def greedy(ctx: Context):
    """``generate(model, idx, 24, temperature=0)`` (greedy) returns ``(B, T0 + 24)`` tokens, the
    prompt first, identical with ``use_cache=True`` and ``use_cache=False``, and equal to the
    reference's greedy tokens (model in float32, as it is used; the task's weights are drawn
    until the reference's top-2 logit gaps along this path are far above float32 rounding and
    no row is stuck on one token, where a wrong position would not show)."""
    cached, uncached = _greedy_runs(ctx)
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
    cached, uncached = _greedy_runs(ctx)
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
    differing = [i for i, run in enumerate(runs)
                 if run["tokens"].shape == expected[str(i)].shape
                 and not torch.equal(run["tokens"], expected[str(i)])]
    if differing:
        explained = _explaining_variants(ctx, runs, differing)
        first, exp = runs[differing[0]], expected[str(differing[0])]
        if explained:
            where = " or ".join(VARIANTS[name] for name in explained)
            raise CheckFailed(
                f"{first['what']} gives other tokens than the reference: exactly those of a "
                f"generate where {where}", hint=" / ".join(mistake(n).hint for n in explained),
                actual=first["tokens"].tolist(), expected=exp.tolist(),
                likely_mistake=named(explained))
    for i, run in enumerate(runs):
        _check_tokens(run["tokens"], expected[str(i)], run["what"],
                      hint="probs = softmax(top_k-filtered logits[:, -1] / temperature); next = "
                           "torch.multinomial(probs, 1, generator=generator), once per step.")
    return ok()


def _explaining_variants(ctx: Context, runs: list[dict[str, Any]], differing: list[int]
                         ) -> list[str]:
    """The known sampling mistakes whose tokens equal the student's in EVERY run that differs
    from the reference (a mistake that does not apply to a run, e.g. a top_k one without top_k,
    samples what the reference samples there, so it cannot explain that run). Two mistakes can
    draw the same tokens in one run (a dominant token at two temperatures): only the runs
    together tell them apart, never the order they are tried in."""
    candidates: list[str] | None = None
    for i in differing:
        try:
            variants = _variant_tokens(ctx, i, SAMPLING_HIDDEN[i])
        except FixtureMissing:  # fixtures recorded on a correct run hold no variants
            return []
        matching = [n for n, tokens in variants.items() if torch.equal(runs[i]["tokens"], tokens)]
        candidates = matching if candidates is None else [n for n in candidates if n in matching]
        if not candidates:
            return []
    return candidates or []


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
    params, prompt = task_params(ctx), task_tokens(ctx)["prompt"]

    def compute(ref):
        model = ref_model(ref, params)
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
