"""``python -m grader ...``: the ``grader`` command (e.g. in a student bundle, not installed)."""

from grader.cli import console

console()
