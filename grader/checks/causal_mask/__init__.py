"""Checks of assignment 2: the causal mask and causal self-attention."""

from __future__ import annotations

import torch

from grader.checks.base import Assignment, CheckFailed, Context, ok
from grader.checks.causal_mask import mistakes  # noqa: F401 - registers the mistakes
from grader.checks.common import (
    F64_ATOL,
    F64_RTOL,
    assert_gradients,
    causal_table,
    forward_backward,
    random_parameters,
    require_finite,
    require_parameters,
    require_value_error,
    shapes_of,
    small_heatmap,
)
from grader.checks.compare import assert_close, assert_shape, diagnosed
from grader.checks.harness import T, call_function, call_spec, run_module
from grader.diagnosis import Diagnosis, affecting, jointly, likely, mistake

ASSIGNMENT = Assignment(
    "causal_mask", "The causal mask and causal self-attention",
    course="day30-capstone-and-checkpoint.md Q3; series4 summary Module 4.3",
)
check = ASSIGNMENT.check
MASK = "causal_mask"
CSA = "CausalSelfAttention"

# (t_q, t_k): square, a single query, the last queries of a longer sequence (as with a KV cache).
MASK_CASES = [(1, 1), (4, 4), (2, 5), (1, 6), (3, 3), (5, 8)]


@check("mask_table", "causal_mask: the mask itself", 3, needs=(MASK,))
def mask_table(ctx: Context):
    """``causal_mask(t_q, t_k)`` is a bool ``(t_q, t_k)`` tensor, True where the query (one of
    the last t_q positions) may attend the key: at or before its own position."""
    masks, tables = {}, {}
    for t_q, t_k in MASK_CASES:
        res = call_function(ctx, "causal_mask", MASK, args=[t_q, t_k], tensors={},
                            what=f"`causal_mask({t_q}, {t_k})`")
        mask = res.output.tensor()
        expected = causal_table(t_q, t_k)
        if mask.dtype != torch.bool:
            raise CheckFailed(f"causal_mask({t_q}, {t_k}) has dtype {mask.dtype}, expected "
                              "torch.bool (True = may attend)",
                              hint=mistake("mask_not_bool").hint, **likely("mask_not_bool"))
        assert_shape(mask, expected.shape, f"causal_mask({t_q}, {t_k})")
        masks[f"{t_q}x{t_k}"], tables[f"{t_q}x{t_k}"] = mask, expected
    # The diagnosis compares every case at once: one case alone can fit several mistakes.
    diagnosis = Diagnosis(ctx, "mask_table", lambda ref: {
        f"{t_q}x{t_k}": ref.causal_mask(t_q, t_k) for t_q, t_k in MASK_CASES},
        affecting("causal_mask"))
    for (t_q, t_k), mask, expected in zip(MASK_CASES, masks.values(), tables.values(),
                                          strict=True):
        if not torch.equal(mask, expected):
            wrong = (mask != expected).nonzero().tolist()
            inverted = torch.equal(mask, ~expected)
            failure = CheckFailed(
                f"causal_mask({t_q}, {t_k}) is wrong at {len(wrong)} position(s), first at "
                f"(query {wrong[0][0]}, key {wrong[0][1]})"
                + ("; it is exactly inverted (True must mean 'may attend')" if inverted else ""),
                hint="Query i sits at position t_k - t_q + i and may attend keys 0..that "
                     "position, itself included.",
                actual=small_heatmap(mask.double()), expected=small_heatmap(expected.double()))
            raise diagnosed(failure, diagnosis.details(masks, tables, atol=0.0, rtol=0.0))
    return ok(cases=len(MASK_CASES))


@check("mask_errors", "causal_mask: ValueError for more queries than keys", 1, needs=(MASK,))
def mask_errors(ctx: Context):
    """``causal_mask(t_q, t_k)`` raises ``ValueError`` for ``t_q > t_k`` (the queries are the
    last keys, so there cannot be more of them) and for sizes below 1, as the stub promises."""
    for t_q, t_k in ((5, 3), (2, 1), (0, 4)):
        require_value_error(
            lambda t_q=t_q, t_k=t_k: call_function(ctx, "causal_mask", MASK, args=[t_q, t_k],
                                                   tensors={}),
            f"causal_mask({t_q}, {t_k})", "t_q > t_k" if t_q > t_k else "a size below 1")
    return ok(cases=3)


# (n_embd, n_head, block_size, batch, T)
CSA_CASES = [(32, 4, 16, 2, 7), (24, 3, 8, 1, 1), (16, 2, 6, 2, 6)]


