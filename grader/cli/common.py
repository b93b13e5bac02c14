"""What every subcommand of the ``grader`` command shares."""

from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback, exit code 2."""
