"""``grader gradescope build OUT.zip`` (the autograder zip) and ``grader gradescope run`` (what
the zip's ``run_autograder`` calls inside Gradescope's container).

The zip's format and the mapping of our results to Gradescope's are documented in
:mod:`grader.out.exports.gradescope`. :func:`grade_folder` is shared with ``grader
prairielearn``: one LMS submission folder graded the way ``grader run`` grades one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from grader.cli.common import UsageError

# What grader.json may say, with its defaults (written by `build`, read by `run`).
DEFAULTS: dict[str, Any] = {
    "assignments": None,       # None: all
    "weights": {},             # {assignment: {check_id: points}}
    "isolation": "auto",
    "threads": None,           # None: the machine's CPUs, at most 4
    "timeout": 60.0,           # seconds per request to the student's code
    "total_timeout": 600.0,    # seconds for the whole submission
    "hidden_visibility": "after_published",
    "stdout_visibility": "hidden",
    "reveal_hidden": False,
}
IGNORED_DIRS = {"__MACOSX", "__pycache__", ".ipynb_checkpoints"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader gradescope build|run``."""
    p = sub.add_parser("gradescope", help="build a Gradescope autograder zip, or run inside one",
                       description="Gradescope's programming assignments: `build` writes the "
                                   "autograder zip to upload; `run` is what its run_autograder "
                                   "calls for each submission.")
    gs = p.add_subparsers(dest="gradescope_command", metavar="ACTION")
    b = gs.add_parser("build", help="write the autograder zip to upload to Gradescope")
    b.add_argument("out", type=Path, metavar="OUT.zip")
    b.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="NAME",
                   help="grade only this assignment (repeatable; default: all)")
    b.add_argument("--weights", type=Path, metavar="YAML",
                   help="points per check: {assignment: {check_id: points}}")
    b.add_argument("--timeout", type=float, default=DEFAULTS["timeout"],
                   help="seconds each request to the student's code may take (default 60)")
    b.add_argument("--total-timeout", type=float, default=DEFAULTS["total_timeout"],
                   help="seconds a whole submission may take (default 600)")
    b.add_argument("--hidden-visibility", default=DEFAULTS["hidden_visibility"],
                   choices=["hidden", "after_due_date", "after_published", "visible"],
                   help="when students see hidden checks' tests (default after_published)")
    b.add_argument("--reveal-hidden", action="store_true",
                   help="put hidden checks' full feedback into their tests' output (shown to "
                        "students once those tests are visible to them)")
    b.add_argument("--stdout-visibility", default=DEFAULTS["stdout_visibility"],
                   choices=["hidden", "after_due_date", "after_published", "visible"],
                   help="when students see the autograder's stdout (default: never)")
    b.add_argument("--torch-index", default="", metavar="URL",
                   help="a pip index URL for the pinned torch wheel (e.g. a CPU-only index); "
                        "default: the default index")
    b.set_defaults(func=_build)
    r = gs.add_parser("run", help="grade /autograder/submission into "
                                  "/autograder/results/results.json")
    r.add_argument("--root", type=Path, default=Path("/autograder"),
                   help="the autograder tree (default /autograder)")
    r.add_argument("--config", type=Path, default=None,
                   help="grader.json written by `build` (default ROOT/source/grader.json)")
    r.set_defaults(func=_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _build(args: argparse.Namespace) -> int:
    from grader import checks
    from grader.grading import load_weights
    from grader.out.exports.gradescope import build_autograder

    for name in args.assignments or []:
        if name not in checks.ASSIGNMENTS:
            raise UsageError(f"unknown assignment {name!r}; known: {', '.join(checks.names())}")
    weights: dict = {}
    if args.weights:
        try:
            weights = load_weights(args.weights)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not str(args.out).endswith(".zip"):
        raise UsageError(f"the autograder must be a .zip file, not {args.out}")
    config = {**DEFAULTS, "assignments": args.assignments, "weights": weights,
              "timeout": args.timeout, "total_timeout": args.total_timeout,
              "hidden_visibility": args.hidden_visibility, "reveal_hidden": args.reveal_hidden,
              "stdout_visibility": args.stdout_visibility}
    try:
        path = build_autograder(args.out, config, torch_index=args.torch_index)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB): upload it as the autograder of a Gradescope "
          f"programming assignment")
    return 0


def read_config(path: Path | None) -> dict[str, Any]:
    """grader.json merged over :data:`DEFAULTS`; unknown keys are an error, so a typo does not
    silently grade with defaults."""
    config = dict(DEFAULTS)
    if path is None or not path.is_file():
        return config
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise UsageError(f"{path}: unknown settings {sorted(unknown)}")
    config.update(data)
    return config


def submission_root(folder: Path) -> Path:
    """The folder that holds the student's modules: ``folder`` itself, or the single folder
    inside it when the student uploaded (a zip of) a folder."""
    for _ in range(3):
        entries = [p for p in folder.iterdir()
                   if not p.name.startswith(".") and p.name not in IGNORED_DIRS]
        if any(p.is_file() and p.suffix in (".py", ".ipynb") for p in entries):
            return folder
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) != 1 or any(p.is_file() for p in entries):
            return folder
        folder = dirs[0]
    return folder


def grade_folder(folder: Path, config: dict[str, Any]):
    """Grade one LMS submission folder with ``config`` (see :data:`DEFAULTS`) and return its
    :class:`~grader.model.results.SubmissionResult`."""
    from grader.checks.expected import LiveReference
    from grader.grading import GradeOptions, grade
    from grader.isolation.client import WorkerSettings

    threads = config["threads"] or max(1, min(4, os.cpu_count() or 1))
    settings = WorkerSettings(isolation=config["isolation"], threads=threads,
                              call_timeout=float(config["timeout"]),
                              total_timeout=float(config["total_timeout"]))
    options = GradeOptions(assignments=config["assignments"], source=LiveReference(),
                           worker=settings, weights=config["weights"] or {},
                           include_hidden=True)
    return grade(submission_root(folder), options)


def _run(args: argparse.Namespace) -> int:
    from grader.out.exports.gradescope import error_results, to_gradescope

    root = args.root
    results = root / "results" / "results.json"
    started = time.monotonic()
    try:
        config = read_config(args.config or root / "source" / "grader.json")
        submission = root / "submission"
        if not submission.is_dir():
            raise UsageError(f"no submission folder at {submission}")
        result = grade_folder(submission, config)
        data = to_gradescope(result, hidden_visibility=config["hidden_visibility"],
                             stdout_visibility=config["stdout_visibility"],
                             reveal_hidden=config["reveal_hidden"],
                             note=_sandbox_note(result))
        print(f"graded {submission}: {result.score:g} / {result.max_score:g} in "
              f"{time.monotonic() - started:.1f} s")
        print(f"environment: {json.dumps(result.environment, default=str)}")
        if result.log:
            print("--- the student's printed output ---")
            print(result.log)
    except Exception as exc:  # noqa: BLE001 - Gradescope must get a results.json whatever happens
        traceback.print_exc(file=sys.stdout)
        data = error_results(f"{type(exc).__name__}: {exc}" if isinstance(exc, UsageError)
                             else "an internal error of the grader")
    results.parent.mkdir(parents=True, exist_ok=True)
    tmp = results.with_name("results.json.part")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, results)
    print(f"wrote {results}")
    return 0


def _sandbox_note(result) -> str:
    isolation = str((result.environment or {}).get("isolation", ""))
    return f"_Sandbox: {isolation}._" if isolation.startswith("none") else ""
