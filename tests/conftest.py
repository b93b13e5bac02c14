"""Shared test helpers: grading a folder, and planting one bug in a copy of the correct example."""

from __future__ import annotations

import atexit
import copy
import functools
import os
import shutil
from pathlib import Path

import pytest
import torch

from grader.checks.expected import LiveReference
from grader.grading import GradeOptions, grade
from grader.isolation.client import WorkerClient, WorkerSettings
from grader.model.results import Status, SubmissionResult

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CORRECT = EXAMPLES / "correct"

# One torch thread per worker: tests may run two workers side by side on two cores.
torch.set_num_threads(1)


def settings(**overrides) -> WorkerSettings:
    base = {"threads": 1, "call_timeout": 60.0, "total_timeout": 300.0}
    base.update(overrides)
    return WorkerSettings(**base)


# Reference outputs depend only on the check's seeded inputs, so one cache serves every test of
# a test process (as one LiveReference serves a whole batch): only the student's side reruns.
# Its seed is a fresh secret one per test process, as in live grading (verdicts must not depend
# on it); GRADER_SEED=N reproduces a run, and the header prints the seed used.
SHARED_REFERENCE = LiveReference(seed=int(os.environ["GRADER_SEED"])
                                 if os.environ.get("GRADER_SEED") else None)
os.environ.setdefault("GRADER_SEED", str(SHARED_REFERENCE.seed))  # for processes started later


def pytest_report_header(config):
    return f"grader live seed: {SHARED_REFERENCE.seed} (GRADER_SEED={SHARED_REFERENCE.seed} "\
           "reproduces it)"


@functools.cache
def _test_pool():
    """One warm pool slot per test process (as a batch has), or None where no pool can be had
    or GRADER_TEST_FRESH=1 asks for fresh workers: most tests grade one submission after
    another, and each fresh worker pays ``import torch``. The fresh path keeps its own tests
    (``grader run`` and every test that builds its own WorkerClient use it), and
    tests/isolation/test_pool.py shows both give the same verdicts."""
    from grader.isolation.pool import WarmPool, pool_available

    if os.environ.get("GRADER_TEST_FRESH") == "1" or not pool_available()[0]:
        return None
    pool = WarmPool(1)
    atexit.register(pool.close)
    return pool


def worker_client(folder: Path, worker: WorkerSettings | None = None) -> WorkerClient:
    """A worker client for ``folder`` forked from this process's warm pool where one can be
    had (see :func:`_test_pool`), else a fresh one."""
    return WorkerClient(Path(folder).resolve(), worker or settings(), pool=_test_pool())


def grade_folder(path: Path, assignments: list[str] | None = None, **options) -> SubmissionResult:
    """Grade ``path`` as a batch would (its worker forked from this process's warm pool, where
    one can be had), with test-friendly worker settings."""
    worker = options.pop("worker", None) or settings()
    options.setdefault("source", SHARED_REFERENCE)
    opts = GradeOptions(assignments=assignments, worker=worker, **options)
    pool = _test_pool()
    client = WorkerClient(Path(path).resolve(), worker, pool=pool) if pool is not None else None
    return grade(path, opts, worker=client)


def plant(tmp_path: Path, edits: dict[str, list[tuple[str, str]]], name: str = "sub",
          source: Path = CORRECT) -> Path:
    """Copy ``source`` to ``tmp_path/name`` and replace, in each module, each ``old`` (which
    must occur exactly once, so a planted bug cannot silently miss) by ``new``."""
    target = tmp_path / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    for module, pairs in edits.items():
        path = target / f"{module}.py"
        text = path.read_text()
        for old, new in pairs:
            count = text.count(old)
            assert count == 1, f"{old!r} occurs {count} times in {module}.py"
            text = text.replace(old, new)
        path.write_text(text)
    return target


def failing(result: SubmissionResult) -> set[str]:
    """``assignment.check`` ids of every check that did not pass (skipped ones excluded)."""
    return {f"{a}.{c.id}" for a, c in result.all_checks()
            if c.status not in (Status.PASSED, Status.SKIPPED)}


def assignments_in(folder: Path) -> list[str]:
    """The assignments whose module ``folder`` holds, in the course's order."""
    from grader.checks import ASSIGNMENTS

    return [name for name, a in ASSIGNMENTS.items() if (folder / f"{a.module}.py").exists()]


@functools.cache
def _graded_example(name: str) -> SubmissionResult:
    return grade_folder(EXAMPLES / name, assignments_in(EXAMPLES / name))


def graded_example(name: str) -> SubmissionResult:
    """``examples/<name>`` graded on its own assignments, once per test process: several test
    modules read the same examples' results (verdicts, reports, words), and each grading costs
    a worker. Each caller gets its own copy, so a test that changes it changes nothing else.
    Modules that use it share the xdist group ``examples`` so that one process grades each."""
    return copy.deepcopy(_graded_example(name))


@pytest.fixture(scope="session")
def correct_result() -> SubmissionResult:
    """The correct example, graded once for the whole session."""
    return graded_example("correct")
