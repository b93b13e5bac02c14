"""The HTML report: one self-contained page (inline CSS and SVG, no script, no network).

Jinja2 autoescaping is on: every message, hint, name and value from a result is untrusted text
(the student's code writes exception messages) and reaches the page escaped. Only the SVG made by
:mod:`grader.out.reports.svg`, which escapes its own text, is inserted as markup. A
Content-Security-Policy in the page forbids scripts and any fetch, in case anything slips through.
"""

from __future__ import annotations

from functools import cache

import jinja2

from grader.model.results import SubmissionResult
from grader.out.reports.render import build_view
from grader.out.reports.svg import Drawer

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
       "form-action 'none'")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader.out.reports", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    return env


def render_html(result: SubmissionResult, *, audience: str = "student") -> str:
    """The HTML report of ``result`` for ``audience`` (``"student"`` or ``"instructor"``)."""
    view = build_view(result, audience)
    template = environment().get_template("report.html.j2")
    return template.render(r=view, draw=Drawer(), csp=CSP)
