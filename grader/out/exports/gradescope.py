"""Our results in Gradescope's autograder format, and the autograder zip that produces them.

Gradescope's contract (its "Autograder Specifications"), the parts we use
------------------------------------------------------------------------
* The zip holds, **at its root**, ``setup.sh`` (Bash, run once as root when the Docker image is
  built on Ubuntu: installs dependencies) and ``run_autograder`` (executable, any language with a
  ``#!`` line). The zip's contents are unpacked into ``/autograder/source``; ``run_autograder``
  is copied to ``/autograder/run_autograder`` and runs with the working directory ``/autograder``.
* Per submission, Gradescope puts the student's files into ``/autograder/submission`` (and
  ``/autograder/submission_metadata.json``: the users, the assignment, its due dates) and expects
  ``/autograder/results/results.json``. ``/autograder/results/stdout`` keeps what
  ``run_autograder`` printed, for the instructor only.
* ``results.json`` (every field optional, but a score must be given at the top level or on every
  test): ``score`` (float; overrides the sum of the tests), ``execution_time`` (seconds),
  ``output`` (text for the whole submission), ``output_format`` (``text``, ``html``,
  ``simple_format``, ``md`` or ``ansi``; also ``test_output_format`` and ``test_name_format``,
  the defaults of the tests), ``visibility`` and ``stdout_visibility`` (``hidden``,
  ``after_due_date``, ``after_published``, ``visible``), ``extra_data`` (stored, not shown),
  ``tests`` and ``leaderboard``.
* ``tests[]``: ``score``, ``max_score``, ``status`` (``passed`` or ``failed``: the icon; without
  it Gradescope infers one from the score), ``name`` (with ``name_format``), ``number`` (a
  string such as ``"1.2"``; ordering), ``output`` (with ``output_format``), ``tags`` (strings),
  ``visibility`` (as above; a test's setting overrides the top level's), ``extra_data``.
  ``after_published``: shown to students only once the instructor publishes the grades from the
  "Review Grades" page. While any test is hidden from them, students do not see their total.

Our mapping
-----------
One test per check, numbered ``<assignment>.<check>`` in grading order (1-based); a hidden check
gets ``visibility: after_published`` (students cannot probe hidden checks by resubmitting, and
see their points once grades are published) and its output says only its status unless
``reveal_hidden``; output is Markdown: the message, the likely mistake with the course's words,
the hint, and the facts (largest difference, where, shapes). ``status`` is ``passed`` for a
passed check and ``failed`` for a failure, an error or a timeout (the tags say which); a skipped
check counts towards nothing (``max_score`` 0). The student's printed output stays in stdout
(instructor only) unless ``stdout_visibility`` says otherwise. ``tests/out/test_export_lms.py``
validates what we write against a JSON schema written from the specification above
(:data:`RESULTS_SCHEMA`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grader import __version__
from grader.model.results import Status, SubmissionResult, Visibility
from grader.model.rootcause import root_causes
from grader.out.exports.feedback_text import feedback, inert, likely_mistake, start_here_lines

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
FORMATS = ("text", "html", "simple_format", "md", "ansi")

# The JSON schema of results.json, written from Gradescope's published specification (the
# module docstring). Strict where the specification is: unknown enum values, a non-numeric
# score, a test without a score when the top level has none.
_VIS = {"enum": list(VISIBILITIES)}
_FMT = {"enum": list(FORMATS)}
RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Gradescope autograder results.json",
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": _FMT,
        "test_output_format": _FMT,
        "test_name_format": _FMT,
        "visibility": _VIS,
        "stdout_visibility": _VIS,
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": _FMT,
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": _FMT,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": _VIS,
                    "extra_data": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "leaderboard": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "value"],
                "properties": {"name": {"type": "string"},
                               "value": {"type": ["number", "string"]},
                               "order": {"enum": ["asc", "desc"]}},
            },
        },
    },
    "additionalProperties": False,
    "anyOf": [
        {"required": ["score"]},
        {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}},
    ],
}


def to_gradescope(result: SubmissionResult, *, hidden_visibility: str = "after_published",
                  stdout_visibility: str = "hidden", reveal_hidden: bool = False,
                  note: str = "") -> dict[str, Any]:
    """``result`` as Gradescope's ``results.json`` (a dict ready for :func:`json.dumps`).

    ``hidden_visibility`` is the visibility of hidden checks (``after_published`` by default);
    ``reveal_hidden`` puts their full feedback into their output (students see it once the
    test is visible to them); ``note`` is added to the top-level output (e.g. the sandbox
    state).
    """
    if hidden_visibility not in VISIBILITIES or stdout_visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {VISIBILITIES}")
    tests = []
    causes = root_causes(result)
    for ai, a in enumerate(result.assignments, 1):
        for ci, c in enumerate(a.checks, 1):
            hidden = c.visibility is Visibility.HIDDEN
            fb = feedback(a, c, instructor=reveal_hidden, causes=causes)
            test: dict[str, Any] = {
                "name": f"{a.name}: {c.name}",
                "number": f"{ai}.{ci}",
                "score": _num(c.score if c.counts else 0.0),
                "max_score": _num(c.max_score if c.counts else 0.0),
                "output": fb.markdown(),
                "output_format": "md",
                "tags": _tags(a.name, c, reveal=reveal_hidden or not hidden),
                "visibility": hidden_visibility if hidden else "visible",
            }
            if c.status is not Status.SKIPPED:
                test["status"] = "passed" if c.passed else "failed"
            tests.append(test)
    return {
        "score": _num(result.score),
        "execution_time": round(result.seconds, 1),
        "output": _summary_markdown(result, note, start_here_lines(
            result, causes, instructor=reveal_hidden)),
        "output_format": "md",
        "test_output_format": "md",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": stdout_visibility,
        "extra_data": {"grader_version": result.grader_version,
                       "submission_id": result.submission_id,
                       "max_score": _num(result.max_score)},
        "tests": tests,
    }


def error_results(message: str) -> dict[str, Any]:
    """``results.json`` for a run in which the grader itself failed: no grade, and words for the
    student; the details go to stdout, which only the instructor sees."""
    return {"score": 0.0, "output": "The autograder could not grade this submission: "
                                    f"{message}\n\nThis is not a grade; your instructor can "
                                    "see the details.",
            "output_format": "md", "visibility": "visible", "stdout_visibility": "hidden",
            "tests": []}


def _tags(assignment: str, c, reveal: bool) -> list[str]:
    tags = [assignment, c.status.value]
    if c.visibility is Visibility.HIDDEN:
        tags.append("hidden")
    m = likely_mistake(c) if reveal else None  # a hidden check's diagnosis stays hidden
    if m:
        tags.append(f"mistake:{m['id']}")
    return tags


def _num(x: float) -> float:
    return float(round(x, 6))


def _summary_markdown(result: SubmissionResult, note: str, start: list[str]) -> str:
    lines = [f"**Score: {result.score:g} / {result.max_score:g}**", ""]
    if start:
        # The first thing to fix before the table: a bug in attention.py fails checks in every
        # later module, and a student reading the table top-down would chase those first.
        lines += [f"**{inert(start[0])}**", *(f"> {inert(x.strip())}" for x in start[1:]), ""]
    lines += [
             "| Assignment | Points |", "| --- | ---: |"]
    for a in result.assignments:
        lines.append(f"| {a.title or a.name} | {a.score:g} / {a.max_score:g} |")
    problems = [f"- **{a.name}**: {a.message}" for a in result.assignments if a.message]
    if problems:
        lines += ["", "Problems that stopped a whole assignment:", *problems]
    hidden = sum(c.visibility is Visibility.HIDDEN for _, c in result.all_checks())
    if hidden:
        lines += ["", f"{hidden} hidden check(s) are graded too; they show once your instructor "
                      "publishes the grades."]
    if note:
        lines += ["", note]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the zip

TORCH_PIN = "torch==2.13.0"
INSTRUCTOR_ONLY = ("copydetect",)

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive
apt-get update
# bubblewrap: the grader's sandbox for the student's code (used where the container allows it).
apt-get install -y --no-install-recommends bubblewrap ca-certificates || true
PY=""
for candidate in python3.13 python3.12 python3.11; do
  if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
done
if [ -z "$PY" ]; then
  apt-get install -y --no-install-recommends python3.11 python3.11-venv
  PY=python3.11
fi
if ! "$PY" -m venv /opt/grader-venv; then
  apt-get install -y --no-install-recommends "${PY}-venv"
  "$PY" -m venv /opt/grader-venv
fi
/opt/grader-venv/bin/python -m pip install --upgrade pip
# torch pinned: the version the grader's tolerances were measured with. TORCH_INDEX (in
# config.env) may name a CPU-only wheel index, which is much smaller than the default wheel.
source ./config.env
if [ -n "${TORCH_INDEX:-}" ]; then
  /opt/grader-venv/bin/python -m pip install "__TORCH__" --index-url "$TORCH_INDEX"
else
  /opt/grader-venv/bin/python -m pip install "__TORCH__"
fi
/opt/grader-venv/bin/python -m pip install -r requirements.txt
# Warm-up: import the grader once so the first submission does not pay for byte-compiling.
PYTHONPATH=/autograder/source/lib /opt/grader-venv/bin/python -c "import grader.cli, grader.grading"
# The reference solutions and the hidden checks: readable by root only.
chmod -R go-rwx /autograder/source
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission. GRADER_AUTOGRADER_ROOT moves the /autograder tree
# (for testing it locally); GRADER_PYTHON the interpreter.
set -u
ROOT="${GRADER_AUTOGRADER_ROOT:-/autograder}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$ROOT/source"
[ -d "$SOURCE/lib" ] || SOURCE="$HERE"
PY="${GRADER_PYTHON:-/opt/grader-venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
mkdir -p "$ROOT/results"
cd "$ROOT"
PYTHONPATH="$SOURCE/lib${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m grader gradescope run \
  --root "$ROOT" --config "$SOURCE/grader.json"
"""


