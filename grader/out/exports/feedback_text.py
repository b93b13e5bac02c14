"""One check's feedback as text, the same words in every export (Gradescope, PrairieLearn, CSV).

What a student may read of a check is decided here, once: a hidden check's message, hint,
likely mistake and details are *redacted* unless the caller asks for the instructor's view, the
same rule as the student report (:mod:`grader.out.reports.render`). A redacted check still says
its status and points.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult, Visibility
from grader.model.rootcause import Cause, start_here
from grader.out.reports.render import interpret

LABEL = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.ERROR: "ERROR",
         Status.TIMEOUT: "TIMEOUT", Status.SKIPPED: "SKIPPED"}

HIDDEN_NOTE = ("This is a hidden check: your instructor's report shows what it tested and why it "
               "failed.")


@dataclass(frozen=True)
class Feedback:
    """The parts of one check's feedback, already redacted for the audience."""

    label: str
    message: str
    hint: str
    mistake: str  # "name. hint (read again: course)" or ""
    facts: tuple[str, ...]
    redacted: bool
    # "Follows from attention.py: fix that first (...)" when an earlier module's failure
    # explains this one: said first, so a student fixes the cause, not six symptoms.
    cause: str = ""

    def markdown(self) -> str:
        """The feedback as Markdown (Gradescope's ``md`` output format)."""
        lines = [f"**{self.label}**" + (f": {inert(self.message)}" if self.message else "")]
        if self.cause:
            lines.append(f"**{inert(self.cause)}**")
        if self.mistake:
            lines.append(f"**Likely mistake:** {inert(self.mistake)}")
        if self.hint:
            lines.append(f"**Hint:** {inert(self.hint)}")
        if self.facts:
            lines.append("\n".join(f"- {inert(f)}" for f in self.facts))
        if self.redacted:
            lines.append(f"_{HIDDEN_NOTE}_")
        return "\n\n".join(lines)

    def text(self) -> str:
        """The feedback as plain text (PrairieLearn's ``output``, a CSV cell)."""
        lines = [self.label + (f": {self.message}" if self.message else "")]
        if self.cause:
            lines.append(self.cause)
        if self.mistake:
            lines.append(f"Likely mistake: {self.mistake}")
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        lines += [f"  {f}" for f in self.facts]
        if self.redacted:
            lines.append(HIDDEN_NOTE)
        return "\n".join(lines)


def feedback(assignment: AssignmentResult, check: CheckResult, *,
             instructor: bool = False,
             causes: dict[tuple[str, str], Cause] | None = None) -> Feedback:
    """The feedback of ``check`` for a student (hidden checks redacted) or the instructor.
    ``causes`` (from :func:`grader.model.rootcause.root_causes`) adds, first, the earlier
    module this failure follows from."""
    redacted = check.visibility is Visibility.HIDDEN and not instructor
    label = LABEL[check.status]
    if redacted:
        return Feedback(label, "", "", "", (), True)
    found = (causes or {}).get((assignment.name, check.id))
    cause = found.sentence() if found is not None else ""
    cause = cause[:1].upper() + cause[1:]
    view = interpret(check.details or {}, instructor)
    mistake = ""
    if view["likely_mistake"]:
        m = view["likely_mistake"]
        mistake = m["name"].rstrip(".") + "."
        if m["hint"]:
            mistake += f" {m['hint']}"
        if m["course"]:
            mistake += f" (read again: {m['course']})"
    # An assignment-wide problem (missing file, import error) is repeated on each of its checks
    # by grading; every export says it once for the assignment as well, so keep it short here.
    message = check.message
    facts = tuple(f"{f['label']}: {f['text']}" for f in view["facts"]) \
        if check.status is not Status.PASSED else ()
    # The diagnosis's hint is often the check's own hint too: say it once.
    hint = "" if check.hint and check.hint in mistake else check.hint
    if cause:
        hint = ""  # the local hint would send the student to this module, not to the cause
    return Feedback(label, message, hint, mistake, facts, False, cause)


def start_here_lines(result: SubmissionResult, causes: dict[tuple[str, str], Cause], *,
                     instructor: bool = False) -> list[str]:
    """The "Start here" block (plain text lines; empty when nothing fails): the first module
    to fix and its likely mistake, from the checks this audience may see only."""
    start = start_here(result, causes,
                       lambda c: instructor or c.visibility is not Visibility.HIDDEN)
    # A line may quote a failure's message (the student's exception text, of any size): the
    # block is a pointer, the check's own feedback holds the whole message.
    return [_shorten(line, START_LINE_CHARS) for line in start.lines()] if start else []


START_LINE_CHARS = 300


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def likely_mistake(check: CheckResult) -> dict[str, str] | None:
    """The diagnosis's ``likely_mistake`` of a check (``{"id", "name", "hint", "course"}``), or
    None; tolerant of a bare string or a missing id."""
    value = (check.details or {}).get("likely_mistake")
    if isinstance(value, str) and value:
        return {"id": value, "name": value, "hint": "", "course": ""}
    if isinstance(value, dict) and value.get("name"):
        return {"id": str(value.get("id") or value["name"]), "name": str(value["name"]),
                "hint": str(value.get("hint") or ""), "course": str(value.get("course") or "")}
    return None


def inert(text: str) -> str:
    """Text from a result (possibly written by the student's code) made inert in Markdown: no
    raw HTML, no accidental emphasis or links."""
    out = []
    for ch in str(text):
        if ch in "\\`*_{}[]<>#|":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out).replace("\n", "  \n")
