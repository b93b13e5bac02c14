"""What the benchmark scripts share: the commands they time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def grader_command() -> str:
    """The ``grader`` script of this interpreter (as ``import torch`` is timed with it): a
    version manager's shim first on PATH (pyenv's costs ~0.13 s of shell per call) would be
    timed as the grader's cost."""
    beside = Path(sys.executable).parent / "grader"
    if beside.is_file():
        return str(beside)
    return shutil.which("grader") or sys.exit("the grader command is not installed")
