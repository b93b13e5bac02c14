"""Step 1 of reading a notebook: its code cells, and which of them the grader leaves out
(tagged ``skip-grading`` or starting with ``# skip-grading``), as nbgrader's preprocessors tag
cells before they convert them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Cell tags that mean "do not grade this cell" (compared lower-case, with "_" and spaces as "-").
SKIP_TAGS = frozenset({
    "skip-grading", "skip-grader", "skip-grade", "grader-skip", "no-grading", "no-grade",
    "nograde", "nograding", "not-graded", "ungraded", "skip-execution", "skip",
})
# The same, as a comment on a cell's first line (for editors without a tag UI, e.g. Colab).
_SKIP_COMMENT = re.compile(
    r"#\s*(skip[-_ ]?grad(ing|e|er)|grader[-_ :]+skip|no[-_ ]?grad(e|ing)|not[-_ ]graded)\b",
    re.I)


# --------------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One code cell: what the student wrote, and the Python the grader runs instead."""

    index: int  # position in the notebook, 0-based (markdown cells count)
    source: str
    python: str = ""
    skipped: str = ""  # why the grader does not run it ("" when it does)
    defines: set[str] = field(default_factory=set)  # top-level names it binds, imports included
    binds: set[str] = field(default_factory=set)  # the same without imports: what it provides
    notes: list[str] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)  # from the run, when there was one
    code_number: int = 0  # 1-based among the code cells only, as Jupyter users count them
    execution_count: int | None = None  # the "In [n]" the file stores, if it was run

    def jupyter_label(self) -> str:
        """The cell as a Jupyter user finds it: "code cell 3 (In [7], `x = f()`)"."""
        seen = f"In [{self.execution_count}], " if self.execution_count else ""
        return f"code cell {self.code_number or self.number} ({seen}`{self.first_line}`)"

    @property
    def number(self) -> int:
        """The cell's number as the student counts: 1-based, markdown cells included."""
        return self.index + 1

    @property
    def first_line(self) -> str:
        line = next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")
        return line if len(line) <= 60 else line[:57] + "..."

    def label(self) -> str:
        return f"cell {self.number} (`{self.first_line}`)"

    @property
    def runs(self) -> bool:
        return not self.skipped and bool(self.python.strip())

    @property
    def timed_out(self) -> bool:
        """Whether a time limit stopped this cell: its own, or the notebook's total time that
        ran out before it could start."""
        o = self.outcome
        return o.get("status") == "timeout" or (o.get("status") == "not_run"
                                                 and o.get("out_of_time") is True)

    def failure(self) -> str:
        """What went wrong when this cell ran, in words ("" if nothing did)."""
        o = self.outcome
        status = o.get("status")
        if status == "error":
            line = f" at line {o['line']}" if o.get("line") else ""
            return f"raised {o.get('type', 'an error')}{line}: {o.get('message', '')}".rstrip(": ")
        if status == "timeout":
            return f"ran past its time limit of {o.get('timeout', '?')} s"
        if status == "died":
            return f"stopped the kernel ({o.get('message', 'it died')})"
        if status == "not_run":
            return "did not run" + (f" ({o['reason']})" if o.get("reason") else "")
        return ""


def skip_reason(cell: Any) -> str:
    """Why a cell is tagged as not for grading ("" if it is not)."""
    tags = cell.get("metadata", {}).get("tags", []) or []
    for tag in tags if isinstance(tags, list) else []:
        if re.sub(r"[\s_]+", "-", str(tag).strip().lower()) in SKIP_TAGS:
            return f"it is tagged `{tag}`"
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    if _SKIP_COMMENT.match(first):
        return f"its first line is `{first[:40]}`"
    return ""


# A line IPython would transform: a magic or shell escape, one assigned, help (``x?``), an
# escaped call (``/f x``). Lines inside strings may match too: then IPython decides.
