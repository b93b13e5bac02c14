"""Figures, numbers and detail keys in words: what the Markdown report says instead of a picture,
what an SVG's ``<desc>`` says to a screen reader, and the label and wording of every key a check
may put into its details (:data:`LABELS`, one entry per key of
:data:`grader.model.details.VOCABULARY`). Plain text, not yet escaped for any format."""

from __future__ import annotations

import math
from typing import Any

from grader.model.figures import REFERENCE_NAMES, to_float

# The words of every declared details key (grader.model.details.VOCABULARY): the label the
# reports print before its value. tests/out/test_report_words.py fails on a key without one.
LABELS: dict[str, str] = {
    # facts (said in sentences by the reports' facts list)
    "max_abs_diff": "Largest absolute difference",
    "max_rel_diff": "Largest relative difference",
    "where": "At index",
    "actual_at": "Your value there",
    "expected_at": "Expected value there",
    "mismatched": "Values outside the tolerance",
    "shape": "Shape compared",
    "tolerance": "Tolerance",
    "nonfinite": "NaN/inf values",
    "actual_shape": "Your shape",
    "expected_shape": "Expected shape",
    "actual": "Yours",
    "expected": "Expected",
    "loss": "Loss",
    "ln_vocab": "ln(vocab size), the loss of a uniform guess",
    "error": "Raised",
    "likely_mistake": "Likely mistake",
    "traceback": "Grader traceback (instructor only)",
    "inputs": "Inputs",
    # figures
    "weights": "Attention weights without a mask",
    "weights_masked": "Attention weights with a mask",
    "heatmap": "Your attention weights",
    "mask": "The mask (1 = may attend)",
    "curves": "Loss curve: yours and the reference's",
    "losses": "Loss curve",
    "train_losses": "Training loss",
    "val_losses": "Validation loss",
    "lrs": "Learning-rate schedule",
    "grad_norms": "Gradient norm per step",
    # tables
    "measured": "Measured statistics",
    "heldout": "Held-out questions",
    # values
    "diagnosis": "Diagnosis",
    "diagnosis_error": "Diagnosis failed (a grader problem)",
    "cases": "Cases checked",
    "max_row_sum_error": "Largest error of a row sum",
    "cuts": "Sequence lengths tried",
    "changed": "Positions that changed",
    "num_parameters": "Parameters",
    "parameters": "Parameters",
    "chi_square": "Chi-square of the spread of starts",
    "counts": "Starts per tenth of the data",
    "starts_seen": "Starts drawn",
    "steps": "Steps",
    "pre_clip": "Gradient norm after backward, before clipping",
    "at_step": "Gradient norm the optimizer step applied",
    "grad_clip": "Clipping threshold (grad_clip)",
    "stale_steps": "Steps whose gradients still held the previous step's",
    "evaluations": "Evaluations expected",
    "loss_ratio": "Your held-out loss ÷ the reference loop's",
    "grad_norm_ratio": "Your gradient norms ÷ the reference's (median after warmup)",
    "parameter_travel_ratio": ("How far your loop moved the parameters ÷ how far the "
                               "reference's did"),
    "limits": "Allowed",
    "heldout_loss": "Held-out loss",
    "first_loss": "Loss at the first step",
    "margin": "Allowed margin above the reference's loss",
    "device": "Device",
    "seed": "Seed",
    "seconds": "Time of the run",
    "chunks": "Chunk sizes fed",
    "lengths": "Cache length after each chunk",
    "tokens": "Tokens",
    "tokens_fed_cached": "Tokens fed per call, with the cache",
    "tokens_fed_uncached": "Tokens fed per call, without the cache",
    "used": "Positions used",
    "calls": "Shapes the model was called with",
    "case": "Case",
    "text_start": "The text begins",
    "first_difference": "First merge that differs",
    "entries": "Entries compared",
    "texts": "Texts encoded",
    "rates": "Tokens per second",
    "tie_effect": "Effect of changing the tied embedding on the logits",
    "reported_num_parameters": "Parameters your model reports",
    "length": "Cache length at the end",
}

# Values with a unit: how the number is followed.
_UNITS = {"seconds": " s", "loss_ratio": "×", "grad_norm_ratio": "×",
          "parameter_travel_ratio": "×"}
