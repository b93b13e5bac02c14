"""How a check asks for a diagnosis: declare the mistakes a comparison may reveal.

::

    exp = ctx.expected(key, reference)                     # the check's reference computation
    diagnosis = Diagnosis(ctx, key, reference, affecting("attention"))
    assert_close(y, exp["y"], "the output", atol=..., rtol=..., diagnose=diagnosis.on("y"))

On a failure, each mistake's output is ``reference`` rerun on the reference package with the
mistake planted, got through the same seam as the expected values,
``ctx.expected(f"{key}/variant/{variant_id}", ...)``: live on the instructor's side, from the
fixtures in a student bundle (which has no reference code). A release, which records fixtures,
computes every variant up front so that the bundle can diagnose too.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any

import torch

from grader.diagnosis.catalogue import mistake
from grader.diagnosis.match import Tensors, finite_evidence, matches
from grader.diagnosis.variants import planted

NO_MATCH = "your output matches none of the known mistakes it was compared with"


class Diagnosis:
    """The known mistakes one reference computation may reveal.

    ``compute(ref) -> dict`` is the function the check passes to ``ctx.expected(key, ...)``;
    ``mistakes`` are catalogue ids (all their variants are compared)."""

    def __init__(self, ctx: Any, key: str, compute: Callable[[Any], dict[str, Any]],
                 mistakes: Iterable[str]):
        self.ctx, self.key, self.compute = ctx, key, compute
        self.variants = [v for m in dict.fromkeys(mistakes) for v in mistake(m).variants()]
        if getattr(ctx.source, "record", False):
            self.outputs()  # recording fixtures for a release: store every variant now

    def outputs(self) -> dict[str, Tensors]:
        """Each variant's outputs (variants without stored fixtures are left out, and so are
        variants whose computation raises on these inputs: e.g. positions from 1 at
        T = block_size; such a variant cannot be what the student's output shows)."""
        out = {}
        for variant in self.variants:
            try:
                found = self.ctx.expected_if_stored(
                    f"{self.key}/variant/{variant}",
                    lambda ref, v=variant: self.compute(planted(ref, v)))
            except Exception:  # noqa: BLE001 - that variant says nothing here
                continue
            if found is not None:
                out[variant] = found
        return out

    def details(self, actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], *,
                atol: float, rtol: float) -> dict[str, Any]:
        """Details to add to a failure: ``likely_mistake`` when the outputs ``actual`` match one
        variant within ``atol``/``rtol`` (and not ``expected``), a plain ``diagnosis`` when they
        match none, nothing when there is nothing to compare with."""
        try:
            outputs = self.outputs()
            return _verdict(actual, expected, outputs, atol=atol, rtol=rtol)
        except Exception as exc:  # noqa: BLE001 - a grader bug must not hide the failure
            return _error(exc)

    def on(self, name: str) -> Callable[..., dict[str, Any]]:
        """A ``diagnose=`` argument for :func:`~grader.checks.compare.assert_close` comparing
        the output called ``name`` of the computation."""
        def diagnose(actual: torch.Tensor, expected: torch.Tensor, *, atol: float,
                     rtol: float) -> dict[str, Any]:
            return self.details({name: actual}, {name: expected}, atol=atol, rtol=rtol)

        return diagnose


def jointly(parts: list[tuple[Diagnosis, str, torch.Tensor, torch.Tensor]]
            ) -> Callable[..., dict[str, Any]]:
    """A ``diagnose=`` argument that judges several outputs together, each given as
    ``(diagnosis, output name, actual, expected)`` (e.g. one per case of a check): a variant
    is named only if it matches every one. One case alone may not tell two mistakes apart
    (with 4 heads, sqrt(d_model) is exactly 2 sqrt(d_k))."""
    def diagnose(actual: torch.Tensor, expected: torch.Tensor, *, atol: float,
                 rtol: float) -> dict[str, Any]:
        try:
            cases = [(d.outputs(), name) for d, name, _, _ in parts]
            joined = {}
            for variant in parts[0][0].variants:
                if all(name in out.get(variant, {}) for out, name in cases):
                    joined[variant] = {str(i): out[variant][name]
                                       for i, (out, name) in enumerate(cases)}
            return _verdict({str(i): a for i, (_, _, a, _) in enumerate(parts)},
                            {str(i): e for i, (_, _, _, e) in enumerate(parts)},
                            joined, atol=atol, rtol=rtol)
        except Exception as exc:  # noqa: BLE001 - a grader bug must not hide the failure
            return _error(exc)

    return diagnose


def _verdict(actual: Tensors, expected: Tensors, outputs: dict[str, Tensors], *, atol: float,
             rtol: float) -> dict[str, Any]:
    found = matches(actual, expected, outputs, atol=atol, rtol=rtol) if outputs else None
    if found is None:
        return {}
    if not found:
        if not finite_evidence(actual, expected, atol=atol, rtol=rtol):
            return {"diagnosis": "your output differs from the reference only in NaN/inf values: "
                                 "no mistake is named on those"}
        return {"diagnosis": f"{NO_MATCH} ({len(outputs)} variants)"}
    return {"likely_mistake": named([m.variant for m in found])}


def named(variants: list[str]) -> dict[str, Any]:
    """The ``likely_mistake`` details for the variants an output matches: the mistake when they
    are all one mistake, else "one of ..." (never resolved by the order of the list: the
    evidence does not tell them apart)."""
    ids = list(dict.fromkeys(mistake(v).id for v in variants))
    if len(ids) == 1:
        return mistake(ids[0]).as_details()
    ms = [mistake(i) for i in sorted(ids)]
    return {"id": "one_of:" + "+".join(m.id for m in ms),
            "name": "one of: " + "; ".join(m.name for m in ms),
            "hint": "Your output is consistent with each of these mistakes (the inputs do not "
                    "tell them apart): " + " / ".join(m.hint for m in ms),
            "course": "; ".join(dict.fromkeys(m.course for m in ms)),
            "candidates": [m.id for m in ms]}


def _error(exc: Exception) -> dict[str, Any]:
    return {"diagnosis_error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-2000:]}
