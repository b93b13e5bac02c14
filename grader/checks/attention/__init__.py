"""Checks of assignment 1: scaled dot-product attention and multi-head attention."""

from __future__ import annotations

import torch

from grader.checks.attention import mistakes  # noqa: F401 - registers the mistakes
from grader.checks.base import Assignment, CheckFailed, Context, ok
from grader.checks.common import (
    F64_ATOL,
    F64_RTOL,
    ROW_SUM_ATOL,
    assert_gradients,
    forward_backward,
    random_parameters,
    require_parameters,
    shapes_of,
    small_heatmap,
)
from grader.checks.compare import assert_close, assert_shape, diagnosed
from grader.checks.harness import T, call_function, call_spec, run_module
from grader.diagnosis import Diagnosis, affecting, jointly

ASSIGNMENT = Assignment(
    "attention", "Scaled dot-product and multi-head attention",
    course="series4-llms-and-transformers-summary.md (Module 4.3); day30 checkpoint Q1-Q2",
)
check = ASSIGNMENT.check
SDPA = "scaled_dot_product_attention"
MHA = "MultiHeadAttention"

# (leading dims, T_q, T_k, d_k, d_v): T_q != T_k, d_k != d_v, 3-D and 4-D (heads), batch 1,
# a single query.
SHAPE_CASES = [((2,), 3, 5, 4, 6), ((1,), 4, 4, 8, 8), ((2, 3), 4, 7, 8, 5), ((1, 2), 1, 6, 4, 4),
               ((3,), 1, 1, 2, 3)]


def _qkv(gen: torch.Generator, lead: tuple[int, ...], t_q: int, t_k: int, d_k: int, d_v: int,
         dtype=torch.float64, scale: float = 1.0) -> dict[str, torch.Tensor]:
    return {"q": torch.randn(*lead, t_q, d_k, generator=gen, dtype=dtype) * scale,
            "k": torch.randn(*lead, t_k, d_k, generator=gen, dtype=dtype) * scale,
            "v": torch.randn(*lead, t_k, d_v, generator=gen, dtype=dtype)}


