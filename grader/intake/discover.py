"""Finding a student's modules in a submission folder and saying clearly what is missing or broken.

Nothing here runs the student's code: a syntax check uses ``compile``, which only parses. A
module may also come from a notebook (``attention.ipynb``, or one notebook holding several
assignments): see :mod:`grader.intake.notebooks`; :meth:`Submission.prepare` runs those in the
worker and gives it their modules to import, before grading.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grader.intake.notebooks import Notebook
    from grader.isolation.client import WorkerClient

IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git", ".venv", "venv", "node_modules"}
MAX_SOURCE_BYTES = 2 * 2**20


@dataclass
class SourceFile:
    """One expected module of a submission. ``problem`` is empty when it can be imported."""

    module: str
    path: Path | None
    problem: str = ""
    notebook: Notebook | None = None  # the notebook that provides this module, if one does

    @property
    def display(self) -> str:
        """The file the student knows this module as (``attention.py``, ``gpt.ipynb``)."""
        return self.path.name if self.path is not None else f"{self.module}.py"

    def missing_message(self, name: str) -> str:
        """Why the graded ``name`` is not defined by this module (for a notebook: which cell)."""
        if self.notebook is not None:
            return self.notebook.missing_message(name)
        return f"{self.display} defines no `{name}`"


@dataclass
class Submission:
    """A submission folder: its expected modules and a hash of everything in it."""

    root: Path
    files: dict[str, SourceFile] = field(default_factory=dict)
    content_hash: str = ""
    # Notebooks that provide assignment modules (also those not asked for: others may import
    # them), and remarks on what was found, e.g. a notebook ignored because its module exists.
    notebooks: list[Notebook] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Every assignment module -> the names its checks import, in course order (given by the
    # caller, so that discovery knows what is graded without importing the checks).
    graded: dict[str, list[str]] = field(default_factory=dict)

    def usable(self, module: str) -> bool:
        f = self.files.get(module)
        return f is not None and not f.problem

    def prepare(self, worker: WorkerClient, *, cell_timeout: float = 60.0,
                total_timeout: float = 300.0) -> dict[str, Any]:
        """Run the notebooks the graded modules come from in ``worker`` and give it their
        modules; a notebook's problems become its assignments' problems. Returns a report for
        the results (empty when there are no notebooks)."""
        if not self.notebooks:
            return {}
        from grader.intake.notebooks import prepare

        report = prepare(worker, self, cell_timeout=cell_timeout, total_timeout=total_timeout)
        if self.notes:
            report["notes"] = list(self.notes)
        return report


def discover(root: Path, modules: list[str], graded: Mapping[str, Sequence[str]]) -> Submission:
    """Look for ``<module>.py`` for each module name in ``root``, and check each parses; a
    module that is not there may come from a notebook (read and analysed, not run).

    ``graded`` maps every assignment module (in course order) to the names its checks import:
    it tells which notebook provides which module, and which ``.py`` names are assignments.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder not found: {root}")
    sub = Submission(root=root.resolve(), content_hash=content_hash(root),
                     graded={m: list(names) for m, names in graded.items()})
    present = {p.name: p for p in root.iterdir() if p.is_file()}
    has_notebooks = any(n.endswith(".ipynb") for n in present)
    chosen = _notebooks(sub, present, modules) if has_notebooks else {}
    for module in modules:
        nb = chosen.get(module)
        if nb is not None:
            sub.files[module] = SourceFile(module, nb.path, nb.problem, notebook=nb)
            continue
        sub.files[module] = _examine(module, present, sub.graded)
        if sub.files[module].path is None and has_notebooks:
            sub.files[module].problem += _no_notebook(module, present, sub.graded)
    return sub


def _notebooks(sub: Submission, present: dict[str, Path], modules: list[str]):
    from grader.intake import notebooks

    every = list(dict.fromkeys([*sub.graded, *modules]))
    taken = {m for m in every if f"{m}.py" in present}
    found = [notebooks.read_notebook(present[n]) for n in sorted(present) if n.endswith(".ipynb")]
    chosen = notebooks.assign(found, every, taken, set(present), sub.graded)
    sub.notebooks = list({id(nb): nb for nb in chosen.values()}.values())
    for m in sorted(taken):
        if f"{m}.ipynb" in present:
            sub.notes.append(f"{m}.ipynb is not graded: {m}.py is there, and a module wins over "
                             f"a notebook (remove one of the two)")
    for nb in sub.notebooks:
        sub.notes.extend(nb.notes)
    return chosen


def _no_notebook(module: str, present: dict[str, Path],
                 graded: Mapping[str, Sequence[str]]) -> str:
    names = list(graded.get(module, []))
    books = ", ".join(sorted(n for n in present if n.endswith(".ipynb")))
    what = " or ".join(f"`{n}`" for n in names[:3]) or "its code"
    return f" (no {module}.ipynb either, and no notebook here ({books}) defines {what})"


def _examine(module: str, present: dict[str, Path],
             graded: Mapping[str, Sequence[str]]) -> SourceFile:
    name = f"{module}.py"
    path = present.get(name)
    if path is None:
        return SourceFile(module, None, _missing_message(name, list(present),
                                                         {f"{m}.py" for m in graded}))
    try:
        data = path.read_bytes()
    except OSError as exc:
        return SourceFile(module, path, f"{name} could not be read: {exc.strerror}")
    if len(data) > MAX_SOURCE_BYTES:
        return SourceFile(module, path, f"{name} is {len(data):,} bytes; the limit is "
                                        f"{MAX_SOURCE_BYTES:,} (is data pasted into it?)")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SourceFile(module, path, f"{name} is not UTF-8 text (byte {exc.start})")
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        where = f"line {exc.lineno}" + (f": `{line}`" if line else "")
        return SourceFile(module, path, f"{name} has a syntax error at {where} ({exc.msg})")
    except ValueError as exc:  # e.g. null bytes
        return SourceFile(module, path, f"{name} cannot be parsed: {exc}")
    return SourceFile(module, path)


def _missing_message(name: str, present: list[str], assignment_files: set[str]) -> str:
    if not present:
        return f"{name} is missing (the submission folder is empty)"
    lower = {p.lower(): p for p in present}
    if name.lower() in lower:
        return f"{name} is missing; found {lower[name.lower()]}: file names are case-sensitive"
    # Suggest only a .py file that is not itself one of the assignments' modules (attention.py
    # is no misspelling of training.py), and only a close one.
    candidates = [p for p in present if p.endswith(".py") and p not in assignment_files]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    if close:
        return f"{name} is missing; did you mean to name {close[0]} {name}?"
    return f"{name} is missing from the submission"


def content_hash(root: Path) -> str:
    """SHA-256 of the submission's files (relative names and bytes), ignoring caches."""
    h = hashlib.sha256()
    for path in sorted(_files(Path(root))):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable")
    return h.hexdigest()


def _files(root: Path):
    for path in root.rglob("*"):
        if any(part in IGNORED_DIRS for part in path.relative_to(root).parts):
            continue
        if path.is_file() and not path.is_symlink():
            yield path
