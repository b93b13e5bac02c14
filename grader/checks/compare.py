"""Comparing a student's tensor with the expected one, and saying precisely how they differ."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grader.checks.base import CheckFailed
from grader.tolerance import outside


@dataclass
class Difference:
    """How far ``actual`` is from ``expected``; ``where`` is the index of the worst element."""

    max_abs: float
    max_rel: float
    where: tuple[int, ...]
    actual: float
    expected: float
    nonfinite: int

    def as_details(self) -> dict[str, Any]:
        return {"max_abs_diff": self.max_abs, "max_rel_diff": self.max_rel,
                "where": list(self.where), "actual_at": self.actual,
                "expected_at": self.expected, "nonfinite": self.nonfinite}


def difference(actual: torch.Tensor, expected: torch.Tensor) -> Difference:
    """Largest absolute and relative difference between two tensors of the same shape."""
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    nonfinite = int((~torch.isfinite(a)).sum() - (~torch.isfinite(e)).sum())
    same = (a == e) | (torch.isnan(a) & torch.isnan(e))
    diff = torch.where(same, torch.zeros_like(a), (a - e).abs())
    diff = torch.nan_to_num(diff, nan=float("inf"))
    if diff.numel() == 0:
        return Difference(0.0, 0.0, (), 0.0, 0.0, 0)
    flat = int(diff.argmax())
    where = _unravel(flat, tuple(diff.shape))
    rel = diff / e.abs().clamp_min(1e-12)
    return Difference(float(diff.max()), float(rel.max()), where,
                      float(a.reshape(-1)[flat]), float(e.reshape(-1)[flat]), max(nonfinite, 0))


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    # Arithmetic, not torch.unravel_index: its first call imports sympy (~0.3 s per grade).
    where = []
    for size in reversed(shape):
        flat, i = divmod(flat, size)
        where.append(i)
    return tuple(reversed(where))


def assert_shape(actual: torch.Tensor, shape: tuple[int, ...] | torch.Size, what: str) -> None:
    """Fail with both shapes named when ``actual`` does not have ``shape``."""
    if tuple(actual.shape) != tuple(shape):
        raise CheckFailed(f"{what} has shape {tuple(actual.shape)}, expected {tuple(shape)}",
                          actual_shape=list(actual.shape), expected_shape=list(shape))


# What ``assert_close`` calls on a failure to name the likely mistake: ``diagnose(actual,
# expected, atol=, rtol=)`` returns details to add (see :class:`grader.diagnosis.Diagnosis`).
Diagnose = Callable[..., dict[str, Any]]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, *,
                 atol: float, rtol: float = 0.0, hint: str = "",
                 diagnose: Diagnose | None = None) -> Difference:
    """Fail unless ``|actual - expected| <= atol + rtol * |expected|`` everywhere.

    The message names the largest difference, where it is, both values and the tolerance, so
    that a student can find the bug without guessing. With ``diagnose``, a failure (of the shape
    or of the values) also names the known mistake that the output matches, if any.
    """
    try:
        return _assert_close(actual, expected, what, atol=atol, rtol=rtol, hint=hint)
    except CheckFailed as failure:
        if diagnose is not None:
            diagnosed(failure, diagnose(actual, expected, atol=atol, rtol=rtol))
        raise


def diagnosed(failure: CheckFailed, details: dict[str, Any]) -> CheckFailed:
    """Add a diagnosis's ``details`` to ``failure``: when it names a mistake, its words become
    the hint (a check's own hint may assume a cause the evidence does not support)."""
    failure.details.update(details)
    named = details.get("likely_mistake")
    if named and named.get("hint"):
        failure.hint = named["hint"]
    return failure


def _agree(what: str, singular: str, plural: str) -> str:
    """The verb agreeing with ``what``'s head noun: "the logits do", "the gradient of q does"."""
    head = what
    for cut in (" (", " of ", " for ", " with ", " after ", " at "):
        head = head.split(cut, 1)[0]
    noun = head.split()[-1].strip("`'\"") if head.split() else ""
    plural_noun = noun.endswith("s") and not noun.endswith(("ss", "us", "is", "as", "'s"))
    return plural if plural_noun else singular


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, *,
                  atol: float, rtol: float, hint: str) -> Difference:
    assert_shape(actual, expected.shape, what)
    d = difference(actual, expected)
    bad = outside(actual, expected, atol=atol, rtol=rtol)
    if bool(bad.any()):
        n_bad = int(bad.sum())
        if d.nonfinite:
            message = (f"{what} {_agree(what, 'contains', 'contain')} {d.nonfinite} NaN/inf "
                       f"value(s) where the reference is "
                       f"finite (first at {list(d.where)})")
        else:
            message = (f"{what} {_agree(what, 'does', 'do')} not match the reference: the "
                       f"largest difference is "
                       f"{d.max_abs:.3g} at {list(d.where)} (yours {d.actual:.6g}, expected "
                       f"{d.expected:.6g}); {n_bad} of {bad.numel()} values are outside "
                       f"atol={atol:g}, rtol={rtol:g}")
        raise CheckFailed(message, hint=hint, **d.as_details(), shape=list(expected.shape),
                          tolerance={"atol": atol, "rtol": rtol}, mismatched=n_bad)
    return d
