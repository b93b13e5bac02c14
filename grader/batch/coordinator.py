"""The coordinator: grades a class into its gradebook, resumably.

It finds the submissions (:mod:`grader.batch.layouts`), maps them to the roster, fingerprints
what decides a verdict, and submits one job per submission that the gradebook does not hold
yet under that fingerprint to an executor. It is the gradebook's only writer: each finished
submission is one committed transaction, followed by the student's feedback files (written
aside and renamed). Interrupted at any moment, it loses nothing finished; rerun, it grades only
what is missing, with the run's same secret seed, so it ends with the gradebook an uninterrupted
run would have made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, TextIO

from grader.batch import cleanup, layouts
from grader.batch.executors import LocalExecutor, Parallelism, choose_parallelism
from grader.batch.jobs import DEFAULT_OPTIONS, Job, Outcome, digest, error_result
from grader.batch.progress import Progress, Tally
from grader.batch.roster import RosterStudent, match, read_roster
from grader.out import gradebook as gb
from grader.out.gradebook import Gradebook

GRADEBOOK_FILE = "gradebook.sqlite"
REGRADE = ("none", "all", "failed")
EXECUTORS = ("local", "dask", "dask-local")
_GRADER = Path(__file__).resolve().parents[1]
# What decides a verdict besides the checks and the reference: hashed into the fingerprint.
_VERDICT_CODE = ("grading", "intake", "isolation", "worker", "shared", "model", "checks",
                 "diagnosis", "tolerance.py")


class BatchError(RuntimeError):
    """A problem of the grader or of the batch's inputs: the batch cannot (go on to) run."""


class BatchInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) arrived: stop like after Ctrl-C."""


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
    feedback: bool = True
    stream: TextIO | None = None
    live: bool | None = None  # None: a live display when the stream is a terminal
    quiet: bool = False
    label: str = ""
    # The run's input seed; None: a fresh secret one for a new run (kept on resume). Given, it
    # is part of the fingerprint, so that a run can be reproduced exactly (as `grader run --seed`).
    seed: int | None = None


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
    _validate(o)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock_run_dir(out)  # one coordinator per run folder: the gradebook's one writer
    try:
        cleanup.sweep_dead_roots()
        root = cleanup.make_temp_root()
        reaper = cleanup.start_reaper(root)
        saved_tempdir = tempfile.tempdir
        tempfile.tempdir = str(root)  # every temporary file of the jobs goes under the root
        try:
            with _signals_as_interrupts():
                return _run(class_dir, out, o, root)
        finally:
            tempfile.tempdir = saved_tempdir
            reaper.finish()
    finally:
        os.close(lock)


# --------------------------------------------------------------------------- the run


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
    components = _fingerprint_components(o, job_options, selected)
    if o.seed is not None:
        components["seed"] = int(o.seed)
    fingerprint = digest(components)[:32]
    max_rows = _declared_checks(selected, o)

    with Gradebook.open(out / GRADEBOOK_FILE) as book:
        if roster:
            book.set_roster([gb.Student(s.id, s.name, s.email, s.section, extra=s.extra)
                             for s in roster])
        run = book.run_for(fingerprint, grader_version=components["grader_version"],
                           components=components, options=_public_options(job_options),
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
                _restore_feedback(book, out, e.student_id, previous.id, o.feedback)
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
                    _restore_feedback(book, out, s.id, done[(s.id, None)].id, o.feedback)
                    tally.skipped += 1
                    tally.total -= 1
                    progress.total -= 1
                    continue
                result = error_result(s.id, "", "no submission", max_rows)
                g = book.record_no_submission(s.id, _as_result(result), book.run(run.id))
                tally.no_submission += 1
                _write_feedback(out, s.id, _as_result(result), o.feedback)
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
    _write_feedback(out, e.student_id, result, o.feedback)
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


def _lock_run_dir(out: Path) -> int:
    """An exclusive lock on ``out/.lock`` for the batch's life (released by the kernel however
    the batch ends): a second batch on the same run folder stops with a clear message."""
    import fcntl

    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BatchError(f"another grader batch is writing to {out} right now; wait for it, or "
                         "give this one another --out") from None
    return fd


def _validate(o: BatchOptions) -> None:
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


def _job_options(o: BatchOptions, out: Path) -> dict[str, Any]:
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


def _public_options(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items()
            if k not in ("threads", "reference_cache", "checkpoint_cache")}


def _fingerprint_components(o: BatchOptions, opts: dict[str, Any], selected: list[str]
                            ) -> dict[str, Any]:
    """Everything that decides a verdict, each part hashed: two batches with the same
    components grade alike (threads, jobs and the executor do not decide verdicts)."""
    import torch

    from grader import __version__, checks

    declared = [[a, c.id, float(o.weights.get(a, {}).get(c.id, c.points)), c.visibility.value,
                 c.timeout] for a in selected for c in checks.ASSIGNMENTS[a].checks]
    if o.fixtures:
        fixture_file = Path(o.fixtures) / "fixtures.safetensors"
        expected = {"kind": "fixtures", "sha256": _file_hash(fixture_file)}
    else:
        spec = importlib.util.find_spec("reference")
        ref_dir = Path(spec.origin).parent if spec and spec.origin else None
        expected = {"kind": "live", "reference": _tree_hash([ref_dir] if ref_dir else [])}
    gpt2 = None
    if o.gpt2_weights:
        f = Path(o.gpt2_weights) / "model.safetensors"
        gpt2 = {"path": opts["gpt2_weights"], "size": f.stat().st_size if f.exists() else None}
    return {
        "grader_version": __version__,
        "torch": torch.__version__,
        "checks": declared,
        "expected": expected,
        "code": _tree_hash([_GRADER / p for p in _VERDICT_CODE]),
        "options": {k: opts[k] for k in ("assignments", "include_hidden", "isolation",
                                         "call_timeout", "total_timeout", "import_timeout",
                                         "notebook_cell_timeout", "notebook_timeout")},
        "gpt2_weights": gpt2,
    }


def _tree_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for base in paths:
        files = [base] if base.is_file() else sorted(base.rglob("*.py")) if base.is_dir() else []
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:24]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _declared_checks(selected: list[str], o: BatchOptions) -> list[tuple]:
    """Every check a student is graded on, with its points: what a submission that cannot be
    graded (or was not submitted) is listed with, so its maximum is everyone's."""
    from grader import checks
    from grader.model.results import Visibility

    rows = []
    for a in selected:
        spec = checks.ASSIGNMENTS[a]
        for c in spec.checks:
            if c.visibility is Visibility.HIDDEN and not o.include_hidden:
                continue
            if _environment_skip(c, o):
                continue  # skipped for everyone here (e.g. no real GPT-2 weights)
            rows.append((a, spec.title, spec.course, c.id, c.name,
                         float(o.weights.get(a, {}).get(c.id, c.points)), c.visibility.value))
    return rows