def _random_mask(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    mask = torch.rand(*shape, generator=gen) < 0.6
    mask[..., 0] = True  # every query may see at least one key: no all-blocked rows
    return mask


@check("sdpa_shapes", "scaled_dot_product_attention: output shapes", 2, needs=(SDPA,))
def sdpa_shapes(ctx: Context):
    """Returns ``(out, weights)`` with shapes ``(..., T_q, d_v)`` and ``(..., T_q, T_k)`` for
    T_q != T_k, d_k != d_v, extra head dimensions, batch 1 and a single query."""
    for i, (lead, t_q, t_k, d_k, d_v) in enumerate(SHAPE_CASES):
        dims = (lead, t_q, t_k, d_k, d_v)
        inp = ctx.inputs(f"sdpa_shapes/{i}", lambda g, dims=dims: _qkv(
            g, *dims, dtype=torch.float32))
        res = call_function(ctx, "attention", SDPA, args=[T("q"), T("k"), T("v")], tensors=inp,
                            what=f"`{SDPA}(q, k, v)`")
        out, weights = res.output.tensor_tuple(2, "(out, weights)")
        case = (f" for q {tuple(inp['q'].shape)}, k {tuple(inp['k'].shape)}, "
                f"v {tuple(inp['v'].shape)}")
        assert_shape(out, (*lead, t_q, d_v), "out" + case)
        assert_shape(weights, (*lead, t_q, t_k), "weights" + case)
    return ok(cases=len(SHAPE_CASES))


def _sdpa_case(ctx: Context, key: str, masked: bool, scale: float = 1.0):
    def make(g):
        inp = _qkv(g, (2, 3), 5, 7, 16, 8, scale=scale)
        if masked:
            inp["mask"] = _random_mask(g, (2, 3, 5, 7))
        return inp

    inp = ctx.inputs(key, make)

    def reference(ref):
        return dict(zip(("out", "weights"), ref.scaled_dot_product_attention(
            inp["q"], inp["k"], inp["v"], inp.get("mask")), strict=True))

    exp = ctx.expected(key, reference)
    kwargs = {"mask": T("mask")} if masked else {}
    return inp, exp, kwargs, Diagnosis(ctx, key, reference, affecting("attention"))


@check("sdpa_values", "scaled_dot_product_attention: values equal the reference", 3,
       needs=(SDPA,))
def sdpa_values(ctx: Context):
    """Output and weights equal the reference's (float64), without and with a mask."""
    details = {}
    for masked in (False, True):
        key = "sdpa_values/masked" if masked else "sdpa_values/plain"
        inp, exp, kwargs, diagnosis = _sdpa_case(ctx, key, masked)
        res = call_function(ctx, "attention", SDPA, args=[T("q"), T("k"), T("v")],
                            kwargs=kwargs, tensors=inp, what=f"`{SDPA}`")
        out, weights = res.output.tensor_tuple(2, "(out, weights)")
        label = " (with a mask)" if masked else " (no mask)"
        details["weights" if not masked else "weights_masked"] = {
            "actual": small_heatmap(weights[0, 0]), "expected": small_heatmap(exp["weights"][0, 0])}
        try:
            assert_close(weights, exp["weights"], "the attention weights" + label,
                         atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on("weights"))
            assert_close(out, exp["out"], "the output" + label, atol=F64_ATOL, rtol=F64_RTOL,
                         diagnose=diagnosis.on("out"))
        except CheckFailed as failure:
            failure.details.update(details, inputs={k: list(v.shape) for k, v in inp.items()})
            raise
    return ok(**details)


def _anti_aligned(g: torch.Generator, scale: float) -> dict[str, torch.Tensor]:
    """Queries and keys pointing in opposite directions: every score is large and NEGATIVE
    (about -scale**2 sqrt(d_k)), so a blocked score filled with a finite number (0, -1e4)
    exceeds the allowed ones and takes the weight, while -inf (or finfo.min) leaves exactly 0."""
    u = torch.randn(2, 2, 1, 8, generator=g)
    q = scale * (u + 0.05 * torch.randn(2, 2, 6, 8, generator=g))
    k = -scale * (u + 0.05 * torch.randn(2, 2, 6, 8, generator=g))
    return {"q": q, "k": k, "v": torch.randn(2, 2, 6, 4, generator=g),
            "mask": _random_mask(g, (6, 6))}


# The masking cases: ordinary scores, moderately negative ones (where a fill of 0 leaks) and
# scores near -1e4 and beyond (where a fill of -1e4 leaks; -inf and finfo.min never do).
MASKING_CASES = {
    "ordinary": lambda g: {**_qkv(g, (2, 2), 6, 6, 8, 4, dtype=torch.float32, scale=4.0),
                           "mask": _random_mask(g, (6, 6))},
    "negative": lambda g: _anti_aligned(g, 2.5),
    "large": lambda g: _anti_aligned(g, 100.0),
}
# float32 weights of scores near 1e4 differ between correct orders of operations by ~1e-3;
# every masking mistake moves whole rows of weight.
MASKING_DIAGNOSIS_ATOL = 0.02


@check("sdpa_masking", "scaled_dot_product_attention: rows sum to 1, blocked weights are 0", 2,
       needs=(SDPA,))
def sdpa_masking(ctx: Context):
    """Every row of the weights sums to 1, and every blocked entry (mask False) is exactly 0,
    for ordinary scores and for large-magnitude negative ones (around and beyond -1e4, where a
    finite fill such as -1e4 leaks weight), in float32 with a (T_q, T_k) mask broadcast over
    batch and heads."""
    parts, failure, worst = [], None, 0.0
    for name, make in MASKING_CASES.items():
        key = "sdpa_masking" if name == "ordinary" else f"sdpa_masking/{name}"
        inp = ctx.inputs(key, make)

        def reference(ref, inp=inp):
            return {"weights": ref.scaled_dot_product_attention(
                inp["q"], inp["k"], inp["v"], inp["mask"])[1]}

        exp = ctx.expected(key, reference)
        res = call_function(ctx, "attention", SDPA, args=[T("q"), T("k"), T("v")],
                            kwargs={"mask": T("mask")}, tensors=inp, what=f"`{SDPA}`")
        _, weights = res.output.tensor_tuple(2, "(out, weights)")
        assert_shape(weights, (2, 2, 6, 6), "weights")
        parts.append((Diagnosis(ctx, key, reference, affecting("attention")), "weights",
                      weights, exp["weights"]))
        if failure is None:
            failure, err = _masking_failure(weights, inp["mask"], name)
            worst = max(worst, err)
    if failure is not None:
        diagnose = jointly(parts)
        a, e = parts[-1][2], parts[-1][3]
        raise diagnosed(failure, diagnose(a, e, atol=MASKING_DIAGNOSIS_ATOL, rtol=0.0))
    return ok(max_row_sum_error=worst)


def _masking_failure(weights: torch.Tensor, mask: torch.Tensor, case: str
                     ) -> tuple[CheckFailed | None, float]:
    """What is wrong with one case's weights (None if nothing), and the worst row-sum error."""
    label = "" if case == "ordinary" else f" (scores of {case} magnitude)"
    bad = ~torch.isfinite(weights)
    if bool(bad.any()):
        return CheckFailed(f"the attention weights{label} contain {int(bad.sum())} NaN/inf "
                           "value(s)", heatmap=small_heatmap(weights[0, 0])), 0.0
    blocked = weights.detach()[..., ~mask]
    if bool((blocked != 0).any()):
        return CheckFailed(
            f"blocked positions (mask False) get weight up to {float(blocked.abs().max()):.3g}"
            f"{label}; they must be exactly 0",
            hint="Blocked keys must get exactly zero weight whatever the scores are: exp(-inf) is "
                 "exactly 0, any finite fill value is not.",
            heatmap=small_heatmap(weights[0, 0]), mask=small_heatmap(mask.double())), 0.0
    sums = weights.detach().double().sum(-1)
    worst = float((sums - 1).abs().max())
    if worst > ROW_SUM_ATOL:
        return CheckFailed(
            f"rows of the weights{label} sum to values between {float(sums.min()):.4g} and "
            f"{float(sums.max()):.4g}; each row (over the keys, the last axis) must sum to 1",
            heatmap=small_heatmap(weights[0, 0])), worst
    return None, worst


@check("sdpa_gradients", "scaled_dot_product_attention: gradients equal the reference", 2,
       needs=(SDPA,))
def sdpa_gradients(ctx: Context):
    """Gradients of q, k and v equal the reference's (float64, with a mask)."""
    inp, _, kwargs, _ = _sdpa_case(ctx, "sdpa_values/masked", True)
    g_out = ctx.inputs("sdpa_gradients/g", lambda g: {
        "g": torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64)})["g"]

    def reference_grads(ref):
        q, k, v = (inp[n].clone().requires_grad_(True) for n in "qkv")
        out, _ = ref.scaled_dot_product_attention(q, k, v, inp["mask"])
        (out * g_out).sum().backward()
        return {"q": q.grad, "k": k.grad, "v": v.grad}

    exp = ctx.expected("sdpa_gradients", reference_grads)
    diagnosis = Diagnosis(ctx, "sdpa_gradients", reference_grads, affecting("attention"))
    res = call_function(ctx, "attention", SDPA, args=[T("q"), T("k"), T("v")], kwargs=kwargs,
                        tensors={**inp, "g": g_out}, requires_grad=("q", "k", "v"),
                        grad_outputs={"out.0": "g"}, what=f"`{SDPA}`")
    res.output.tensor_tuple(2, "(out, weights)")
    for name in "qkv":
        assert_close(res.grads[name], exp[name], f"the gradient of {name}",
                     atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on(name))
    return ok()


