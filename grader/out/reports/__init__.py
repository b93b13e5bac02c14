"""Reports of a grading result: a self-contained HTML page with inline SVG pictures, the same
content in Markdown, for a student (hidden checks redacted) or an instructor (everything).

    from grader.out.reports import write_reports
    write_reports(result, "report/", audience="student")   # -> [report.html, report.md]

How a check's ``details`` become text and pictures is documented at the top of
:mod:`grader.out.reports.render`; checks build pictures with :mod:`grader.model.figures`.
"""

from __future__ import annotations

from grader.out.reports.html import render_html
from grader.out.reports.markdown import render_markdown
from grader.out.reports.render import AUDIENCES, build_view, write_reports

__all__ = ["AUDIENCES", "build_view", "render_html", "render_markdown", "write_reports"]
