"""Finding a student's modules in a submission folder and saying clearly what is missing or broken.

Nothing here runs the student's code: a syntax check uses ``compile``, which only parses. A
module may also come from a notebook (``attention.ipynb``, or one notebook holding several
assignments): see :mod:`grader.intake.notebooks`; :meth:`Submission.prepare` runs those in the
worker and gives it their modules to import, before grading.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import tokenize
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
    timed_out: bool = False  # the problem is code that ran past a time limit

    @property
    def display(self) -> str:
        """The file the student knows this module as (``attention.py``, ``gpt.ipynb``)."""
        return self.path.name if self.path is not None else f"{self.module}.py"

    def missing_message(self, name: str) -> str:
        """Why the graded ``name`` is not defined by this module (for a notebook: which cell)."""
        if self.notebook is not None:
            return self.notebook.missing_message(name)
        return f"{self.display} defines no `{name}`"

    def ran_out_of_time(self, name: str) -> bool:
        """Whether the graded ``name`` is missing because code ran past a time limit (a
        notebook's cell, or its total time)."""
        return self.notebook is not None and self.notebook.ran_out_of_time(name)


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


class NotASubmission(FileNotFoundError):
    """The path given is not a submission, and the message says precisely what to pass."""


@dataclass(frozen=True)
class Location:
    """Where a submission's files are: ``root`` is the folder the worker mounts and discovery
    reads; ``file`` is set when a single module or notebook was given (only it is graded, its
    folder's other files stay importable); ``note`` says where the files were found when that
    is not the path given ("" otherwise)."""

    root: Path
    file: Path | None = None
    note: str = ""


# How deep a submission's files may sit below the folder given (an LMS zip unpacked as
# nested/hw/attention.py is one level down; a zip of a folder of a folder, two).
MAX_NESTING = 2


def locate(path: Path, modules: Sequence[str] | None) -> Location:
    """Where the submission at ``path`` keeps its files, for the assignment ``modules``.

    ``path`` may be the submission folder; a folder whose files sit in one nested folder
    (found, and said in ``note``); or one module (``attention.py``) or notebook. A folder of
    student folders, or a file that is no assignment's, raises :class:`NotASubmission` with
    what to pass instead. A folder with no assignment file anywhere is returned as it is:
    discovery then says which files are missing. ``modules=None`` (the assignments are not
    known yet, e.g. before the checks are imported) takes any ``.py`` file for a module.
    """
    path = Path(path)
    if path.is_file():
        return _single_file(path, modules)
    if not path.is_dir():
        raise NotASubmission(f"submission folder not found: {path}")
    if _holds_assignment(path, modules):
        return Location(path)
    holders = _nested_holders(path, modules)
    if not holders:
        return Location(path)
    if len(holders) == 1:
        found = holders[0]
        rel = found.relative_to(path).as_posix()
        return Location(found, note=f"no assignment files directly in {path}; found them in "
                                    f"{rel}/ and graded that folder")
    tops = sorted({h.relative_to(path).parts[0] for h in holders})
    shown = ", ".join(tops[:4]) + (", ..." if len(tops) > 4 else "")
    if len(tops) > 1:
        raise NotASubmission(
            f"{path} looks like a folder of {len(tops)} student submissions ({shown}), not one "
            f"submission: grade them all with `grader batch {path}`, or one with "
            f"`grader run {path / tops[0]}`")
    listed = ", ".join(h.relative_to(path).as_posix() + "/" for h in holders[:4])
    raise NotASubmission(f"no assignment files directly in {path}; found them in several "
                         f"folders ({listed}): pass the one to grade")


def _assignment_file(name: str, modules: Sequence[str] | None) -> bool:
    stem, _, suffix = name.rpartition(".")
    return (suffix == "py" and (modules is None or stem in modules)) or suffix == "ipynb"


def _holds_assignment(folder: Path, modules: Sequence[str] | None) -> bool:
    try:
        return any(p.is_file() and _assignment_file(p.name, modules) for p in folder.iterdir())
    except OSError:
        return False


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                      and p.name not in IGNORED_DIRS and not p.name.startswith((".", "__")))
    except OSError:
        return []


def _nested_holders(root: Path, modules: Sequence[str] | None) -> list[Path]:
    """The folders below ``root`` (at most :data:`MAX_NESTING` levels) that hold assignment
    files; the search stops at the first level where it finds any."""
    level = [root]
    for _ in range(MAX_NESTING):
        level = [sub for folder in level for sub in _subfolders(folder)]
        found = [f for f in level if _holds_assignment(f, modules)]
        if found:
            return found
    return []


