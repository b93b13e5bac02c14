"""``grader release``: build the student bundle, or only the stubs (the repository's
``assignments/``). Wired into the ``grader`` command by :func:`register`; also runs as
``python -m grader.release``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``release`` subcommand to the ``grader`` command's subparsers."""
    p = sub.add_parser(
        "release", help="build the student bundle from the reference",
        description="Build the student bundle in OUTDIR: stub modules and notebooks made from "
                    "reference/ (solutions replaced by their markers' messages), the grader "
                    "without hidden checks, and fixtures recorded from the reference for the "
                    "self-check. With --stubs-only, write only the stub modules into OUTDIR "
                    "(how the repository's assignments/ is made).")
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("outdir", type=Path, help="where to write the bundle (or the stubs)")
    p.add_argument("--stubs-only", action="store_true",
                   help="write only the stub modules (e.g. into assignments/)")
    p.add_argument("--reference", type=Path, default=None, metavar="DIR",
                   help="the reference modules (default: reference/ of this repository)")
    p.add_argument("--no-fixtures", action="store_true",
                   help="do not record fixtures (the bundle's self-check will then not run)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle in OUTDIR")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the worker recording the fixtures")
    p.add_argument("--isolation", choices=["auto", "bwrap", "none"], default="auto")


def run(args: argparse.Namespace) -> int:
    from grader.release.bundle import REPO, ReleaseError, build, write_stubs

    reference = args.reference or REPO / "reference"
    if not reference.is_dir():
        print(f"grader: no reference modules at {reference}", file=sys.stderr)
        return 2
    try:
        if args.stubs_only:
            for path in write_stubs(args.outdir, reference):
                print(f"wrote {path}")
            return 0
        build(args.outdir, reference_dir=reference, fixtures=not args.no_fixtures,
              threads=args.threads or max(1, min(4, os.cpu_count() or 1)),
              isolation=args.isolation, force=args.force)
    except (ReleaseError, ValueError) as exc:
        print(f"grader release: {exc}", file=sys.stderr)
        return 2
    print(f"bundle written to {args.outdir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grader release", description=__doc__.splitlines()[0])
    _arguments(parser)
    return run(parser.parse_args(argv))