_SERIES_SHOWN = 16


def label(key: str) -> str:
    """The words for a details key (a humanised key when it has none: never for a declared
    key, which the tests hold to :data:`LABELS`)."""
    if key in LABELS:
        return LABELS[key]
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def say(key: str, value: Any) -> str:
    """A details value in words: numbers with their unit, lists shortened with their count,
    ``limits`` as bounds, small dicts as ``name value`` pairs; never raw JSON for the shapes
    checks emit."""
    if key == "limits" and isinstance(value, dict):
        return "; ".join(_bound(k, v) for k, v in value.items())
    return _say(value, _UNITS.get(key, ""))


def _bound(name: str, bound: Any) -> str:
    what = label(name).lower() if name in LABELS else name.replace("_", " ")
    if isinstance(bound, (list, tuple)) and len(bound) == 2:
        return f"{what} between {num(bound[0])} and {num(bound[1])}"
    return f"{what} at most {num(bound)}"


def _say(value: Any, unit: str = "") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        return num(value) + unit
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if all(isinstance(v, (list, tuple)) for v in value) and all(
                isinstance(x, (int, float)) for v in value for x in v):
            return ", ".join(shape(list(v)) for v in value[:_SERIES_SHOWN]) + _more(value)
        shown = ", ".join(_say(v) for v in value[:_SERIES_SHOWN])
        return f"[{shown}{', …' if len(value) > _SERIES_SHOWN else ''}]" + _more(value)
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            name = "yours" if k == "student" else str(k).replace("_", " ")
            parts.append(f"{name} {_say(v, unit)}")
        return ", ".join(parts)
    return str(value)


def _more(value: Any) -> str:
    return f" ({len(value)} values)" if len(value) > _SERIES_SHOWN else ""


def num(value: Any, digits: int = 4) -> str:
    """A number in a few significant digits; anything else as text."""
    f = to_float(value)
    if f is None:
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f == int(f) and abs(f) < 1e6:
        return str(int(f))
    return f"{f:.{digits}g}"


