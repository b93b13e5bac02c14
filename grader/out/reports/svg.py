"""Figures drawn as inline SVG by plain code: line charts and heatmaps, no plotting library.

Every SVG has a ``<title>`` and a ``<desc>`` (the figure in words) for screen readers, colours
come from colour-blind-safe palettes (Okabe-Ito lines, viridis and a blue-red diverging scale),
and every piece of text is escaped: titles and labels may come from data.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from markupsafe import Markup, escape

from grader.model.figures import REFERENCE_NAMES, to_float
from grader.out.reports import words

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
LINE_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
REFERENCE_COLOUR = "#333333"
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
           "#addc30", "#fde725"]
DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
             "#d6604d", "#b2182b"]
MAX_POINTS = 600


def e(text: Any) -> str:
    return str(escape(str(text)))


class Drawer:
    """Draws figures for one page; ids (for ``aria-labelledby`` and gradients) are unique
    within the page."""

    def __init__(self, prefix: str = "fig"):
        self._ids = itertools.count(1)
        self._prefix = prefix

    def __call__(self, fig: dict[str, Any]) -> Markup:
        uid = f"{self._prefix}{next(self._ids)}"
        kind = fig.get("kind")
        if kind == "curves":
            return line_chart(fig, uid)
        if kind in ("heatmap", "heatmaps"):
            return heatmaps(fig, uid)
        return Markup("")


def _svg(uid: str, width: float, height: float, title: str, desc: str, body: list[str]) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="figure" role="img" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'aria-labelledby="{uid}-t {uid}-d" font-family="{e(FONT)}" font-size="11" '
            f'style="max-width:100%;height:auto">'
            f'<title id="{uid}-t">{e(title)}</title><desc id="{uid}-d">{e(desc)}</desc>')
    return Markup(head + "".join(body) + "</svg>")


# ---------------------------------------------------------------------------- line charts


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= step * m:
            step *= m
            break
    start = math.floor(lo / step + 1e-9) * step
    ticks, t = [], start
    while t < hi + step * 0.999:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _thin(n: int) -> list[int]:
    if n <= MAX_POINTS:
        return list(range(n))
    stride = math.ceil(n / MAX_POINTS)
    idx = list(range(0, n, stride))
    return idx if idx[-1] == n - 1 else idx + [n - 1]


def line_chart(fig: dict[str, Any], uid: str, width: int = 620, height: int = 330) -> Markup:
    """A line chart of ``fig["series"]`` (see :func:`grader.model.figures.curves`)."""
    series: dict[str, list[Any]] = dict(fig.get("series", {}))
    refs = set(fig.get("reference", REFERENCE_NAMES))
    log_y = bool(fig.get("log_y"))
    n = max((len(v) for v in series.values()), default=0)
    xs_given = fig.get("x")
    xs = [to_float(v) for v in xs_given] if xs_given else [float(i) for i in range(n)]

    def yval(v: Any) -> float | None:
        f = to_float(v)
        if f is None or not math.isfinite(f):
            return None
        if log_y:
            return math.log10(f) if f > 0 else None
        return f

    ys = [y for vals in series.values() for y in map(yval, vals) if y is not None]
    xf = [x for x in xs if x is not None and math.isfinite(x)]
    y_ticks = nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
    x_ticks = nice_ticks(min(xf), max(xf), 6) if xf else [0.0, 1.0]
    y0, y1 = y_ticks[0], y_ticks[-1]
    x0, x1 = (min(xf), max(xf)) if xf and max(xf) > min(xf) else (x_ticks[0], x_ticks[-1])
    x_ticks = [t for t in x_ticks if x0 - 1e-9 <= t <= x1 + 1e-9] or [x0, x1]

    # Legend entries, wrapped into rows, under the title.
    entries, row, rows_used, lx = [], 0, 1, 64.0
    colours = iter(LINE_COLOURS * 4)
    for name in series:
        ref = name in refs
        colour = REFERENCE_COLOUR if ref else next(colours)
        w = 34 + 6.5 * len(name)
        if lx + w > width - 10 and lx > 64:
            row, lx = row + 1, 64.0
            rows_used += 1
        entries.append((name, colour, ref, lx, row))
        lx += w + 16
    left, right = 66, 18
    top, bottom = 44 + 16 * rows_used, 48
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0 or 1) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0 or 1) * ph

    b: list[str] = []
    title = fig.get("title") or "Line chart"
    b.append(f'<text x="{left}" y="18" font-size="14" font-weight="600" fill="#1f2328">'
             f'{e(title)}</text>')
    for name, colour, ref, ex, er in entries:
        ey = 38 + 16 * er
        dash = ' stroke-dasharray="6 4"' if ref else ""
        b.append(f'<line x1="{ex:.1f}" y1="{ey - 4}" x2="{ex + 26:.1f}" y2="{ey - 4}" '
                 f'stroke="{colour}" stroke-width="2.5"{dash}/>'
                 f'<text x="{ex + 32:.1f}" y="{ey}" fill="#1f2328">{e(name)}</text>')
    # Grid, ticks and axes.
    b.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#ffffff" '
             f'stroke="#d0d7de"/>')
    for t in y_ticks:
        y = py(t)
        label = words.num(10 ** t if log_y else t, 3)
        b.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                 f'stroke="#eaeef2"/><text x="{left - 6}" y="{y + 3.5:.1f}" text-anchor="end" '
                 f'fill="#57606a">{e(label)}</text>')
    for t in x_ticks:
        x = px(t)
        b.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#eaeef2"/>'
                 f'<text x="{x:.1f}" y="{top + ph + 15}" text-anchor="middle" fill="#57606a">'
                 f'{e(words.num(t, 4))}</text>')
    b.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle" '
             f'fill="#1f2328">{e(fig.get("x_label") or "")}</text>')
    ylab = (fig.get("y_label") or "") + (" (log scale)" if log_y else "")
    b.append(f'<text transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" '
             f'text-anchor="middle" fill="#1f2328">{e(ylab)}</text>')
    for m in fig.get("markers", []):
        mx = to_float(m.get("x"))
        if mx is None or not (x0 <= mx <= x1):
            continue
        x = px(mx)
        b.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#6e7781" '
                 f'stroke-dasharray="2 3"/><text x="{x + 3:.1f}" y="{top + 11}" '
                 f'fill="#57606a">{e(m.get("label", ""))}</text>')
    # Reference series first, so that the student's line is drawn on top.
    for name, colour, ref, _, _ in sorted(entries, key=lambda en: not en[2]):
        vals = series[name]
        d, pen = [], "M"
        for i in _thin(len(vals)):
            x, y = xs[i] if i < len(xs) else None, yval(vals[i])
            if x is None or y is None or not math.isfinite(x):
                pen = "M"
                continue
            d.append(f"{pen}{px(x):.1f} {py(y):.1f}")
            pen = "L"
        if not d:
            continue
        dash = ' stroke-dasharray="6 4"' if ref else ""
        b.append(f'<path d="{" ".join(d)}" fill="none" stroke="{colour}" stroke-width="2" '
                 f'stroke-linejoin="round"{dash}><title>{e(name)}</title></path>')
        if len(d) == 1:  # a single point: show it
            x, y = d[0][1:].split()
            b.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>')
    desc = " ".join(words.describe(fig))
    return _svg(uid, width, height, title, desc, b)


# ---------------------------------------------------------------------------- heatmaps


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def colour(t: float, stops: list[str]) -> str:
    """The colour at ``t`` in [0, 1] along ``stops``, interpolated in RGB."""
    t = min(1.0, max(0.0, t)) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    a, b = _hex(stops[i]), _hex(stops[i + 1])
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b, strict=False))


def _dark(c: str) -> bool:
    r, g, b = _hex(c)
    return 0.299 * r + 0.587 * g + 0.114 * b < 140


def _cell_text(v: float) -> str:
    if v == 0:
        return "0"
    if 0.01 <= abs(v) < 100:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _range(panels: list[dict[str, Any]]) -> tuple[float, float]:
    vals = [f for p in panels for row in p.get("matrix", []) for f in map(to_float, row)
            if f is not None and math.isfinite(f)]
    return (min(vals), max(vals)) if vals else (0.0, 1.0)


def heatmaps(fig: dict[str, Any], uid: str) -> Markup:
    """One heatmap or several side by side (see :func:`grader.model.figures.heatmaps`)."""
    panels = list(fig.get("panels", [])) if fig.get("kind") == "heatmaps" else [fig]
    panels = [p for p in panels if p.get("matrix")]
    single = fig.get("kind") == "heatmap"
    title = fig.get("title") or ("Heatmap" if single else "Heatmaps")
    shared = bool(fig.get("shared_scale", True)) and not single
    seq = [p for p in panels if not p.get("diverging")]
    shared_lo, shared_hi = _range(seq)
    big = max((max(len(p["matrix"]), max(len(r) for r in p["matrix"])) for p in panels),
              default=1)
    cs = max(6, min(30, int(230 / big)))
    label_every = max(1, math.ceil(12 / cs))

    b: list[str] = [
        f'<defs>'
        f'<linearGradient id="{uid}-seq">' + "".join(
            f'<stop offset="{i / (len(VIRIDIS) - 1):.3f}" stop-color="{c}"/>'
            for i, c in enumerate(VIRIDIS)) + '</linearGradient>'
        f'<linearGradient id="{uid}-div">' + "".join(
            f'<stop offset="{i / (len(DIVERGING) - 1):.3f}" stop-color="{c}"/>'
            for i, c in enumerate(DIVERGING)) + '</linearGradient></defs>']
    b.append(f'<text x="4" y="18" font-size="14" font-weight="600" fill="#1f2328">'
             f'{e(title)}</text>')
    x_off, top, height = 4.0, 30.0, 0.0
    for p in panels:
        m = p["matrix"]
        n_rows, n_cols = len(m), max(len(r) for r in m)
        diverging = bool(p.get("diverging"))
        if diverging:
            lo_d, hi_d = _range([p])
            span = max(abs(lo_d), abs(hi_d)) or 1e-12
            lo, hi = -span, span
        elif shared:
            lo, hi = shared_lo, shared_hi
        else:
            lo, hi = _range([p])
        lo = to_float(p.get("vmin")) if p.get("vmin") is not None else lo
        hi = to_float(p.get("vmax")) if p.get("vmax") is not None else hi
        if hi is None or lo is None or hi <= lo:
            hi = (lo or 0.0) + 1.0
        stops = DIVERGING if diverging else VIRIDIS
        grid_w = n_cols * cs
        panel_w = 40 + max(grid_w, 96)
        gx, gy = x_off + 36, top + 34
        b.append(f'<text x="{gx:.1f}" y="{top + 12:.1f}" font-size="12" font-weight="600" '
                 f'fill="#1f2328">{e(p.get("title") or "")}</text>')
        mask = p.get("mask")
        leak = words.leaks(p)
        with_titles = n_rows * n_cols <= 600
        ylab, xlab = p.get("y_label") or "row", p.get("x_label") or "column"
        for i, row in enumerate(m):
            for j, v in enumerate(row):
                f = to_float(v)
                x, y = gx + j * cs, gy + i * cs
                finite = f is not None and math.isfinite(f)
                fill = colour((f - lo) / (hi - lo), stops) if finite else "#bdbdbd"
                tip = f"{ylab} {i}, {xlab} {j}: {words.num(v)}"
                blocked = bool(mask) and i < len(mask) and j < len(mask[i]) and not mask[i][j]
                if blocked:
                    tip += "; blocked by the mask"
                if (i, j) in leak:
                    tip += "; LEAK: blocked but not zero"
                t = f"<title>{e(tip)}</title>" if with_titles else ""
                b.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cs}" height="{cs}" '
                         f'fill="{fill}">{t}</rect>')
                if blocked:
                    b.append(f'<line x1="{x + 2:.1f}" y1="{y + 2:.1f}" x2="{x + cs - 2:.1f}" '
                             f'y2="{y + cs - 2:.1f}" stroke="#9a9a9a" stroke-width="1"/>')
                if not finite:
                    b.append(f'<text x="{x + cs / 2:.1f}" y="{y + cs / 2 + 3:.1f}" '
                             f'text-anchor="middle" font-size="8" fill="#1f2328">×</text>')
                elif cs >= 26:
                    ink = "#ffffff" if _dark(fill) else "#1f2328"
                    b.append(f'<text x="{x + cs / 2:.1f}" y="{y + cs / 2 + 3:.1f}" '
                             f'text-anchor="middle" font-size="8" fill="{ink}">'
                             f'{e(_cell_text(f))}</text>')
        for i, j in sorted(leak):
            x, y = gx + j * cs, gy + i * cs
            b.append(f'<rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cs - 2}" height="{cs - 2}" '
                     f'fill="none" stroke="#e00000" stroke-width="2"/>')
        for j in range(0, n_cols, label_every):
            b.append(f'<text x="{gx + j * cs + cs / 2:.1f}" y="{gy - 4:.1f}" '
                     f'text-anchor="middle" font-size="9" fill="#57606a">{j}</text>')
        for i in range(0, n_rows, label_every):
            b.append(f'<text x="{gx - 4:.1f}" y="{gy + i * cs + cs / 2 + 3:.1f}" '
                     f'text-anchor="end" font-size="9" fill="#57606a">{i}</text>')
        gh = n_rows * cs
        b.append(f'<text transform="translate({x_off + 9:.1f} {gy + gh / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle" fill="#1f2328">{e(ylab)} ↓</text>')
        b.append(f'<text x="{gx + grid_w / 2:.1f}" y="{gy + gh + 15:.1f}" '
                 f'text-anchor="middle" fill="#1f2328">{e(xlab)} →</text>')
        bar_w = max(grid_w, 96)
        by = gy + gh + 24
        b.append(f'<rect x="{gx:.1f}" y="{by:.1f}" width="{bar_w}" height="8" '
                 f'fill="url(#{uid}-{"div" if diverging else "seq"})" stroke="#d0d7de"/>')
        b.append(f'<text x="{gx:.1f}" y="{by + 20:.1f}" font-size="9" fill="#57606a">'
                 f'{e(words.num(lo, 3))}</text>'
                 f'<text x="{gx + bar_w:.1f}" y="{by + 20:.1f}" font-size="9" '
                 f'text-anchor="end" fill="#57606a">{e(words.num(hi, 3))}</text>')
        if diverging:
            b.append(f'<text x="{gx + bar_w / 2:.1f}" y="{by + 20:.1f}" font-size="9" '
                     f'text-anchor="middle" fill="#57606a">0</text>')
        x_off += panel_w + 20
        height = max(height, by + 28)
    notes = []
    if any(p.get("mask") for p in panels):
        notes.append("Struck-through cells are blocked by the mask.")
    if any(words.leaks(p) for p in panels):
        notes.append("Red outline: blocked but not zero (a leak).")
    if notes:
        b.append(f'<text x="4" y="{height + 6:.1f}" font-size="10" fill="#57606a">'
                 f'{e(" ".join(notes))}</text>')
        height += 14
    width = max(x_off - 16, 7.5 * len(title) + 8)
    desc = " ".join(words.describe(fig))
    return _svg(uid, width, height, title, desc, b)
