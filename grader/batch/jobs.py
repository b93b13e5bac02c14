"""One job per student submission: plain data in, plain data out.

A :class:`Job` carries only ids, paths, the options as a plain dict, the run's fingerprint and
seed (and, for a cluster without a shared file system, the submission's bytes): it can be
pickled to a process, a thread or a Dask worker, and means the same everywhere. :func:`run_job`
grades it exactly as ``grader run`` does (its own sandboxed worker, forked from a warm pool's
zygote when the caller has one; student code never runs in the process calling it) and returns
an :class:`Outcome` holding the results as a plain dict.
Every failure of the submission becomes a recorded result inside the outcome; only a problem of
the grader itself is reported as ``kind="grader"``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The options a job understands (everything plain: str, int, float, bool, lists, dicts).
DEFAULT_OPTIONS: dict[str, Any] = {
    "assignments": None,  # None: all
    "include_hidden": True,
    "weights": {},
    "isolation": "bwrap",
    "threads": 1,
    "call_timeout": 60.0,
    "total_timeout": 600.0,
    "import_timeout": 60.0,
    "notebook_cell_timeout": 60.0,
    "notebook_timeout": 300.0,
    "fixtures": None,  # a folder with fixtures.safetensors instead of the live reference
    "reference_cache": None,  # a folder for reference outputs shared across processes and runs
    "gpt2_weights": None,
    "checkpoint_cache": None,  # a folder for the checkpoints the checks build (shared, kept)
    "job_timeout": None,  # None: total_timeout + 120 s (see job_time_limit)
}
# A shipped submission (Dask without a shared file system) may be at most this big, zipped.
MAX_PAYLOAD_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Job:
    """What to grade, as plain data. ``key`` is unique in the batch (student and content)."""

    key: str
    student_id: str
    submission: str  # the folder to grade (on the machine that runs the job)
    content_hash: str
    options: dict[str, Any]
    fingerprint: str
    seed: int
    payload: bytes | None = None  # the submission's files as a zip, when paths are not shared
    resources: dict[str, float] = field(default_factory=dict)  # e.g. {"GPU": 1} (Dask routing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """What a job produced. ``kind``: ``graded`` (the checks ran, whatever their verdicts),
    ``error`` (the submission could not be graded at all: ``message`` says why; ``result``
    then lists every check as an error), ``grader`` (a problem of the grader itself, which
    stops the batch), ``cancelled`` (the batch was interrupted: nothing is recorded)."""

    key: str
    student_id: str
    kind: str
    result: dict[str, Any] | None
    message: str = ""
    started_at: float = 0.0
    seconds: float = 0.0
    host: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def ship(folder: Path) -> bytes:
    """The files of a submission folder as zip bytes, for a task without a shared file system
    (:data:`MAX_PAYLOAD_BYTES` at most)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(folder).as_posix()
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
        if buf.tell() > MAX_PAYLOAD_BYTES:
            raise ValueError(f"the submission {folder} is larger than "
                             f"{MAX_PAYLOAD_BYTES // 2**20} MB zipped: it cannot be shipped")
    return buf.getvalue()


def _unship(payload: bytes, target: Path) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError("shipped submission too large")
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        total = 0
        for info in zf.infolist():
            rel = Path(info.filename)
            if rel.is_absolute() or ".." in rel.parts or info.is_dir():
                continue
            total += info.file_size
            if total > 4 * MAX_PAYLOAD_BYTES:
                raise ValueError("shipped submission unpacks too large")
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(info))
            os.chmod(dest, 0o644)
    for d in [target, *target.rglob("*")]:
        if d.is_dir():
            os.chmod(d, 0o755)


# --------------------------------------------------------------------------- cancellation


class Cancelled(Exception):
    """The batch is stopping: the job's worker was stopped and no new one may start."""


