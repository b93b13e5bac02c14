"""Checks of assignment 4: the learning-rate schedule, batches, and the training loop.

One module per job: :mod:`.task` (the Stage 12 task the probes train on), :mod:`.schedule`
(``get_lr``), :mod:`.batches` (``get_batch``), :mod:`.replay` (the loop run and its trusted
replays), :mod:`.loop` (the loop's checks, judged by which replay the final parameters equal),
:mod:`.probe` (the convergence probe). Everything the worker reports is the student's claim:
every verdict here rests on values the trusted side computes or re-derives (the student's
returned parameters evaluated here, replays of the reference loop), the reference always runs
in the grader's process, never in the worker. The GPT probe (your GPT trained by a fixed loop)
belongs to the block assignment (``grader/checks/block/probe.py``).
"""

from __future__ import annotations

from grader.checks.base import Assignment

ASSIGNMENT = Assignment(
    "training", "The training loop: schedule, batches, AdamW with clipping, metrics",
    course="day30-capstone-and-checkpoint.md (metrics); stage12-training-dynamics.md (task)",
    trains=True,
)
MODULE = "training"

# The checks register in this order (the report's order): not sorted.
# isort: off
from grader.checks.training import schedule  # noqa: E402
from grader.checks.training import batches  # noqa: E402
from grader.checks.training import loop  # noqa: E402
from grader.checks.training import probe  # noqa: E402
# isort: on
from grader.checks.training.probe import (  # noqa: E402
    PROBE_CONFIG,
    PROBE_MODEL,
    ProbeResult,
    run_probe,
)
from grader.checks.training.task import (  # noqa: E402
    EXAMPLE_LEN,
    OPS,
    TOKEN,
    VOCAB,
    V,
    answer_metrics,
    task_data,
)

__all__ = ["ASSIGNMENT", "EXAMPLE_LEN", "MODULE", "OPS", "PROBE_CONFIG", "PROBE_MODEL",
           "ProbeResult", "TOKEN", "V", "VOCAB", "answer_metrics", "batches", "loop", "probe",
           "run_probe", "schedule", "task_data"]
