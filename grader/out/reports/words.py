"""Figures and numbers in words: what the Markdown report says instead of a picture, and what an
SVG's ``<desc>`` says to a screen reader. Plain text, not yet escaped for any format."""

from __future__ import annotations

import math
from typing import Any

from grader.model.figures import REFERENCE_NAMES, to_float


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