def package_dirs() -> list[Path]:
    """The folders of the packages the autograder ships: ``grader`` and ``reference`` (the
    solutions, which only the trusted side reads)."""
    import grader

    dirs = [Path(grader.__file__).resolve().parent]
    spec = importlib.util.find_spec("reference")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the reference solutions (package `reference`) are not "
                                "installed here: build the autograder from the instructor's "
                                "checkout (pip install -e .)")
    dirs.append(Path(list(spec.submodule_search_locations)[0]).resolve())
    return dirs


def requirements() -> list[str]:
    """The grader's own runtime requirements except torch (pinned separately)."""
    try:
        reqs = importlib.metadata.requires("grader") or []
    except importlib.metadata.PackageNotFoundError:
        reqs = []
    out = []
    for r in reqs:
        if "extra ==" in r:
            continue
        name = r.split(";")[0].strip()
        if name.lower().startswith("torch") and not name.lower().startswith("torchvision"):
            continue
        if name.lower().startswith(INSTRUCTOR_ONLY):
            continue  # the class summary's tools: not needed to grade one submission
        out.append(name)
    return sorted(out)


def _files(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p == "__pycache__" or p.startswith(".") for p in rel.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            yield path


# A fixed timestamp: the same inputs give a byte-identical zip.
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    mode = 0o755 if executable else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    zf.writestr(info, data)


def build_autograder(out: Path | str, config: dict[str, Any], *,
                     torch_index: str = "") -> Path:
    """Write Gradescope's autograder zip to ``out``: ``setup.sh`` and ``run_autograder`` at the
    root, ``grader.json`` (``config``: assignments, weights, limits), ``requirements.txt``,
    ``config.env`` and the packages under ``lib/``. Deterministic: the same sources and config
    give the same bytes."""
    out = Path(out)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _add(zf, "setup.sh", SETUP_SH.replace("__TORCH__", TORCH_PIN).encode(), True)
        _add(zf, "run_autograder", RUN_AUTOGRADER.encode(), True)
        _add(zf, "grader.json", (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
        _add(zf, "requirements.txt", ("\n".join(requirements()) + "\n").encode())
        _add(zf, "config.env", f"TORCH_INDEX={_shell_quote(torch_index)}\n".encode())
        _add(zf, "VERSION", f"grader {__version__}\n".encode())
        for d in package_dirs():
            for path in _files(d):
                rel = Path("lib") / d.name / path.relative_to(d)
                _add(zf, rel.as_posix(), path.read_bytes())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)
    return out


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
