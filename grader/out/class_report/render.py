"""The class summary as files: ``summary.html`` (self-contained: inline CSS and SVG, no script,
the reports' Content-Security-Policy), ``summary.md``, a page per similar pair
(``pairs/*.html``, side by side), and the short terminal table.

The page is for the instructor: it names students (the mistakes' students, the clusters, the
outliers, the similar pairs). Every text from a result is untrusted (the student's code writes
exception messages): Jinja2 escapes it in HTML, :func:`md` in Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2

from grader.out.class_report import svg
from grader.out.class_report.similarity import Similarity, highlighted
from grader.out.class_report.stats import RunRates, Summary, movement
from grader.out.reports.html import CSP

KIND_WORDS = {"slow": "slow", "error": "errored", "timeout": "timed out"}


@dataclass
class Page:
    """Everything the summary shows."""

    title: str
    summary: Summary
    similarity: Similarity | None = None
    history: list[RunRates] = field(default_factory=list)
    run_label: str = ""


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("grader.out.class_report", "templates"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def pts(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def _figures(page: Page) -> dict[str, object]:
    s = page.summary
    hists = [svg.histogram(f"h{i}", f"{d.name} ({len(d.scores)})", d.histogram(),
                           d.max_score, d.mean, d.median)
             for i, d in enumerate([s.total, *s.assignments])]
    curves = [svg.overlay(f"c{i}", f"{c.assignment} · {c.check_id}: {c.title}", c.reference,
                          c.students, y_label=c.title)
              for i, c in enumerate(s.curves)]
    return {"hists": hists, "curves": curves}


def _history_rows(history: Sequence[RunRates]) -> list[dict[str, object]]:
    if len(history) < 2:
        return []
    rows = []
    for a, c, rates, delta in movement(history):
        rows.append({"check": f"{a}.{c}", "rates": ["–" if r is None else pct(r) for r in rates],
                     "delta": delta, "delta_text": f"{100 * delta:+.0f} pts" if delta else "±0"})
    return rows


def render_html(page: Page) -> str:
    """The instructor's summary page."""
    return _env().get_template("summary.html.j2").render(
        p=page, s=page.summary, sim=page.similarity, history=_history_rows(page.history),
        runs=page.history, fig=_figures(page), csp=CSP, pct=pct, pts=pts, kinds=KIND_WORDS)


def render_pair(pair, page_title: str) -> str:
    """The side-by-side view of one similar pair, shared code marked."""
    return _env().get_template("pair.html.j2").render(
        pair=pair, title=page_title, csp=CSP, pct=pct,
        left=highlighted(pair.code[0], pair.slices[0]),
        right=highlighted(pair.code[1], pair.slices[1]))


def md(text: object) -> str:
    """Untrusted text made inert in Markdown (no HTML, links or table breaks)."""
    out = []
    for ch in str(text):
        out.append("\\" + ch if ch in "\\`*_{}[]<>#|" else ch)
    return "".join(out).replace("\n", " ")


