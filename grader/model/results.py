"""The results model: what grading produced, as plain dataclasses, with our own JSON.

Three levels: a :class:`SubmissionResult` holds :class:`AssignmentResult` s, which hold
:class:`CheckResult` s. Every level has ``score`` and ``max_score``. Nothing here formats for a
particular LMS: converters (Gradescope, PrairieLearn) live beside this module and read it.

The JSON written by :meth:`SubmissionResult.to_json` round-trips through
:meth:`SubmissionResult.from_json`; its ``schema`` field is bumped when the layout changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

SCHEMA_VERSION = 1


class Status(str, Enum):  # noqa: UP042 - str mixin keeps json.dumps and == "passed" working
    """Outcome of one check.

    ``passed``/``failed`` are verdicts on the student's code; ``error`` means the student's code
    could not be run for this check (missing function, exception, crash); ``timeout`` means it ran
    past its time limit; ``skipped`` means the check did not apply (e.g. a GPU-only check on a
    CPU machine) and does not count towards ``max_score``.
    """

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


class Visibility(str, Enum):  # noqa: UP042
    """Who sees a check's inputs and details: everyone (``public``) or the instructor
    (``hidden``)."""

    PUBLIC = "public"
    HIDDEN = "hidden"


@dataclass
class CheckResult:
    """The verdict of one check on one submission.

    ``details`` holds JSON-able data for reports: largest differences, shapes, curves, the likely
    mistake. ``hint`` is a short pointer in the course's words shown under a failure.
    """

    id: str
    name: str
    status: Status
    score: float
    max_score: float
    message: str = ""
    visibility: Visibility = Visibility.PUBLIC
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def counts(self) -> bool:
        """Whether this check counts towards the assignment's maximum."""
        return self.status is not Status.SKIPPED

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["visibility"] = self.visibility.value
        d["details"] = _jsonable(self.details)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        d = dict(d)
        d["status"] = Status(d["status"])
        d["visibility"] = Visibility(d.get("visibility", "public"))
        return cls(**d)


@dataclass
class AssignmentResult:
    """All checks of one assignment for one submission.

    ``message`` explains a problem that concerns the whole assignment (file missing, syntax error,
    exception at import); its checks are then recorded as errors with zero points.
    """

    name: str
    checks: list[CheckResult] = field(default_factory=list)
    message: str = ""
    source: str = ""
    # The assignment's title and where the course teaches it, stored with the result so that a
    # report rendered from JSON anywhere says the same as one rendered in the grading process.
    title: str = ""
    course: str = ""

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks if c.counts), 6)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_score for c in self.checks if c.counts), 6)

    def check(self, check_id: str) -> CheckResult:
        """The result of the check with this id (``KeyError`` if there is none)."""
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": self.score,
            "max_score": self.max_score,
            "message": self.message,
            "source": self.source,
            "title": self.title,
            "course": self.course,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AssignmentResult:
        return cls(
            name=d["name"],
            checks=[CheckResult.from_dict(c) for c in d.get("checks", [])],
            message=d.get("message", ""),
            source=d.get("source", ""),
            title=d.get("title", ""),
            course=d.get("course", ""),
        )


@dataclass
class SubmissionResult:
    """Everything grading one submission produced.

    ``environment`` records how it was graded (isolation, device, threads, expected-value source)
    so that a result can be explained later; ``log`` keeps the student's own printed output,
    truncated, for display only.
    """

    submission: str
    assignments: list[AssignmentResult] = field(default_factory=list)
    submission_id: str = ""
    grader_version: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(a.score for a in self.assignments), 6)

    @property
    def max_score(self) -> float:
        return round(sum(a.max_score for a in self.assignments), 6)

    def assignment(self, name: str) -> AssignmentResult:
        """The result of the named assignment (``KeyError`` if it was not graded)."""
        for a in self.assignments:
            if a.name == name:
                return a
        raise KeyError(name)

    def all_checks(self) -> list[tuple[str, CheckResult]]:
        """Every check as ``(assignment name, check result)``, in grading order."""
        return [(a.name, c) for a in self.assignments for c in a.checks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "submission": self.submission,
            "submission_id": self.submission_id,
            "grader_version": self.grader_version,
            "score": self.score,
            "max_score": self.max_score,
            "seconds": round(self.seconds, 3),
            "environment": _jsonable(self.environment),
            "assignments": [a.to_dict() for a in self.assignments],
            "log": self.log,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubmissionResult:
        return cls(
            submission=d["submission"],
            assignments=[AssignmentResult.from_dict(a) for a in d.get("assignments", [])],
            submission_id=d.get("submission_id", ""),
            grader_version=d.get("grader_version", ""),
            environment=d.get("environment", {}),
            log=d.get("log", ""),
            seconds=d.get("seconds", 0.0),
        )

    @classmethod
    def from_json(cls, text: str) -> SubmissionResult:
        return cls.from_dict(json.loads(text))


def _jsonable(value: Any) -> Any:
    """Make details safe for strict JSON: NaN/inf become strings, tuples lists, numpy scalars
    floats."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and callable(value.item):
        try:
            return _jsonable(value.item())
        except (ValueError, RuntimeError):
            pass
    if isinstance(value, Enum):
        return value.value
    return str(value)
