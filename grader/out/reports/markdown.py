"""The Markdown report: the HTML report's content in words, for a terminal, a pull-request comment
or an LMS text box.

Every value printed by the template goes through :func:`md_escape` (the environment's
``finalize``), the Markdown counterpart of autoescaping: a ``<`` that could open a tag, a
comment or an autolink becomes ``&lt;`` so that no HTML reaches a renderer, and ``](`` is
broken so that untrusted text cannot form a link or an image. Pieces that the template builds
itself are marked safe with ``Markup``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from grader.model.results import SubmissionResult
from grader.out.reports import words
from grader.out.reports.render import build_view

# A "<" that could open raw HTML (a tag, a closing tag, a comment, a declaration) or an
# autolink; "T <= block_size" and "a < b" stay as they are.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def md_escape(value: Any) -> Any:
    """Escape untrusted text for Markdown (values already marked safe pass unchanged)."""
    if isinstance(value, Markup) or value is None:
        return "" if value is None else value
    text = _TAG_START.sub("&lt;", str(value))
    return text.replace("](", "]\\(")


def _indent(text: Any, width: int = 4) -> Markup:
    """Escape, then indent continuation lines so a multi-line message stays in its list item."""
    lines = str(md_escape(text)).splitlines() or [""]
    return Markup(("\n" + " " * width).join(line.rstrip() for line in lines))


def _cell(text: Any) -> Markup:
    """Escape for a table cell: one line, pipes escaped."""
    return Markup(" ".join(str(md_escape(text)).split()).replace("|", "\\|"))


def _code(text: Any, width: int = 4) -> Markup:
    """A fenced code block whose fence is longer than any run of backticks inside (the content
    is shown verbatim, not interpreted, so it is not escaped)."""
    body = str(text).rstrip("\n")
    fence = "```"
    while fence in body:
        fence += "`"
    pad = " " * width
    return Markup("\n".join(pad + line for line in [fence, *body.splitlines(), fence]))


def _figure_lines(fig: dict[str, Any]) -> list[dict[str, Any]]:
    """The figure in words (``{"text"}``), plus for masks and other 0/1 matrices the matrix as
    a grid (``{"grid"}``, shown verbatim in a code block)."""
    out: list[dict[str, Any]] = [{"text": line} for line in words.describe(fig)]
    panels = fig.get("panels", []) if fig.get("kind") == "heatmaps" else [fig]
    grids = [(p.get("title") or "", words.grid(p["matrix"])) for p in panels
             if p.get("matrix") and words.is_binary(p["matrix"]) and len(p["matrix"]) <= 16]
    if grids:
        width = max(len(g[0]) for _, g in grids)
        cols = [[t.ljust(width)] + [row.ljust(width) for row in g] for t, g in grids]
        col_w = [max(len(x) for x in col) for col in cols]
        n = max(len(col) for col in cols)
        rows = ["   ".join((col[i] if i < len(col) else "").ljust(w)
                           for col, w in zip(cols, col_w, strict=True)).rstrip()
                for i in range(n)]
        out.append({"grid": "\n".join(rows)})
    return out


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader.out.reports", "templates"),
                             autoescape=False, finalize=md_escape, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(indent_md=_indent, cell=_cell, code=_code)
    env.globals["figure_lines"] = _figure_lines
    return env


def render_markdown(result: SubmissionResult, *, audience: str = "student") -> str:
    """The Markdown report of ``result`` for ``audience`` (``"student"`` or ``"instructor"``)."""
    view = build_view(result, audience)
    text = environment().get_template("report.md.j2").render(r=view)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"