def _single_file(path: Path, modules: Sequence[str] | None) -> Location:
    name = path.name
    if name.endswith(".ipynb") or (name.endswith(".py") and (modules is None
                                                             or name[:-3] in modules)):
        return Location(path.parent, file=path,
                        note=f"grading the single file {name} (other files of its folder "
                             f"stay importable)")
    modules = list(modules or [])
    files = ", ".join(f"{m}.py" for m in modules) or "the assignment modules"
    if name.endswith(".py"):
        close = difflib.get_close_matches(name, [f"{m}.py" for m in modules], n=1, cutoff=0.75)
        better = f" (did you mean {close[0]}?)" if close else ""
        raise NotASubmission(f"{name} is not an assignment module{better}: pass the submission "
                             f"folder, or one of {files}, or a notebook")
    raise NotASubmission(f"{path} is a file, not a submission: pass the folder that holds "
                         f"your assignment files ({files}, or notebooks), or one of them")


def discover(root: Path, modules: list[str], graded: Mapping[str, Sequence[str]]) -> Submission:
    """Look for ``<module>.py`` for each module name in ``root``, and check each parses; a
    module that is not there may come from a notebook (read and analysed, not run).

    ``root`` may also be a folder whose files sit one or two folders down, or a single module
    or notebook file: see :func:`locate`. ``graded`` maps every assignment module (in course
    order) to the names its checks import: it tells which notebook provides which module, and
    which ``.py`` names are assignments.
    """
    where = locate(Path(root), list(dict.fromkeys([*graded, *modules])))
    root = where.root
    sub = Submission(root=root.resolve(),
                     content_hash=content_hash(where.file if where.file else root),
                     graded={m: list(names) for m, names in graded.items()})
    if where.note:
        sub.notes.append(where.note)
    if where.file is not None:
        present = {where.file.name: where.file}
    else:
        present = {p.name: p for p in root.iterdir() if p.is_file()}
    has_notebooks = any(n.endswith(".ipynb") for n in present)
    chosen = _notebooks(sub, present, modules) if has_notebooks else {}
    for module in modules:
        nb = chosen.get(module)
        if nb is not None:
            sub.files[module] = SourceFile(module, nb.path, nb.problem, notebook=nb)
            continue
        sub.files[module] = _examine(module, present, sub.graded)
        if sub.files[module].path is None and where.file is not None:
            sub.files[module].problem = (f"{module}.py is not part of this submission: only "
                                         f"{where.file.name} was given")
        elif sub.files[module].path is None and has_notebooks:
            sub.files[module].problem += _no_notebook(module, present, sub.graded)
    return sub


def provided(sub: Submission) -> list[str]:
    """The modules a submission has a file or notebook for, in the order asked (what grading a
    single file should be limited to)."""
    return [m for m, f in sub.files.items() if f.path is not None]


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
    # Decoded as the import system will (PEP 263): UTF-8, with or without the byte-order mark
    # some editors write (Windows Notepad), or the encoding a coding line declares.
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        data.decode(encoding)
    except SyntaxError as exc:  # bytes that are no UTF-8, or a coding line naming no codec
        if "invalid or missing encoding declaration" in str(exc.msg):
            return SourceFile(module, path, f"{name} is not UTF-8 text: save it as UTF-8")
        return SourceFile(module, path, f"{name} cannot be read as Python source: {exc.msg}")
    except UnicodeDecodeError as exc:
        return SourceFile(module, path, f"{name} is not {exc.encoding.upper()} text "
                                        f"(byte {exc.start})")
    try:
        compile(data, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        line = line if len(line) <= 80 else line[:77] + "..."
        where = (f" at line {exc.lineno}" if exc.lineno else "") + (f": `{line}`" if line else "")
        return SourceFile(module, path, f"{name} has a syntax error{where} ({exc.msg})")
    except ValueError as exc:  # e.g. null bytes
        return SourceFile(module, path, f"{name} cannot be parsed: {exc}")
    except (RecursionError, MemoryError):  # e.g. a million nested unary minuses
        return SourceFile(module, path, f"{name} is nested too deeply for Python to compile")
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
    """SHA-256 of the submission's files (relative names and bytes), ignoring caches; of the
    one file when ``root`` is a file."""
    h = hashlib.sha256()
    root = Path(root)
    paths = [root] if root.is_file() else sorted(_files(root))
    for path in paths:
        rel = path.name if path == root else path.relative_to(root).as_posix()
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