def render_markdown(page: Page) -> str:
    """The same summary in words."""
    s = page.summary
    lines = [f"# {md(page.title)}", ""]
    lines.append(f"{s.submitted} of {s.students} students submitted"
                 + (f" (no submission: {md(', '.join(s.no_submission))})"
                    if s.no_submission else "") + ".")
    lines += ["", "## Scores", "", "| | submitted | mean | median | max |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for d in [s.total, *s.assignments]:
        lines.append(f"| {md(d.name)} | {len(d.scores)} | {pts(d.mean)} | {pts(d.median)} | "
                     f"{d.max_score:g} |")
    lines += ["", "## Checks by failure rate", "",
              "| check | points | failed | errored | timed out | not passed |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in s.checks:
        lines.append(f"| {md(c.assignment)}.{md(c.check_id)}{' (hidden)' if c.hidden else ''} "
                     f"| {c.points:g} | {pct(c.share(c.failed))} | {pct(c.share(c.errored))} | "
                     f"{pct(c.share(c.timed_out))} | {pct(c.rate)} ({c.bad}/{c.counted}) |")
    lines += ["", "## Diagnosed mistakes", ""]
    if not s.mistakes:
        lines.append("No failure matched a known mistake.")
    for m in s.mistakes:
        lines.append(f"- **{md(m.name)}** ({md(m.assignment)}; {len(m.students)} student(s): "
                     f"{md(', '.join(m.students))}). {md(m.hint)}"
                     + (f" Course: {md(m.course)}." if m.course else ""))
    lines += ["", "## Failures without a name, by signature", ""]
    if not s.clusters:
        lines.append("None.")
    for c in s.clusters:
        lines.append(f"- {md(c.assignment)}: {md(', '.join(c.checks))} failed — "
                     f"{len(c.students)} student(s): {md(', '.join(c.students))}"
                     + (" **(a common unknown bug?)**" if len(c.students) > 1 else ""))
    if s.missing_modules:
        lines += ["", "## Modules that could not be used", ""]
        for a, who in s.missing_modules.items():
            lines.append(f"- {md(a)}: {md(', '.join(who))}")
    lines += ["", "## Training curves", ""]
    if not s.curves:
        lines.append("No check stored a curve with a reference.")
    for c in s.curves:
        lines.append(f"- {md(c.assignment)}.{md(c.check_id)} ({md(c.title)}): "
                     f"{len(c.students)} students; the reference ends at {svg._last(c.reference)}, "
                     f"the class's last values range "
                     f"{svg._range([svg._last(v) for v in c.students.values()])}.")
    lines += ["", "## Outliers (to look at)", ""]
    if not s.outliers:
        lines.append("None.")
    for o in s.outliers:
        lines.append(f"- {md(o.student)}: {KIND_WORDS[o.kind]} — {md(o.text)}")
    lines += ["", "## Similar code (to look at, not a verdict)", ""]
    sim = page.similarity
    if sim is None or sim.note:
        lines.append(md(sim.note) if sim else "Not computed.")
    elif not sim.pairs:
        lines.append(f"No pair above the threshold ({md(_compared(sim))}).")
    for p in (sim.pairs if sim else []):
        lines.append(f"- {md(p.module)}: {md(p.a)} and {md(p.b)}: {pct(p.similarity)} "
                     f"({p.tokens} shared tokens) — side by side: `{p.page}`")
    rows = _history_rows(page.history)
    if rows:
        lines += ["", "## History across grading runs", "",
                  "| check | " + " | ".join(md(r.label or f"run {r.run_id}") for r in page.history)
                  + " | change |", "| --- |" + " ---: |" * (len(page.history) + 1)]
        for r in rows:
            lines.append(f"| {md(r['check'])} | " + " | ".join(r["rates"]) +
                         f" | {r['delta_text']} |")
    return "\n".join(lines) + "\n"


def _compared(sim: Similarity) -> str:
    return ", ".join(f"{m}: {n} files" for m, n in sim.compared.items()) or "no files found"


def terminal(page: Page, top: int = 5) -> str:
    """The short table for the terminal."""
    s = page.summary
    out = [f"{page.title}: {s.submitted}/{s.students} submitted, total mean "
           f"{pts(s.total.mean)} / median {pts(s.total.median)} of {s.total.max_score:g}"]
    out.append("most failed checks:")
    for c in s.checks[:top]:
        out.append(f"  {pct(c.rate):>4}  {c.assignment}.{c.check_id}  ({c.bad}/{c.counted}; "
                   f"{c.points:g} pts)")
    if s.mistakes:
        out.append("most common mistakes:")
        for m in s.mistakes[:top]:
            out.append(f"  {len(m.students):>4}  {m.name}  ({m.assignment})")
    big = [c for c in s.clusters if len(c.students) > 1]
    if big:
        out.append(f"unnamed failure clusters: {len(big)} (largest: {len(big[0].students)} "
                   f"students, {big[0].assignment}: {', '.join(big[0].checks)})")
    if s.outliers:
        out.append(f"outliers to look at: {len(s.outliers)}")
    if page.similarity and page.similarity.pairs:
        out.append(f"similar pairs to look at: {len(page.similarity.pairs)}")
    return "\n".join(out)


def write(page: Page, out: Path | str) -> list[Path]:
    """Write summary.html, summary.md and the pair pages into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "summary.html", out / "summary.md"
    html_path.write_text(render_html(page), encoding="utf-8")
    md_path.write_text(render_markdown(page), encoding="utf-8")
    paths = [html_path, md_path]
    for pair in (page.similarity.pairs if page.similarity else []):
        p = out / pair.page
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render_pair(pair, page.title), encoding="utf-8")
        paths.append(p)
    return paths
