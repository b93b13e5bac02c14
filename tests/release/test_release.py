"""`grader release`: stubs from the reference's markers (and `assignments/` is their output), the
student bundle (no solution line, no hidden check's code or expected values), and a released
bundle graded end to end without the reference."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bundle_helper import shared_bundle
from conftest import CORRECT, EXAMPLES, ROOT, settings

from grader.checks import ASSIGNMENTS, Context
from grader.checks.expected import LiveReference
from grader.grading import run_check
from grader.intake.bundle import NOTE
from grader.isolation.client import WorkerClient
from grader.model.results import Status, Visibility
from grader.release import render_stubs, solution_lines, stub_source
from grader.release.bundle import find_leaks, find_runs
from grader.release.stubs import MarkerError, regions

REFERENCE = ROOT / "reference"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return shared_bundle(tmp_path_factory)


def test_assignments_folder_is_the_release_of_the_reference():
    stubs = render_stubs(REFERENCE)
    have = {p.name: p.read_text() for p in (ROOT / "assignments").glob("*.py")}
    stale = sorted(n for n in stubs.keys() | have.keys() if stubs.get(n) != have.get(n))
    assert not stale, (f"assignments/ is out of date with reference/ ({', '.join(stale)}): run "
                       f"`python -m grader.release --stubs-only assignments`")


def test_markers_become_raises_with_their_messages():
    source = '''"""Thing (reference solution)."""

import math
import os

from .block import GPT

# BEGIN SOLUTION
_HELPER = 3
# END SOLUTION


def f(x):
    """Double x."""
    # BEGIN SOLUTION: Return twice x, as the docstring says; this message is long enough to be
    #: wrapped over several lines of the stub.
    return 2 * x * _HELPER / math.pi
    # END SOLUTION


class A:
    def g(self):
        y = 1
        # BEGIN SOLUTION
        return y
        # END SOLUTION
'''
    stub = stub_source(source, "thing", {"doc": "Assignment: thing.\n\nDo it.\n"})
    tree = ast.parse(stub)
    assert ast.get_docstring(tree) == "Assignment: thing.\n\nDo it."
    assert "_HELPER" not in stub and "2 * x" not in stub and "return y" not in stub
    assert "from block import GPT  # noqa: F401  (you will need it)" in stub
    assert "import math  # noqa: F401  (you will need it)" in stub
    raises = [ast.literal_eval(n.exc.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    assert raises == ["Return twice x, as the docstring says; this message is long enough to be "
                      "wrapped over several lines of the stub.",
                      "Implement A.g as its docstring describes."]
    assert all(len(line) <= 100 for line in stub.splitlines())
    assert "        y = 1\n        raise NotImplementedError(" in stub
    assert solution_lines(source) == ["_HELPER = 3", "return 2 * x * _HELPER / math.pi",
                                      "return y"]
    with pytest.raises(MarkerError, match="never closed"):
        regions("# BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(MarkerError, match="inside the region"):
        regions("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n")


def test_the_bundle_holds_stubs_notebooks_and_a_stripped_grader(bundle):
    assert {p.name: p.read_text() for p in (bundle / "assignments").glob("*.py")} == \
        render_stubs(REFERENCE)
    assert not (bundle / "grader" / "release").exists()
    info = json.loads((bundle / "grader" / "bundle.json").read_text())
    assert (bundle / "grader" / info["fixtures"]).is_file()
    for path in (bundle / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].cell_type == "markdown" and "grader run" in nb.cells[0].source
        assert nb.cells[-1].metadata["tags"] == ["skip-grading"]
        stub = (bundle / "assignments" / f"{path.stem}.py").read_text()
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert code.count("NotImplementedError(") == stub.count("NotImplementedError(") > 0
    # every hidden check is declared (listed as skipped) but its code is gone
    hidden = {c.id for a in ASSIGNMENTS.values() for c in a.checks
              if c.visibility is Visibility.HIDDEN}
    seen = set()
    for path in (bundle / "grader" / "checks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    any(k.arg == "hidden" for k in getattr(d, "keywords", []))
                    for d in node.decorator_list):
                seen.add(ast.literal_eval(node.decorator_list[0].args[0]))
                assert ast.get_docstring(node) is None
                assert isinstance(node.body[-1], ast.Raise) and len(node.body) == 2
    assert seen == hidden


def test_no_solution_line_and_no_hidden_check_code_is_in_the_bundle(bundle):
    from grader.release.bundle import _secrets
    from grader.release.strip import strip_package

    copy = bundle.parent / "unstripped-grader"
    if not copy.exists():
        shutil.copytree(ROOT / "grader", copy / "grader",
                        ignore=shutil.ignore_patterns("__pycache__", "release"))
    removed = strip_package(copy / "grader").removed_lines
    secrets = _secrets(REFERENCE, removed, bundle / "grader")
    assert find_leaks(bundle, secrets) == []
    assert find_runs(bundle, REFERENCE) == []
    # ... and the same search does find them where they are
    assert len(find_leaks(REFERENCE, secrets)) > 50
    assert find_leaks(ROOT / "grader", secrets)  # the unstripped grader: hidden checks, plants


def test_every_hidden_check_needs_values_that_the_bundle_does_not_carry(bundle):
    """Each hidden check (but the 124M one, which builds a 0.5 GB checkpoint first), run live,
    reads at least one expected value or input that is not in the bundle's fixtures (values a
    public check reads too may be there: e.g. the inputs both use)."""
    from safetensors import safe_open

    with safe_open(str(bundle / "grader" / "fixtures" / "fixtures.safetensors"), "pt") as f:
        stored = set(f.keys())
    with WorkerClient(CORRECT, settings()) as worker:
        for a in ASSIGNMENTS.values():
            for c in a.checks:
                if c.visibility is not Visibility.HIDDEN or c.id == "gpt2_124m":
                    continue
                live = LiveReference(record=True)
                res = run_check(c, Context(a.name, worker, live), c.points)
                assert res.status is Status.PASSED, (a.name, c.id, res.message)
                read = {f"{key}::{name}" for key, names in live._reads.items() for name in names}
                assert read - stored, (a.name, c.id, "runs entirely on released values")


def test_a_released_bundle_grades_end_to_end_without_the_reference(bundle, tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(EXAMPLES / "correct-einsum", sub)  # attention, causal_mask, block
    shutil.copy(bundle / "notebooks" / "training.ipynb", sub)  # an untouched stub notebook
    blocker = tmp_path / "blocker" / "reference"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no reference in a student bundle')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle), str(blocker.parent)])}
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "grader", "run", str(sub), "--json", str(out), "--threads", "1",
         "--color", "never", "-a", "attention", "-a", "causal_mask", "-a", "block",
         "-a", "training"],
        cwd=bundle, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert NOTE in done.stdout
    result = json.loads(out.read_text())
    assert result["environment"]["expected"] == "fixtures"
    assert result["environment"]["hidden_checks"] == "listed, not run"
    by = {a["name"]: a for a in result["assignments"]}
    for name in ("attention", "causal_mask", "block"):
        for c in by[name]["checks"]:
            wanted = "skipped" if c["visibility"] == "hidden" else "passed"
            assert c["status"] == wanted, (name, c["id"], c["message"])
    training = by["training"]
    assert training["source"] == "training.ipynb" and training["score"] < training["max_score"]
    messages = " ".join(c["message"] for c in training["checks"])
    assert "NotImplementedError: Return max_lr * (step + 1) / warmup_steps" in messages
    assert "training.ipynb, cell" in messages  # the raise points at the notebook's cell
    where = subprocess.run([sys.executable, "-c", "import grader; print(grader.__file__)"],
                           cwd=bundle, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(bundle))
