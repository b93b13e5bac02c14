"""``grader batch``: grade a whole class folder into a gradebook, resumably."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.cli.common import UsageError

DESCRIPTION = """\
Grade every submission of a class, in parallel sandboxed workers, into RUN_DIR/gradebook.sqlite,
with each student's feedback in RUN_DIR/feedback/<student>/ (report.html, report.md,
results.json). Rerunning the same command grades only what is not yet graded under the same
settings (checks, points, reference, options); killing it loses nothing already finished.

layouts (--layout, detected by default):
  folders   CLASS_DIR/<student>/attention.py ...   (or notebooks; the folder name is the id)
  canvas    Canvas bulk download: smithjohn[_late]_<user id>_<submission id>_attention.py
  moodle    Moodle download: <Full Name>_<id>_assignsubmission_file_/attention.py (or flat)
  nbgrader  submitted/<student>/<assignment>/ (with timestamp.txt)
  files     CLASS_DIR/<student>.ipynb (or <student>.py with one -a NAME)
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader batch`` to the command's subparsers."""
    p = sub.add_parser("batch", help="grade a whole class folder into a gradebook",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("class_dir", type=Path, metavar="CLASS_DIR", help="the class folder")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR",
                   help="the run folder: gradebook.sqlite, feedback/, results/ (reused to resume)")
    p.add_argument("--layout", choices=["auto", "folders", "canvas", "moodle", "nbgrader",
                                        "files"], default="auto")
    p.add_argument("--roster", type=Path, metavar="CSV",
                   help="the class list (id, name, email, section): names students, and gives "
                        "those who submitted nothing a recorded zero")
    p.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="NAME",
                   help="grade only this assignment (repeatable)")
    p.add_argument("--nbgrader-assignment", metavar="NAME",
                   help="which assignment folder of an nbgrader tree to grade")
    p.add_argument("--regrade", choices=["none", "all", "failed"], default="none",
                   help="grade again what is already graded: all, or only submissions that "
                        "errored or timed out (history is kept)")
    p.add_argument("--student", action="append", dest="students", metavar="ID",
                   help="grade (again) only this student (repeatable)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="submissions graded at once (default: from the cores and memory)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per job (default: cores / jobs)")
    p.add_argument("--executor", choices=["local", "dask", "dask-local"], default="local",
                   help="where jobs run: this machine, a Dask cluster (--scheduler), or a Dask "
                        "LocalCluster here (needs `pip install grader[dask]`)")
    p.add_argument("--no-warm-pool", dest="warm", action="store_false", default=None,
                   help="local executor: start a fresh worker per submission (as `grader run`) "
                        "instead of forking them from a warm pool of isolated zygotes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (with --executor dask)")
    p.add_argument("--ship", action="store_true",
                   help="Dask: send each submission's files with its task (workers without "
                        "the class folder on a shared disk)")
    p.add_argument("--weights", type=Path, metavar="YAML",
                   help="points per check: {assignment: {check_id: points}}")
    p.add_argument("--fixtures", type=Path, metavar="DIR",
                   help="expected values from stored fixtures instead of the live reference")
    p.add_argument("--public-only", action="store_true", help="skip hidden checks")
    p.add_argument("--gpt2-weights", type=Path, metavar="DIR",
                   help="a local folder of the real `gpt2` checkpoint (never downloaded)")
    p.add_argument("--isolation", choices=["auto", "bwrap", "none"], default="auto",
                   help="the sandbox; a batch refuses to run unsandboxed unless given `none`")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds each request to a student's code may take (default 60)")
    p.add_argument("--total-timeout", type=float, default=600.0,
                   help="seconds one submission may take in all (default 600)")
    p.add_argument("--seed", type=int, default=None,
                   help="the inputs' seed (default: a secret one per run, kept on resume); "
                        "given, it reproduces an earlier run exactly")
    p.add_argument("--no-feedback", action="store_true",
                   help="do not write the per-student reports")
    p.add_argument("--progress", choices=["auto", "live", "plain", "none"], default="auto",
                   help="a live display on a terminal (auto), one line per submission "
                        "(plain), or nothing but the final table (none)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from grader.batch import BatchError, BatchOptions, run_batch
    from grader.grading import load_weights

    if not args.class_dir.is_dir():
        raise UsageError(f"class folder not found: {args.class_dir}")
    if args.roster is not None and not args.roster.is_file():
        raise UsageError(f"roster not found: {args.roster}")
    if args.jobs is not None and args.jobs < 1 or args.threads is not None and args.threads < 1:
        raise UsageError("--jobs and --threads must be at least 1")
    try:
        weights = load_weights(args.weights) if args.weights else {}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = BatchOptions(
        layout=args.layout, roster=args.roster, assignments=args.assignments,
        include_hidden=not args.public_only, weights=weights, isolation=args.isolation,
        jobs=args.jobs, threads=args.threads, call_timeout=args.timeout,
        total_timeout=args.total_timeout, fixtures=args.fixtures,
        gpt2_weights=args.gpt2_weights, regrade=args.regrade, students=args.students,
        nbgrader_assignment=args.nbgrader_assignment, executor=args.executor,
        scheduler=args.scheduler, ship=args.ship, warm=args.warm, feedback=not args.no_feedback,
        live={"auto": None, "live": True, "plain": False, "none": False}[args.progress],
        quiet=args.progress == "none", seed=args.seed)
    try:
        report = run_batch(args.class_dir, args.out, options)
    except BatchError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print("grader batch: interrupted; finished submissions are in the gradebook, rerun the "
              "same command to grade the rest", file=sys.stderr)
        return 130
    if args.progress == "none":
        t = report.tally
        print(f"graded {t.graded}, errors {t.errors}, timeouts {t.timeouts}, skipped "
              f"{t.skipped}, no submission {t.no_submission}; wall time {t.wall:.1f} s")
    print(f"gradebook: {report.gradebook}")
    return 0
