"""``grader quiz``: list, check, practise, take and grade the checkpoint quizzes.

The main ``grader`` command calls :func:`register` with its sub-parsers; ``python -m grader.quiz``
runs the same sub-commands on their own (:func:`main`). Every command returns an exit code: 0 on
success, 1 when banks or sheets are invalid, 2 for a usage error (an unknown bank, say).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
import time
from pathlib import Path

from grader.model.results import Status, SubmissionResult

from .audit import audit
from .bank import find_bank, load_banks, quizzes_dir
from .coverage import ITEMS_FILE, TARGET, check_passages, check_quotes, coverage, load_items
from .generators import GENERATORS
from .model import GRADED_KINDS
from .practice import run_practice
from .present import render_progress
from .scheduler import mastery_by_concept
from .schema import BankError
from .sheets import DEFAULT_SHEET_ID, SheetError, grade_sheet, write_sheet
from .store import Store, default_store_path

USAGE = """\
  grader quiz list [BANK]                       the banks (or one bank's questions)
  grader quiz check [--seeds N] [--course DIR]  prove every bank sound; report coverage
  grader quiz practice [BANK] [--tags T ...]    practise in the terminal (due reviews first)
  grader quiz progress [BANK]                   mastery per concept, reviews due
  grader quiz take BANK --out answers.yaml [--sheet-id ID]   write a blank answer sheet
  grader quiz grade answers.yaml [--json OUT]   grade sheets
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``quiz`` command (with its sub-commands) to the ``grader`` parser."""
    parser = subparsers.add_parser(
        "quiz", help="checkpoint quizzes: practise, take and grade",
        description="Checkpoint quizzes from the course texts.", epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quizzes", metavar="DIR",
                        help="directory of the YAML banks (default: $GRADER_QUIZZES, else the "
                        "repository's quizzes/)")
    sub = parser.add_subparsers(dest="quiz_command", metavar="QUIZ_COMMAND")

    p = sub.add_parser("list", parents=[common], help="list the banks, or one bank's questions",
                       description="Without BANK: every bank with its number of questions and "
                       "its title. With BANK (a name from that list, e.g. gpt-from-scratch): "
                       "its questions.")
    p.add_argument("bank", nargs="?", metavar="BANK",
                   help="a bank's name, as `grader quiz list` prints it (the YAML file's name)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", parents=[common], help="prove every bank sound over many seeds "
                       "and report coverage (exit 1 on problems)")
    p.add_argument("--seeds", type=int, default=40, metavar="N",
                   help="variants of each parameterised question, per stream (default 40)")
    p.add_argument("--course", metavar="DIR", help="the course texts: check that every course "
                   "item's quote is in its source file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("progress", parents=[common], help="mastery per concept and reviews due",
                       description="Per concept tag: the recent credit over its questions, how "
                       "many were answered, reviews due now (SM-2) and the next review.")
    p.add_argument("bank", nargs="?", metavar="BANK", help="a bank (default: all banks)")
    p.add_argument("--learner", metavar="NAME", help="whose history (default: $GRADER_LEARNER "
                   "or your user name)")
    p.add_argument("--store", metavar="PATH", help="the SQLite history (default: "
                   "$GRADER_QUIZ_STORE or ~/.grader/quiz.sqlite)")
    p.set_defaults(func=cmd_progress)

    p = sub.add_parser("practice", parents=[common], help="practise in the terminal",
                       description="One question at a time with immediate feedback; the next "
                       "questions are chosen by your weak spots.")
    p.add_argument("bank", nargs="?", metavar="BANK", help="a bank (default: all banks)")
    p.add_argument("--tags", nargs="+", metavar="TAG", help="only questions with any of these tags")
    p.add_argument("--learner", metavar="NAME", help="whose history (default: $GRADER_LEARNER "
                   "or your user name)")
    p.add_argument("--store", metavar="PATH", help="the SQLite history (default: "
                   "$GRADER_QUIZ_STORE or ~/.grader/quiz.sqlite)")
    p.add_argument("-n", type=int, default=10, metavar="N", help="questions (default 10)")
    p.add_argument("--seed", type=int, metavar="S", help="seed the choice of questions")
    p.set_defaults(func=cmd_practice)

    p = sub.add_parser("take", parents=[common], help="write a blank answer sheet",
                       description="Write a blank answer sheet with your own variants of the "
                       "questions of one or more banks (names as `grader quiz list` prints "
                       "them, e.g. gpt-from-scratch); fill it in, then `grader quiz grade` it.")
    p.add_argument("banks", nargs="+", metavar="BANK",
                   help="the banks' names, as `grader quiz list` prints them")
    p.add_argument("--out", required=True, metavar="PATH", help="the sheet to write (YAML)")
    p.add_argument("--learner", metavar="NAME")
    p.add_argument("--attempt", type=int, default=1, metavar="N", help="attempt number "
                   "(new numbers for each attempt; default 1)")
    p.add_argument("--sheet-id", default=DEFAULT_SHEET_ID, metavar="ID",
                   help="the instructor's salt for this sheet (e.g. midterm-2026): its variants "
                   "are drawn from its own seeds, never shown in practice")
    p.set_defaults(func=cmd_take)

    p = sub.add_parser("grade", parents=[common], help="grade answer sheets")
    p.add_argument("sheets", nargs="+", metavar="SHEET")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON: a file for one "
                   "sheet, a directory for several")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(func=cmd_grade)

    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grader.quiz", description="Checkpoint quizzes from the course texts.",
        epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


# ---------------------------------------------------------------------------- helpers


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _banks(args):
    try:
        return load_banks(args.quizzes)
    except BankError as exc:
        _err(f"The quiz banks in {quizzes_dir(args.quizzes)} are not valid:")
        for m in exc.messages:
            _err(f"  {m}")
        return None


def _learner(args) -> str:
    if getattr(args, "learner", None):
        return args.learner
    env = os.environ.get("GRADER_LEARNER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no user name on this system
        return "learner"


# ---------------------------------------------------------------------------- commands


def cmd_list(args) -> int:
    banks = _banks(args)
    if banks is None:
        return 1
    if args.bank:
        try:
            bank = find_bank(banks, args.bank)
        except KeyError as exc:
            _err(exc.args[0])
            return 2
        print(f"{bank.name}: {bank.title} ({len(bank.questions)} questions)")
        for q in bank.questions:
            kind = f"param:{q.generator}" if q.parameterised else q.kind
            print(f"  {q.id:<28} {kind:<28} {', '.join(q.tags)}")
        return 0
    width = max(len(b.name) for b in banks)
    print(f"{'bank':<{width}}  questions  parameterised  title")
    for b in banks:
        print(f"{b.name:<{width}}  {len(b.questions):>9}  {b.parameterised:>13}  {b.title}")
    total = sum(len(b.questions) for b in banks)
    print(f"{len(banks)} banks, {total} questions ({sum(b.parameterised for b in banks)} "
          f"parameterised). Practise: grader quiz practice BANK")
    return 0


def cmd_check(args) -> int:
    banks = _banks(args)
    if banks is None:
        return 1
    report = audit(banks, seeds=max(1, args.seeds))
    problems = list(report.problems)
    items_path = quizzes_dir(args.quizzes) / ITEMS_FILE
    cov = None
    if items_path.is_file():
        try:
            items = load_items(items_path)
        except BankError as exc:
            problems += exc.messages
        else:
            cov = coverage(banks, items)
            for qid, unknown in sorted(cov.unknown.items()):
                problems.append(f"question '{qid}': covers unknown course item(s) "
                                f"{', '.join(unknown)} (see {items_path})")
            if args.course:
                problems += check_quotes(items, args.course)
    if args.course:
        problems += check_passages(banks, args.course)
    if problems:
        _err("Some questions do not work:")
        for p in problems:
            _err(f"  {p}")
    total = sum(len(b.questions) for b in banks)
    generators = {q.generator for b in banks for q in b.questions if q.parameterised}
    print(f"{'ok' if not problems else 'FAILED'}: {len(banks)} banks, {total} questions "
          f"({sum(b.parameterised for b in banks)} parameterised, {len(generators)} of "
          f"{len(GENERATORS)} generators) in {quizzes_dir(args.quizzes)}")
    print(f"  {report.variants} variants over {args.seeds} seeds per stream: every own answer "
          f"accepted, {report.mistakes} listed mistakes rejected with their feedback, worked "
          f"solutions for every parameterised variant; {report.shared} variants shared by "
          f"practice and sheets; {report.redraws} unsound or other-stream draws redrawn "
          f"({report.seconds:.1f}s)")
    if cov is not None:
        print(f"  coverage: {len(cov.covered)} of {len(cov.items)} course items "
              f"({cov.share:.0%}, target {TARGET:.0%}) in {items_path.name}")
        if cov.missing:
            print("  not covered yet: " + ", ".join(i.id for i in cov.missing))
        if cov.share < TARGET:
            _err(f"Coverage {cov.share:.0%} is below the target {TARGET:.0%}.")
            return 1
    return 1 if problems else 0


def cmd_progress(args) -> int:
    banks = _banks(args)
    if banks is None:
        return 1
    if args.bank:
        try:
            banks = [find_bank(banks, args.bank)]
        except KeyError as exc:
            _err(exc.args[0])
            return 2
    items = {q.id: tuple(q.tags) for b in banks for q in b.questions}
    path = default_store_path(args.store)
    learner = _learner(args)
    try:
        with Store(path) as store:
            history = [a for a in store.history(learner) if a.question_id in items]
    except (OSError, sqlite3.Error) as exc:
        _err(f"Cannot open the practice history {path}: {exc} (use --store PATH)")
        return 1
    print(render_progress(mastery_by_concept(items, history, time.time()), learner,
                          len(history), time.time()))
    return 0


def cmd_practice(args) -> int:
    banks = _banks(args)
    if banks is None:
        return 1
    title = "all banks"
    if args.bank:
        try:
            bank = find_bank(banks, args.bank)
        except KeyError as exc:
            _err(exc.args[0])
            return 2
        banks, title = [bank], bank.name
    questions = [q for b in banks for q in b.questions]
    if args.tags:
        wanted = set(args.tags)
        questions = [q for q in questions if wanted & set(q.tags)]
        title += f" (tags: {', '.join(args.tags)})"
        if not questions:
            known = sorted({t for b in banks for q in b.questions for t in q.tags})
            _err(f"No questions with tags {', '.join(args.tags)}. Tags: {', '.join(known)}")
            return 2
    if args.n < 1:
        _err("-n must be at least 1")
        return 2
    path = default_store_path(args.store)
    try:
        store = Store(path)
    except (OSError, sqlite3.Error) as exc:
        _err(f"Cannot open the practice history {path}: {exc} (use --store PATH)")
        return 1
    with store:
        run_practice(questions, learner=_learner(args), store=store, n=args.n, seed=args.seed,
                     title=title)
    return 0


def cmd_take(args) -> int:
    banks = _banks(args)
    if banks is None:
        return 1
    try:
        chosen = [find_bank(banks, name) for name in args.banks]
    except KeyError as exc:
        _err(exc.args[0])
        return 2
    learner = _learner(args)
    if not args.sheet_id.strip() or any(ch.isspace() for ch in args.sheet_id):
        _err(f"--sheet-id must be one word (letters, digits, '-'), not {args.sheet_id!r}")
        return 2
    path = write_sheet(args.out, chosen, learner, args.attempt, args.sheet_id)
    n = sum(1 for b in chosen for q in b.questions if q.kind in GRADED_KINDS)
    print(f"Wrote {path}: {n} questions for {learner}, attempt {args.attempt} (sheet "
          f"{args.sheet_id}). Fill in the answers, then: grader quiz grade {path}")
    return 0


def render_summary(result: SubmissionResult, color: bool = False) -> str:
    """The terminal summary: :func:`grader.out.summary.render_terminal` when it exists."""
    try:
        from grader.out.summary import render_terminal
    except ImportError:
        return _fallback_summary(result)
    return render_terminal(result, color=color)


def _fallback_summary(result: SubmissionResult) -> str:
    marks = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.ERROR: "ERR "}
    lines = [f"Submission {result.submission}: {result.score:g}/{result.max_score:g} points"]
    for a in result.assignments:
        lines += ["", f"{a.name}  {a.score:g}/{a.max_score:g}"]
        for c in a.checks:
            lines.append(f"  {marks.get(c.status, c.status.value):<4} "
                         f"{c.score:g}/{c.max_score:g}  {c.name}")
            if c.status is not Status.PASSED and c.message:
                lines.append(f"         {' '.join(c.message.split())}")
    lines += ["", f"Total: {result.score:g}/{result.max_score:g}"]
    return "\n".join(lines)


def cmd_grade(args) -> int:
    banks = _banks(args)
    if banks is None:
        return 1
    color = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    results: list[tuple[Path, SubmissionResult]] = []
    failed = 0
    for name in args.sheets:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
            result = grade_sheet(text, banks, origin=str(path))
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"{path}: cannot read: {exc}")
            failed += 1
            continue
        except SheetError as exc:
            _err(str(exc))
            failed += 1
            continue
        results.append((path, result))
        if len(results) > 1:
            print()
        print(render_summary(result, color=color))
    if args.json and results:
        _write_json(args.json, results, many=len(args.sheets) > 1)
    if len(results) > 1:
        mean = sum(r.score for _, r in results) / len(results)
        print(f"\nGraded {len(results)} sheets; mean score {mean:.2f}/"
              f"{max(r.max_score for _, r in results):g}.")
    return 1 if failed else 0


def _write_json(where: str, results: list[tuple[Path, SubmissionResult]], many: bool) -> None:
    """One sheet: ``where`` is the file (unless it is a directory or ends with '/'); several
    sheets: a directory of ``<sheet name>.json``."""
    target = Path(where)
    if not many and not target.is_dir() and not where.endswith(("/", os.sep)):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(results[0][1].to_json() + "\n", encoding="utf-8")
        print(f"Wrote {target}")
        return
    target.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for path, result in results:
        stem = path.stem
        name, i = stem, 1
        while name in used:
            i += 1
            name = f"{stem}-{i}"
        used.add(name)
        (target / f"{name}.json").write_text(result.to_json() + "\n", encoding="utf-8")
    n = len(results)
    print(f"Wrote {n} result file{'s' if n != 1 else ''} to {target}/")