class CancelScope:
    """The running jobs' workers in this process, so that an interrupted batch can stop them
    at once (and keep them from restarting) instead of waiting for their checks to end."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._clients: set[Any] = set()

    def add(self, client: Any) -> None:
        with self._lock:
            self._clients.add(client)

    def discard(self, client: Any) -> None:
        with self._lock:
            self._clients.discard(client)

    def cancel(self) -> None:
        """Stop every running job's worker now; each job's thread then removes its sandbox,
        cgroup and files."""
        self.cancelled.set()
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            try:
                c.abort()
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass


_PROCESS_SCOPE = CancelScope()


def _client_class():
    from grader.isolation.client import WorkerClient, WorkerCrashed, WorkerTimeout

    class BatchWorkerClient(WorkerClient):
        """A worker client that refuses to (re)start once its batch is cancelled, and notes
        its process group for the batch's reaper (see :mod:`grader.batch.cleanup`)."""

        scope: CancelScope = _PROCESS_SCOPE
        pid_dir: Path | None = None
        expiry: Any = None

        def launch(self) -> None:
            if self.scope.cancelled.is_set():
                raise WorkerCrashed("the batch was interrupted")
            if self.expiry is not None and self.expiry.expired.is_set():
                raise WorkerTimeout(f"the submission used up the whole job's time limit of "
                                    f"{self.expiry.limit:.0f} s")
            super().launch()
            proc = getattr(self, "_proc", None)
            if proc is not None and self.pid_dir is not None:
                try:
                    (self.pid_dir / str(proc.pid)).write_text(str(self.slot))
                except OSError:
                    pass

        def abort(self) -> None:
            """Stop the running worker from another thread: kill its process group only (a
            pooled worker: its pid namespace, through its pidfd). The thread waiting on it
            then sees the end of its output at once (closing the pipes here would leave that
            thread waiting on a closed descriptor until its timeout) and cleans up itself;
            :meth:`launch` refuses to start another."""
            proc = getattr(self, "_proc", None)
            if proc is not None and proc.poll() is None:
                kill_tree = getattr(proc, "kill_tree", None)
                if kill_tree is not None:
                    kill_tree()
                    return
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

        def _stop(self) -> None:
            proc = getattr(self, "_proc", None)
            super()._stop()
            if proc is not None and self.pid_dir is not None:
                (self.pid_dir / str(proc.pid)).unlink(missing_ok=True)

    return BatchWorkerClient


# --------------------------------------------------------------------------- running a job


_sources: dict[tuple[Any, ...], Any] = {}
_sources_lock = threading.Lock()


def expected_source(options: dict[str, Any], seed: int):
    """The expected-value source of a job, shared by every job of this process with the same
    seed and settings: the reference work of a run is then done once per process (and, with
    ``reference_cache``, once per run on disk)."""
    from grader.checks import expected

    key = (options.get("fixtures"), options.get("reference_cache"), int(seed))
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            if options.get("fixtures"):
                source = expected.StoredFixtures(Path(options["fixtures"]))
            else:
                kwargs: dict[str, Any] = {}
                import inspect

                params = inspect.signature(expected.LiveReference).parameters
                if "seed" in params:
                    kwargs["seed"] = int(seed)
                if "cache_dir" in params and options.get("reference_cache"):
                    kwargs["cache_dir"] = options["reference_cache"]
                source = expected.LiveReference(**kwargs)
            _sources[key] = source
    return source


def grade_options(options: dict[str, Any], seed: int):
    """The :class:`grader.grading.GradeOptions` of a job's plain options."""
    from grader.grading import GradeOptions
    from grader.isolation.client import WorkerSettings

    o = {**DEFAULT_OPTIONS, **options}
    settings = WorkerSettings(isolation=o["isolation"], threads=int(o["threads"]),
                              call_timeout=float(o["call_timeout"]),
                              total_timeout=float(o["total_timeout"]))
    extra: dict[str, Any] = {}
    if "checks" in getattr(GradeOptions, "__dataclass_fields__", {}):
        extra["checks"] = check_settings(o)
    return GradeOptions(assignments=o["assignments"], source=expected_source(o, seed),
                        worker=settings, weights=o["weights"],
                        include_hidden=bool(o["include_hidden"]),
                        import_timeout=float(o["import_timeout"]),
                        notebook_cell_timeout=float(o["notebook_cell_timeout"]),
                        notebook_timeout=float(o["notebook_timeout"]), **extra)


_settings: dict[tuple[Any, ...], Any] = {}


