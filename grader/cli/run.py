"""``grader run``: grade one submission (a folder, a nested folder, or a single file) and print,
write or report the results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grader.cli.common import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader run`` to the command's subparsers."""
    _add_run(sub)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="grade one submission (a folder of modules or notebooks)",
                       description="Grade one submission and print a summary: a folder of "
                                   "modules (attention.py, causal_mask.py, block.py, ...) or "
                                   "notebooks (.ipynb), a folder holding such a folder (an "
                                   "unpacked zip), or a single module or notebook file. A "
                                   "folder of student folders is graded with `grader batch`.")
    p.add_argument("submission", type=Path,
                   help="the submission folder, or one module (.py) or notebook (.ipynb)")
    p.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="NAME",
                   help="grade only this assignment (repeatable)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="write report.html (self-contained) and report.md into DIR")
    p.add_argument("--audience", choices=["student", "instructor"], default="student",
                   help="student reports show only the name and points of hidden checks")
    p.add_argument("--fixtures", type=Path, metavar="DIR",
                   help="expected values from stored fixtures instead of the live reference")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="the live inputs' seed (default: a fresh secret one, recorded in the "
                        "results' environment; pass it to reproduce a verdict)")
    p.add_argument("--public-only", action="store_true",
                   help="skip hidden checks (what a student's self-check runs)")
    p.add_argument("--weights", type=Path, metavar="YAML",
                   help="points per check: {assignment: {check_id: points}}")
    p.add_argument("--gpt2-weights", type=Path, metavar="DIR",
                   help="a local folder with the real `gpt2` checkpoint (model.safetensors, "
                        "config.json): the GPT-2 loading checks also run on it (never "
                        "downloaded; default: the Hugging Face cache when it holds one)")
    p.add_argument("--isolation", choices=["auto", "bwrap", "none"], default="auto",
                   help="how the student's code is isolated: bwrap (the bubblewrap sandbox: no "
                        "network, read-only system, only the submission visible), none (a "
                        "plain process, for machines without bubblewrap), auto (default: "
                        "bwrap when available, else none with a note)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the worker (default: the number of CPUs, at most 4)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds each request to the student's code may take (default 60)")
    p.add_argument("--total-timeout", type=float, default=600.0,
                   help="seconds the whole submission may take (default 600)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show the checks' own hints, and where the course teaches a "
                        "likely mistake")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the summary: auto (default: when printing to a terminal), "
                        "always, never")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from grader.isolation.client import WorkerClient, WorkerSettings

    # The assignments are not known before the checks are imported, which waits for the
    # worker's launch; any .py counts as a module here, and the guess is checked later.
    where = _early_guess(args.submission)
    if args.gpt2_weights is not None:
        if not (args.gpt2_weights / "config.json").is_file():
            raise UsageError(f"no config.json in {args.gpt2_weights}: expected a local folder "
                             "of the Hugging Face `gpt2` checkpoint")
    threads = args.threads or max(1, min(4, os.cpu_count() or 1))
    settings = WorkerSettings(isolation=args.isolation, threads=threads,
                              call_timeout=args.timeout, total_timeout=args.total_timeout)
    from grader.isolation.bounded import judge_available, user_checkpoint_cache

    if judge_available(args.isolation):
        return _run_judged(args, settings, where)
    # Launch the worker before importing the checks (and torch): both imports then overlap.
    # It reads the grader's checkpoint cache in place (the 124M check's 0.5 GB file).
    worker = WorkerClient(where.root, settings, lend=user_checkpoint_cache())
    try:
        worker.launch()
        return _grade_and_report(args, settings, worker, where)
    finally:
        worker.close()


# The judge ends with os._exit once its answer is written and closed: the interpreter's teardown
# (torch's takes ~0.5 s) is time the root side would wait for, as the worker already skips it.
JUDGE_ENTRY = ("from grader.isolation.launcher import early_worker; w, rest = early_worker(); "
               "from grader.cli.run import _judge_body; _judge_body(w, rest); "
               "import os, sys; sys.stdout.flush(); sys.stderr.flush(); os._exit(0)")