# (n_embd, n_head, batch, T)
MHA_CASES = [(32, 4, 2, 5), (24, 3, 1, 1), (16, 1, 3, 4), (48, 6, 1, 9)]


def _mha_params(ctx: Context, n_embd: int, n_head: int, use: str) -> dict[str, torch.Tensor]:
    """Random weights for a reference ``MultiHeadAttention``, drawn from the run's seed: inputs
    too (a student who knew them could answer from a table)."""
    key = f"mha_params/{n_embd}x{n_head}/{use}"
    return ctx.expected(key, lambda ref: random_parameters(
        ref.MultiHeadAttention(n_embd, n_head), ctx.seed_for(key)))


@check("mha_shapes", "MultiHeadAttention: parameter names and output shapes", 2, needs=(MHA,))
def mha_shapes(ctx: Context):
    """``c_attn``/``c_proj`` have GPT-2's names and shapes; the output is ``(B, T, C)`` for
    several head counts, batch 1 and T = 1.

    The parameter listing is the worker's report (code in the worker could rewrite it), so these
    points rest on the output's shape; the names are really enforced by the value checks, which
    load the reference's weights under them and need the reference's outputs back."""
    for n_embd, n_head, b, t in MHA_CASES:
        x = ctx.inputs(f"mha_shapes/{n_embd}x{n_head}", lambda g, shape=(b, t, n_embd): {
            "x": torch.randn(*shape, generator=g)})
        run = run_module(ctx, "attention", MHA, args=[n_embd, n_head], tensors=x,
                         calls=[call_spec(T("x"))],
                         what=f"`{MHA}({n_embd}, {n_head})(x)`")
        expected_params = shapes_of(_mha_params(ctx, n_embd, n_head, "shapes"))
        require_parameters(run, expected_params, MHA)
        y = run.calls[0].output.tensor()
        assert_shape(y, (b, t, n_embd), f"the output of {MHA}({n_embd}, {n_head}) for x of "
                                        f"shape {(b, t, n_embd)}")
    return ok(cases=len(MHA_CASES))


