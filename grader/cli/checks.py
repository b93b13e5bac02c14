"""``grader checks``: list the assignments and their checks with their points."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader checks`` to the command's subparsers."""
    _add_checks(sub)


def _add_checks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checks", help="list the assignments and their checks",
                       description="List every assignment (its module, its title, its points) "
                                   "and its checks: id, points and what each verifies, in the "
                                   "order `grader run` runs them. Hidden checks, which run "
                                   "only when the instructor grades, are left out unless "
                                   "--hidden is given.")
    p.add_argument("--hidden", action="store_true",
                   help="include the hidden checks (marked [hidden])")
    p.set_defaults(func=_list_checks)


def _list_checks(args: argparse.Namespace) -> int:
    from grader import checks

    for a in checks.ASSIGNMENTS.values():
        shown = [c for c in a.checks if args.hidden or c.visibility.value == "public"]
        print(f"{a.name} ({a.module}.py): {a.title} — {sum(c.points for c in shown):g} points")
        for c in shown:
            tag = " [hidden]" if c.visibility.value == "hidden" else ""
            print(f"  {c.id:<20} {c.points:>4g}  {c.name}{tag}")
    return 0
