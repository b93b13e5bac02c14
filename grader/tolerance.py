"""The one tolerance rule of the checks and of the diagnosis.

A value ``a`` agrees with the expected ``e`` when ``|a - e| <= atol + rtol * |e|``. The checks
use it to pass or fail, the diagnosis to say which known mistake an output matches: one rule, so
a mistake is never named on evidence the check itself would not accept. A NaN number agrees with
nothing,
and the checks report non-finite values separately.

NaN where the expected value is NaN too counts as agreeing (a check whose reference is NaN there
asks for NaN); whether such agreement may *name* a mistake is the diagnosis's own decision.
"""

from __future__ import annotations

import math

import torch


def close(a: float, e: float, *, atol: float, rtol: float = 0.0) -> bool:
    """Whether the number ``a`` agrees with ``e`` (False for any non-finite ``a``)."""
    return math.isfinite(a) and abs(a - e) <= atol + rtol * abs(e)


def outside(actual: torch.Tensor, expected: torch.Tensor, *, atol: float,
            rtol: float = 0.0) -> torch.Tensor:
    """Where ``actual`` does not agree with ``expected`` (same shapes), compared in float64.
    Equal infinities agree, and so do NaN and NaN."""
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    return ~torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)


def within(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float) -> bool:
    """Same shape and every value agrees."""
    if tuple(actual.shape) != tuple(expected.shape):
        return False
    return not bool(outside(actual, expected, atol=atol, rtol=rtol).any())


def distance(actual: torch.Tensor, expected: torch.Tensor, *, atol: float,
             rtol: float) -> float:
    """The largest ``|a - e| / (atol + rtol |e|)``: 0 when identical, at most 1 when within the
    tolerance; inf for a shape mismatch or a NaN against a number (NaN against NaN counts 0)."""
    if tuple(actual.shape) != tuple(expected.shape):
        return math.inf
    if actual.numel() == 0:
        return 0.0
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    same = (a == e) | (torch.isnan(a) & torch.isnan(e))
    diff = torch.where(same, torch.zeros_like(a), (a - e).abs())
    scale = (atol + rtol * e.abs()).clamp_min(1e-300)
    return float(torch.nan_to_num(diff / scale, nan=math.inf).max())
