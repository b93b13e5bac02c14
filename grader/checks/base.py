"""How checks are declared and what they may use.

A check is a small function ``check(ctx) -> Outcome`` declared once, with its points and its
visibility, on the :class:`Assignment` it belongs to. It asks the worker to run the student's
code (``ctx.worker``), gets expected values through one seam (``ctx.inputs`` and
``ctx.expected``: live from ``reference/`` or from stored fixtures), compares, and returns an
:class:`Outcome` — or raises :class:`CheckFailed` from any depth with a message for the student.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from grader.model.results import Visibility

if TYPE_CHECKING:
    from grader.checks.expected import ExpectedSource
    from grader.isolation.client import WorkerClient


class CheckFailed(Exception):
    """Raised inside a check: the student's output is wrong, and ``message`` says how."""

    def __init__(self, message: str, *, hint: str = "", **details: Any):
        super().__init__(message)
        self.message, self.hint, self.details = message, hint, details


class CheckSkipped(Exception):
    """Raised inside a check that cannot apply here (e.g. real GPT-2 weights are not on this
    machine); recorded as skipped with ``message`` as the reason, and not counted."""


@dataclass
class Outcome:
    """What a check concluded. ``fraction`` gives partial credit (default: all or nothing)."""

    passed: bool
    message: str = ""
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    fraction: float | None = None


def ok(message: str = "", **details: Any) -> Outcome:
    """A passing outcome, with optional details for the report."""
    return Outcome(True, message, details=details)


@dataclass
class Context:
    """What a running check can use."""

    assignment: str
    worker: WorkerClient
    source: ExpectedSource
    device: str = "cpu"
    timeout: float | None = None  # the running check's per-request limit, if it declares one

    def request(self, task: str, args: dict[str, Any] | None = None,
                tensors: dict[str, Any] | None = None, timeout: float | None = None):
        """Run a worker task, bounded by ``timeout`` or else the check's declared timeout."""
        return self.worker.request(task, args, tensors, timeout=timeout or self.timeout)

    def inputs(self, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Seeded inputs of this check: made by ``make`` live, or read from fixtures."""
        return self.source.inputs(f"{self.assignment}/{key}", make)

    def expected(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """Reference outputs: ``compute(reference_package)`` live, or read from fixtures."""
        return self.source.expected(f"{self.assignment}/{key}", compute)

    def expected_if_stored(self, key: str, compute: Callable[[Any], dict[str, Any]]
                           ) -> dict[str, Any] | None:
        """Like :meth:`expected`, but None where fixtures hold no entry (a diagnosis variant
        that was not released): the caller does without it."""
        from grader.checks.expected import FixtureMissing

        try:
            return self.expected(key, compute)
        except FixtureMissing:
            return None


CheckFn = Callable[[Context], Outcome]


@dataclass(frozen=True)
class Check:
    """One declared check. ``needs`` lists the student's names it calls (for clear messages
    when one is missing); ``timeout`` bounds each request it makes, in seconds (None: the
    worker settings' ``call_timeout``)."""

    id: str
    name: str
    points: float
    visibility: Visibility
    fn: CheckFn
    needs: tuple[str, ...] = ()
    timeout: float | None = None

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").strip()


class Assignment:
    """An assignment: the student module it grades and its checks, in the order they run."""

    def __init__(self, name: str, title: str, module: str | None = None, course: str = ""):
        self.name = name
        self.title = title
        self.module = module or name
        self.course = course
        self.checks: list[Check] = []

    def check(self, id: str, name: str, points: float, *, hidden: bool = False,
              needs: tuple[str, ...] = (), timeout: float | None = None
              ) -> Callable[[CheckFn], CheckFn]:
        """Declare the decorated function as a check of this assignment."""

        def register(fn: CheckFn) -> CheckFn:
            if any(c.id == id for c in self.checks):
                raise ValueError(f"duplicate check id {self.name}.{id}")
            visibility = Visibility.HIDDEN if hidden else Visibility.PUBLIC
            self.checks.append(Check(id, name, points, visibility, fn, tuple(needs), timeout))
            return fn

        return register

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)

    def __repr__(self) -> str:
        return f"Assignment({self.name!r}, {len(self.checks)} checks)"
