"""Checks of ``get_lr``: linear warmup then cosine decay, at the boundary steps and along a
whole uneven schedule. Judged by the values the student's function returns, against the
reference's; a failure is named by the planted schedule mistakes it matches."""

from __future__ import annotations

from typing import Any

import torch

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.training import ASSIGNMENT
from grader.checks.training import mistakes as catalogue
from grader.checks.training.common import near, ref_training
from grader.diagnosis import Diagnosis

check = ASSIGNMENT.check

# Two schedules with an even decay length, so "mid-decay" is the cosine's midpoint, where the lr
# is exactly (max_lr + min_lr) / 2.
LR_CASES = [
    {"max_lr": 6e-4, "min_lr": 6e-5, "warmup_steps": 10, "max_steps": 100},
    {"max_lr": 1.0, "min_lr": 0.1, "warmup_steps": 4, "max_steps": 20},
]
# A float64 formula agrees with the reference to ~1e-16; 1e-6 relative lets a student compute
# in float32 tensors (~6e-8) and still fails every off-by-one (>= 1 % at these settings).
LR_RTOL, LR_ATOL = 1e-6, 1e-12


def seeded_case(ctx: Context, key: str, odd: bool) -> dict[str, Any]:
    """A schedule drawn from the run's seed (values at fixed settings alone could be answered
    from a table of the bundle's): max_lr from 1e-4 to 1, min_lr below it, a warmup of 2 to 30
    steps and a decay of even length (its midpoint is a step) or, with ``odd``, odd length."""
    g = ctx.rng(key)

    def pick(low: float, high: float) -> float:
        return float(f"{low + (high - low) * float(torch.rand((), generator=g)):.4g}")

    max_lr = float(f"{10 ** pick(-4, 0):.4g}")
    warmup = int(torch.randint(2, 31, (), generator=g))
    decay = 2 * int(torch.randint(5, 61, (), generator=g)) + (1 if odd else 0)
    if odd and warmup % 2 == 0:
        warmup += 1
    return {"max_lr": max_lr, "min_lr": float(f"{max_lr * pick(0.01, 0.5):.4g}"),
            "warmup_steps": warmup, "max_steps": warmup + decay}