def _csa_params(ctx: Context, n_embd: int, n_head: int, block: int, use: str):
    """Random weights for a reference ``CausalSelfAttention``, drawn from the run's seed."""
    key = f"csa_params/{n_embd}x{n_head}x{block}/{use}"
    return ctx.expected(key, lambda ref: random_parameters(
        ref.CausalSelfAttention(n_embd, n_head, block), ctx.seed_for(key)))


@check("csa_shapes", "CausalSelfAttention: parameter names and output shapes", 1, needs=(CSA,))
def csa_shapes(ctx: Context):
    """``CausalSelfAttention(n_embd, n_head, block_size)`` has ``c_attn``/``c_proj`` and maps
    ``(B, T, C)`` to ``(B, T, C)``, including T = 1 and T = block_size.

    The parameter listing is the worker's report (code in the worker could rewrite it); the
    names are really enforced by ``csa_values``, which loads the reference's weights under them."""
    for n_embd, n_head, block, b, t in CSA_CASES:
        x = ctx.inputs(f"csa_shapes/{n_embd}x{t}", lambda g, shape=(b, t, n_embd): {
            "x": torch.randn(*shape, generator=g)})
        run = run_module(ctx, "causal_mask", CSA, args=[n_embd, n_head, block], tensors=x,
                         calls=[call_spec(T("x"))],
                         what=f"`{CSA}({n_embd}, {n_head}, {block})(x)`")
        expected = shapes_of(_csa_params(ctx, n_embd, n_head, block, "shapes"))
        require_parameters(run, expected, CSA)
        _require_state_dict(run.info.get("state_dict", []), expected)
        assert_shape(run.calls[0].output.tensor(), (b, t, n_embd),
                     f"the output for x of shape {(b, t, n_embd)}")
    return ok()


def _require_state_dict(keys: list[str], expected: dict[str, list[int]]) -> None:
    # The stub's contract: the state dict holds the four c_attn/c_proj tensors only, so that a
    # GPT-2 checkpoint loads with strict=True. A cached mask registered as a persistent buffer
    # breaks that while every output stays right.
    extra = [k for k in keys if k not in expected]
    if extra:
        raise CheckFailed(
            f"the state dict of `{CSA}` holds {', '.join(f'`{k}`' for k in extra[:3])} besides "
            f"its parameters", hint="register a cached mask with `register_buffer(name, mask, "
            "persistent=False)`: the state dict must hold only c_attn and c_proj, so that "
            "checkpoints load into it with strict=True")


def _csa_run(ctx: Context, n_embd: int, n_head: int, block: int, b: int, t: int, grads: bool):
    params = _csa_params(ctx, n_embd, n_head, block, "values")
    key = f"csa_values/{n_embd}x{n_head}x{block}x{b}x{t}"
    inp = ctx.inputs(key, lambda g: {
        "x": torch.randn(b, t, n_embd, generator=g, dtype=torch.float64),
        "g": torch.randn(b, t, n_embd, generator=g, dtype=torch.float64)})

    def reference(ref):
        return forward_backward(ref.CausalSelfAttention(n_embd, n_head, block), params, inp)

    exp = ctx.expected(key, reference)
    run = run_module(ctx, "causal_mask", CSA, args=[n_embd, n_head, block], params=params,
                     dtype="float64", tensors=inp,
                     calls=[call_spec(T("x"), requires_grad=("x",) if grads else (),
                                      grad_outputs={"out": "g"} if grads else None,
                                      param_grads=grads)],
                     what=f"`{CSA}`")
    return run.calls[0], exp, Diagnosis(ctx, key, reference,
                                        affecting("attention", "causal_mask"))


@check("csa_values", "CausalSelfAttention: output equals the reference with the same weights", 3,
       needs=(CSA,))
def csa_values(ctx: Context):
    """With the reference's weights loaded, the output equals the reference's (float64), for
    T < block_size and T = block_size."""
    cases = [(32, 4, 16, 2, 9), (16, 2, 6, 1, 6)]
    runs = [_csa_run(ctx, *case, grads=False) for case in cases]
    outputs = [(diagnosis, "y", call.output.tensor(), exp["y"]) for call, exp, diagnosis in runs]
    for (_, _, block, _, t), (_, _, y, expected) in zip(cases, outputs, strict=True):
        assert_close(y, expected, f"the output (T={t}, block_size={block})", atol=F64_ATOL,
                     rtol=F64_RTOL, diagnose=jointly(outputs))
    return ok()


@check("csa_gradients", "CausalSelfAttention: input and parameter gradients", 2, hidden=True,
       needs=(CSA,))
def csa_gradients(ctx: Context):
    """Gradients of the input and of every parameter equal the reference's (float64)."""
    call, exp, diagnosis = _csa_run(ctx, 32, 4, 16, 2, 9, grads=True)
    assert_gradients(call, exp, diagnosis)
    return ok()


