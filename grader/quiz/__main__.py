"""``python -m grader.quiz ...``: the quiz commands without the main ``grader`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