def check_settings(o: dict[str, Any]):
    """The checks' per-grading settings, shared by the jobs of this process: the real GPT-2
    folder, and one checkpoint store (the 124M checkpoint the hidden check writes is built once
    per batch, in the run folder's cache, not once per student)."""
    from grader.checks import base

    key = (o.get("gpt2_weights"), o.get("checkpoint_cache"))
    with _sources_lock:
        if key not in _settings:
            kwargs: dict[str, Any] = {"gpt2_weights": Path(o["gpt2_weights"])
                                      if o.get("gpt2_weights") else None}
            if o.get("checkpoint_cache"):
                from grader.checks.checkpoints import CheckpointStore

                kwargs["checkpoints"] = CheckpointStore(Path(o["checkpoint_cache"]))
            _settings[key] = base.CheckSettings(**kwargs)
        return _settings[key]


def job_time_limit(options: dict[str, Any]) -> float:
    """The wall-clock limit of one whole job: the submission's total time, plus the trusted
    side's own work (reference, comparisons, reports) with a margin."""
    given = options.get("job_timeout")
    return float(given) if given else float(options.get("total_timeout", 600.0)) + 120.0


def run_job(job: Job, scope: CancelScope | None = None, pid_dir: Path | None = None,
            pool: Any = None, judges: Any = None) -> Outcome:
    """Grade one job and return its outcome (never raises for a submission's problem).

    ``pool``: a :class:`grader.isolation.pool.WarmPool` of this process to fork the job's
    workers from (the worker client uses fresh ones wherever the pool cannot serve).
    ``judges``: the pool slots' :class:`grader.isolation.warm_judge.WarmJudges`: the job is
    then judged in its slot's unprivileged warm judge (:mod:`grader.batch.judged`), not in
    this process, wherever one can serve it.

    The job enforces its own time limit (:func:`job_time_limit`; a running Dask task cannot be
    cancelled from outside): past it, the job's worker is stopped and may not restart, so the
    remaining checks end as timeouts; a grading that still does not return is abandoned and
    recorded as an error."""
    import socket

    scope = scope or _PROCESS_SCOPE
    started, t0, host = time.time(), time.monotonic(), socket.gethostname()
    expiry = _Expiry(job_time_limit(job.options))
    box: dict[str, Outcome] = {}
    thread = threading.Thread(target=lambda: box.setdefault(
        "out", _run_job(job, scope, pid_dir, expiry, pool, judges)),
        name=f"grade-{job.student_id}",
        daemon=True)
    thread.start()
    thread.join(expiry.limit)
    if thread.is_alive():
        expiry.expire()
        thread.join(30.0)
    if "out" in box:
        return box["out"]
    return _error(job, f"grading did not end within {expiry.limit:.0f} s even after its worker "
                       "was stopped (abandoned; a problem of the grader's side)", started, t0,
                  host)


class _Expiry:
    """A job's deadline: once expired, its worker is stopped and no new one starts."""

    def __init__(self, limit: float):
        self.limit = limit
        self.expired = threading.Event()
        self.client: Any = None

    def expire(self) -> None:
        self.expired.set()
        if self.client is not None:
            try:
                self.client.abort()
            except Exception:  # noqa: BLE001 - best effort
                pass


