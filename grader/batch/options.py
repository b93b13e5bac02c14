"""How a batch is asked for: :class:`BatchOptions`, their validation before anything runs,
and the options each job is given."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from grader.batch.jobs import DEFAULT_OPTIONS

REGRADE = ("none", "all", "failed")
EXECUTORS = ("local", "dask", "dask-local")


class BatchError(RuntimeError):
    """A problem of the grader or of the batch's inputs: the batch cannot (go on to) run."""


@dataclass
class BatchOptions:
    """How to grade a class. Everything has a default; see ``grader batch --help``."""

    layout: str = "auto"
    roster: Path | None = None
    assignments: list[str] | None = None
    include_hidden: bool = True
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    # "bwrap" is required for a class (hostile code from many students); "none" must be asked
    # for explicitly; "auto" means bwrap and fails clearly where it cannot run.
    isolation: str = "auto"
    jobs: int | None = None
    threads: int | None = None
    call_timeout: float = 60.0
    total_timeout: float = 600.0
    import_timeout: float = 60.0
    notebook_cell_timeout: float = 60.0
    notebook_timeout: float = 300.0
    fixtures: Path | None = None
    gpt2_weights: Path | None = None
    regrade: str = "none"
    students: list[str] | None = None
    nbgrader_assignment: str | None = None
    executor: str = "local"
    scheduler: str | None = None  # the Dask scheduler's address, for executor="dask"
    ship: bool = False  # Dask: send the submissions' bytes with the tasks (no shared disk)
    dask_cluster_options: dict[str, Any] | None = None  # dask-local: LocalCluster's arguments
    # Local executor: fork the workers from a warm pool of zygotes (grader.isolation.pool).
    # None: where one can be had; False: fresh workers only (as `grader run`).
    warm: bool | None = None
    feedback: bool = True
    stream: TextIO | None = None
    live: bool | None = None  # None: a live display when the stream is a terminal
    quiet: bool = False
    label: str = ""
    # The run's input seed; None: a fresh secret one for a new run (kept on resume). Given, it
    # is part of the fingerprint, so that a run can be reproduced exactly (as `grader run --seed`).
    seed: int | None = None


def validate(o: BatchOptions) -> None:
    """Refuse options that cannot run here (:class:`BatchError`); "auto" isolation becomes
    "bwrap"."""
    from grader import checks

    if o.regrade not in REGRADE:
        raise BatchError(f"--regrade must be one of {', '.join(REGRADE)}, not {o.regrade!r}")
    if o.executor not in EXECUTORS:
        raise BatchError(f"unknown executor {o.executor!r}; known: {', '.join(EXECUTORS)}")
    if o.executor == "dask" and not o.scheduler:
        raise BatchError("--executor dask needs --scheduler tcp://HOST:8786 (or use "
                         "--executor dask-local)")
    if o.executor != "local" and importlib.util.find_spec("distributed") is None:
        from grader.batch.dask_executor import INSTALL_HINT

        raise BatchError(INSTALL_HINT)
    for name in o.assignments or []:
        if name not in checks.ASSIGNMENTS:
            raise BatchError(f"unknown assignment {name!r}; known: {', '.join(checks.names())}")
    if o.fixtures is None and importlib.util.find_spec("reference") is None:
        raise BatchError("the reference implementation is not installed here; pass --fixtures")
    if o.isolation not in ("auto", "bwrap", "none"):
        raise BatchError(f"unknown isolation {o.isolation!r}")
    if o.isolation in ("auto", "bwrap") and o.executor in ("local", "dask-local"):
        from grader.isolation import sandbox

        ok, why = sandbox.isolation_available()
        if not ok:
            raise BatchError(f"a class is graded in the sandbox, and bubblewrap cannot run "
                             f"here ({why}); install bubblewrap and run as root, or pass "
                             f"--isolation none to grade without a sandbox (unsafe: every "
                             f"student's code then runs as you)")
    if o.isolation == "auto":
        o.isolation = "bwrap"


def job_options(o: BatchOptions, out: Path) -> dict[str, Any]:
    """The options every job of the batch is given (the caches live under ``out``)."""
    opts = dict(DEFAULT_OPTIONS)
    opts.update(assignments=o.assignments, include_hidden=o.include_hidden, weights=o.weights,
                isolation=o.isolation, call_timeout=o.call_timeout,
                total_timeout=o.total_timeout, import_timeout=o.import_timeout,
                notebook_cell_timeout=o.notebook_cell_timeout,
                notebook_timeout=o.notebook_timeout,
                fixtures=str(Path(o.fixtures).resolve()) if o.fixtures else None,
                reference_cache=str(out / ".cache" / "reference"),
                checkpoint_cache=str(out / ".cache" / "checkpoints"),
                gpt2_weights=str(Path(o.gpt2_weights).resolve()) if o.gpt2_weights else None)
    return opts


def public_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The job options worth recording with the run (not the machine-bound ones)."""
    return {k: v for k, v in opts.items()
            if k not in ("threads", "reference_cache", "checkpoint_cache")}
