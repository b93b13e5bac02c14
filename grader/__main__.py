"""``python -m grader ...``: the ``grader`` command (e.g. in a student bundle, not installed)."""

import sys

from grader.cli import main

sys.exit(main())
