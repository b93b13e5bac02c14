"""``grader export wide|canvas|moodle|feedback GRADEBOOK ...``: grades out of a batch's gradebook.

The formats are documented in :mod:`grader.out.exports.tables` (CSV) and
:mod:`grader.out.exports.feedback` (per-student reports). A late policy (``--due`` and
friends, :mod:`grader.out.exports.late`) is applied to what is exported, never stored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.cli.common import UsageError


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("gradebook", type=Path, help="the batch's gradebook.sqlite (or its run folder)")
    p.add_argument("-o", "--out", type=Path, required=True, help=out_help)
    p.add_argument("--run", type=int, default=None, metavar="ID",
                   help="export the gradings of this run only (default: the grading that "
                        "counts for each student, across runs)")


def _policy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("late policy (applied at export, never stored)")
    g.add_argument("--due", metavar="TIME",
                   help="the due date, ISO 8601 (e.g. 2026-11-20T23:59:00+01:00; no zone = UTC)")
    g.add_argument("--penalty-per-day", type=float, default=0.0, metavar="PCT",
                   help="percent of the possible points deducted per started day late")
    g.add_argument("--max-penalty", type=float, default=100.0, metavar="PCT",
                   help="the largest total deduction, percent of the possible points")
    g.add_argument("--cutoff-days", type=float, default=None, metavar="DAYS",
                   help="more than DAYS late (after extensions) scores 0")


def _names_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--column", action="append", default=[], metavar="ASSIGNMENT=NAME",
                   help="the LMS column of an assignment, e.g. attention='HW1 (4521)' "
                        "(repeatable; default: the assignment's name)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader export wide|canvas|moodle|feedback``."""
    p = sub.add_parser("export", help="export a batch's gradebook (CSV, LMS imports, feedback)",
                       description="Export the gradebook of a batch run: a wide CSV, a Canvas "
                                   "or Moodle import file, or every student's feedback.")
    ex = p.add_subparsers(dest="export_command", metavar="FORMAT")
    w = ex.add_parser("wide", help="one row per student: assignments, checks, total, status")
    _common(w, "the CSV file to write")
    _policy_args(w)
    w.set_defaults(func=_wide)
    c = ex.add_parser("canvas", help="Canvas's gradebook import CSV")
    _common(c, "the CSV file to write")
    _policy_args(c)
    _names_arg(c)
    c.set_defaults(func=_canvas)
    m = ex.add_parser("moodle", help="Moodle's CSV grade import")
    _common(m, "the CSV file to write")
    _policy_args(m)
    _names_arg(m)
    m.add_argument("--identify", choices=["email", "idnumber"], default="email",
                   help="the column Moodle maps users by (default: email)")
    m.set_defaults(func=_moodle)
    f = ex.add_parser("feedback", help="each student's report, named for an LMS bulk upload")
    _common(f, "the folder to write into")
    f.add_argument("--audience", choices=["student", "instructor"], default="student",
                   help="student (default): hidden checks show name and points only")
    f.add_argument("--naming", choices=["plain", "canvas", "moodle"], default="plain",
                   help="plain: a folder per student id; canvas/moodle: the LMS's bulk upload "
                        "names")
    f.add_argument("--zip", action="store_true", dest="zip_each",
                   help="a zip per student (Canvas: one zip of every file)")
    f.set_defaults(func=_feedback)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def open_gradebook(path: Path):
    """The gradebook at ``path`` (a file, or a run folder holding gradebook.sqlite), read-only;
    a clear :class:`UsageError` otherwise."""
    from grader.out.gradebook import Gradebook, GradebookError

    if path.is_dir():
        path = path / "gradebook.sqlite"
    try:
        return Gradebook.open(path, readonly=True)
    except GradebookError as exc:
        raise UsageError(str(exc)) from None


def _rows(args: argparse.Namespace):
    from grader.out.exports.tables import entries

    with open_gradebook(args.gradebook) as book:
        if args.run is not None and args.run not in {r.id for r in book.runs()}:
            raise UsageError(f"no run {args.run} in {args.gradebook} (runs: "
                             f"{', '.join(str(r.id) for r in book.runs()) or 'none'})")
        rows = entries(book, args.run)
    if not rows:
        raise UsageError(f"{args.gradebook} holds no gradings yet")
    return rows


def _policy(args: argparse.Namespace):
    from grader.out.exports.late import LatePolicy, PolicyError, parse_time

    given = args.penalty_per_day or args.cutoff_days is not None or args.max_penalty != 100.0
    if not args.due:
        if given:
            raise UsageError("a late penalty needs --due")
        return None
    try:
        return LatePolicy(due=parse_time(args.due), per_day=args.penalty_per_day / 100,
                          cap=args.max_penalty / 100, cutoff_days=args.cutoff_days)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None


def _names(args: argparse.Namespace) -> dict[str, str]:
    names = {}
    for item in args.column:
        if "=" not in item:
            raise UsageError(f"--column wants ASSIGNMENT=NAME, not {item!r}")
        key, value = item.split("=", 1)
        names[key.strip()] = value.strip()
    return names


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def _report_skipped(skipped, what: str) -> None:
    for sid, why in sorted(skipped.reasons.items()):
        print(f"grader: left out of the {what} import: {sid}: {why}", file=sys.stderr)


def _wide(args: argparse.Namespace) -> int:
    from grader.out.exports.tables import wide

    policy = _policy(args)
    rows = _rows(args)
    _write(args.out, wide(rows, policy))
    print(f"wrote {args.out}: {len(rows)} students")
    return 0


def _canvas(args: argparse.Namespace) -> int:
    from grader.out.exports.tables import canvas

    policy, names = _policy(args), _names(args)
    rows = _rows(args)
    try:
        text, skipped = canvas(rows, policy, names)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _write(args.out, text)
    _report_skipped(skipped, "Canvas")
    print(f"wrote {args.out}: {len(rows) - len(skipped.reasons)} students"
          + (f" ({len(skipped.reasons)} left out)" if skipped.reasons else ""))
    return 0


def _moodle(args: argparse.Namespace) -> int:
    from grader.out.exports.tables import moodle

    policy, names = _policy(args), _names(args)
    rows = _rows(args)
    try:
        text, skipped = moodle(rows, policy, names, identify=args.identify)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _write(args.out, text)
    _report_skipped(skipped, "Moodle")
    mapping = "Email address -> useremail" if args.identify == "email" else \
        "ID number -> useridnumber"
    print(f"wrote {args.out}: {len(rows) - len(skipped.reasons)} students (map {mapping})"
          + (f" ({len(skipped.reasons)} left out)" if skipped.reasons else ""))
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from grader.out.exports.feedback import release

    rows = [r for r in _rows(args) if r.status != "no_submission"]
    written, fallback = release(rows, args.out, audience=args.audience, naming=args.naming,
                                zip_each=args.zip_each)
    for sid, why in sorted(fallback.items()):
        print(f"grader: {sid}: {why}", file=sys.stderr)
    print(f"wrote feedback for {len(rows)} students into {args.out} ({args.audience} reports)")
    return 0