def _mha_values(ctx: Context, n_embd: int, n_head: int, b: int, t: int, masked: bool,
                grads: bool):
    params = _mha_params(ctx, n_embd, n_head, "values")
    key = f"mha_values/{n_embd}x{n_head}x{b}x{t}{'m' if masked else ''}"

    def make(g):
        inp = {"x": torch.randn(b, t, n_embd, generator=g, dtype=torch.float64),
               "g": torch.randn(b, t, n_embd, generator=g, dtype=torch.float64)}
        if masked:
            inp["mask"] = _random_mask(g, (t, t))
        return inp

    inp = ctx.inputs(key, make)

    def reference(ref):
        return forward_backward(ref.MultiHeadAttention(n_embd, n_head), params, inp,
                                inp.get("mask"))

    exp = ctx.expected(key, reference)
    kwargs = {"mask": T("mask")} if masked else {}
    run = run_module(ctx, "attention", MHA, args=[n_embd, n_head], params=params, dtype="float64",
                     tensors=inp, calls=[call_spec(T("x"), requires_grad=("x",) if grads else (),
                                                   grad_outputs={"out": "g"} if grads else None,
                                                   param_grads=grads, **kwargs)],
                     what=f"`{MHA}({n_embd}, {n_head})`")
    return run.calls[0], exp, Diagnosis(ctx, key, reference, affecting("attention"))


@check("mha_values", "MultiHeadAttention: output equals the reference with the same weights", 3,
       needs=(MHA,))
def mha_values(ctx: Context):
    """With the reference's weights loaded, the output equals the reference's (float64) for
    1, 3 and 4 heads, with and without a mask."""
    cases = [(32, 4, 2, 5, False), (24, 3, 1, 6, True), (16, 1, 2, 3, False)]
    runs = [_mha_values(ctx, *case, grads=False) for case in cases]
    outputs = [(diagnosis, "y", call.output.tensor(), exp["y"]) for call, exp, diagnosis in runs]
    for (_, n_head, _, _, masked), (_, _, y, expected) in zip(cases, outputs, strict=True):
        # The diagnosis judges all cases together: with 4 heads alone, sqrt(d_model) = 2
        # sqrt(d_k), so a scale off by 2 would look like the sqrt(d_model) mistake.
        assert_close(y, expected,
                     f"the output for {n_head} head(s){' with a mask' if masked else ''}",
                     atol=F64_ATOL, rtol=F64_RTOL, diagnose=jointly(outputs))
    return ok()


@check("mha_gradients", "MultiHeadAttention: input and parameter gradients", 2, hidden=True,
       needs=(MHA,))
def mha_gradients(ctx: Context):
    """Gradients of the input and of every parameter equal the reference's (float64)."""
    call, exp, diagnosis = _mha_values(ctx, 48, 6, 2, 7, True, grads=True)
    assert_gradients(call, exp, diagnosis)
    return ok()
