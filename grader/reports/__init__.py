"""Reports of a grading result: a self-contained HTML page with inline SVG pictures, the same
content in Markdown, for a student (hidden checks redacted) or an instructor (everything).

    from grader.reports import write_reports
    write_reports(result, "report/", audience="student")   # -> [report.html, report.md]

How a check's ``details`` become text and pictures is documented at the top of
:mod:`grader.reports.render`; checks build pictures with :mod:`grader.figures`.
"""

from __future__ import annotations

from .html import render_html
from .markdown import render_markdown
from .render import AUDIENCES, build_view, write_reports

__all__ = ["AUDIENCES", "build_view", "render_html", "render_markdown", "write_reports"]
