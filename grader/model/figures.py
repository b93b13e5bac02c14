"""Pictures as data: small constructors a check uses to put a figure into ``CheckResult.details``.

A check never draws. It stores a *figure spec* (plain JSON: dicts, lists, floats, strings) under
any key of its details, and the reports (``grader.out.reports``) draw it as inline SVG in the HTML
report and describe it in words in the Markdown report::

    from grader.model.figures import comparison, curves, heatmap

    raise CheckFailed("...", loss_curve=curves({"student": mine, "reference": ref},
                                               title="Training loss", y_label="loss"))
    return ok(weights=comparison(actual_weights, expected_weights, title="Attention weights"))

The three kinds (see each constructor for every field):

* ``{"kind": "curves", "series": {name: [y, ...]}, "x": [...]?, "title", "x_label", "y_label",
  "reference": [names], "log_y": bool, "markers": [{"x", "label"}], "caption"}`` — a line chart.
  Series named in ``reference`` (default ``"reference"`` and ``"expected"``) are drawn dashed
  dark grey, the others in colour; ``null`` values (NaN, inf) leave a gap.
* ``{"kind": "heatmap", "matrix": [[...]], "title", "x_label", "y_label", "diverging": bool,
  "vmin", "vmax", "mask": [[bool]]?, "caption"}`` — one matrix. With a ``mask`` (True = may
  attend), blocked cells are struck through, and blocked cells with a non-zero value are outlined
  in red: a leak is visible at a glance.
* ``{"kind": "heatmaps", "panels": [heatmap, ...], "title", "shared_scale": bool, "caption"}`` —
  panels side by side (non-diverging panels share one colour scale when ``shared_scale``).
  :func:`comparison` makes the usual "yours | expected | yours - expected" triple.

Everything here is pure data: no torch, no rendering. Tensors and arrays are accepted wherever a
list is (anything with ``tolist()``), and matrices are cut to ``max_size`` rows and columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

KINDS = ("curves", "heatmap", "heatmaps")
REFERENCE_NAMES = ("reference", "expected")
MAX_MATRIX = 32


def is_figure(value: Any) -> bool:
    """Whether ``value`` is a figure spec that the reports draw."""
    return isinstance(value, Mapping) and value.get("kind") in KINDS


def curves(series: Mapping[str, Any], *, title: str = "", x_label: str = "step",
           y_label: str = "", x: Any = None, reference: Sequence[str] = REFERENCE_NAMES,
           log_y: bool = False, markers: Sequence[Mapping[str, Any]] = (),
           caption: str = "") -> dict[str, Any]:
    """A line chart of one or more series over the same x values (default 0, 1, 2, ...).

    ``series`` maps a legend name to its y values, e.g. ``{"student": losses, "reference":
    ref_losses}``; names in ``reference`` are drawn as the dashed yardstick. ``markers`` are
    vertical lines such as ``{"x": warmup_steps, "label": "end of warmup"}``.
    """
    spec: dict[str, Any] = {
        "kind": "curves", "title": str(title), "x_label": str(x_label), "y_label": str(y_label),
        "series": {str(name): _floats(values) for name, values in series.items()},
        "reference": [str(r) for r in reference], "log_y": bool(log_y),
    }
    if x is not None:
        spec["x"] = _floats(x)
    if markers:
        spec["markers"] = [{"x": float(m["x"]), "label": str(m.get("label", ""))}
                           for m in markers]
    if caption:
        spec["caption"] = str(caption)
    return spec


def heatmap(matrix: Any, *, title: str = "", x_label: str = "key", y_label: str = "query",
            mask: Any = None, diverging: bool = False, vmin: float | None = None,
            vmax: float | None = None, caption: str = "", max_size: int = MAX_MATRIX
            ) -> dict[str, Any]:
    """A heatmap of a 2-D matrix (a 1-D vector becomes one row; leading dimensions of a larger
    tensor are indexed at 0, i.e. the first batch element and head).

    ``diverging`` centres the colour scale on 0 (for differences); ``mask`` is a boolean matrix
    of the same shape, True where attending is allowed.
    """
    rows, shape = _matrix(matrix, max_size)
    spec: dict[str, Any] = {"kind": "heatmap", "title": str(title), "x_label": str(x_label),
                            "y_label": str(y_label), "matrix": rows, "diverging": bool(diverging)}
    if shape != [len(rows), len(rows[0]) if rows else 0]:
        spec["full_shape"] = shape
    if vmin is not None:
        spec["vmin"] = float(vmin)
    if vmax is not None:
        spec["vmax"] = float(vmax)
    if mask is not None:
        m, _ = _matrix(mask, max_size)
        spec["mask"] = [[bool(v) for v in row] for row in m]
    if caption:
        spec["caption"] = str(caption)
    return spec


def heatmaps(*panels: Mapping[str, Any], title: str = "", shared_scale: bool = True,
             caption: str = "") -> dict[str, Any]:
    """Several :func:`heatmap` panels side by side under one title."""
    spec: dict[str, Any] = {"kind": "heatmaps", "title": str(title),
                            "panels": [dict(p) for p in panels], "shared_scale": bool(shared_scale)}
    if caption:
        spec["caption"] = str(caption)
    return spec


def comparison(actual: Any, expected: Any, *, title: str = "", x_label: str = "key",
               y_label: str = "query", names: tuple[str, str] = ("yours", "expected"),
               mask: Any = None, difference: bool = True, caption: str = "",
               max_size: int = MAX_MATRIX) -> dict[str, Any]:
    """``actual`` and ``expected`` side by side on one colour scale, plus (when the shapes
    agree and ``difference``) a diverging heatmap of ``actual - expected``."""
    a = heatmap(actual, title=names[0], x_label=x_label, y_label=y_label, mask=mask,
                max_size=max_size)
    e = heatmap(expected, title=names[1], x_label=x_label, y_label=y_label, mask=mask,
                max_size=max_size)
    panels = [a, e]
    if difference:
        diff = difference_matrix(a["matrix"], e["matrix"])
        if diff is not None:
            panels.append(heatmap(diff, title=f"{names[0]} − {names[1]}", x_label=x_label,
                                  y_label=y_label, diverging=True, max_size=max_size))
    return heatmaps(*panels, title=title, caption=caption)


def difference_matrix(actual: list[list[Any]], expected: list[list[Any]]
                      ) -> list[list[float | None]] | None:
    """Element-wise ``actual - expected`` of two nested lists, or None when shapes differ."""
    if len(actual) != len(expected) or any(
            len(r) != len(s) for r, s in zip(actual, expected, strict=True)):
        return None
    out = []
    for r, s in zip(actual, expected, strict=True):
        row = []
        for a, e in zip(r, s, strict=True):
            a, e = to_float(a), to_float(e)
            d = a - e if a is not None and e is not None else None
            row.append(_round(d) if d is not None and math.isfinite(d) else None)
        out.append(row)
    return out


def to_float(value: Any) -> float | None:
    """A number as float, or None for anything else (NaN and inf stay floats)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # "nan"/"inf" after a JSON round trip of the results
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _tolist(value: Any) -> Any:
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _round(v: float) -> float:
    return float(f"{v:.6g}")


def _floats(values: Any) -> list[float | None]:
    out: list[float | None] = []
    for v in _tolist(values):
        f = to_float(v)
        out.append(_round(f) if f is not None and math.isfinite(f) else None)
    return out


def _matrix(value: Any, max_size: int) -> tuple[list[list[Any]], list[int]]:
    data = _tolist(value)
    if not isinstance(data, list):
        data = [[data]]
    elif not data or not isinstance(data[0], list):
        data = [data]
    while data and isinstance(data[0], list) and data[0] and isinstance(data[0][0], list):
        data = data[0]  # (B, H, T, T) -> the first batch element and head
    shape = [len(data), max((len(r) for r in data), default=0)]
    rows = []
    for row in data[:max_size]:
        cells: list[Any] = []
        for v in row[:max_size]:
            f = to_float(v)
            cells.append(_round(f) if f is not None and math.isfinite(f) else
                         (str(f) if f is not None else None))
        rows.append(cells)
    return rows, shape
