"""One check's feedback as text, the same words in every export (Gradescope, PrairieLearn, CSV).

What a student may read of a check is decided here, once: a hidden check's message, hint,
likely mistake and details are *redacted* unless the caller asks for the instructor's view, the
same rule as the student report (:mod:`grader.out.reports.render`). A redacted check still says
its status and points.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.model.results import AssignmentResult, CheckResult, Status, Visibility
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

    def markdown(self) -> str:
        """The feedback as Markdown (Gradescope's ``md`` output format)."""
        lines = [f"**{self.label}**" + (f": {_md(self.message)}" if self.message else "")]
        if self.mistake:
            lines.append(f"**Likely mistake:** {_md(self.mistake)}")
        if self.hint:
            lines.append(f"**Hint:** {_md(self.hint)}")
        if self.facts:
            lines.append("\n".join(f"- {_md(f)}" for f in self.facts))
        if self.redacted:
            lines.append(f"_{HIDDEN_NOTE}_")
        return "\n\n".join(lines)

    def text(self) -> str:
        """The feedback as plain text (PrairieLearn's ``output``, a CSV cell)."""
        lines = [self.label + (f": {self.message}" if self.message else "")]
        if self.mistake:
            lines.append(f"Likely mistake: {self.mistake}")
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        lines += [f"  {f}" for f in self.facts]
        if self.redacted:
            lines.append(HIDDEN_NOTE)
        return "\n".join(lines)


def feedback(assignment: AssignmentResult, check: CheckResult, *,
             instructor: bool = False) -> Feedback:
    """The feedback of ``check`` for a student (hidden checks redacted) or the instructor."""
    redacted = check.visibility is Visibility.HIDDEN and not instructor
    label = LABEL[check.status]
    if redacted:
        return Feedback(label, "", "", "", (), True)
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
    return Feedback(label, message, hint, mistake, facts, False)


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


def _md(text: str) -> str:
    """Text from a result (possibly written by the student's code) made inert in Markdown: no
    raw HTML, no accidental emphasis or links."""
    out = []
    for ch in str(text):
        if ch in "\\`*_{}[]<>#|":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out).replace("\n", "  \n")
