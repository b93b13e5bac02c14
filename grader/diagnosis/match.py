"""Which known mistake, if any, a student's output matches.

The rule is the check's own: an output "matches" a tensor when every value is within
``atol + rtol * |value|`` of it (:func:`grader.checks.compare.outside`; NaN where both are NaN
counts as equal). A variant is named only if the student's output matches it on EVERY compared
output AND does not match the correct reference: a correct output is never given a mistake, and
an output that matches no variant is reported as such, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Match:
    """A variant the output matches; ``distance`` is the largest difference in units of the
    tolerance (0 = identical, 1 = at the tolerance's edge)."""

    variant: str
    distance: float


def within(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float) -> bool:
    """Same shape and every value within the tolerance."""
    # The checks' own rule; imported here because the checks import this package.
    from ..checks.compare import outside

    if tuple(actual.shape) != tuple(expected.shape):
        return False
    return not bool(outside(actual, expected, atol=atol, rtol=rtol).any())


def distance(actual: Tensors, expected: Tensors, *, atol: float, rtol: float) -> float:
    """The largest ``|a - e| / (atol + rtol |e|)`` over all outputs (inf if a shape differs or
    a name is missing; NaN where both are NaN counts as 0)."""
    worst = 0.0
    for name, a in actual.items():
        e = expected.get(name)
        if e is None or tuple(a.shape) != tuple(e.shape):
            return float("inf")
        if a.numel() == 0:
            continue
        a64, e64 = a.detach().to(torch.float64).cpu(), e.detach().to(torch.float64).cpu()
        both_nan = torch.isnan(a64) & torch.isnan(e64)
        same = (a64 == e64) | both_nan
        diff = torch.where(same, torch.zeros_like(a64), (a64 - e64).abs())
        scale = (atol + rtol * e64.abs()).clamp_min(1e-300)
        worst = max(worst, float(torch.nan_to_num(diff / scale, nan=float("inf")).max()))
    return worst


def matches(actual: Tensors, expected: Tensors, variants: dict[str, Tensors], *, atol: float,
            rtol: float) -> list[Match] | None:
    """The variants that ``actual`` matches, closest first; ``None`` when ``actual`` matches
    the correct ``expected`` itself (then there is nothing to diagnose)."""
    if all(within(a, expected[n], atol=atol, rtol=rtol) for n, a in actual.items()):
        return None
    found = []
    for variant, outputs in variants.items():
        if all(n in outputs and within(a, outputs[n], atol=atol, rtol=rtol)
               for n, a in actual.items()):
            found.append(Match(variant, distance(actual, outputs, atol=atol, rtol=rtol)))
    return sorted(found, key=lambda m: m.distance)
