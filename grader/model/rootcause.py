"""The root cause first: which failures follow from an earlier module's failure, and where a
student should start.

The assignments build on each other (``block.py`` uses ``attention.py``, ``kv_cache.py`` uses
``block.py``), so one bug fails checks in several modules. A later module's failure *follows
from* an earlier one when

* the diagnosis names the same likely mistake in both (same ``likely_mistake`` id), or
* the error was raised inside the earlier module's code (the innermost file of the student's
  traceback, or the ``where`` of the error, is the earlier module's file), or
* the module could not be imported because an earlier module is missing or broken
  (``No module named 'attention'``).

:func:`root_causes` finds these links and :func:`start_here` the first module to fix. Both read
the results only, so the terminal summary and the reports say the same from the same JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult

FAILING = (Status.FAILED, Status.ERROR, Status.TIMEOUT)

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
# Anchored on the suffix, then the name read backwards: a `[\w.-]+\.py` pattern backtracks
# quadratically over a long run of word characters (a 400 kB message took minutes).
_WHERE_TAIL = re.compile(r"\.(?:py|ipynb), line (\d+)")
_NAME_CHARS = re.compile(r"[\w.\-]")
_NAME_MAX = 255
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


@dataclass(frozen=True)
class Cause:
    """Why a failure follows from an earlier module's: ``file`` is that module's file
    (``attention.py``), ``assignment`` its assignment, ``because`` the link in words."""

    assignment: str
    file: str
    because: str

    def sentence(self) -> str:
        """``follows from attention.py: fix that first (the same likely mistake: ...)``."""
        return f"follows from {self.file}: fix that first ({self.because})"


@dataclass(frozen=True)
class StartHere:
    """The first thing to fix: the module, its first failing check, and its likely mistake
    (or, without a diagnosis, what went wrong). ``follows`` counts the failures in later
    modules that follow from this module."""

    assignment: str
    file: str
    check_id: str
    check_name: str
    mistake: str
    hint: str
    course: str
    problem: str
    follows: int
    whole_module: bool = False  # the problem is the module's (missing, does not import)
    mistake_id: str = ""  # how the likely mistake is recognised elsewhere (its id or name)

    def lines(self) -> list[str]:
        """The "Start here" block in plain text (the terminal and the Markdown say this)."""
        out = [f"Start here: {self.file}" if self.whole_module
               else f"Start here: {self.file}, check `{self.check_name}`"]
        if self.mistake:
            out.append(f"  likely mistake: {self.mistake}")
            if self.hint:
                out.append(f"  {self.hint}")
        elif self.problem:
            out.append(f"  {self.problem}")
        if self.follows:
            out.append(f"  {self.follows} failing check(s) in later modules follow from "
                       f"{self.file}: fix it first, then grade again.")
        return out


def failing(check: CheckResult) -> bool:
    """Whether the check counts as a failure for the student to fix (failed, error or
    timeout; an internal grader error, which carries the grader's ``traceback``, does not)."""
    return check.status in FAILING and "traceback" not in (check.details or {})


def mistake_of(check: CheckResult) -> dict[str, Any] | None:
    """The check's diagnosed likely mistake (``{"id"?, "name", "hint", "course"}``), if any."""
    value = (check.details or {}).get("likely_mistake")
    if isinstance(value, dict) and value.get("name"):
        return value
    if isinstance(value, str) and value:
        return {"name": value}
    return None


def _mistake_key(m: dict[str, Any]) -> str:
    return str(m.get("id") or m.get("name"))


def raised_in(check: CheckResult, message: str = "") -> str:
    """The file (base name) in which the student's code raised for this check: the innermost
    frame of its traceback, else the file its ``where`` or its message names ("" if none)."""
    error = (check.details or {}).get("error")
    if isinstance(error, dict):
        frames = _FRAME.findall(str(error.get("traceback") or ""))
        if frames:
            return frames[-1][0].replace("\\", "/").rsplit("/", 1)[-1]
        found = _files_named(str(error.get("where") or ""))
        if found:
            return found[0]
    found = _files_named(message or check.message or "")
    return found[-1] if found else ""


def _files_named(text: str) -> list[str]:
    """Every ``name.py, line N`` (or ``.ipynb``) file name in ``text``, in order; linear."""
    names = []
    for m in _WHERE_TAIL.finditer(text):
        start = m.start()
        while start > 0 and m.start() - start < _NAME_MAX and _NAME_CHARS.match(text[start - 1]):
            start -= 1
        if start < m.start():
            names.append(text[start:m.end()].split(",", 1)[0])
    return names


def _file(a: AssignmentResult) -> str:
    return a.source or f"{a.name}.py"


def _module(a: AssignmentResult) -> str:
    return _file(a).rsplit(".", 1)[0]


def root_causes(result: SubmissionResult) -> dict[tuple[str, str], Cause]:
    """``(assignment, check id) -> Cause`` for every failing check that follows from an
    earlier module's failure. Assignments are taken in the order they were graded (the course
    order); only a module that itself has a failure can be a cause."""
    causes: dict[tuple[str, str], Cause] = {}
    earlier: list[tuple[AssignmentResult, dict[str, dict[str, Any]]]] = []
    for a in result.assignments:
        own = _file(a)
        broken = a.message != "" or any(failing(c) for c in a.checks)
        for c in a.checks:
            if not failing(c):
                continue
            cause = _cause(c, a, own, earlier)
            if cause is not None:
                causes[(a.name, c.id)] = cause
        if broken:
            mistakes = {}
            for c in a.checks:
                m = mistake_of(c) if failing(c) else None
                if m is not None:
                    mistakes.setdefault(_mistake_key(m), m)
            earlier.append((a, mistakes))
    return causes


def _cause(c: CheckResult, a: AssignmentResult, own: str,
           earlier: list[tuple[AssignmentResult, dict[str, dict[str, Any]]]]) -> Cause | None:
    m = mistake_of(c)
    if m is not None:
        for prev, mistakes in earlier:
            if _mistake_key(m) in mistakes:
                return Cause(prev.name, _file(prev), f"the same likely mistake: {m['name']}")
    where = raised_in(c, a.message if c.message == a.message else c.message)
    if where and where != own:
        for prev, _ in earlier:
            if _file(prev) == where:
                return Cause(prev.name, where, f"the error is raised in {where}'s code")
    text = a.message or c.message
    missing = _NO_MODULE.search(text)
    if missing:
        name = missing.group(1).split(".")[0]
        for prev, _ in earlier:
            if _module(prev) == name:
                return Cause(prev.name, _file(prev), f"{_file(prev)} cannot be imported")
    return None


def start_here(result: SubmissionResult, causes: dict[tuple[str, str], Cause] | None = None,
               visible: Callable[[CheckResult], bool] = lambda c: True) -> StartHere | None:
    """The first module (in course order) with a failure that follows from no earlier one,
    its first failing check and its likely mistake; None when nothing fails.

    ``visible`` says which checks' details the reader may see (a student does not see a hidden
    check's): the likely mistake is taken from the first visible failing check that has one.
    A module that is only missing is a cause like any other, but a module with a real failure
    comes first when the missing one is a later assignment nobody has started.
    """
    causes = root_causes(result) if causes is None else causes
    candidates = []
    for i, a in enumerate(result.assignments):
        own = [c for c in a.checks if failing(c) and (a.name, c.id) not in causes]
        if own:
            candidates.append((i, a, own))
    if not candidates:
        return None
    # A module that is simply absent (nothing written yet) is where to start only if nothing
    # written fails: a student working through the course has later files still missing.
    written = [x for x in candidates if not _absent(x[1])]
    i, a, own = (written or candidates)[0]
    shown = [c for c in own if visible(c)] or own
    first = shown[0]
    m = next((mistake_of(c) for c in shown if visible(c) and mistake_of(c)), None)
    follows = sum(1 for (name, _), cause in causes.items() if cause.assignment == a.name)
    problem = a.message or (first.message if visible(first) else "")
    return StartHere(assignment=a.name, file=_file(a), check_id=first.id,
                     check_name=first.name, mistake=str(m["name"]) if m else "",
                     hint=str(m.get("hint") or "") if m else "",
                     course=str(m.get("course") or "") if m else "",
                     problem=problem, follows=follows, whole_module=bool(a.message),
                     mistake_id=_mistake_key(m) if m else "")


def _absent(a: AssignmentResult) -> bool:
    return bool(a.message) and " is missing" in a.message
