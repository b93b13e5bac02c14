"""``python -m grader.release OUTDIR``: the same as ``grader release OUTDIR``."""

import sys

from .cli import main

sys.exit(main())
