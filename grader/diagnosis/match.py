"""Which known mistake, if any, a student's output matches.

The rule is the check's own: an output "matches" a tensor when every value is within
``atol + rtol * |value|`` of it (:mod:`grader.tolerance`; NaN where both are NaN counts as
equal). A variant is named only if the student's output matches it on EVERY compared output,
does not match the correct reference, and the agreement is **finite evidence**: somewhere the
student's output differs from the reference with a finite value that the variant shares. Two
outputs that are NaN where the reference is finite agree with every NaN-producing variant, and
tell nothing (an all-NaN gradient "matches" an inverted mask and a missing diagonal alike).
An output that matches no variant is reported as such, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader import tolerance
from grader.tolerance import outside, within

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Match:
    """A variant the output matches; ``distance`` is the largest difference in units of the
    tolerance (0 = identical, 1 = at the tolerance's edge)."""

    variant: str
    distance: float


def distance(actual: Tensors, expected: Tensors, *, atol: float, rtol: float) -> float:
    """The largest :func:`grader.tolerance.distance` over all outputs (inf if a name is
    missing)."""
    worst = 0.0
    for name, a in actual.items():
        e = expected.get(name)
        if e is None:
            return float("inf")
        worst = max(worst, tolerance.distance(a, e, atol=atol, rtol=rtol))
    return worst


def finite_evidence(actual: Tensors, expected: Tensors, *, atol: float, rtol: float) -> bool:
    """Whether ``actual`` differs from the correct ``expected`` somewhere with a finite value
    (or in shape, with finite values): the only kind of difference that may name a mistake."""
    for name, a in actual.items():
        e = expected.get(name)
        a64 = a.detach().to(torch.float64).cpu()
        if e is None or tuple(a.shape) != tuple(e.shape):
            if a64.numel() and bool(torch.isfinite(a64).any()):
                return True
            continue
        differs = outside(a64, e, atol=atol, rtol=rtol) & torch.isfinite(a64)
        if bool(differs.any()):
            return True
    return False


def matches(actual: Tensors, expected: Tensors, variants: dict[str, Tensors], *, atol: float,
            rtol: float) -> list[Match] | None:
    """The variants that ``actual`` matches, closest first; ``None`` when ``actual`` matches
    the correct ``expected`` itself (then there is nothing to diagnose). With no finite
    evidence against the reference, nothing matches (``[]``)."""
    if all(within(a, expected[n], atol=atol, rtol=rtol) for n, a in actual.items()):
        return None
    if not finite_evidence(actual, expected, atol=atol, rtol=rtol):
        return []
    found = []
    for variant, outputs in variants.items():
        if all(n in outputs and within(a, outputs[n], atol=atol, rtol=rtol)
               for n, a in actual.items()):
            found.append(Match(variant, distance(actual, outputs, atol=atol, rtol=rtol)))
    return sorted(found, key=lambda m: (m.distance, m.variant))
