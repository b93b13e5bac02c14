"""Helpers shared by the training assignment's checks: threads and device of the probes, the
reference module, metrics read from a reply, and curves for a report."""

from __future__ import annotations

import importlib
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from grader.checks.base import Context
from grader.tolerance import close

# Torch threads of a probe, on both sides: the worker's setting (WorkerSettings.threads, which
# DESIGN.md sets from the number of workers sharing the machine), optionally capped by the
# grading's CheckSettings.probe_threads. Measured on the 2-core machine (bench/bench_probe.py):
# with 2 threads the live verdict of the loop probe takes 1.8 s against 2.6 s with 1 thread when
# the machine is otherwise idle, but 10-50 s when other torch processes share the cores, where 1
# thread stays at 2.6-3.6 s. CheckSettings caps it at 1 by default.


@dataclass
class ProbeResult:
    """One probe run (the loop's, or the GPT's), judged: ``passed`` with the message for the
    student and the figures."""

    passed: bool
    message: str
    hint: str
    details: dict[str, Any]
    ratio: float
    norm_ratio: float
    seconds: float


def probe_seed(ctx: Context, key: str) -> int:
    """A probe's seed, from the run's secret seed: its data, the ids of the task's symbols and
    the model's initial parameters are unknown before the grading (parameters trained offline
    answer nothing). Below 2**31, since the student's loop receives it as ``config.seed``
    and may hand it to ``numpy.random.seed``."""
    return ctx.seed_for(key) % 2**31


def probe_threads(ctx: Context) -> int:
    """The probes' torch threads: the worker's, capped by ``ctx.settings.probe_threads``."""
    threads = ctx.worker.settings.threads
    cap = ctx.settings.probe_threads
    return max(1, min(threads, cap) if cap else threads)


@contextmanager
def threads(ctx: Context):
    """Run the reference with the probe's number of torch threads, the same as the student's
    run: the same arithmetic, and no oversubscription (DESIGN.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(probe_threads(ctx))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ref_training(ref: Any):
    """The reference package's training module."""
    return importlib.import_module(f"{ref.__name__}.training")


def probe_device(ctx: Context) -> str:
    """CUDA when both the worker and the grader have it, else the CPU; both runs of a probe
    always use the same device."""
    if not ctx.worker.info:
        ctx.worker.start()
    return "cuda" if ctx.worker.info.get("cuda") and torch.cuda.is_available() else "cpu"


def metric(reply_tensors: dict[str, torch.Tensor], key: str) -> list[float]:
    """A metrics list of a reply (``m.<key>``), empty when absent."""
    t = reply_tensors.get(f"m.{key}")
    return [] if t is None else [float(v) for v in t]


def near(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    """The one tolerance rule, for two numbers."""
    return close(a, b, atol=atol, rtol=rtol)


def series(values: list[float], n: int = 500) -> list[float | None]:
    """At most ``n`` evenly spaced points of a curve, rounded, for a report's chart."""
    if not values:
        return []
    stride = max(1, math.ceil(len(values) / n))
    return [round(v, 5) if math.isfinite(v) else None for v in values[::stride]]