@check("csa_causality", "CausalSelfAttention: each position sees its past, never the future", 3,
       needs=(CSA,))
def csa_causality(ctx: Context):
    """Changing the tokens after position t leaves the outputs at positions 0..t unchanged,
    and changing the first tokens changes the outputs at every later position (the student's
    own freshly initialised module, float64). The second half is what makes the first worth
    points: a module that attends to nothing (each output a function of its own position, or
    a constant) sees no future either."""
    n_embd, n_head, block, t = 32, 4, 16, 10
    inp = ctx.inputs("csa_causality", lambda g: _perturbed_inputs(g, n_embd, t))
    calls = ([call_spec(T("x"))] + [call_spec(T(f"x{cut}")) for cut in CUTS]
             + [call_spec(T("x_past"))])
    run = run_module(ctx, "causal_mask", CSA, args=[n_embd, n_head, block], dtype="float64",
                     tensors=inp, calls=calls, seed=7, what=f"`{CSA}`")
    base = run.calls[0].output.tensor()
    assert_shape(base, (1, t, n_embd), "the output")
    for cut, call in zip(CUTS, run.calls[1:1 + len(CUTS)], strict=True):
        y = call.output.tensor()
        # NaN rows are csa_no_nan's business; here they count as unchanged.
        changed = torch.nan_to_num((y[0, :cut + 1] - base[0, :cut + 1]).abs(), nan=0.0).amax(-1)
        # Same weights, same earlier inputs: only rounding could differ (float64, ~1e-15).
        leaks = (changed > 1e-9).nonzero().flatten().tolist()
        if leaks:
            raise CheckFailed(
                f"changing the inputs after position {cut} changed the output at position(s) "
                f"{leaks[:6]} (by up to {float(changed.max()):.3g}): they can see the future",
                hint="Apply causal_mask(T, T) to the scores before the softmax in every head.",
                changed=[round(float(v), 6) for v in changed])
    past = run.calls[-1].output.tensor()
    assert_shape(past, (1, t, n_embd), "the output")
    later = torch.nan_to_num((past[0, PAST:] - base[0, PAST:]).abs(), nan=0.0).amax(-1)
    scale = max(float(torch.nan_to_num(base).abs().max()), 1e-12)
    blind = [PAST + i for i, v in enumerate(later.tolist()) if v <= 1e-9 * scale]
    if blind:
        raise CheckFailed(
            f"changing the inputs at positions 0..{PAST - 1} left the output at position(s) "
            f"{blind[:6]} unchanged: those positions do not attend to the earlier ones (does "
            f"each position attend only to itself, or is the attention missing?)",
            hint="Every position t attends to positions 0..t: mask only the future "
                 "(causal_mask(T, T) is True on and below the diagonal).",
            changed=[round(float(v), 6) for v in later])
    return ok(cuts=CUTS)


# The past perturbation: the first PAST positions get new inputs.
PAST = 3


CUTS = [0, 3, 8]


def _perturbed_inputs(g: torch.Generator, n_embd: int, t: int) -> dict[str, torch.Tensor]:
    x = torch.randn(1, t, n_embd, generator=g, dtype=torch.float64)
    out = {"x": x}
    for cut in CUTS:
        x2 = x.clone()
        x2[:, cut + 1:] = torch.randn(1, t - cut - 1, n_embd, generator=g, dtype=torch.float64)
        out[f"x{cut}"] = x2
    past = x.clone()
    past[:, :PAST] = torch.randn(1, PAST, n_embd, generator=g, dtype=torch.float64)
    out["x_past"] = past
    return out


@check("csa_no_nan", "CausalSelfAttention: no NaN in any row", 1, needs=(CSA,))
def csa_no_nan(ctx: Context):
    """Every output row is finite, the first (which sees only itself) included, for T = 1 and
    for large inputs in float32 (where a finite fill like -1e4 or a mask after the softmax
    breaks)."""
    n_embd, n_head, block = 16, 2, 8
    inp = ctx.inputs("csa_no_nan", lambda g: {
        "x1": torch.randn(2, 1, n_embd, generator=g),
        "xbig": torch.randn(2, 8, n_embd, generator=g) * 30})
    run = run_module(ctx, "causal_mask", CSA, args=[n_embd, n_head, block], tensors=inp,
                     calls=[call_spec(T("x1")), call_spec(T("xbig"))], seed=3,
                     what=f"`{CSA}`")
    require_finite(run.calls[0].output.tensor(), "the output for T = 1")
    require_finite(run.calls[1].output.tensor(), "the output for large inputs")
    return ok()