def _run_judged(args: argparse.Namespace, settings, where) -> int:
    """Grade in the unprivileged judge (root: only the launcher, the copy and the outputs; no
    torch is imported here) and write the outputs from its result."""
    import pickle

    from grader.isolation import bounded
    from grader.isolation.launcher import copy_submission
    from grader.model.results import SubmissionResult

    given = args.submission.resolve()
    base = given if given.is_dir() else given.parent
    extra = [p.resolve() for p in (args.fixtures, args.gpt2_weights, args.weights) if p]
    try:
        judge = bounded.start_judge(settings, extra)
    except bounded.JudgingFailed as exc:  # a file the judge cannot read: the user's to fix
        raise UsageError(str(exc)) from None
    try:
        copy = copy_submission(base, judge.work_area)
        inner = lambda p: copy / Path(p).resolve().relative_to(base)  # noqa: E731
        jargs = argparse.Namespace(**{**vars(args), "func": None, "json": None, "report": None,
                                      "submission": inner(args.submission),
                                      "checkpoint_cache": judge.checkpoint_cache,
                                      **{k: getattr(args, k).resolve() for k in
                                         ("fixtures", "gpt2_weights", "weights")
                                         if getattr(args, k, None) is not None}})
        payload = pickle.dumps((str(inner(where.root)), settings)) + pickle.dumps(jargs)
        limits = bounded.JudgeLimits(timeout=settings.total_timeout * 1.5 + 120)
        try:
            data = bounded.run_bounded(JUDGE_ENTRY, payload, limits, judge=judge)
            if "usage_error" in data:  # said of the copy: name the user's folder instead
                raise UsageError(str(data["usage_error"]).replace(str(copy), str(base)))
            result = SubmissionResult.from_dict(data["result"])
            bundled, note = bool(data.get("bundled")), str(data.get("note") or "")
            missing = data.get("checkpoints_missing") is True
        except (bounded.JudgingFailed, KeyError, TypeError, ValueError) as exc:
            from grader.grading import GradeOptions, failed_result

            result = failed_result(args.submission, GradeOptions(assignments=args.assignments),
                                   f"grading stopped before a result: {exc}")
            bundled, note, missing = False, "", False
    finally:
        judge.close()
    result.submission = str(args.submission)
    result.environment["judging"] = judge.description
    if note:
        print(f"note: {note}")
    code = _output(args, result, bundled)
    if missing:
        _build_checkpoint_cache()
    return code


def _build_checkpoint_cache() -> None:
    """Build the 124M checkpoint into the user's cache in a trusted process of its own, after a
    judged run whose judge found it missing there (it built a private one and cannot write the
    cache): the next ``grader run`` loads it instead of building it again (~1 s). The judge's
    word only starts this build; what is built is the grader's own seeded checkpoint. Any
    failure (a full disk, a read-only home, Ctrl-C) leaves the cache as it was, and a cache
    the judge could not read (a strict umask) is made readable by it for the next run."""
    import subprocess

    from grader.isolation.bounded import trusted_python

    argv, env = trusted_python("-c", "from grader.checks.gpt2_loading.full_size import "
                               "build_user_cache; build_user_cache()")
    try:
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError, KeyboardInterrupt):
        pass  # the grading's outputs are written: an interrupted build is only not cached


def _judge_body(worker, rest: bytes) -> None:
    """In the judge: grade as the in-process path does and answer with the result."""
    import pickle

    from grader.isolation.bounded import write_result

    args = pickle.loads(rest)
    # The user's checkpoint cache is lent read-only: a checkpoint it lacks is built privately
    # (and removed with the work area), and the root side is told so it can fill the cache.
    from grader.checks.checkpoints import CheckpointStore

    cache = getattr(args, "checkpoint_cache", None)
    store = args.checkpoint_store = CheckpointStore(Path(cache) if cache else None,
                                                    fallback=True)
    with store:
        try:
            with worker:
                result, bundled, note = _grade_and_report(args, worker.settings, worker,
                                                          _early_guess(args.submission),
                                                          output=False)
        except UsageError as exc:
            write_result({"usage_error": str(exc)})
            return
        missing = store.built_privately
    write_result({"result": result.to_dict(), "bundled": bundled, "note": note,
                  "checkpoints_missing": missing})


def _early_guess(path: Path):
    from grader.intake.discover import Location, NotASubmission, locate

    try:
        return locate(path, None)
    except NotASubmission as exc:
        if path.is_dir():  # e.g. a helpers/ folder beside hw/: the exact look decides
            return Location(path)
        raise UsageError(str(exc)) from None


def _locate(path: Path, modules: list[str] | None):
    from grader.intake.discover import NotASubmission, locate

    try:
        return locate(path, modules)
    except NotASubmission as exc:
        raise UsageError(str(exc)) from None


