"""The terminal summary of a :class:`~grader.model.results.SubmissionResult`: where to start,
then per assignment, per check, points, and under each failure what went wrong, the likely
mistake the diagnosis names, or the earlier module it follows from.

Lines are wrapped to the terminal's width (``COLUMNS`` when set), never cut: the tail of a
message is often what matters (``block.py, line 109, in __init__``, the tolerance).
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

from grader.model.results import CheckResult, Status, SubmissionResult, Visibility
from grader.model.rootcause import Cause, StartHere, mistake_of, root_causes, start_here

_MARKS = {Status.PASSED: ("PASS", "32"), Status.FAILED: ("FAIL", "31"),
          Status.ERROR: ("ERR ", "31"), Status.TIMEOUT: ("TIME", "33"),
          Status.SKIPPED: ("SKIP", "90")}
_BODY = " " * 17  # under a check's name: "  FAIL     0/3  name"
MIN_WIDTH = 60


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _points(score: float, max_score: float) -> str:
    return f"{score:g}/{max_score:g}"


def terminal_width(default: int = 100) -> int:
    """The terminal's width (``COLUMNS`` wins, as for every well-behaved tool), at least
    :data:`MIN_WIDTH`; ``default`` when the output is not a terminal."""
    return max(MIN_WIDTH, shutil.get_terminal_size((default, 24)).columns)


def wrap(text: str, width: int, indent: str, first: str = "") -> list[str]:
    """``text`` on as many lines as it needs, each at most ``width`` wide: ``first`` then the
    text on the first line, ``indent`` on the others. Nothing is cut, and a long path or
    number is not broken inside."""
    words = " ".join(str(text).split())
    if not words:
        return [(indent + first).rstrip()] if first else []
    return textwrap.wrap(words, width=max(width, len(indent) + 20),
                         initial_indent=indent + first,
                         subsequent_indent=indent + " " * len(first),
                         break_long_words=False, break_on_hyphens=False)


def render_terminal(result: SubmissionResult, color: bool = False,
                    show_hidden_details: bool = True, verbose: bool = False,
                    width: int | None = None, footer: str = "") -> str:
    """The summary as text. ``show_hidden_details=False`` prints only the name and points of
    hidden checks (what a student may see); ``verbose`` adds the checks' own hints under
    failures that have no diagnosis; ``width`` defaults to the terminal's; ``footer`` is said
    last (e.g. where the full report is; its later lines are indented)."""
    width = width or terminal_width()
    causes = root_causes(result)

    def visible(c: CheckResult) -> bool:
        return show_hidden_details or c.visibility is not Visibility.HIDDEN

    lines = [f"Submission {result.submission}: {_points(result.score, result.max_score)} points"]
    start = start_here(result, causes, visible)
    said: set[str] = set()  # likely mistakes already explained
    if start is not None:
        said.add(start.mistake_id)
        lines.append("")
        lines.extend(_start_lines(start, width, color))
    warnings = notebook_warnings(result.environment)
    notes = discovery_notes(result.environment)
    if warnings or notes:
        lines.append("")
        for w in warnings:
            lines.extend(wrap(w, width, "", _paint("warning: ", "33", color)))
        for n in notes:
            lines.extend(wrap(n, width, "", "note: "))
    for a in result.assignments:
        lines.append("")
        title = f"{a.name}  {_points(a.score, a.max_score)}"
        lines.append(_paint(title, "1", color))
        if a.message:
            lines.extend(wrap(a.message, width, "  ", "! "))
            cause = next((causes[(a.name, c.id)] for c in a.checks if (a.name, c.id) in causes),
                         None)
            if cause is not None:
                lines.extend(wrap(cause.sentence(), width, "    ", "↳ "))
        previous = ""
        for c in a.checks:
            lines.extend(_check_lines(c, color, visible(c), verbose, bool(a.message),
                                      causes.get((a.name, c.id)), width, said, previous))
            if c.status is not Status.PASSED and visible(c):
                previous = c.message
    env = result.environment
    if str(env.get("isolation", "")).startswith("none"):
        lines.append("")
        lines.extend(wrap("note: the student code ran without a sandbox on this machine "
                          f"({env['isolation']})", width, ""))
    lines.append("")
    lines.append(f"Total: {_points(result.score, result.max_score)}  "
                 f"({result.seconds:.1f} s)")
    for i, part in enumerate(footer.splitlines()):
        lines.extend(wrap(part, width, "  " if i else ""))
    return "\n".join(lines)


def _start_lines(start: StartHere, width: int, color: bool) -> list[str]:
    head, *rest = start.lines()
    out = wrap(head[len("Start here: "):], width, "", _paint("Start here: ", "1;36", color))
    for line in rest:
        text = line.strip()
        if text.startswith("likely mistake: "):
            out.extend(wrap(text[len("likely mistake: "):], width, "  ", "likely mistake: "))
        else:
            out.extend(wrap(text, width, "  "))
    return out


def _check_lines(c: CheckResult, color: bool, visible: bool, verbose: bool,
                 assignment_failed: bool, cause: Cause | None, width: int,
                 said: set[str], previous: str = "") -> list[str]:
    """A check's line and, under a failure, its message and either the module it follows from
    or its likely mistake (whose explanation is given once: ``said`` holds those given). A
    message equal to the ``previous`` failure's is not repeated."""
    mark, code = _MARKS[c.status]
    hidden = c.visibility is Visibility.HIDDEN
    name = c.name + (" [hidden]" if hidden else "")
    head = f"  {_paint(mark, code, color)} {_points(c.score, c.max_score):>7}  {name}"
    lines = [head]
    if c.status is Status.PASSED or not visible:
        return lines
    if assignment_failed and c.status is Status.ERROR:
        return lines  # the assignment's problem (and its cause) is said once above
    if c.message and c.message == previous:  # e.g. nine checks calling one stub
        if cause is not None:
            lines.extend(wrap(f"the same as above; it follows from {cause.file}", width,
                              _BODY, "↳ "))
            return lines
        lines.append(_BODY + "the same as above")
    elif c.message:
        lines.extend(wrap(c.message, width, _BODY))
    if cause is not None:
        # The root cause replaces the local hint: it would send the student to the wrong file.
        lines.extend(wrap(cause.sentence(), width, _BODY, "↳ "))
        return lines
    mistake = mistake_of(c)
    if mistake is not None:
        lines.extend(wrap(str(mistake["name"]), width, _BODY,
                          _paint("likely mistake: ", "1", color)))
        key = str(mistake.get("id") or mistake["name"])
        if mistake.get("hint") and key not in said:
            said.add(key)
            lines.extend(wrap(str(mistake["hint"]), width, _BODY + "  "))
        if verbose and mistake.get("course"):
            lines.extend(wrap(str(mistake["course"]), width, _BODY + "  ", "read again: "))
    elif verbose and c.hint:
        lines.extend(wrap(c.hint, width, _BODY, "hint: "))
    return lines


def notebook_warnings(environment: dict[str, Any]) -> list[str]:
    """Cells of the graded notebooks that raised (or timed out) without costing a graded name:
    said as warnings, since nothing else in the summary would show them."""
    out = []
    notebooks = environment.get("notebooks") if isinstance(environment, dict) else None
    if not isinstance(notebooks, dict):
        return out
    for entry in notebooks.values():
        if not isinstance(entry, dict):
            continue
        out.extend(str(text) for text in entry.get("failed_cells") or [])
    return out


def discovery_notes(environment: dict[str, Any]) -> list[str]:
    """What discovery remarked about the submission's files (e.g. a notebook left out because
    its module is there too), as the grading pipeline records it."""
    notebooks = environment.get("notebooks") if isinstance(environment, dict) else None
    notes = notebooks.get("notes") if isinstance(notebooks, dict) else None
    return [str(n) for n in notes] if isinstance(notes, list) else []
