"""``python -m grader.release OUTDIR``: the same as ``grader release OUTDIR``."""

import sys

from grader.release.cli import main

sys.exit(main())
