"""The coordinator: grades a class into its gradebook, resumably.

It finds the submissions (:mod:`grader.batch.layouts`), maps them to the roster, fingerprints
what decides a verdict, and submits one job per submission that the gradebook does not hold
yet under that fingerprint to an executor. It is the gradebook's only writer: each finished
submission is one committed transaction, followed by the student's feedback files (written
aside and renamed). Interrupted at any moment, it loses nothing finished; rerun, it grades only
what is missing, with the run's same secret seed, so it ends with the gradebook an uninterrupted
run would have made.

The pieces it uses live beside it: :mod:`.options` (what a batch is asked for, validated),
:mod:`.fingerprint` (what decides a verdict, and the declared checks), :mod:`.feedback` (each
student's files), :mod:`.lifecycle` (the run folder's lock, SIGTERM and SIGHUP as interrupts),
:mod:`.cleanup` (the temporary root and its reaper).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from grader.batch import cleanup, layouts
from grader.batch.executors import LocalExecutor, Parallelism, choose_parallelism
from grader.batch.feedback import restore_feedback, student_view, write_feedback
from grader.batch.fingerprint import (
    GRADER,
    VERDICT_CODE,
    declared_checks,
    fingerprint_components,
    tree_hash,
)
from grader.batch.jobs import Job, Outcome, digest, error_result
from grader.batch.lifecycle import BatchInterrupted, lock_run_dir, signals_as_interrupts
from grader.batch.options import (
    EXECUTORS,
    REGRADE,
    BatchError,
    BatchOptions,
    job_options,
    public_options,
    validate,
)
from grader.batch.progress import Progress, Tally
from grader.batch.roster import RosterStudent, match, read_roster
from grader.out import gradebook as gb
from grader.out.gradebook import Gradebook

GRADEBOOK_FILE = "gradebook.sqlite"

# The names this module had before its pieces moved out: the batch tests reach for them here.
_GRADER = GRADER
_VERDICT_CODE = VERDICT_CODE  # read by _run at call time: the seam the batch tests patch
_fingerprint_components = fingerprint_components
_job_options = job_options
_student_view = student_view
_tree_hash = tree_hash

__all__ = ["EXECUTORS", "GRADEBOOK_FILE", "REGRADE", "BatchError", "BatchInterrupted",
           "BatchOptions", "BatchReport", "grade_class", "run_batch"]


@dataclass
class BatchReport:
    """What :func:`run_batch` did, with the (closed) gradebook's path."""

    gradebook: Path
    run_id: int
    fingerprint: str
    tally: Tally
    parallelism: Parallelism | None
    notes: list[str]


def grade_class(class_dir: Path | str, out: Path | str, options: BatchOptions | None = None,
                **overrides: Any) -> Gradebook:
    """Grade every submission in ``class_dir`` into ``out/gradebook.sqlite`` (resuming what an
    earlier run under the same fingerprint did) and return the gradebook, open read-only.

    ``options`` (or keyword overrides of its fields) say how; see :class:`BatchOptions`. Raises
    :class:`BatchError` for a problem of the grader or its inputs (a student's problem is a
    recorded result, never an exception)."""
    report = run_batch(class_dir, out, options, **overrides)
    return Gradebook.open(report.gradebook, readonly=True)


def run_batch(class_dir: Path | str, out: Path | str, options: BatchOptions | None = None,
              **overrides: Any) -> BatchReport:
    """:func:`grade_class`, returning what was done instead of the gradebook."""
    o = dataclasses.replace(options) if options is not None else BatchOptions()
    for k, v in overrides.items():
        if not hasattr(o, k):
            raise TypeError(f"unknown batch option {k!r}")
        setattr(o, k, v)
    class_dir, out = Path(class_dir).resolve(), Path(out).resolve()
    validate(o)
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(out)  # one coordinator per run folder: the gradebook's one writer
    try:
        cleanup.sweep_dead_roots()
        root = cleanup.make_temp_root()
        reaper = cleanup.start_reaper(root)
        saved_tempdir = tempfile.tempdir
        tempfile.tempdir = str(root)  # every temporary file of the jobs goes under the root
        try:
            with signals_as_interrupts():
                return _run(class_dir, out, o, root)
        finally:
            tempfile.tempdir = saved_tempdir
            reaper.finish()
    finally:
        os.close(lock)


