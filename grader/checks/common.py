"""Pieces shared by the checks of several assignments: seeded parameters, tolerances, hints."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from grader.checks.base import CheckFailed
from grader.checks.compare import assert_close
from grader.checks.harness import CallResult, ModuleRun

# Tolerances, justified once. Values and gradients are compared in float64, where two correct
# implementations that merely order their sums differently agree to ~1e-14. We still allow 1e-6
# absolute (+1e-6 relative) so that a correct student who computes a constant in float32 (e.g.
# `torch.sqrt(torch.tensor(d_k))`, error ~1e-8) is not failed; every mistake in the catalogue
# (missing scale, wrong axis, post-norm, exact GELU, ...) moves outputs by more than 1e-4.
F64_ATOL = 1e-6
F64_RTOL = 1e-6
# Shapes and structural properties in float32: sums of softmax rows are 1 to ~1e-7.
ROW_SUM_ATOL = 1e-5


def random_parameters(model: torch.nn.Module, seed: int, std: float = 0.3
                      ) -> dict[str, torch.Tensor]:
    """Float64 values for every parameter name of ``model`` (tied names get the same tensor).

    Larger than GPT-2's init (std 0.02) on purpose: with tiny weights, attention is nearly
    uniform and many bugs (a missing scale, a wrong axis) would hide below the tolerance.
    LayerNorm weights are drawn around 1 so that normalisation still matters.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            out[name] = seen[id(p)]
            continue
        value = torch.randn(p.shape, generator=g, dtype=torch.float64) * std
        if _is_layernorm_weight(name):
            value = 1.0 + value / 3
        seen[id(p)] = out[name] = value
    return out


def _is_layernorm_weight(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and parts[-2].startswith("ln")


def require_finite(tensor: torch.Tensor, what: str) -> None:
    """Fail when ``tensor`` holds NaN or inf, saying where the first one is."""
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0]]
        raise CheckFailed(f"{what} contains {int(bad.sum())} NaN/inf value(s), the first at "
                          f"{first}", nonfinite=int(bad.sum()), where=first)


def require_deterministic(first: torch.Tensor, second: torch.Tensor, what: str) -> None:
    """Fail, naming ``eval_dropout``, when two eval-mode calls on the same input (with different
    random states) differ: the graded forward passes are deterministic."""
    from grader.diagnosis import likely, mistake

    a, b = first.detach(), second.detach()
    if a.shape == b.shape and bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all()):
        return
    raise CheckFailed(f"{what} gives different outputs for the same input in eval mode: its "
                      "forward pass is random", hint=mistake("eval_dropout").hint,
                      **likely("eval_dropout"))


def require_parameters(run: ModuleRun, expected: dict[str, list[int]], cls: str) -> None:
    """Fail unless the student's module has exactly the parameter names and shapes expected."""
    mine = run.info["parameters"]
    missing = [n for n in expected if n not in mine]
    extra = [n for n in mine if n not in expected]
    wrong = [n for n in expected if n in mine and list(mine[n]) != list(expected[n])]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append("missing parameters " + ", ".join(f"`{n}`" for n in missing[:6]))
        if extra:
            parts.append("unexpected parameters " + ", ".join(f"`{n}`" for n in extra[:6]))
        for n in wrong[:6]:
            parts.append(f"`{n}` has shape {tuple(mine[n])}, expected {tuple(expected[n])}")
        raise CheckFailed(f"{cls}'s parameters do not follow the assignment's names: "
                          + "; ".join(parts),
                          hint="Graded names are fixed (nanoGPT/GPT-2 names) so that GPT-2 "
                               "weights load into your model; see the docstring of the class.")


def require_value_error(run: Callable[[], Any], what: str, why: str) -> None:
    """Fail unless ``run()`` (a worker request) makes the student's code raise ``ValueError``,
    as the stub promises for an argument out of its range (``why``)."""
    from grader.isolation.client import StudentCodeError

    try:
        run()
    except StudentCodeError as exc:
        if exc.error.get("type") == "ValueError":
            return
        raise CheckFailed(f"{what} raised {exc.describe()}; the assignment asks for a "
                          f"ValueError ({why})", error=exc.error) from None
    raise CheckFailed(f"{what} returned normally; the assignment asks for a ValueError ({why})",
                      hint="Check the argument first and `raise ValueError(...)` with a message "
                           "that says what is wrong.")


def shapes_of(params: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in params.items()}


def causal_table(t_q: int, t_k: int) -> torch.Tensor:
    """The causal mask as the assignment defines it, written independently of the reference:
    queries are the last ``t_q`` of ``t_k`` positions; True = may attend."""
    offset = t_k - t_q
    return torch.tensor([[j <= offset + i for j in range(t_k)] for i in range(t_q)])


def ln(x: float) -> float:
    return math.log(x)


def small_heatmap(t: torch.Tensor) -> list[list[float]]:
    """A small matrix as nested lists for a report's heatmap (rounded to keep JSON small)."""
    return [[round(float(v), 5) for v in row] for row in t.detach().to(torch.float64)[:16, :16]]


def as_float(t: Any) -> float:
    return float(t.reshape(-1)[0]) if isinstance(t, torch.Tensor) else float(t)


def assert_gradients(call: CallResult, exp: dict[str, torch.Tensor], diagnosis: Any) -> None:
    """The input's and every parameter's gradient equal the reference's (``x.grad`` and
    ``pgrad.<name>`` in ``exp``, float64), and every parameter got one; ``diagnosis`` names the
    likely mistake of a mismatch (a :class:`grader.diagnosis.Diagnosis`)."""
    assert_close(call.grads["x"], exp["x.grad"], "the gradient of the input x",
                 atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on("x.grad"))
    unknown = sorted(set(call.param_grads) - {k.removeprefix("pgrad.") for k in exp})
    if unknown:
        raise CheckFailed("gradients came back for parameter(s) the model does not have: "
                          + ", ".join(f"`{n}`" for n in unknown[:5]))
    for name, g in sorted(call.param_grads.items()):
        assert_close(g, exp[f"pgrad.{name}"], f"the gradient of `{name}`",
                     atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on(f"pgrad.{name}"))
    if call.params_without_grad:
        raise CheckFailed("no gradient reached " + ", ".join(call.params_without_grad))


def forward_backward(model: torch.nn.Module, params: dict[str, torch.Tensor],
                     inp: dict[str, torch.Tensor], *args: Any) -> dict[str, torch.Tensor]:
    """The reference side of a module check: load ``params`` into ``model`` (float64), run
    ``model(inp["x"], *args)``, backpropagate ``inp["g"]``, and return the output ``y`` and the
    gradients under the names :func:`assert_gradients` reads (``x.grad``, ``pgrad.<name>``)."""
    model = model.double()
    model.load_state_dict(params)
    x = inp["x"].clone().requires_grad_(True)
    y = model(x, *args)
    (y * inp["g"]).sum().backward()
    return {"y": y.detach(), "x.grad": x.grad,
            **{f"pgrad.{n}": p.grad for n, p in model.named_parameters() if p.grad is not None}}
