"""The executor seam: where jobs run. The coordinator only submits :class:`~grader.batch.jobs.Job`
objects (plain data) and reads :class:`~grader.batch.jobs.Outcome` objects back as they finish.

- :class:`LocalExecutor`: a thread pool in the coordinator's process. Each thread waits on its
  job's judging process (student code never runs in the coordinator, and the checks that read
  its replies run elsewhere too): where it can (:func:`grader.isolation.pool.pool_available`),
  it keeps a warm pool of one zygote and one warm judge per thread, so ``import torch`` is
  paid once per thread, and the run's reference work once per run (its caches on disk).
- :class:`grader.batch.dask_executor.DaskExecutor`: the same interface over a Dask
  ``distributed`` cluster (``--executor dask`` / ``dask-local``).

An executor is a context manager: leaving it (normally or by an exception, a signal) stops
whatever still runs and waits until the workers are gone.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grader.batch.jobs import DEFAULT_OPTIONS, CancelScope, Job, Outcome, run_job

# What one job costs in memory, beyond the coordinator: the worker's interpreter with torch and
# a GPT-2 124M state dict or two in the checks (measured ~1.1 GB at its peak, with margin).
JOB_MEMORY_BYTES = int(1.5 * 2**30)


class Executor(Protocol):
    """Runs jobs; results arrive in completion order."""

    name: str

    def submit(self, job: Job) -> None: ...

    def outcomes(self) -> Iterator[Outcome]:
        """Yield an outcome per submitted job as it finishes (until every job is done)."""
        ...

    def cancel(self) -> None:
        """Stop now: running jobs' workers are stopped, queued jobs are dropped."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class Parallelism:
    """How many jobs run at once and how many torch threads each gets."""

    jobs: int
    threads: int
    why: str


def available_cores() -> int:
    """The cores this process may use (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def choose_parallelism(jobs: int | None = None, threads: int | None = None, *,
                       cores: int | None = None, memory: int | None = None,
                       pending: int | None = None) -> Parallelism:
    """Jobs and threads per job, from the cores and memory unless given: jobs x threads <=
    cores (oversubscribed torch threads make training steps many times slower), and jobs x
    :data:`JOB_MEMORY_BYTES` <= available memory. ``pending`` (the number of jobs to run) caps
    the jobs, so that a small batch gives its few jobs more threads."""
    cores = cores or available_cores()
    memory = available_memory() if memory is None else memory
    if jobs is not None and jobs < 1 or threads is not None and threads < 1:
        raise ValueError("jobs and threads must be at least 1")
    why = []
    if jobs is None:
        by_memory = max(1, memory // JOB_MEMORY_BYTES) if memory else cores
        per_job = threads or 1
        jobs = max(1, min(cores // per_job, by_memory))
        why.append(f"{cores} cores" + (f", {memory / 2**30:.1f} GB free" if memory else ""))
        if pending is not None and 0 < pending < jobs:
            jobs = pending
            why.append(f"{pending} submissions to grade")
    else:
        why.append("jobs given")
    if threads is None:
        threads = max(1, cores // jobs)
    else:
        why.append("threads given")
    return Parallelism(jobs, threads, "; ".join(why))


class LocalExecutor:
    """A pool of ``jobs`` threads in this process, each waiting on one sandboxed worker.

    ``warm``: fork the workers from a warm pool of ``jobs`` zygotes
    (:mod:`grader.isolation.pool`: each worker still gets a fresh sandbox's isolation). None
    (the default): where the pool can be had; False: never (fresh workers only); True: the
    same as None, for a caller that asks for it explicitly -- where it cannot be had the
    workers are fresh and :attr:`warm_why` says why.

    ``judge``: judge each submission in its pool slot's unprivileged warm judge
    (:mod:`grader.batch.judged`). None (the default): wherever a warm pool and the judge's
    sandbox can be had; False: never (:attr:`judges_why` says why). Without one, each
    submission is judged in a fresh bounded process of its own
    (:func:`grader.batch.judged.run_fresh`); only under isolation "none" in this process.

    ``trains``: whether the jobs' gradings train (:func:`grader.checks.trains`); a pool for
    gradings that do not leaves ``torch._dynamo`` out of its zygotes."""

    name = "local"

    def __init__(self, jobs: int, *, pid_dir: Path | None = None, warm: bool | None = None,
                 judge: bool | None = None, trains: bool = True):
        self.jobs = jobs
        self.scope = CancelScope()
        self.pid_dir = pid_dir
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grader-job")
        self._done: queue.Queue[Outcome] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._futures: list[Future] = []
        self.warm_pool = None
        self.judges = None
        self.warm_why = "not asked for" if warm is False else ""
        self.judges_why = "no warm pool" if warm is False else ""
        if warm is not False:
            from grader.isolation.pool import WarmPool, pool_available

            ok, why = pool_available()
            if ok:
                self.warm_pool = WarmPool(jobs, dynamo=trains)
                self.judges, self.judges_why = _warm_judges(self.warm_pool, judge)
            else:
                self.warm_why = self.judges_why = why
        self._prestarted = False

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending += 1
            prestart = self.warm_pool is not None and not self._prestarted
            self._prestarted = True
        if prestart:
            # The zygotes import torch while the first jobs prepare; the threads are the jobs'.
            options = {**DEFAULT_OPTIONS, **job.options}
            if options["isolation"] != "none":
                self.warm_pool.prestart(int(options["threads"]))
                if self.judges is not None:
                    from grader.batch.judged import judge_setup

                    self.judges.prestart(self.warm_pool.slots, judge_setup(options))
        future = self._pool.submit(run_job, job, self.scope, self.pid_dir, self.warm_pool,
                                   self.judges)
        future.add_done_callback(lambda f, job=job: self._done.put(_outcome_of(f, job)))
        self._futures.append(future)

    def outcomes(self) -> Iterator[Outcome]:
        while True:
            with self._lock:
                if self._pending == 0:
                    return
            try:
                outcome = self._done.get(timeout=0.5)
            except queue.Empty:
                continue  # lets a signal handler's exception through in time
            with self._lock:
                self._pending -= 1
            yield outcome

    def cancel(self) -> None:
        self.scope.cancel()
        for f in self._futures:
            f.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.judges is not None:
            self.judges.close()
        if self.warm_pool is not None:
            self.warm_pool.close()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:
            self.cancel()
        self.close()


def _warm_judges(pool: Any, wanted: bool | None) -> tuple[Any, str]:
    """The pool slots' warm judges, or None and why not."""
    if wanted is False:
        return None, "not asked for"
    from grader.batch.judged import make_judge
    from grader.isolation.warm_judge import WarmJudges, judges_possible

    ok, why = judges_possible()
    if not ok:
        return None, why
    return WarmJudges(lambda folder, setup: make_judge(folder, setup, pool.launcher.call)), ""


def _outcome_of(future: Future, job: Job) -> Outcome:
    if future.cancelled():
        return Outcome(job.key, job.student_id, "cancelled", None, "the batch was stopped")
    exc = future.exception()
    if exc is not None:  # run_job catches everything; this is a bug of the executor itself
        return Outcome(job.key, job.student_id, "grader", None,
                       f"the job runner failed: {type(exc).__name__}: {exc}")
    return future.result()