def _run(class_dir: Path, out: Path, o: BatchOptions, root: Path) -> BatchReport:
    from grader import checks

    notes: list[str] = []
    if o.gpt2_weights is not None:
        os.environ["GRADER_GPT2_WEIGHTS"] = str(Path(o.gpt2_weights).resolve())
    selected = o.assignments or checks.names()
    modules = [checks.ASSIGNMENTS[a].module for a in selected]
    try:
        entries = layouts.find(class_dir, o.layout, staging=out / ".staging", modules=modules,
                               nbgrader_assignment=o.nbgrader_assignment, exclude=[out])
    except layouts.LayoutError as exc:
        raise BatchError(str(exc)) from None
    roster = _read_roster(o.roster)
    entries, roster_notes = _assign_students(entries, roster)
    notes += roster_notes

    job_options = _job_options(o, out)
    components = fingerprint_components(o, job_options, selected, code=_VERDICT_CODE)
    if o.seed is not None:
        components["seed"] = int(o.seed)
    fingerprint = digest(components)[:32]
    max_rows = declared_checks(selected, o)

    with Gradebook.open(out / GRADEBOOK_FILE) as book:
        if roster:
            book.set_roster([gb.Student(s.id, s.name, s.email, s.section, extra=s.extra)
                             for s in roster])
        run = book.run_for(fingerprint, grader_version=components["grader_version"],
                           components=components, options=public_options(job_options),
                           seed=str(o.seed if o.seed is not None else _new_seed()),
                           label=o.label)
        seed = int(run.seed)
        done = book.graded(run.id)
        wanted = set(o.students) if o.students else None
        if wanted is not None:
            known = {e.student_id for e in entries} | {s.id for s in roster}
            unknown = sorted(wanted - known)
            if unknown:
                raise BatchError(f"no such student in the class: {', '.join(unknown)}")

        tally = Tally()
        todo: list[tuple[layouts.Entry, str]] = []
        for e in entries:
            if wanted is not None and e.student_id not in wanted:
                continue
            content = _content_hash(e.path)
            previous = done.get((e.student_id, content))
            if previous is not None and not _regrade(o, wanted, previous):
                tally.skipped += 1
                restore_feedback(book, out, e.student_id, previous.id, o.feedback)
                continue
            todo.append((e, content))
        submitted = {e.student_id for e in entries}
        missing = [s for s in roster if s.id not in submitted
                   and (wanted is None or s.id in wanted)]
        tally.total = len(todo) + len(missing)

        par = None
        progress = Progress(tally.total, o.stream, o.live, o.quiet)
        try:
            for s in missing:
                if (s.id, None) in done and o.regrade != "all" and wanted is None:
                    restore_feedback(book, out, s.id, done[(s.id, None)].id, o.feedback)
                    tally.skipped += 1
                    tally.total -= 1
                    progress.total -= 1
                    continue
                result = error_result(s.id, "", "no submission", max_rows)
                g = book.record_no_submission(s.id, _as_result(result), book.run(run.id))
                tally.no_submission += 1
                write_feedback(out, s.id, _as_result(result), o.feedback)
                progress.finished(s.id, f"0/{g.max_score:g}  no submission", False)
            jobs = []
            for e, content in todo:
                if e.problem and not e.files:
                    _record(book, run, e, content, _problem_outcome(e, content, max_rows), out,
                            o, tally, progress)
                    continue
                jobs.append((e, Job(key=f"{e.student_id}:{content[:16]}", student_id=e.student_id,
                                    submission=str(e.path), content_hash=content,
                                    options=job_options, fingerprint=fingerprint,
                                    seed=seed)))
            if jobs:
                par = choose_parallelism(o.jobs, o.threads, pending=len(jobs))
                for _, job in jobs:
                    job.options["threads"] = par.threads
                progress.note(f"grading {len(jobs)} submissions: {par.jobs} at a time, "
                              f"{par.threads} torch thread(s) each ({par.why}); "
                              f"executor {o.executor}")
                by_key = {job.key: (e, job) for e, job in jobs}
                with _executor(o, par, root) as executor, _torch_threads(par.threads):
                    for e, job in jobs:
                        if o.ship:
                            from grader.batch.jobs import ship

                            job = _with_payload(job, ship(e.path))
                        executor.submit(job)
                    for outcome in executor.outcomes():
                        if outcome.kind == "cancelled":
                            continue
                        if outcome.kind == "grader":
                            executor.cancel()
                            raise BatchError(
                                f"the grader itself failed while grading {outcome.student_id}"
                                f": {outcome.message}\n{outcome.details.get('traceback', '')}"
                                .rstrip())
                        e, job = by_key[outcome.key]
                        _record(book, run, e, job.content_hash, outcome, out, o, tally,
                                progress, max_rows)
        finally:
            progress.close()
        for n in notes:
            progress.note(n)
        progress.table(tally, title=f"Batch {class_dir.name}")
        return BatchReport(out / GRADEBOOK_FILE, run.id, fingerprint, tally, par, notes)


