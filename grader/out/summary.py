"""The terminal summary of a :class:`~grader.model.results.SubmissionResult`: per assignment,
per check, points, and a one-line reason for each failure."""

from __future__ import annotations

from grader.model.results import CheckResult, Status, SubmissionResult, Visibility

_MARKS = {Status.PASSED: ("PASS", "32"), Status.FAILED: ("FAIL", "31"),
          Status.ERROR: ("ERR ", "31"), Status.TIMEOUT: ("TIME", "33"),
          Status.SKIPPED: ("SKIP", "90")}


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


def _points(score: float, max_score: float) -> str:
    return f"{score:g}/{max_score:g}"


def _one_line(text: str, width: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def render_terminal(result: SubmissionResult, color: bool = False,
                    show_hidden_details: bool = True, verbose: bool = False) -> str:
    """The summary as text. ``show_hidden_details=False`` prints only the name and points of
    hidden checks (what a student may see); ``verbose`` adds hints under failures."""
    lines = [f"Submission {result.submission}: {_points(result.score, result.max_score)} points"]
    for a in result.assignments:
        lines.append("")
        title = f"{a.name}  {_points(a.score, a.max_score)}"
        lines.append(_paint(title, "1", color))
        if a.message:
            lines.append(f"  ! {_one_line(a.message)}")
        for c in a.checks:
            lines.extend(_check_lines(c, color, show_hidden_details, verbose, bool(a.message)))
    env = result.environment
    if env.get("isolation", "").startswith("none"):
        lines.append("")
        lines.append(_paint("note: the student code ran without a sandbox on this machine "
                            f"({env['isolation']})", "90", color))
    lines.append("")
    lines.append(f"Total: {_points(result.score, result.max_score)}  "
                 f"({result.seconds:.1f} s)")
    return "\n".join(lines)


def _check_lines(c: CheckResult, color: bool, show_hidden_details: bool, verbose: bool,
                 assignment_failed: bool) -> list[str]:
    mark, code = _MARKS[c.status]
    hidden = c.visibility is Visibility.HIDDEN
    name = c.name + (" [hidden]" if hidden else "")
    head = f"  {_paint(mark, code, color)} {_points(c.score, c.max_score):>7}  {name}"
    lines = [head]
    if c.status is Status.PASSED or (hidden and not show_hidden_details):
        return lines
    if c.message and not (assignment_failed and c.status is Status.ERROR):
        lines.append(f"                 {_one_line(c.message)}")
    if verbose and c.hint:
        lines.append(f"                 hint: {_one_line(c.hint)}")
    return lines