def _run_job(job: Job, scope: CancelScope, pid_dir: Path | None, expiry: _Expiry,
             pool: Any = None, judges: Any = None) -> Outcome:
    import socket

    started, t0 = time.time(), time.monotonic()
    host = socket.gethostname()
    workdir: Path | None = None
    try:
        if scope.cancelled.is_set():
            return Outcome(job.key, job.student_id, "cancelled", None, "the batch was stopped")
        from grader.grading import grade

        options = grade_options(job.options, job.seed)
        folder = Path(job.submission)
        if job.payload is not None:
            workdir = Path(tempfile.mkdtemp(prefix="grader-shipped-"))
            os.chmod(workdir, 0o755)
            folder = workdir / "submission"
            folder.mkdir()
            _unship(job.payload, folder)
        if not folder.is_dir():
            return _error(job, f"the submission folder {folder} is not on this machine (pass "
                               "the submission's bytes with the task, or share the folder)",
                          started, t0, host)
        result = None
        plain = {**DEFAULT_OPTIONS, **job.options}
        sandboxed = options.worker.isolation != "none"
        if judges is not None and pool is not None and sandboxed:
            from grader.batch.judged import run_judged

            result = run_judged(job, folder, plain, expiry, scope, pool, judges)
        if result is None and sandboxed:
            # No warm judge here (--no-warm-pool, a Dask worker, a slot that could not serve):
            # still judged in a bounded process of its own, never in this one.
            from grader.batch.judged import run_fresh

            result = run_fresh(job, folder, plain, expiry, scope, pid_dir,
                               why="no warm pool" if pool is None else
                               "no warm judges" if judges is None else "")
        if result is None:
            # Isolation "none": the student's code runs as the batch's own user anyway, so a
            # judging process of its own would protect nothing; the checks run in this one.
            client_class = _client_class()
            client = client_class(folder, options.worker, pool=pool)
            client.scope, client.pid_dir, client.expiry = scope, pid_dir, expiry
            expiry.client = client
            scope.add(client)
            try:
                result = grade(folder, options, worker=client)
            finally:
                scope.discard(client)
                client.close()
            result.environment.setdefault("judging", "in the batch's process (isolation none)")
        if scope.cancelled.is_set():
            return Outcome(job.key, job.student_id, "cancelled", None, "the batch was stopped")
        result.submission = job.student_id
        result.environment = {**result.environment, "batch_host": host}
        if expiry.expired.is_set():
            _mark_expired(result, expiry.limit)
        return Outcome(job.key, job.student_id, "graded", result.to_dict(), "", started,
                       time.monotonic() - t0, host)
    except Exception as exc:  # noqa: BLE001 - every failure is a recorded result
        if scope.cancelled.is_set():
            return Outcome(job.key, job.student_id, "cancelled", None, "the batch was stopped")
        kind = "grader" if _is_grader_problem(exc) else "error"
        return _error(job, f"{type(exc).__name__}: {exc}", started, t0, host, kind=kind,
                      tb=traceback.format_exc()[-4000:])
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _mark_expired(result: Any, limit: float) -> None:
    """The checks the job's time limit cut short say so (not "killed by SIGKILL")."""
    from grader.model.results import Status

    why = f"the submission used up the whole job's time limit of {limit:.0f} s; its worker was " \
          "stopped"
    for a in result.assignments:
        cut = [c for c in a.checks if c.status in (Status.ERROR, Status.TIMEOUT)]
        for c in cut:
            c.status, c.message, c.score = Status.TIMEOUT, why, 0.0
        if cut and a.message:
            a.message = why


def _is_grader_problem(exc: BaseException) -> bool:
    # The grader's own code or installation failed: the same would happen to every student.
    from grader.isolation import leases

    return isinstance(exc, (ImportError, MemoryError, leases.LeaseDirectoryUnsafe)) or (
        type(exc).__name__ == "IsolationUnavailable")


def _error(job: Job, message: str, started: float, t0: float, host: str, *, kind: str = "error",
           tb: str = "") -> Outcome:
    return Outcome(job.key, job.student_id, kind, None, message, started,
                   time.monotonic() - t0, host, {"traceback": tb} if tb else {})


def error_result(student_id: str, content_hash: str, message: str, checks: list[tuple],
                 seconds: float = 0.0, status: str = "error") -> dict[str, Any]:
    """A results dict that lists every check (``(assignment, title, course, check id, name,
    points, visibility)``) as ``status`` with ``message``: the same maximum as a graded
    submission, and the reason in every row."""
    from grader import __version__
    from grader.model.results import (
        AssignmentResult,
        CheckResult,
        Status,
        SubmissionResult,
        Visibility,
    )

    out = SubmissionResult(submission=student_id, submission_id=content_hash,
                           grader_version=__version__, seconds=seconds)
    by_name: dict[str, AssignmentResult] = {}
    for assignment, title, course, check_id, name, points, visibility in checks:
        a = by_name.get(assignment)
        if a is None:
            a = by_name[assignment] = AssignmentResult(name=assignment, message=message,
                                                       title=title, course=course)
            out.assignments.append(a)
        a.checks.append(CheckResult(id=check_id, name=name, status=Status(status), score=0.0,
                                    max_score=float(points), message=message,
                                    visibility=Visibility(visibility)))
    return out.to_dict()


def digest(*parts: Any) -> str:
    """A short stable hash of plain data (for job keys and fingerprints)."""
    import json

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
