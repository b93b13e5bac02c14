"""What decides a verdict, and what a student is graded on.

:func:`fingerprint_components` lists everything that decides a verdict (the grader's version and
code, torch, the declared checks and their weights, the expected values, the options that
matter), each part hashed: a run is resumed only under the same fingerprint.
:func:`declared_checks` lists the checks a student is graded on here, with their points.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.batch.options import BatchOptions

GRADER = Path(__file__).resolve().parents[1]
# What decides a verdict besides the checks and the reference: hashed into the fingerprint.
VERDICT_CODE = ("grading", "intake", "isolation", "worker", "shared", "model", "checks",
                "diagnosis", "tolerance.py")


def fingerprint_components(o: BatchOptions, opts: dict[str, Any], selected: list[str],
                           code: Sequence[str] = VERDICT_CODE) -> dict[str, Any]:
    """Everything that decides a verdict, each part hashed: two batches with the same
    components grade alike (threads, jobs and the executor do not decide verdicts). ``code``:
    the parts of the grader hashed, relative to its folder."""
    import torch

    from grader import __version__, checks

    declared = [[a, c.id, float(o.weights.get(a, {}).get(c.id, c.points)), c.visibility.value,
                 c.timeout] for a in selected for c in checks.ASSIGNMENTS[a].checks]
    if o.fixtures:
        fixture_file = Path(o.fixtures) / "fixtures.safetensors"
        expected = {"kind": "fixtures", "sha256": file_hash(fixture_file)}
    else:
        spec = importlib.util.find_spec("reference")
        ref_dir = Path(spec.origin).parent if spec and spec.origin else None
        expected = {"kind": "live", "reference": tree_hash([ref_dir] if ref_dir else [])}
    gpt2 = None
    if o.gpt2_weights:
        f = Path(o.gpt2_weights) / "model.safetensors"
        gpt2 = {"path": opts["gpt2_weights"], "size": f.stat().st_size if f.exists() else None}
    return {
        "grader_version": __version__,
        "torch": torch.__version__,
        "checks": declared,
        "expected": expected,
        "code": tree_hash([GRADER / p for p in code]),
        "options": {k: opts[k] for k in ("assignments", "include_hidden", "isolation",
                                         "call_timeout", "total_timeout", "import_timeout",
                                         "notebook_cell_timeout", "notebook_timeout")},
        "gpt2_weights": gpt2,
    }


def tree_hash(paths: Sequence[Path]) -> str:
    """A short hash of the names and bytes of ``paths`` (of a folder: its ``.py`` files)."""
    h = hashlib.sha256()
    for base in paths:
        files = [base] if base.is_file() else sorted(base.rglob("*.py")) if base.is_dir() else []
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:24]


def file_hash(path: Path) -> str:
    """The sha256 of one file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def declared_checks(selected: list[str], o: BatchOptions) -> list[tuple]:
    """Every check a student is graded on, with its points: what a submission that cannot be
    graded (or was not submitted) is listed with, so its maximum is everyone's."""
    from grader import checks
    from grader.model.results import Visibility

    rows = []
    for a in selected:
        spec = checks.ASSIGNMENTS[a]
        for c in spec.checks:
            if c.visibility is Visibility.HIDDEN and not o.include_hidden:
                continue
            if environment_skip(c, o):
                continue  # skipped for everyone here (e.g. no real GPT-2 weights)
            rows.append((a, spec.title, spec.course, c.id, c.name,
                         float(o.weights.get(a, {}).get(c.id, c.points)), c.visibility.value))
    return rows


def environment_skip(check: Any, o: BatchOptions) -> str | None:
    """Why ``check`` cannot run on this machine for anyone (e.g. no real GPT-2 weights), as the
    grading pipeline asks it (``Check.unavailable``); None when it can."""
    probe = getattr(check, "unavailable", None)
    if not callable(probe):
        return None
    from types import SimpleNamespace

    from grader.batch.jobs import check_settings

    opts = {"gpt2_weights": str(o.gpt2_weights) if o.gpt2_weights else None}
    try:
        return probe(SimpleNamespace(settings=check_settings(opts), assignment=""))
    except Exception:  # noqa: BLE001 - a probe that needs a real context: assume available
        return None
