"""What a released student bundle carries for its self-check (see :mod:`grader.release`).

In the repository there is no ``bundle.json`` beside this module and everything here says "not a
bundle". In a bundle made by ``grader release``, ``grader/bundle.json`` describes the release
and ``grader/fixtures/`` holds the expected values recorded from the reference, so that
``grader run`` uses them by default and runs the public checks only (the hidden checks' code is
not in the bundle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INFO_FILE = "bundle.json"
FIXTURES_DIR = "fixtures"
HERE = Path(__file__).resolve().parent.parent  # the grader package: bundle.json sits there

NOTE = ("self-check: the public checks only, against the expected values released with the "
        "assignments; the hidden checks run when your instructor grades your submission")


def info() -> dict[str, Any] | None:
    """The release's description, or None outside a bundle."""
    path = HERE / INFO_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fixtures_dir() -> Path | None:
    """The bundle's fixtures folder (for :class:`~grader.checks.expected.StoredFixtures`), or
    None."""
    if info() is None:
        return None
    folder = HERE / FIXTURES_DIR
    return folder if folder.is_dir() else None
