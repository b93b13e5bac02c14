"""Grading one submission: discover its modules, start one worker, run the checks, record results.

Every failure of the student's code becomes a recorded result with a clear message; only a
problem of the grader itself (no such folder, no reference and no fixtures) raises.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader import __version__
from grader.checks import (
    ASSIGNMENTS,
    Assignment,
    Check,
    CheckFailed,
    CheckSettings,
    CheckSkipped,
    Context,
    graded_names,
    trains,
)
from grader.checks.expected import ExpectedSource, FixtureMissing, LiveReference
from grader.intake.discover import Submission, discover
from grader.isolation.client import (
    StudentCodeError,
    WorkerClient,
    WorkerCrashed,
    WorkerError,
    WorkerSettings,
    WorkerTimeout,
)
from grader.isolation.replies import cut
from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult, Visibility
from grader.shared.preload import import_dynamo_beside


@dataclass
class GradeOptions:
    """How to grade. ``weights`` maps assignment -> check id -> points (instructor's YAML);
    ``include_hidden`` is False for a student's self-check, where hidden checks are listed as
    skipped."""

    assignments: list[str] | None = None
    source: ExpectedSource = field(default_factory=LiveReference)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    include_hidden: bool = True
    import_timeout: float = 60.0
    # Notebooks (grader.intake.notebooks): the limit of one cell, and of one whole notebook's run.
    notebook_cell_timeout: float = 60.0
    notebook_timeout: float = 300.0
    # Per-grading settings of the checks (the real GPT-2 folder, the probes' thread cap, a
    # checkpoint store shared across gradings): passed explicitly, never via the environment.
    checks: CheckSettings = field(default_factory=CheckSettings)


def grade(path: Path | str, options: GradeOptions | None = None,
          worker: WorkerClient | None = None) -> SubmissionResult:
    """Grade the submission folder at ``path`` and return its results.

    ``worker`` may be a :class:`WorkerClient` for this folder that the caller launched early
    (so that the worker's ``import torch`` overlaps the grader's), or one not started yet (a
    batch's, perhaps forked from a warm pool); it is pointed at the folder where discovery
    finds the files, and closed at the end.
    """
    options = options or GradeOptions()
    started = time.monotonic()
    assignments = [ASSIGNMENTS[n] for n in (options.assignments or list(ASSIGNMENTS))]
    training = trains(options.assignments)
    if training:  # the reference's training runs need it; paid while the worker works
        import_dynamo_beside()
    submission = discover(Path(path), [a.module for a in assignments], graded_names())
    result = SubmissionResult(submission=str(path), submission_id=submission.content_hash,
                              grader_version=__version__)
    if worker is not None:
        # A client made for the folder given (a batch's): the files may sit further down.
        worker.use_folder(submission.root)
    with worker or WorkerClient(submission.root, options.worker) as worker:
        if training:
            worker.preload_dynamo()
        notebooks = submission.prepare(worker, cell_timeout=options.notebook_cell_timeout,
                                       total_timeout=options.notebook_timeout)
        imports = _import_modules(worker, submission, assignments, options.import_timeout)
        for a in assignments:
            result.assignments.append(_grade_assignment(a, submission, imports, worker, options))
        result.log = worker.log.text()
        result.environment = {
            "isolation": worker.isolation_description or "not started",
            "worker": worker.info,
            "threads": options.worker.threads,
            "expected": options.source.kind,
            # The live inputs' seed: `grader run --seed` reproduces this verdict.
            "seed": getattr(options.source, "seed", None),
            "worker_starts": worker.starts,
            "hidden_checks": "run" if options.include_hidden else "listed, not run",
            **({"notebooks": notebooks} if notebooks else {}),
        }
    result.seconds = time.monotonic() - started
    return result


JUDGE_ENTRY = ("from grader.isolation.launcher import early_worker; w, rest = early_worker(); "
               "from grader.grading import _judge_main; _judge_main(w, rest)")
IN_PROCESS_ENTRY = "from grader.grading import _judge_main; _judge_main()"


def grade_bounded(path: Path | str, options: GradeOptions | None = None,
                  limits: Any = None, judge: bool | None = None,
                  writable: list[Path] | tuple = (), started: Any = None) -> SubmissionResult:
    """:func:`grade` in its own judging process bounded in memory and time
    (:mod:`grader.isolation.bounded`): a hang or a memory blow-up while judging costs this
    submission's result (every check recorded as an error saying why), never the caller.

    ``judge``: run it as the unprivileged judge (its own uid and sandbox, workers started by a
    root launcher); None: wherever that is possible (root, bubblewrap, isolation not "none").
    ``result.environment["judging"]`` says which. ``writable``: folders the judge writes at
    their own paths besides its work area (a batch's caches, which must be the judge uid's).
    ``started``: called with the judging process once it runs (see
    :func:`~grader.isolation.bounded.run_bounded`: a batch stops it at the job's deadline)."""
    import pickle

    from grader.isolation import bounded
    from grader.isolation.launcher import copy_submission

    options = options or GradeOptions()
    limits = limits or bounded.JudgeLimits(timeout=options.worker.total_timeout * 1.5 + 120)
    if judge is None:
        judge = bounded.judge_available(options.worker.isolation)
    setting = None
    try:
        if judge:
            setting = bounded.start_judge(options.worker, _readable_paths(options), writable)
            given = Path(path).resolve()
            base = given if given.is_dir() else given.parent
            copy = copy_submission(base, setting.work_area)
            inner = copy / given.relative_to(base)
            early = _early_folder(inner)
            payload = (pickle.dumps((str(early), options.worker))
                       + pickle.dumps((str(inner), options)))  # trusted to judge: our own
            data = bounded.run_bounded(JUDGE_ENTRY, payload, limits, judge=setting,
                                       started=started)
            how = setting.description
        else:
            data = bounded.run_bounded(IN_PROCESS_ENTRY, pickle.dumps((str(path), options)),
                                       limits, started=started)
            how = "in a bounded process with the grader's privileges"
        result = SubmissionResult.from_dict(data)
        result.submission = str(path)
        result.environment["judging"] = how
        return result
    except (bounded.JudgingFailed, KeyError, TypeError, ValueError, AttributeError) as exc:
        return failed_result(path, options, f"grading stopped before a result: {exc}")
    finally:
        if setting is not None:
            setting.close()


def failed_result(path: Path | str, options: GradeOptions, message: str) -> SubmissionResult:
    """The result of a submission whose judging failed: every check an error saying why."""
    result = SubmissionResult(submission=str(path), grader_version=__version__,
                              environment={"judging": message})
    for name in options.assignments or list(ASSIGNMENTS):
        a = ASSIGNMENTS[name]
        out = AssignmentResult(name=a.name, title=a.title, course=a.course, message=message)
        out.checks = [_result(c, float(options.weights.get(a.name, {}).get(c.id, c.points)),
                              Status.ERROR, message) for c in a.checks]
        result.assignments.append(out)
    return result


def _readable_paths(options: GradeOptions) -> list[Path]:
    """Host paths the judge must read besides the project: stored fixtures, real weights."""
    paths = [getattr(options.source, "path", None), options.checks.gpt2_weights]
    return [Path(p) for p in paths if p is not None and Path(p).exists()]


def _early_folder(path: Path) -> Path:
    """The folder to launch the first worker on before the judge knows the assignments."""
    from grader.intake.discover import locate

    try:
        return locate(path, None).root
    except Exception:  # noqa: BLE001 - discovery in the judge says what is wrong
        return path if path.is_dir() else path.parent


def _judge_main(worker: WorkerClient | None = None, rest: bytes | None = None) -> None:
    """The judging process's entry (see :func:`grade_bounded`). In the unprivileged judge,
    ``worker`` is the client launched first thing and ``rest`` the payload's remainder."""
    import pickle
    import sys

    from grader.isolation.bounded import write_result

    if worker is None:
        path, options = pickle.loads(sys.stdin.buffer.read())
        write_result(grade(path, options).to_dict())
        return
    path, options = pickle.loads(rest)
    exact = _exact_folder(Path(path), options)
    if exact.resolve() != worker.submission:
        worker.close()  # the files sit further down: a worker on that folder instead
        worker = WorkerClient(exact, options.worker, launcher=worker.launcher)
    write_result(grade(path, options, worker=worker).to_dict())


def judge_with_launcher(path: Path | str, options: GradeOptions, launcher: Any) -> None:
    """In a warm judge's child (:mod:`grader.batch.judging`): grade ``path`` with workers
    started by ``launcher`` (a :class:`~grader.isolation.launcher.LauncherProxy`) and write
    the answer where the root side reads it."""
    from grader.isolation.bounded import write_result

    worker = WorkerClient(_exact_folder(Path(path), options), options.worker,
                          launcher=launcher)
    write_result(grade(path, options, worker=worker).to_dict())


def _exact_folder(path: Path, options: GradeOptions) -> Path:
    """The folder the student's files are in (``path`` or one below it)."""
    names = [ASSIGNMENTS[n].module for n in (options.assignments or list(ASSIGNMENTS))]
    try:
        return discover(path, names, graded_names()).root
    except Exception:  # noqa: BLE001 - grade() records what is wrong with the folder
        return path if path.is_dir() else path.parent


def _import_modules(worker: WorkerClient, submission: Submission, assignments: list[Assignment],
                    timeout: float) -> dict[str, dict[str, Any]]:
    """Import every usable module once; returns module -> {"ok", "names"} or {"ok": False,
    "message"}."""
    modules = [a.module for a in assignments if submission.usable(a.module)]
    if not modules:
        return {}
    report: dict[str, dict[str, Any]] = {}
    # One module per request: a module that hangs at import time costs only its own checks.
    for module in modules:
        name = submission.files[module].display  # attention.py, or the notebook it comes from
        try:
            reply = worker.request("import", {"modules": [module]}, timeout=timeout)
            entry = (reply.result.get("modules") or {}).get(module)
            if not isinstance(entry, dict) or "ok" not in entry:
                entry = {"ok": False, "message": f"the worker did not report on importing "
                                                 f"{name} (its reply was malformed)"}
            elif not entry["ok"]:
                entry = {"ok": False,
                         "message": _import_failure(name, entry.get("error") or {})}
        except WorkerTimeout:
            entry = {"ok": False, "timeout": True,
                     "message": f"importing {name} did not finish within {timeout:.0f} s (is "
                                f"there a long computation or an endless loop at the top "
                                f"level?)"}
        except WorkerCrashed as exc:
            entry = {"ok": False, "message": f"importing {name} stopped the worker: {exc}"}
        report[module] = entry
    return report


def _import_failure(name: str, error: dict[str, Any]) -> str:
    # Repeated on every check of the assignment: bounded, whatever the student's code raised.
    where = f" at {cut(str(error['where']), 300)}" if error.get("where") else ""
    return (f"importing {name} raised {cut(str(error.get('type', 'Error')), 200)}: "
            f"{cut(str(error.get('message', '')), 2000)}{where}").strip()


def _grade_assignment(a: Assignment, submission: Submission, imports: dict[str, dict[str, Any]],
                      worker: WorkerClient, options: GradeOptions) -> AssignmentResult:
    source = submission.files[a.module]
    out = AssignmentResult(name=a.name, source=str(source.path.name) if source.path else "",
                           title=a.title, course=a.course)
    weights = options.weights.get(a.name, {})
    imported = imports.get(a.module, {})
    problem = source.problem or (imported.get("message", "")
                                 if not imported.get("ok", False) else "")
    # Code that ran past its time limit is a timeout (the batch summary counts them apart):
    # a module's import, a notebook's cell or the notebook's total time.
    timed_out = source.timed_out if source.problem else bool(imported.get("timeout"))
    problem_status = Status.TIMEOUT if timed_out else Status.ERROR
    names = set(imported.get("names", []))
    out.message = problem
    ctx = Context(assignment=a.name, worker=worker, source=options.source,
                  settings=options.checks)
    for check in a.checks:
        points = float(weights.get(check.id, check.points))
        if check.visibility is Visibility.HIDDEN and not options.include_hidden:
            out.checks.append(_result(check, points, Status.SKIPPED, "hidden check: it runs "
                                      "when your instructor grades the submission"))
            continue
        unavailable = check.unavailable(ctx) if check.unavailable else None
        if unavailable:  # for every submission alike: the points possible stay the same
            out.checks.append(_result(check, points, Status.SKIPPED, unavailable))
            continue
        if problem:
            out.checks.append(_result(check, points, problem_status, problem))
            continue
        missing = [n for n in check.needs if n not in names]
        if missing:
            message = source.missing_message(missing[0])  # for a notebook: which cell
            if message.endswith(f"defines no `{missing[0]}`"):
                message += _spelling_hint(missing[0], names)
            status = Status.TIMEOUT if source.ran_out_of_time(missing[0]) else Status.ERROR
            out.checks.append(_result(check, points, status, message))
            continue
        out.checks.append(run_check(check, replace(ctx, timeout=check.timeout), points))
    return out


def run_check(check: Check, ctx: Context, points: float) -> CheckResult:
    """Run one check and turn whatever happens into a :class:`CheckResult`."""
    started = time.monotonic()
    try:
        outcome = check.fn(ctx)
        fraction = outcome.fraction if outcome.fraction is not None else float(outcome.passed)
        res = _result(check, points, Status.PASSED if outcome.passed else Status.FAILED,
                      outcome.message, outcome.hint, outcome.details,
                      score=points * max(0.0, min(1.0, fraction)))
    except CheckFailed as failure:
        res = _result(check, points, Status.FAILED, failure.message, failure.hint,
                      failure.details)
    except CheckSkipped as exc:
        res = _result(check, points, Status.SKIPPED, str(exc))
    except StudentCodeError as exc:
        res = _result(check, points, Status.ERROR,
                      ("" if exc.contract else "your code raised ") + exc.describe(),
                      details={"error": exc.error})
    except WorkerTimeout as exc:
        res = _result(check, points, Status.TIMEOUT, str(exc))
    except WorkerError as exc:  # crashed, or restarted too often
        res = _result(check, points, Status.ERROR, str(exc))
    except FixtureMissing as exc:
        res = _result(check, points, Status.SKIPPED, f"no stored expected values: {exc}")
    except Exception as exc:  # noqa: BLE001 - a grader bug must not lose the other results
        res = _result(check, points, Status.ERROR,
                      f"internal grader error while running this check (not your fault; "
                      f"please report it): {type(exc).__name__}: {exc}",
                      details={"traceback": traceback.format_exc()[-4000:]})
    res.seconds = round(time.monotonic() - started, 3)
    return res


def _result(check: Check, points: float, status: Status, message: str, hint: str = "",
            details: dict[str, Any] | None = None, score: float = 0.0) -> CheckResult:
    return CheckResult(id=check.id, name=check.name, status=status, score=round(score, 6),
                       max_score=points, message=message, visibility=check.visibility,
                       hint=hint, details=details or {})


def _spelling_hint(name: str, names: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return f" (found `{close[0]}`: the graded names must match exactly)" if close else ""


def load_weights(path: Path) -> dict[str, dict[str, float]]:
    """Read an instructor's points file ``{assignment: {check_id: points}}`` and validate it
    against the declared checks, naming any unknown assignment or check."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read weights file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of assignment -> check id -> points")
    weights: dict[str, dict[str, float]] = {}
    for name, checks in data.items():
        if name not in ASSIGNMENTS:
            raise ValueError(f"{path}: unknown assignment {name!r}")
        known = {c.id for c in ASSIGNMENTS[name].checks}
        if not isinstance(checks, dict):
            raise ValueError(f"{path}: {name}: expected check id -> points")
        for check_id, points in checks.items():
            if check_id not in known:
                raise ValueError(f"{path}: {name}: unknown check {check_id!r}")
            if not isinstance(points, (int, float)) or isinstance(points, bool) or points < 0:
                raise ValueError(f"{path}: {name}.{check_id}: points must be a number >= 0")
        weights[name] = {k: float(v) for k, v in checks.items()}
    return weights
