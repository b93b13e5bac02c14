"""Every example submission graded as notebooks gives the verdicts and points of the same code
as modules, and the released fixtures give the verdicts of the live reference.

The baseline is the modules graded live: ``test_examples.py`` pins it down (each buggy example
fails exactly the checks of its ``expected.yaml``, the correct ones get full marks). Here each
example is converted, in one folder: every other module becomes a notebook (module -> notebook,
with nbformat), the others go there and back (notebook -> module); the folder is graded against
the fixtures of a release (``grader release``: public checks). Verdicts and points must be the
baseline's, so notebooks grade like modules and fixtures like the live reference, on every
example. ``correct`` is also graded live, hidden checks included, as ONE notebook holding all six
assignments.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml
from bundle_helper import shared_bundle
from conftest import CORRECT, EXAMPLES, failing, grade_folder

from grader.checks import ASSIGNMENTS
from grader.checks.expected import StoredFixtures
from grader.intake.notebooks import module_to_notebook, notebook_to_module
from grader.model.results import Status, Visibility

MODULES = [a.module for a in ASSIGNMENTS.values()]
FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and any(p.glob("*.py")))


def _expected_failures(folder: Path) -> tuple[set[str], set[str]]:
    """The checks the example must fail, and those whose verdict depends on the seed."""
    spec = folder / "expected.yaml"
    data = yaml.safe_load(spec.read_text()) if spec.exists() else {}
    return set(data.get("fails", [])), set(data.get("may_fail", []))


def _visibility(full_id: str) -> Visibility:
    name, check_id = full_id.split(".", 1)
    return next(c.visibility for c in ASSIGNMENTS[name].checks if c.id == check_id)


def _roundtrip(source: str, tmp: Path) -> str:
    path = tmp / "roundtrip.ipynb"
    nbformat.write(module_to_notebook(source), path)
    return notebook_to_module(path)


def _code(text: str) -> list[str]:
    """The lines of code of a module (no blank lines, no comments, no module docstring)."""
    body = text.split('"""', 2)[2] if text.lstrip().startswith('"""') else text
    return [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_notebook_to_module_gives_back_the_code_of_every_example(tmp_path):
    for path in sorted(EXAMPLES.glob("*/*.py")):
        source = path.read_text()
        assert _code(_roundtrip(source, tmp_path)) == _code(source), path


@pytest.mark.parametrize("name", FOLDERS)
def test_examples_as_notebooks_grade_like_modules_against_the_fixtures(name, tmp_path,
                                                                       tmp_path_factory):
    folder = EXAMPLES / name
    modules = [m for m in MODULES if (folder / f"{m}.py").exists()]
    sub = tmp_path / "sub"
    sub.mkdir()
    for i, m in enumerate(modules):
        source = (folder / f"{m}.py").read_text()
        if i % 2 == 0:
            nbformat.write(module_to_notebook(source), sub / f"{m}.ipynb")
        else:
            (sub / f"{m}.py").write_text(_roundtrip(source, tmp_path))
    bundle = shared_bundle(tmp_path_factory)
    result = grade_folder(sub, [a.name for a in ASSIGNMENTS.values() if a.module in modules],
                          include_hidden=False,
                          source=StoredFixtures(bundle / "grader" / "fixtures"))
    assert {a.source for a in result.assignments} == {
        f"{m}.ipynb" if i % 2 == 0 else f"{m}.py" for i, m in enumerate(modules)}
    must, maybe = _expected_failures(folder)
    fails = {f for f in must if _visibility(f) is Visibility.PUBLIC}
    got = failing(result) - maybe
    assert got == fails, [(a, c.id, c.message) for a, c in result.all_checks()
                          if f"{a}.{c.id}" in got ^ fails]
    lost = sum(c.max_score for a, c in result.all_checks()
               if f"{a}.{c.id}" in fails | (failing(result) & maybe))
    assert result.score == result.max_score - lost
    assert all(c.status is Status.SKIPPED for _, c in result.all_checks()
               if c.visibility is Visibility.HIDDEN)


def test_one_notebook_holding_every_assignment_grades_like_the_modules(tmp_path):
    """``gpt.ipynb``: the six modules of ``correct`` one after the other, without the imports
    between them (as a student writing everything in one notebook has it); graded live with
    the hidden checks. Each assignment is found by the names the notebook defines."""
    sibling = re.compile(rf"^from ({'|'.join(MODULES)}) import .*$", re.M)
    nb = nbformat.v4.new_notebook()
    for m in MODULES:
        source = sibling.sub("", (CORRECT / f"{m}.py").read_text())
        nb.cells.extend(module_to_notebook(source).cells)
    sub = tmp_path / "sub"
    sub.mkdir()
    nbformat.write(nb, sub / "gpt.ipynb")
    result = grade_folder(sub)
    bad = [(a, c.id, c.message) for a, c in result.all_checks()
           if c.status not in (Status.PASSED, Status.SKIPPED)]
    assert not bad
    assert result.score == result.max_score > 0
    assert {a.source for a in result.assignments} == {"gpt.ipynb"}
    assert result.environment["notebooks"]["gpt.ipynb"]["provides"] == MODULES
