"""The ``grader`` command: a thin layer over the typed Python API (:func:`grader.grading.grade`
and friends), one module per subcommand.

Exit codes: 0 when grading ran (whatever the score), 2 when the grader itself could not run
(bad arguments, no such folder, no expected values available).

A new subcommand is a module with ``register(subparsers)``, listed in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys

from grader import __version__
from grader.cli.common import UsageError

__all__ = ["SUBCOMMANDS", "UsageError", "build_parser", "console", "main"]

# In the order `grader --help` lists them. A module that cannot be imported is left out: a
# student bundle carries no release tool, by design.
SUBCOMMANDS = (
    "grader.cli.run",
    "grader.cli.checks",
    "grader.cli.batch",
    "grader.quiz.cli",
    "grader.release.cli",
    "grader.cli.gradescope",
    "grader.cli.prairielearn",
    "grader.cli.export",
    "grader.cli.summary",
)


# The command each module of SUBCOMMANDS registers: `grader run ...` imports only the module
# of `run` (the quiz and release tools' imports cost ~50 ms that a grading does not need).
COMMANDS = {"run": "grader.cli.run", "checks": "grader.cli.checks", "batch": "grader.cli.batch",
            "quiz": "grader.quiz.cli", "release": "grader.release.cli",
            "gradescope": "grader.cli.gradescope", "prairielearn": "grader.cli.prairielearn",
            "export": "grader.cli.export", "summary": "grader.cli.summary"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``grader`` argument parser with every available subcommand (``only``: with just
    that command's)."""
    parser = argparse.ArgumentParser(prog="grader", description="The course grader for 'build a "
                                     "GPT from scratch'.")
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [COMMANDS[only]] if only in COMMANDS else SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``grader`` console script."""
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(given[0] if given else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"grader: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grader: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`grader checks | head`): not an error of ours. Point stdout at
        # /dev/null so that the final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def console() -> None:
    """The console script: :func:`main`, then an immediate end of the process.

    Once the output is written and every exit handler has run (temporary folders removed,
    workers already closed by their owners), the interpreter's own teardown only frees torch's
    objects one by one: ~0.5 s per ``grader run`` for nothing. The worker ends the same way.
    """
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
