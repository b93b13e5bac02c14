"""The batch on a Dask ``distributed`` cluster, behind the same executor interface.

``--executor dask --scheduler tcp://HOST:8786`` submits one task per submission to an existing
cluster; ``--executor dask-local`` starts a ``LocalCluster`` of worker processes on this machine
(no dashboard, loopback only). A task carries only plain data (the job as a dict: ids, paths,
options, fingerprint, seed, and with ``--ship`` the submission's zipped bytes) and runs
:func:`grader.batch.jobs.run_job` on the Dask worker's machine: the same sandboxed worker as
``grader run`` (student code never runs inside the Dask worker process), a slot leased on that
machine, and the job's own time limit (a running Dask task cannot be cancelled). Results come
back with ``as_completed``; the coordinator stays the only writer of the gradebook. A task whose
Dask worker dies is retried by Dask as its ``allowed-failures`` setting says; when Dask gives up
(``KilledWorker``) the submission gets a recorded error and the batch goes on.

Resources: when the cluster has workers declaring a ``GPU`` resource (``dask worker ...
--resources GPU=1``), jobs that include the training assignment (its convergence probes) ask for
``GPU=1`` and run there; without such workers, everything runs on the CPU workers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.batch.executors import Parallelism
from grader.batch.jobs import Job, Outcome, job_time_limit, run_job

INSTALL_HINT = "the Dask executor needs the `dask` extra: pip install 'grader[dask]'"
# Assignments whose checks train (convergence probes): routed to GPU workers when there are any.
GPU_ASSIGNMENTS = {"training"}


class DaskUnavailable(RuntimeError):
    """distributed is not installed, or the scheduler cannot be reached."""


def dask_task(job: dict[str, Any]) -> dict[str, Any]:
    """What runs on a Dask worker: one job, from and to plain data."""
    return asdict(run_job(Job(**job)))


class DaskExecutor:
    """Jobs as tasks of a ``distributed.Client`` (an existing scheduler, or a LocalCluster)."""

    name = "dask"

    def __init__(self, par: Parallelism, *, scheduler: str | None = None,
                 pid_dir: Path | None = None, connect_timeout: float = 30.0,
                 cluster_options: dict[str, Any] | None = None):
        try:
            import distributed
        except ImportError:
            raise DaskUnavailable(INSTALL_HINT) from None
        self._distributed = distributed
        self.cluster = None
        try:
            if scheduler is None:
                self.name = "dask-local"
                opts = {"n_workers": par.jobs, "threads_per_worker": 1, "processes": True,
                        "dashboard_address": None, "host": "127.0.0.1",
                        "scheduler_port": 0, "silence_logs": 40,
                        # each worker process runs one job at a time; memory is the job's own
                        "memory_limit": 0}
                opts.update(cluster_options or {})
                self.cluster = distributed.LocalCluster(**opts)
                self.client = distributed.Client(self.cluster, timeout=connect_timeout)
            else:
                self.client = distributed.Client(scheduler, timeout=connect_timeout)
        except OSError as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise DaskUnavailable(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        self._futures: dict[Any, Job] = {}
        self._pending: list[Any] = []
        self._gpu = self._cluster_has("GPU")

    def _cluster_has(self, resource: str) -> bool:
        try:
            workers = self.client.scheduler_info().get("workers", {})
        except Exception:  # noqa: BLE001 - a scheduler that will not say: assume CPU only
            return False
        return any((w.get("resources") or {}).get(resource) for w in workers.values())

    def resources_for(self, job: Job) -> dict[str, float] | None:
        """``{"GPU": 1}`` for a job with convergence probes on a cluster with GPU workers."""
        if not self._gpu:
            return None
        assignments = job.options.get("assignments")
        if assignments is None or GPU_ASSIGNMENTS & set(assignments):
            return {"GPU": 1}
        return None

    def submit(self, job: Job) -> None:
        # pure=False and a unique key: a regrade is a new task, never a cached result.
        future = self.client.submit(dask_task, job.to_dict(), pure=False, retries=0,
                                    key=f"grade-{job.student_id}-{uuid.uuid4().hex[:12]}",
                                    resources=self.resources_for(job))
        self._futures[future] = job
        self._pending.append(future)

    def outcomes(self) -> Iterator[Outcome]:
        if not self._pending:
            return
        done = self._distributed.as_completed(self._pending)
        self._pending = []
        for future in done:
            job = self._futures.pop(future)
            yield self._outcome(future, job)

    def _outcome(self, future: Any, job: Job) -> Outcome:
        try:
            return Outcome(**future.result())
        except self._distributed.client.FutureCancelledError:
            return Outcome(job.key, job.student_id, "cancelled", None, "the batch was stopped")
        except Exception as exc:  # noqa: BLE001 - KilledWorker and friends: a recorded error
            if type(exc).__name__ == "KilledWorker":
                message = (f"the Dask worker grading this submission died, and Dask gave up on "
                           f"the task (KilledWorker): {exc}")
            else:
                message = f"the Dask task failed: {type(exc).__name__}: {exc}"
            return Outcome(job.key, job.student_id, "error", None, message, time.time(), 0.0,
                           "", {"limit": job_time_limit(job.options)})

    def cancel(self) -> None:
        futures = list(self._futures)
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:  # noqa: BLE001 - stopping anyway
                pass

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:
            self.cancel()
        self.close()