def _environment_skip(check: Any, o: BatchOptions) -> str | None:
    """Why ``check`` cannot run on this machine for anyone (e.g. no real GPT-2 weights), as the
    grading pipeline asks it (``Check.unavailable``); None when it can."""
    probe = getattr(check, "unavailable", None)
    if not callable(probe):
        return None
    from types import SimpleNamespace

    from grader.batch.jobs import check_settings

    opts = {"gpt2_weights": str(o.gpt2_weights) if o.gpt2_weights else None}
    try:
        return probe(SimpleNamespace(settings=check_settings(opts), assignment=""))
    except Exception:  # noqa: BLE001 - a probe that needs a real context: assume available
        return None


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
        ex: Any = LocalExecutor(par.jobs, pid_dir=root / cleanup.PIDS)
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


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the batch the way Ctrl-C does (finished work is kept)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum, frame):
        raise BatchInterrupted(f"signal {signum}")

    saved = {s: signal.signal(s, raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- feedback


def _write_feedback(out: Path, student_id: str, result: Any, enabled: bool) -> None:
    """``out/feedback/<student>/report.html``, ``report.md`` and ``results.json`` (student
    audience), and the full results in ``out/results/<student>.json``; each written aside and
    renamed, so a reader never sees half a file."""
    safe = layouts._safe(student_id)
    _atomic_write(out / "results" / f"{safe}.json", result.to_json())
    if not enabled:
        return
    from grader.out.reports import render_html, render_markdown

    folder = out / "feedback" / safe
    _atomic_write(folder / "report.html", render_html(result, audience="student"))
    _atomic_write(folder / "report.md", render_markdown(result, audience="student"))
    _atomic_write(folder / "results.json", json.dumps(_student_view(result), indent=2,
                                                      allow_nan=False))


def _restore_feedback(book: Gradebook, out: Path, student_id: str, grading_id: int,
                      enabled: bool) -> None:
    """Rewrite a graded student's files from the gradebook if any is missing (the batch was
    killed between the committed grading and its files)."""
    safe = layouts._safe(student_id)
    wanted = [out / "results" / f"{safe}.json"]
    if enabled:
        wanted += [out / "feedback" / safe / n for n in ("report.html", "report.md",
                                                         "results.json")]
    if not all(p.is_file() for p in wanted):
        _write_feedback(out, student_id, book.result(grading_id), enabled)


def _student_view(result: Any) -> dict[str, Any]:
    """The results a student may see: hidden checks by name and points only; no secret seed."""
    d = result.to_dict()
    d["environment"] = {k: v for k, v in d.get("environment", {}).items()
                        if k not in ("seed", "batch_host")}
    for a in d["assignments"]:
        for c in a["checks"]:
            if c.get("visibility") == "hidden":
                c["message"], c["hint"], c["details"] = "hidden check", "", {}
    return d


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
