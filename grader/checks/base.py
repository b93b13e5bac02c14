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


@dataclass(frozen=True)
class CheckSettings:
    """Per-grading settings that some checks read, given explicitly by ``GradeOptions.checks``
    (never module globals or environment variables). ``gpt2_weights``: a local folder of the
    real ``gpt2`` checkpoint (None: look in the Hugging Face cache); ``probe_threads``: a cap on
    the torch threads of the training probes (None: the worker's threads; 1 by default: the
    probe models are tiny, a second thread gains little on an idle machine and makes a step
    10-70x slower when other processes share the cores, DESIGN.md); ``checkpoints``: a
    :class:`grader.checks.checkpoints.CheckpointStore` shared by the gradings that use these
    settings (None: each grading builds its own)."""

    gpt2_weights: Any = None
    probe_threads: int | None = 1
    checkpoints: Any = None


@dataclass
class Context:
    """What a running check can use. ``memo`` is shared by every check of one assignment in one
    grading (``dataclasses.replace`` keeps the same dict): see :meth:`once`."""

    assignment: str
    worker: WorkerClient
    source: ExpectedSource
    device: str = "cpu"
    timeout: float | None = None  # the running check's per-request limit, if it declares one
    settings: CheckSettings = field(default_factory=CheckSettings)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def once(self, key: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, computed once per grading and assignment and shared by the checks that ask
        for the same ``key`` (PrairieLearn's ``setUpClass``: run student and reference once,
        judge many properties). An exception is remembered too and raised again to every
        check that asks, so a failing run costs its time once."""
        if key not in self.memo:
            try:
                self.memo[key] = (True, fn())
            except Exception as exc:  # noqa: BLE001 - re-raised below, to every asker
                self.memo[key] = (False, exc)
        done, value = self.memo[key]
        if not done:
            raise value
        return value

    def request(self, task: str, args: dict[str, Any] | None = None,
                tensors: dict[str, Any] | None = None, timeout: float | None = None):
        """Run a worker task, bounded by ``timeout`` or else the check's declared timeout."""
        return self.worker.request(task, args, tensors, timeout=timeout or self.timeout)

    def inputs(self, key: str, make: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """Inputs of this check: made live by ``make(g)``, where ``g`` is a generator seeded from
        the run's secret seed and ``key`` (a ``make`` without arguments is called as is), or
        read from fixtures. Draw every random number from ``g``: inputs a student could
        predict (from the bundle's fixtures) could be answered from a table."""
        return self.source.inputs(f"{self.assignment}/{key}", make)

    def seed_for(self, key: str) -> int:
        """An integer seed derived from the run's seed and ``key``, for randomness that is not
        drawn inside :meth:`inputs` (e.g. the random weights a reference computation loads)."""
        from grader.checks.expected import derive_seed

        return derive_seed(self.source.seed, f"{self.assignment}/{key}")

    def rng(self, key: str):
        """A generator seeded by :meth:`seed_for`."""
        import torch

        return torch.Generator().manual_seed(self.seed_for(key))

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
    # A reason to skip this check for EVERY submission, or None (e.g. the real GPT-2 weights
    # are not on this machine): asked before the submission is looked at, so the points
    # possible never depend on what a student submitted.
    unavailable: Callable[[Context], str | None] | None = None

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").strip()


class Assignment:
    """An assignment: the student module it grades and its checks, in the order they run."""

    def __init__(self, name: str, title: str, module: str | None = None, course: str = "",
                 trains: bool = False):
        self.name = name
        # Its checks run optimizers (student's and reference's): the grading then imports
        # torch._dynamo early, beside other work (grader.shared.preload).
        self.trains = trains
        self.title = title
        self.module = module or name
        self.course = course
        self.checks: list[Check] = []

    def check(self, id: str, name: str, points: float, *, hidden: bool = False,
              needs: tuple[str, ...] = (), timeout: float | None = None,
              unavailable: Callable[[Context], str | None] | None = None
              ) -> Callable[[CheckFn], CheckFn]:
        """Declare the decorated function as a check of this assignment."""

        def register(fn: CheckFn) -> CheckFn:
            if any(c.id == id for c in self.checks):
                raise ValueError(f"duplicate check id {self.name}.{id}")
            visibility = Visibility.HIDDEN if hidden else Visibility.PUBLIC
            self.checks.append(Check(id, name, points, visibility, fn, tuple(needs), timeout,
                                     unavailable))
            return fn

        return register

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)

    def __repr__(self) -> str:
        return f"Assignment({self.name!r}, {len(self.checks)} checks)"
