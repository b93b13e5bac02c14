"""The class summary's pictures as inline SVG: a histogram, and a class's curves over the
reference's. Every SVG has a width, a height, a ``<title>`` and a ``<desc>`` (in words), and all
text is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
BAR = "#0072B2"
CLASS_LINE = "#D55E00"
REFERENCE = "#222222"


def _e(text: object) -> str:
    return str(escape(str(text)))


def _head(uid: str, w: int, h: int, title: str, desc: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-labelledby="{uid}t {uid}d">',
            f'<title id="{uid}t">{_e(title)}</title><desc id="{uid}d">{_e(desc)}</desc>',
            f'<style>text{{font-family:{FONT};font-size:11px;fill:#333}}</style>']


def histogram(uid: str, title: str, counts: Sequence[int], max_score: float,
              mean: float | None, median: float | None, w: int = 344, h: int = 210) -> Markup:
    """Bars of ``counts`` over 0..``max_score`` with the mean and median marked."""
    left, right, top, bottom = 34, 10, 44, 34
    pw, ph = w - left - right, h - top - bottom
    n = len(counts) or 1
    peak = max(counts) if counts and max(counts) > 0 else 1
    desc = (f"{sum(counts)} students; counts per tenth of {max_score:g} points: "
            + ", ".join(str(c) for c in counts))
    if mean is not None:
        desc += f"; mean {mean:.3g}, median {median:.3g}"
    out = _head(uid, w, h, title, desc)
    out.append(f'<text x="{left}" y="14" font-weight="600">{_e(title)}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" '
               'stroke="#999"/>')
    for i, c in enumerate(counts):
        bh = ph * c / peak
        x = left + i * pw / n
        out.append(f'<rect x="{x + 1:.1f}" y="{top + ph - bh:.1f}" width="{pw / n - 2:.1f}" '
                   f'height="{bh:.1f}" fill="{BAR}"><title>{_e(_bin(i, n, max_score))}: '
                   f'{c} student(s)</title></rect>')
        if c:
            out.append(f'<text x="{x + pw / n / 2:.1f}" y="{top + ph - bh - 3:.1f}" '
                       f'text-anchor="middle">{c}</text>')
    for frac in (0, 0.5, 1):
        out.append(f'<text x="{left + frac * pw:.1f}" y="{top + ph + 14}" '
                   f'text-anchor="middle">{max_score * frac:g}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{h - 4}" text-anchor="middle">points</text>')
    for value, dash in ((mean, "4 3"), (median, "1 3")):
        if value is None or not max_score:
            continue
        x = left + pw * min(1.0, max(0.0, value / max_score))
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" '
                   f'stroke="{REFERENCE}" stroke-dasharray="{dash}"/>')
    if mean is not None:
        out.append(f'<text x="{left}" y="30">mean {mean:.3g} (dashed) · median {median:.3g} '
                   f'(dotted)</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _bin(i: int, n: int, top: float) -> str:
    return f"{top * i / n:g}–{top * (i + 1) / n:g} points"


def overlay(uid: str, title: str, reference: Sequence[float | None],
            students: dict[str, Sequence[float | None]], y_label: str = "loss",
            w: int = 560, h: int = 260, log_y: bool = False) -> Markup:
    """Every student's curve (thin, translucent) under the reference's (dark, dashed)."""
    left, right, top, bottom = 64, 12, 24, 36
    pw, ph = w - left - right, h - top - bottom
    series = [list(reference)] + [list(v) for v in students.values()]
    values = [v for s in series for v in s if v is not None and math.isfinite(v)
              and (v > 0 or not log_y)]
    if not values:
        values = [0.0, 1.0]
    lo, hi = min(values), max(values)
    ref_values = [v for v in reference if v is not None and math.isfinite(v)]
    if ref_values and max(ref_values) > 0 and not log_y:
        # One diverging student must not flatten everyone else: cut the axis at 3x the
        # reference's largest value (their curve then runs along the top edge).
        hi = min(hi, 3 * max(ref_values))
    if log_y:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-12:
        hi = lo + 1.0
    steps = max(len(s) for s in series) - 1 or 1

    def xy(i: int, v: float) -> tuple[float, float]:
        y = math.log10(v) if log_y else v
        return left + pw * i / steps, top + ph * (1 - (y - lo) / (hi - lo))

    def path(s: Sequence[float | None]) -> str:
        parts, pen = [], "M"
        for i, v in enumerate(s):
            if v is None or not math.isfinite(v) or (log_y and v <= 0):
                pen = "M"
                continue
            x, y = xy(i, min(max(v, 10 ** lo if log_y else lo), 10 ** hi if log_y else hi))
            parts.append(f"{pen}{x:.1f},{y:.1f}")
            pen = "L"
        return " ".join(parts)

    desc = (f"{len(students)} students' curves over the reference's; the reference ends at "
            f"{_last(reference)}; the class's last values range "
            f"{_range([_last(s) for s in students.values()])}")
    out = _head(uid, w, h, title, desc)
    out.append(f'<text x="{left}" y="15" font-weight="600">{_e(title)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#ccc"/>')
    for frac in (0, 0.5, 1):
        y = lo + (hi - lo) * frac
        label = f"{10 ** y:.3g}" if log_y else f"{y:.3g}"
        out.append(f'<text x="{left - 4}" y="{top + ph * (1 - frac) + 4:.1f}" '
                   f'text-anchor="end">{label}</text>')
    out.append(f'<text x="{left}" y="{h - 6}">step 0</text>'
               f'<text x="{left + pw}" y="{h - 6}" text-anchor="end">{steps}</text>'
               f'<text x="12" y="{top + ph / 2:.1f}" transform="rotate(-90 12 '
               f'{top + ph / 2:.1f})" text-anchor="middle">{_e(y_label)}</text>')
    for sid, s in students.items():
        d = path(s)
        if d:
            out.append(f'<path d="{d}" fill="none" stroke="{CLASS_LINE}" stroke-opacity="0.45" '
                       f'stroke-width="1.2"><title>{_e(sid)}</title></path>')
    d = path(reference)
    if d:
        out.append(f'<path d="{d}" fill="none" stroke="{REFERENCE}" stroke-width="2.4" '
                   f'stroke-dasharray="6 3"><title>reference</title></path>')
    out.append(f'<text x="{left + pw - 4}" y="{top + 14}" text-anchor="end">'
               f'<tspan fill="{REFERENCE}">- - reference</tspan>  '
               f'<tspan fill="{CLASS_LINE}">— students ({len(students)})</tspan></text>')
    out.append("</svg>")
    return Markup("".join(out))


def _last(s: Sequence[float | None]) -> str:
    vals = [v for v in s if v is not None and math.isfinite(v)]
    return f"{vals[-1]:.3g}" if vals else "n/a"


def _range(items: Sequence[str]) -> str:
    nums = [float(x) for x in items if x != "n/a"]
    return f"{min(nums):.3g} to {max(nums):.3g}" if nums else "n/a"
