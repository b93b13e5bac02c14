"""Which known mistake, if any, a student's output matches.

The rule is the check's own: an output "matches" a tensor when every value is within
``atol + rtol * |value|`` of it (:mod:`grader.tolerance`; NaN where both are NaN
counts as equal). A variant is named only if the student's output matches it on EVERY compared
output AND does not match the correct reference: a correct output is never given a mistake, and
an output that matches no variant is reported as such, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader import tolerance
from grader.tolerance import within

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
