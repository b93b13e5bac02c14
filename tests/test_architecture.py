"""The house's arrows: no module imports against the flow (ARCHITECTURE.md).

Every ``grader`` module belongs to a stage with a rank; a module may import modules of its own
stage and of lower-ranked stages only. The nevers are stricter still: the untrusted worker
imports nothing of the trusted side, the results model imports nothing, and the outputs
(summary, reports, gradebook, exports) read the results model only. There is no list of
exceptions: an arrow against the flow is a failing test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "grader"

# Lowest first. Same rank: may not import each other.
RANKS = {
    "grader": 0,  # the package's own __init__: its version only
    "grader.model": 0,
    "grader.tolerance": 1,
    "grader.shared": 1,
    "grader.worker": 2,
    "grader.isolation": 2,
    "grader.intake": 3,
    "grader.diagnosis": 3,
    "grader.checks": 4,
    "grader.out": 5,
    "grader.grading": 6,
    "grader.batch": 7,
    "grader.release": 7,
    "grader.quiz": 7,
    "grader.cli": 8,
    "grader.__main__": 9,
}
# What a stage may import at all, whatever the ranks say.
NEVER_BEYOND = {
    "grader.model": set(),
    "grader.worker": {"grader.worker", "grader.shared"},
    "grader.shared": {"grader.shared"},
    "grader.tolerance": set(),
    "grader.out": {"grader", "grader.model", "grader.out"},
    "grader.diagnosis": {"grader.diagnosis", "grader.tolerance", "grader.model"},
}


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1].startswith("__") and parts[1] != "__main__":
        return "grader"  # an attribute of the package itself, e.g. __version__
    name = ".".join(parts[:2])
    if name not in RANKS:
        raise AssertionError(f"{module} is in no stage: add its folder to ARCHITECTURE.md and "
                             f"to RANKS in {Path(__file__).name}")
    return name


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every grader module the file imports (at any depth, TYPE_CHECKING included)."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}" if base == "grader" else base)
                      for a in node.names]
    return [(line, name) for line, name in found if name == "grader" or
            name.startswith("grader.")]


def violations(path: Path) -> list[str]:
    me = module_name(path)
    mine = stage(me)
    out = []
    for line, target in imports(path):
        theirs = stage(target) if target != "grader" else "grader"
        if theirs == mine:
            continue
        allowed = NEVER_BEYOND.get(mine)
        if allowed is not None and theirs not in allowed:
            out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {mine} never imports "
                       f"{target}")
        elif RANKS[theirs] >= RANKS[mine]:
            out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target} ({theirs}) is not "
                       f"below {mine}")
    return out


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_import_against_the_flow(path):
    assert violations(path) == []


def test_the_rule_catches_an_arrow_against_the_flow(tmp_path):
    """The test itself can fail: a report module importing the checks is caught, and so is a
    worker module importing trusted code from inside a function."""
    global PACKAGE
    fake = tmp_path / "grader"
    (fake / "out").mkdir(parents=True)
    bad = fake / "out" / "bad.py"
    bad.write_text("from grader.checks import ASSIGNMENTS\nfrom ..model import results\n")
    saved, PACKAGE = PACKAGE, fake
    try:
        assert violations(bad) == ["grader/out/bad.py:1: grader.out never imports grader.checks"]
        worker = fake / "worker"
        worker.mkdir()
        (worker / "leak.py").write_text("def f():\n    import grader.checks.expected\n")
        assert len(violations(worker / "leak.py")) == 1
    finally:
        PACKAGE = saved


def test_every_folder_is_a_stage():
    for folder in PACKAGE.iterdir():
        if folder.is_dir() and (folder / "__init__.py").exists():
            assert f"grader.{folder.name}" in RANKS, folder.name
