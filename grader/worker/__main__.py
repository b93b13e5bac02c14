"""Entry point of the worker process:
``python -I path/to/grader/worker/__main__.py --submission DIR``.

Run as a file under ``-I`` (no PYTHONPATH, no current directory, no script directory on the path),
it puts only the folder holding the ``grader`` package on the path, so that ``grader.worker``
resolves both on the host and inside the sandbox, where only this package is mounted.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from grader.worker.loop import main  # noqa: E402

sys.exit(main())