def shape(value: Any) -> str:
    """``[2, 3, 5]`` as ``(2, 3, 5)``."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def describe(fig: dict[str, Any]) -> list[str]:
    """Sentences that say what a figure shows (one per series or panel, plus a comparison)."""
    kind = fig.get("kind")
    if kind == "curves":
        return _describe_curves(fig)
    if kind == "heatmap":
        return _describe_panels([fig])
    if kind == "heatmaps":
        return _describe_panels(list(fig.get("panels", [])))
    return []


def _finite(values: list[Any]) -> list[tuple[int, float]]:
    out = []
    for i, v in enumerate(values):
        f = to_float(v)
        if f is not None and math.isfinite(f):
            out.append((i, f))
    return out


def _describe_curves(fig: dict[str, Any]) -> list[str]:
    series: dict[str, list[Any]] = fig.get("series", {})
    xs = fig.get("x")
    x_label = fig.get("x_label") or "step"

    def at(i: int) -> str:
        return num(xs[i]) if xs and i < len(xs) else str(i)

    lines = []
    for name, values in series.items():
        pts = _finite(values)
        if not pts:
            lines.append(f"{name}: no finite value ({len(values)} points).")
            continue
        low = min(pts, key=lambda p: p[1])
        text = (f"{name}: {len(values)} points, from {num(pts[0][1])} to {num(pts[-1][1])} "
                f"(lowest {num(low[1])} at {x_label} {at(low[0])})")
        if pts[-1][0] < len(values) - 1:
            text += f"; no finite value after {x_label} {at(pts[-1][0])}"
        lines.append(text + ".")
    refs = set(fig.get("reference", REFERENCE_NAMES))
    mine = [n for n in series if n not in refs]
    theirs = [n for n in series if n in refs]
    if mine and theirs:
        a, b = series[mine[0]], series[theirs[0]]
        pairs = [(i, to_float(x), to_float(y)) for i, (x, y) in enumerate(zip(a, b, strict=False))]
        pairs = [(i, x, y) for i, x, y in pairs if x is not None and y is not None
                 and math.isfinite(x) and math.isfinite(y)]
        if pairs:
            i, x, y = max(pairs, key=lambda p: abs(p[1] - p[2]))
            j, xe, ye = pairs[-1]
            rel = f" ({abs(xe - ye) / abs(ye):.0%})" if ye else ""
            side = "above" if xe > ye else "below" if xe < ye else "equal to"
            lines.append(f"Largest gap between {mine[0]} and {theirs[0]}: {num(abs(x - y))} at "
                         f"{x_label} {at(i)} ({mine[0]} {num(x)}, {theirs[0]} {num(y)}); at the "
                         f"end ({x_label} {at(j)}) {mine[0]} is {num(abs(xe - ye))}{rel} "
                         f"{side} {theirs[0]}."
                         if side != "equal to" else
                         f"Largest gap between {mine[0]} and {theirs[0]}: {num(abs(x - y))} at "
                         f"{x_label} {at(i)}; they end equal.")
    for m in fig.get("markers", []):
        lines.append(f"Marked: {m.get('label', '')} at {x_label} {num(m.get('x'))}.")
    return lines


def _stats(matrix: list[list[Any]]) -> tuple[float | None, float | None, int]:
    vals, bad = [], 0
    for row in matrix:
        for v in row:
            f = to_float(v)
            if f is None or not math.isfinite(f):
                bad += 1
            else:
                vals.append(f)
    return (min(vals) if vals else None, max(vals) if vals else None, bad)


def _dims(matrix: list[list[Any]]) -> str:
    return f"{len(matrix)}×{len(matrix[0]) if matrix else 0}"


def _describe_panels(panels: list[dict[str, Any]]) -> list[str]:
    lines = []
    for p in panels:
        m = p.get("matrix", [])
        lo, hi, bad = _stats(m)
        name = p.get("title") or "matrix"
        rows = p.get("y_label") or "rows"
        cols = p.get("x_label") or "columns"
        text = f"{name}: {_dims(m)} ({rows} × {cols})"
        if p.get("full_shape"):
            text += f", the first rows and columns of {shape(p['full_shape'])}"
        if lo is not None:
            text += f", values from {num(lo)} to {num(hi)}"
        if bad:
            text += f", {bad} NaN/inf"
        if p.get("diverging") and lo is not None:
            worst = _argmax_abs(m)
            if worst:
                (i, j), v = worst
                text += f"; largest difference {num(v)} at {rows} {i}, {cols} {j}"
        leaks = _leaks(p)
        if leaks:
            (i, j), v = leaks[0]
            text += (f"; {len(leaks)} blocked position(s) have a non-zero value (a leak), the "
                     f"first at {rows} {i}, {cols} {j} ({num(v)})")
        lines.append(text + ".")
    return lines


def _argmax_abs(m: list[list[Any]]) -> tuple[tuple[int, int], float] | None:
    best = None
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            f = to_float(v)
            if f is not None and math.isfinite(f) and (best is None or abs(f) > abs(best[1])):
                best = ((i, j), f)
    return best


def _leaks(panel: dict[str, Any]) -> list[tuple[tuple[int, int], float]]:
    mask = panel.get("mask")
    if not mask:
        return []
    out = []
    for i, (row, mrow) in enumerate(zip(panel.get("matrix", []), mask, strict=False)):
        for j, (v, allowed) in enumerate(zip(row, mrow, strict=False)):
            f = to_float(v)
            if not allowed and f is not None and f != 0:
                out.append(((i, j), f))
    return out


def leaks(panel: dict[str, Any]) -> set[tuple[int, int]]:
    """Cells that the mask blocks but that hold a non-zero value."""
    return {ij for ij, _ in _leaks(panel)}


def is_binary(matrix: list[list[Any]]) -> bool:
    """Whether every entry is 0 or 1 (a mask): then a grid of characters says it all."""
    return bool(matrix) and all(to_float(v) in (0.0, 1.0) for row in matrix for v in row)


def grid(matrix: list[list[Any]]) -> list[str]:
    """A 0/1 matrix as rows of ``#`` (1, True) and ``.`` (0, False)."""
    return [" ".join("#" if to_float(v) == 1.0 else "." for v in row) for row in matrix]
