"""Our results in PrairieLearn's external-grader format.

PrairieLearn's contract ("External Grading"), the parts we use
-------------------------------------------------------------
* The grading container sees ``/grade``: the student's files in ``/grade/student``, the
  question's ``tests/`` in ``/grade/tests``, ``serverFilesCourse`` in
  ``/grade/serverFilesCourse``, the question's data in ``/grade/data/data.json``. The
  entrypoint must write ``/grade/results/results.json`` (it creates ``/grade/results`` itself:
  PrairieLearn does not).
* ``results.json``: ``score`` in [0, 1] (the only required field of a gradable submission);
  ``gradable`` (``false``: "invalid, not gradable", no points awarded or lost and no attempt
  used, e.g. a syntax error; then ``format_errors``, a string or a list of strings, says why and
  ``score`` is not needed); ``message`` and ``output`` (text for the whole submission);
  ``images`` (``{"label", "url": "data:..."}``); ``tests[]`` with ``name``, ``description``,
  ``points``, ``max_points``, ``message``, ``output`` (and ``images``), which the
  ``<pl-external-grader-results>`` element renders.
* The file should stay under **1 MB**.

Our mapping
-----------
One test per check (named ``<assignment>: <check name>``, described by the assignment's title);
``points``/``max_points`` the check's, ``score`` the submission's fraction of its maximum.
A submission is *not gradable* when no assignment could be graded at all: every graded module
is missing, or fails to import (a syntax error) — the student did not submit code we can run,
and should not lose an attempt for it. Hidden checks are redacted (status and points only) unless
``reveal_hidden``. :func:`fit` keeps the JSON under the size limit by cutting the longest texts
first, then the per-test outputs, and says so in the message.
"""

from __future__ import annotations

import json
from typing import Any

from grader.model.results import Status, SubmissionResult, Visibility
from grader.model.rootcause import root_causes
from grader.out.exports.feedback_text import feedback, start_here_lines

SIZE_LIMIT = 1_000_000  # bytes; PrairieLearn's documented limit is "1 MB"


def ungradable_reason(result: SubmissionResult) -> str:
    """Why ``result`` is not gradable (every assignment stopped before any check could run:
    missing or unimportable modules), or "" when it is."""
    if not result.assignments:
        return "nothing was graded"
    if all(a.message and all(c.status in (Status.ERROR, Status.SKIPPED) for c in a.checks)
           for a in result.assignments):
        return "; ".join(f"{a.name}: {a.message}" for a in result.assignments)
    return ""


def to_prairielearn(result: SubmissionResult, *, reveal_hidden: bool = False,
                    limit: int = SIZE_LIMIT) -> dict[str, Any]:
    """``result`` as PrairieLearn's ``results.json``, at most ``limit`` bytes as JSON."""
    reason = ungradable_reason(result)
    if reason:
        errors = [f"{a.name}: {a.message}" for a in result.assignments if a.message] or [reason]
        return fit({"gradable": False, "format_errors": errors,
                    "message": "Your submission could not be graded (no attempt was used): "
                               + reason}, limit)
    tests = []
    causes = root_causes(result)
    for a in result.assignments:
        for c in a.checks:
            if not c.counts:
                continue  # skipped: not part of this grade
            fb = feedback(a, c, instructor=reveal_hidden, causes=causes)
            tests.append({
                "name": f"{a.name}: {c.name}",
                "description": a.title or a.name,
                "points": round(c.score, 6),
                "max_points": round(c.max_score, 6),
                "message": fb.message if not fb.redacted else fb.label,
                "output": fb.text(),
            })
    score = result.score / result.max_score if result.max_score else 0.0
    lines = [f"{result.score:g} / {result.max_score:g} points."]
    lines += [f"{a.name}: {a.message}" for a in result.assignments if a.message]
    start = start_here_lines(result, causes, instructor=reveal_hidden)
    if start:
        lines.append(" ".join(x.strip() for x in start) + ".")
    # The student's own prints, but only when no hidden check ran: what their code printed
    # during a hidden check could show its inputs (the student report's rule too).
    hidden_ran = any(c.visibility is Visibility.HIDDEN and c.status is not Status.SKIPPED
                     for _, c in result.all_checks())
    log = result.log if (reveal_hidden or not hidden_ran) else ""
    return fit({"gradable": True, "score": round(min(1.0, max(0.0, score)), 6),
                "message": " ".join(lines), "output": log or "", "tests": tests}, limit)


def dumps(data: dict[str, Any]) -> str:
    """The JSON text we write (UTF-8, no NaN)."""
    return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)


def fit(data: dict[str, Any], limit: int = SIZE_LIMIT) -> dict[str, Any]:
    """``data`` made to fit in ``limit`` bytes of :func:`dumps`: the student's log is cut
    first, then the longest test outputs are cut in halves, then every test output is dropped;
    the message says what was cut."""
    def size(d: dict[str, Any]) -> int:
        return len(dumps(d).encode("utf-8"))

    if size(data) <= limit:
        return data
    data = json.loads(json.dumps(data))  # a copy we may cut
    note = " (Some output was cut to stay within PrairieLearn's size limit.)"
    data["message"] = str(data.get("message", "")) + note
    if data.get("output"):
        data["output"] = _cut(data["output"], max(0, limit // 4))
    tests = data.get("tests", [])
    while size(data) > limit and tests:
        longest = max(tests, key=lambda t: len(t.get("output", "")) + len(t.get("message", "")))
        n = len(longest.get("output", "")) + len(longest.get("message", ""))
        if n < 200:
            break
        for key in ("output", "message"):
            if longest.get(key):
                longest[key] = _cut(longest[key], len(longest[key]) // 2)
    if size(data) > limit:
        data["output"] = ""
        for t in tests:
            t["output"] = ""
            t["message"] = _cut(t.get("message", ""), 200)
    if size(data) > limit:
        data["message"] = _cut(str(data.get("message", "")), 2000) + note
    if size(data) > limit:  # absurdly many tests: keep the grade, drop the breakdown
        data["tests"] = []
    return data


def _cut(text: str, n: int) -> str:
    marker = "\n[... cut ...]"
    return text if len(text) <= n else text[: max(0, n - len(marker))] + marker
