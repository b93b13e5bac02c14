"""``grader prairielearn grade --root /grade``: the entrypoint of a PrairieLearn external grader.

Grades ``ROOT/student`` and writes ``ROOT/results/results.json`` in PrairieLearn's format
(:mod:`grader.out.exports.prairielearn`): ``gradable: false`` when no module could be graded
at all, every output kept under the 1 MB limit. Settings come from a ``grader.json`` (the
same keys as the Gradescope autograder's, :data:`grader.cli.gradescope.DEFAULTS`): ``--config``,
else ``ROOT/tests/grader.json`` or ``ROOT/serverFilesCourse/grader.json`` when present. The
question's ``info.json`` names this command as its ``entrypoint``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from grader.cli.common import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader prairielearn grade``."""
    p = sub.add_parser("prairielearn", help="run as a PrairieLearn external grader",
                       description="PrairieLearn's external grading: grade ROOT/student into "
                                   "ROOT/results/results.json.")
    pl = p.add_subparsers(dest="prairielearn_command", metavar="ACTION")
    g = pl.add_parser("grade", help="grade ROOT/student into ROOT/results/results.json")
    g.add_argument("--root", type=Path, default=Path("/grade"),
                   help="the grading job's tree (default /grade)")
    g.add_argument("--config", type=Path, default=None,
                   help="grader.json (default: ROOT/tests/grader.json, then "
                        "ROOT/serverFilesCourse/grader.json)")
    g.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="NAME",
                   help="grade only this assignment (repeatable; overrides grader.json)")
    g.add_argument("--reveal-hidden", action="store_true",
                   help="show hidden checks' feedback to the student")
    g.set_defaults(func=_grade)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _config_path(root: Path, given: Path | None) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise UsageError(f"no config file at {given}")
        return given
    for candidate in (root / "tests" / "grader.json", root / "serverFilesCourse" / "grader.json"):
        if candidate.is_file():
            return candidate
    return None


def _grade(args: argparse.Namespace) -> int:
    from grader.cli.gradescope import grade_folder, read_config
    from grader.out.exports.prairielearn import dumps, fit, to_prairielearn

    root = args.root
    out = root / "results" / "results.json"
    try:
        config = read_config(_config_path(root, args.config))
        if args.assignments:
            from grader import checks

            unknown = [a for a in args.assignments if a not in checks.ASSIGNMENTS]
            if unknown:
                raise UsageError(f"unknown assignment {unknown[0]!r}; known: "
                                 f"{', '.join(checks.names())}")
            config["assignments"] = args.assignments
        student = root / "student"
        if not student.is_dir():
            raise UsageError(f"no student folder at {student}")
        result = grade_folder(student, config)
        data = to_prairielearn(result, reveal_hidden=args.reveal_hidden
                               or bool(config["reveal_hidden"]))
        print(f"graded {student}: {result.score:g} / {result.max_score:g}")
    except Exception as exc:  # noqa: BLE001 - PrairieLearn must get a results.json regardless
        traceback.print_exc(file=sys.stderr)
        # A grader failure is not the student's: not gradable, so no attempt is used up.
        why = str(exc) if isinstance(exc, UsageError) else "an internal error of the grader"
        data = fit({"gradable": False, "format_errors": [why],
                    "message": f"The grader could not run: {why}. This used no attempt."})
    out.parent.mkdir(parents=True, exist_ok=True)  # PrairieLearn does not create it
    tmp = out.with_name("results.json.part")
    tmp.write_text(dumps(data) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0
