"""A student's files in the run folder: the full results, and the feedback (reports and
results for the student's eyes, hidden checks by name and points only), each written aside and
renamed; rewritten from the gradebook when a killed batch left them missing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from grader.batch import layouts
from grader.out.gradebook import Gradebook


def write_feedback(out: Path, student_id: str, result: Any, enabled: bool) -> None:
    """``out/feedback/<student>/report.html``, ``report.md`` and ``results.json`` (student
    audience), and the full results in ``out/results/<student>.json``; each written aside and
    renamed, so a reader never sees half a file."""
    safe = layouts.file_name(student_id)
    atomic_write(out / "results" / f"{safe}.json", result.to_json())
    if not enabled:
        return
    from grader.out.reports import render_html, render_markdown

    folder = out / "feedback" / safe
    atomic_write(folder / "report.html", render_html(result, audience="student"))
    atomic_write(folder / "report.md", render_markdown(result, audience="student"))
    atomic_write(folder / "results.json", json.dumps(student_view(result), indent=2,
                                                      allow_nan=False))


def restore_feedback(book: Gradebook, out: Path, student_id: str, grading_id: int,
                     enabled: bool) -> None:
    """Rewrite a graded student's files from the gradebook if any is missing (the batch was
    killed between the committed grading and its files)."""
    safe = layouts.file_name(student_id)
    wanted = [out / "results" / f"{safe}.json"]
    if enabled:
        wanted += [out / "feedback" / safe / n for n in ("report.html", "report.md",
                                                         "results.json")]
    if not all(p.is_file() for p in wanted):
        write_feedback(out, student_id, book.result(grading_id), enabled)


def student_view(result: Any) -> dict[str, Any]:
    """The results a student may see: hidden checks by name and points only; no secret seed."""
    d = result.to_dict()
    d["environment"] = {k: v for k, v in d.get("environment", {}).items()
                        if k not in ("seed", "batch_host")}
    for a in d["assignments"]:
        for c in a["checks"]:
            if c.get("visibility") == "hidden":
                c["message"], c["hint"], c["details"] = "hidden check", "", {}
    return d


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` aside and rename it over, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
