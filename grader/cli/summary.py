"""``grader summary GRADEBOOK --out DIR``: the class summary of a batch (instructor page)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.cli.common import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grader summary``."""
    p = sub.add_parser("summary", help="the class summary of a batch: common mistakes, "
                                       "failure rates, curves, outliers, similar code",
                       description="Write summary.html (self-contained) and summary.md for "
                                   "the instructor, and print a short table.")
    p.add_argument("gradebook", type=Path, help="the batch's gradebook.sqlite (or its run folder)")
    p.add_argument("-o", "--out", type=Path, required=True, help="the folder to write into")
    p.add_argument("--run", type=int, default=None, metavar="ID",
                   help="summarise this run only (default: the grading that counts for each "
                        "student)")
    p.add_argument("--title", default="", help="the page's title")
    p.add_argument("--class-dir", type=Path, action="append", default=[], metavar="DIR",
                   help="where the submissions are (a folder per student), for the similarity "
                        "flags (default: where the batch found each one, or its staged "
                        "copy in the run folder)")
    p.add_argument("--stubs", type=Path, default=None, metavar="DIR",
                   help="the released stubs, not counted as shared code (default: "
                        "assignments/ when there is one here)")
    p.add_argument("--similarity-threshold", type=float, default=0.6, metavar="SHARE",
                   help="flag a pair when either file shares at least this much (default 0.6)")
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity flags")
    p.set_defaults(func=_summary)


def _summary(args: argparse.Namespace) -> int:
    from grader.cli.export import open_gradebook
    from grader.out.class_report import build, terminal, write

    if not 0 < args.similarity_threshold <= 1:
        raise UsageError("--similarity-threshold is a share between 0 and 1")
    book_path = args.gradebook / "gradebook.sqlite" if args.gradebook.is_dir() else args.gradebook
    stubs = args.stubs
    if stubs is None and Path("assignments").is_dir():
        stubs = Path("assignments")
    roots = [*args.class_dir, book_path.parent / ".staging"]
    with open_gradebook(args.gradebook) as book:
        if args.run is not None and args.run not in {r.id for r in book.runs()}:
            raise UsageError(f"no run {args.run} in {book_path}")
        page = build(book, args.run, title=args.title, similarity=not args.no_similarity,
                     roots=roots, stubs=stubs, threshold=args.similarity_threshold)
    if page.summary.students == 0:
        raise UsageError(f"{book_path} holds no gradings yet")
    paths = write(page, args.out)
    print(terminal(page))
    print("wrote " + ", ".join(str(p) for p in paths[:2])
          + (f" and {len(paths) - 2} side-by-side page(s)" if len(paths) > 2 else ""))
    return 0