def _boundary_steps(case: dict[str, Any]) -> list[tuple[int, str]]:
    w, m = case["warmup_steps"], case["max_steps"]
    return [(0, "step 0 (first warmup step)"), (1, "step 1 (warmup)"),
            (w - 1, "the last warmup step"), (w, "the end of warmup"),
            ((w + m) // 2, "mid-decay"), (m - 1, "just before max_steps"),
            (m, "max_steps (end of decay)"), (m + 1, "just past max_steps"),
            (2 * m, "long past max_steps")]


def _lr_values(ctx: Context, calls: list[tuple[int, dict[str, Any]]]):
    reply = ctx.request("training.get_lr", {"calls": [list(c) for c in calls]})
    return reply.result["types"], [float(v) for v in reply.tensors["lrs"]]


def _rule_hint(step: int, got: float, case: dict[str, Any]) -> str:
    """A hint from where the value went wrong, when no planted mistake matches: it says only
    what the values show."""
    w, m = case["warmup_steps"], case["max_steps"]
    if step < w:
        return ("During warmup (step < warmup_steps) the lr is max_lr * (step + 1) / "
                "warmup_steps.")
    if step > m:
        return "After max_steps the learning rate stays at min_lr."
    return ("From the end of warmup, ratio = (step - warmup_steps) / (max_steps - "
            "warmup_steps) goes from 0 to 1 and lr = min_lr + 0.5 * (1 + cos(pi * ratio)) "
            "* (max_lr - min_lr).")


def _lr_reference(case: dict[str, Any], steps: list[int]):
    """The expected-value key and the reference computation of ``get_lr`` at ``steps``."""
    key = "lr/" + "_".join(f"{case[k]:g}" for k in sorted(case)) + "/" + ",".join(map(str, steps))
    return key, lambda ref: {"lrs": torch.tensor(
        [ref_training(ref).get_lr(s, **case) for s in steps], dtype=torch.float64)}


def reference_lrs(ctx: Context, case: dict[str, Any], steps: list[int]) -> list[float]:
    """The reference's ``get_lr`` at ``steps`` (through the expected-value seam)."""
    exp = ctx.expected(*_lr_reference(case, steps))
    return [float(v) for v in exp["lrs"]]


def _compare_lrs(ctx: Context, cases: list[dict[str, Any]],
                 steps_of: list[list[tuple[int, str]]], curve: bool = False):
    notes = []
    results = []
    for case, steps in zip(cases, steps_of, strict=True):
        types, got = _lr_values(ctx, [(s, case) for s, _ in steps])
        ref = reference_lrs(ctx, case, [s for s, _ in steps])
        results.append((case, steps, types, got, ref))
        bad_types = sorted({k for k in types if k not in ("float", "int")})
        if bad_types:
            # The type is what the worker says: the student's code can rewrite that report, so
            # it is a note, never points.
            notes.append(f"get_lr returned {', '.join(bad_types)}; the contract asks for a "
                         f"Python float (math.cos, math.pi)")
    for case, steps, _, got, ref in results:
        if len(got) != len(steps):  # the schema pins it; a short reply must never pass
            raise CheckFailed(f"get_lr gave {len(got)} values for {len(steps)} steps")
        args = ", ".join(f"{k}={v:g}" for k, v in case.items())
        for (step, label), value, expected in zip(steps, got, ref, strict=True):
            if near(value, expected, LR_RTOL, LR_ATOL):
                continue
            # Every case and step together: one case alone may not tell two mistakes apart.
            actual, wanted = {}, {}
            diagnoses = []
            for i, (c, st, _, g, r) in enumerate(results):
                key, compute = _lr_reference(c, [s for s, _ in st])
                diagnoses.append(Diagnosis(ctx, key, compute, catalogue.LR_SCHEDULE))
                actual[str(i)] = torch.tensor(g, dtype=torch.float64)
                wanted[str(i)] = torch.tensor(r, dtype=torch.float64)
            details = _joint(diagnoses, actual, wanted)
            named = details.get("likely_mistake")
            hint = named["hint"] if named else _rule_hint(step, value, case)
            raise CheckFailed(
                f"get_lr at {label}: get_lr(step={step}, {args}) returned {value:.6g}, expected "
                f"{expected:.6g}", hint=hint, actual=value, expected=expected, **details,
                **({"lrs": {"student": got, "expected": ref}} if curve else {"boundary_steps": {
                    f"step {s} ({lab})": {"yours": v, "expected": e}
                    for (s, lab), v, e in zip(steps, got, ref, strict=False)}}))
    return results, notes


def _joint(diagnoses: list[Diagnosis], actual: dict[str, torch.Tensor],
           expected: dict[str, torch.Tensor]) -> dict[str, Any]:
    from grader.diagnosis import jointly

    parts = [(d, "lrs", actual[str(i)], expected[str(i)]) for i, d in enumerate(diagnoses)]
    return jointly(parts)(actual["0"], expected["0"], atol=LR_ATOL, rtol=LR_RTOL)


@check("lr_schedule", "get_lr: warmup and cosine decay at the boundary steps", 3,
       needs=("get_lr",))
def lr_schedule(ctx: Context):
    """``get_lr`` returns the reference's value (relative 1e-6) at step 0, during warmup, at
    the last warmup step, at the end of warmup (max_lr), mid-decay ((max_lr + min_lr) / 2), at
    max_steps (min_lr) and past it (min_lr), for two fixed schedules and one drawn from the
    run's seed. (That it returns a Python
    float is reported by the worker, which the student's code can rewrite: a note, no
    points.)"""
    cases = [*LR_CASES, seeded_case(ctx, "lr_schedule", odd=False)]
    _, notes = _compare_lrs(ctx, cases, [_boundary_steps(c) for c in cases])
    return ok("; ".join(notes), cases=len(cases))


@check("lr_curve", "get_lr: the whole schedule, step by step", 1, hidden=True,
       needs=("get_lr",))
def lr_curve(ctx: Context):
    """Every step from 0 to max_steps + 5 of an uneven schedule (odd warmup and decay
    lengths, drawn from the run's seed) equals the reference's."""
    case = seeded_case(ctx, "lr_curve", odd=True)
    steps = [(s, f"step {s}") for s in range(case["max_steps"] + 6)]
    results, notes = _compare_lrs(ctx, [case], [steps], curve=True)
    _, _, _, got, ref = results[0]
    return ok("; ".join(notes), lrs={"student": got, "expected": ref})