def _grade_and_report(args: argparse.Namespace, settings, worker, where, output: bool = True):
    from grader import checks
    from grader.isolation.client import WorkerClient

    for name in args.assignments or []:
        if name not in checks.ASSIGNMENTS:
            raise UsageError(f"unknown assignment {name!r}; known: {', '.join(checks.names())}")

    exact = _locate(args.submission, [a.module for a in checks.ASSIGNMENTS.values()])
    if exact.root.resolve() != where.root.resolve():
        # Rare: a .py that is no assignment's module made the early guess another folder.
        launcher = worker.launcher
        worker.close()
        worker = WorkerClient(exact.root, settings, launcher=launcher)
        try:
            worker.launch()
            return _grade_in(args, settings, worker, exact, checks, output)
        finally:
            worker.close()
    return _grade_in(args, settings, worker, exact, checks, output)


def _grade_in(args: argparse.Namespace, settings, worker, where, checks, output: bool = True):
    from grader.grading import GradeOptions, grade, load_weights
    from grader.intake.bundle import fixtures_dir

    assignments = _assignments(args, where, checks)
    if where.note and output:
        print(f"note: {where.note}")
    # In a student bundle (grader release): its own fixtures, and the public checks only.
    bundled = args.fixtures is None and fixtures_dir() is not None
    options = GradeOptions(
        assignments=assignments,
        source=_source(args.fixtures or fixtures_dir(), getattr(args, "seed", None)),
        worker=settings,
        weights=_weights(args.weights, load_weights),
        include_hidden=not (args.public_only or bundled),
        checks=checks.CheckSettings(gpt2_weights=args.gpt2_weights.resolve()
                                    if args.gpt2_weights else None,
                                    checkpoints=getattr(args, "checkpoint_store", None)),
    )
    result = grade(args.submission, options, worker=worker)
    if not output:  # in the judge: the root side writes and prints
        return result, bundled, where.note or ""
    result.environment["judging"] = "in the grader process"
    return _output(args, result, bundled)


def _output(args: argparse.Namespace, result, bundled: bool) -> int:
    """Write --json and --report, print the summary (the root side's part)."""
    from grader.intake.bundle import NOTE
    from grader.out.summary import render_terminal

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(result.to_json())
    if args.report:
        from grader.out.reports import write_reports

        paths = write_reports(result, args.report, audience=args.audience)
        footer = "Full report (pictures, every difference): " + ", ".join(str(p) for p in paths)
    else:
        footer = (f"For the full report (pictures, every difference):\n"
                  f"grader run {_quoted(args.submission)} --report report/")
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(render_terminal(result, color=color, verbose=args.verbose, footer=footer))
    if bundled:
        print(NOTE)
    return 0


def _assignments(args: argparse.Namespace, where, checks) -> list[str] | None:
    """The assignments to grade: those asked for, and for a single file only those it
    provides (a notebook may provide several)."""
    if where.file is None:
        return args.assignments
    from grader.intake.discover import NotASubmission, discover, provided

    modules = [a.module for a in checks.ASSIGNMENTS.values()]
    try:
        found = provided(discover(where.file, modules, checks.graded_names()))
    except NotASubmission as exc:
        raise UsageError(str(exc)) from None
    names = [n for n, a in checks.ASSIGNMENTS.items() if a.module in found]
    if args.assignments:
        names = [n for n in names if n in args.assignments] or list(args.assignments)
    if not names:
        raise UsageError(f"{where.file.name} holds none of the assignments "
                         f"({', '.join(m + '.py' for m in modules)}): pass the submission "
                         f"folder, or one of its modules or notebooks")
    return names


def _quoted(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def _weights(path: Path | None, load) -> dict:
    if path is None:
        return {}
    try:
        return load(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _source(fixtures: Path | None, seed: int | None = None):
    from grader.checks.expected import FIXTURE_FILE, LiveReference, StoredFixtures

    if fixtures is not None:
        if not (fixtures / FIXTURE_FILE).is_file():
            raise UsageError(f"no {FIXTURE_FILE} in {fixtures}")
        return StoredFixtures(fixtures)
    import importlib.util

    if importlib.util.find_spec("reference") is None:
        raise UsageError("the reference implementation is not installed here; pass --fixtures "
                         "DIR (a student bundle ships its fixtures)")
    return LiveReference(seed=seed)
