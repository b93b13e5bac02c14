"""One student bundle (``grader release``) per test session, shared by the pytest-xdist workers:
the first worker that asks builds it under a lock, the others wait and reuse it."""

from __future__ import annotations

import fcntl
from pathlib import Path

from grader.release import build


def shared_bundle(tmp_path_factory) -> Path:
    """The bundle's folder (built once per session, whichever worker comes first)."""
    root = tmp_path_factory.getbasetemp()
    if root.name.startswith("popen-gw"):  # xdist: one basetemp per worker, a common parent
        root = root.parent
    target = root / "release-bundle"
    with open(root / "release-bundle.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "grader" / "bundle.json").is_file():
            build(target, threads=1, force=True, log=lambda _: None)
    return target