def _record(book: Gradebook, run: gb.Run, e: layouts.Entry, content: str, outcome: Outcome,
            out: Path, o: BatchOptions, tally: Tally, progress: Progress,
            max_rows: list[tuple] | None = None) -> None:
    """One finished submission: one transaction, then its feedback files."""
    from grader.model.results import SubmissionResult

    if outcome.kind == "graded" and outcome.result is not None:
        result = SubmissionResult.from_dict(outcome.result)
        status, message = gb.GRADED, ""
    else:
        result = SubmissionResult.from_dict(outcome.result) if outcome.result else \
            _as_result(error_result(e.student_id, content, f"the submission could not be "
                                    f"graded: {outcome.message}", max_rows or [],
                                    seconds=outcome.seconds))
        status, message = gb.ERROR, outcome.message
    result.submission = e.student_id
    if not result.submission_id:
        result.submission_id = content
    started = _iso(outcome.started_at) if outcome.started_at else None
    g = book.record(e.student_id, result, run, files=e.files, received_at=e.received_at,
                    submitted_at=e.submitted_at, late=e.late, source=e.source,
                    metadata=e.metadata, status=status, message=message, started_at=started,
                    student_name=e.name)
    write_feedback(out, e.student_id, result, o.feedback)
    statuses = {c.status.value for _, c in result.all_checks()}
    failed = status == gb.ERROR or "error" in statuses or "timeout" in statuses
    if status == gb.ERROR or "error" in statuses:
        tally.errors += 1
    elif "timeout" in statuses:
        tally.timeouts += 1
    else:
        tally.graded += 1
    if status == gb.ERROR:
        line = f"ERROR  {message}"
    else:
        bad = [f"{a}.{c.id} {c.status.value}" for a, c in result.all_checks()
               if c.status.value in ("error", "timeout")]
        line = f"{g.score:g}/{g.max_score:g}  ({result.seconds:.1f} s)" + (
            f"  {len(bad)} check(s) errored or timed out: {', '.join(bad[:3])}" if bad else "")
    if failed:
        tally.failures.insert(0, f"{e.student_id}: {line}")
    progress.finished(e.student_id, line, failed)


def _problem_outcome(e: layouts.Entry, content: str, max_rows: list[tuple]) -> Outcome:
    return Outcome(f"{e.student_id}:{content[:16]}", e.student_id, "error",
                   error_result(e.student_id, content, e.problem, max_rows), e.problem)


# --------------------------------------------------------------------------- pieces


def _read_roster(path: Path | None) -> list[RosterStudent]:
    if path is None:
        return []
    from grader.batch.roster import RosterError

    try:
        return read_roster(path)
    except RosterError as exc:
        raise BatchError(str(exc)) from None


def _assign_students(entries: list[layouts.Entry], roster: Sequence[RosterStudent]
                     ) -> tuple[list[layouts.Entry], list[str]]:
    """Give each entry its roster id; one entry per student (the newest where several map to
    the same student)."""
    notes = []
    if not roster:
        return entries, notes
    by_student: dict[str, layouts.Entry] = {}
    off_roster = []
    for e in entries:
        s = match(roster, e.student_id, e.keys, e.name)
        if s is None:
            off_roster.append(e.student_id)
        else:
            e.metadata = {**e.metadata, "found_as": e.student_id}
            e.student_id, e.name = s.id, s.name or e.name
        other = by_student.get(e.student_id)
        if other is not None:
            keep, drop = (e, other) if e.received_at >= other.received_at else (other, e)
            notes.append(f"two submissions for {e.student_id} ({keep.source} and {drop.source}):"
                         f" graded the newer, {keep.source}")
            e = keep
        by_student[e.student_id] = e
    if off_roster:
        notes.append(f"not on the roster (graded under the id found): {', '.join(off_roster)}")
    return list(by_student.values()), notes


def _new_seed() -> int:
    try:
        from grader.checks.expected import new_secret_seed
    except ImportError:
        import secrets

        return secrets.randbits(48) or 1
    return new_secret_seed()


def _content_hash(folder: Path) -> str:
    from grader.intake.discover import content_hash

    return content_hash(folder)


def _regrade(o: BatchOptions, wanted: set[str] | None, previous: gb.Grading) -> bool:
    if wanted is not None or o.regrade == "all":
        return True
    if o.regrade == "failed":
        return previous.failed
    return False


def _with_payload(job: Job, payload: bytes) -> Job:
    from dataclasses import replace

    return replace(job, payload=payload)


def _as_result(d: dict[str, Any]):
    from grader.model.results import SubmissionResult

    return SubmissionResult.from_dict(d)


def _iso(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat()


@contextlib.contextmanager
def _executor(o: BatchOptions, par: Parallelism, root: Path) -> Iterator[Any]:
    if o.executor == "local":
        from grader import checks

        ex: Any = LocalExecutor(par.jobs, pid_dir=root / cleanup.PIDS, warm=o.warm,
                                trains=checks.trains(o.assignments))
    else:
        from grader.batch.dask_executor import DaskExecutor, DaskUnavailable

        try:
            ex = DaskExecutor(par, scheduler=o.scheduler if o.executor == "dask" else None,
                              cluster_options=o.dask_cluster_options)
        except DaskUnavailable as exc:
            raise BatchError(str(exc)) from None
    with ex:
        yield ex


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    # The checks of the local jobs compute in this process: its torch threads count against
    # the cores like the workers' do.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
