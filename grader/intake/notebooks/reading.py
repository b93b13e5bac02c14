"""Reading one notebook: bounded bytes, JSON, the nbformat schema, old formats converted, the
language, then steps 1-3 on each code cell. Problems become :attr:`Notebook.problem`, never
exceptions."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.intake.notebooks.cells import Cell, skip_reason
from grader.intake.notebooks.ipython import python_of
from grader.intake.notebooks.names import defined_names

MAX_NOTEBOOK_BYTES = 64 * 2**20  # outputs (pictures) can be large; the code is capped apart
MAX_CODE_BYTES = 2 * 2**20
# A notebook's JSON is a few levels deep (cells, outputs, widget state: ~10); the schema's
# validation and the conversion recurse into whatever is there.
MAX_NOTEBOOK_DEPTH = 64


@dataclass
class Notebook:
    """A notebook of the submission, read and analysed (never run here)."""

    path: Path
    cells: list[Cell] = field(default_factory=list)
    problem: str = ""  # why it cannot be graded at all ("" when it can)
    notes: list[str] = field(default_factory=list)
    module: str = ""  # the module the worker imports it as (set when it provides one)
    provides: list[str] = field(default_factory=list)  # assignment modules, in course order
    run: dict[str, Any] = field(default_factory=dict)  # the worker's report, once run
    timed_out: bool = False  # its run as a whole went past the notebook's total time

    @property
    def name(self) -> str:
        return self.path.name

    def code_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.runs]

    def names(self) -> set[str]:
        """Names bound by the cells that the grader runs."""
        return {n for c in self.code_cells() for n in c.defines}

    def where_defined(self, name: str) -> list[Cell]:
        return [c for c in self.cells if name in c.defines]

    def missing_message(self, name: str) -> str:
        """Why ``name`` is not in the module made of this notebook."""
        return self._missing(name)[0]

    def ran_out_of_time(self, name: str) -> bool:
        """Whether ``name`` is missing because code ran past a time limit: the cell that defines
        it, an earlier cell it needed, or the notebook's total time."""
        blamed = self._missing(name)[1]
        return self.timed_out or (blamed is not None and blamed.timed_out)

    def _missing(self, name: str) -> tuple[str, Cell | None]:
        """The message for a missing ``name`` and the cell whose failure it comes from."""
        cells = self.where_defined(name)
        ran = [c for c in cells if c.runs and c.outcome.get("status") in ("ok", None)]
        if ran:  # defined by a cell that ran; its own code must have failed before the name
            c = ran[0]
            return f"{self.name} does not define `{name}` when its {c.label()} runs", None
        for c in cells:
            if c.skipped:
                return (f"{self.name} defines `{name}` only in {c.label()}, which the grader does "
                        f"not run: {c.skipped}"), None
            if c.failure():
                why, cause = self._cause(c)
                return (f"{self.name}: `{name}` is defined in {c.label()}, which "
                        f"{c.failure()}{why}"), cause or c
        return f"{self.name} defines no `{name}`", None

    def _cause(self, cell: Cell) -> tuple[str, Cell | None]:
        """For a NameError, the earlier cell that should have defined the name, if it failed."""
        o = cell.outcome
        found = re.search(r"name '(\w+)' is not defined", o.get("message", ""))
        if o.get("type") != "NameError" or not found:
            return "", None
        for c in self.where_defined(found.group(1)):
            if c.index < cell.index and (c.skipped or c.failure()):
                return f" (`{found.group(1)}` comes from {c.label()}, which " + (
                    f"the grader does not run: {c.skipped})" if c.skipped
                    else f"{c.failure()})"), c
        return "", None

    def failures(self) -> list[str]:
        return [f"{self.name}, {c.jupyter_label()} {c.failure()}" for c in self.cells
                if c.runs and c.outcome.get("status") not in (None, "ok")]


def read_notebook(path: Path) -> Notebook:
    """Read and analyse ``path``; problems become :attr:`Notebook.problem`, never exceptions."""
    nb = Notebook(path=Path(path))
    name = nb.name
    try:
        data = nb.path.read_bytes()
    except OSError as exc:
        nb.problem = f"{name} could not be read: {exc.strerror}"
        return nb
    if len(data) > MAX_NOTEBOOK_BYTES:
        nb.problem = (f"{name} is {len(data):,} bytes; the limit is {MAX_NOTEBOOK_BYTES:,} "
                      f"(clear the outputs: Kernel > Restart & Clear Output, then save)")
        return nb
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        nb.problem = f"{name} is not UTF-8 text (byte {exc.start}): is it really a notebook?"
        return nb
    except json.JSONDecodeError as exc:
        nb.problem = (f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                      f"{exc.msg}): was it saved completely? Open it in Jupyter and save it "
                      f"again, or export your code to {nb.path.stem}.py")
        return nb
    except RecursionError:
        nb.problem = f"{name} is JSON nested thousands of levels deep: it is not a notebook"
        return nb
    depth = _depth(raw)
    if depth > MAX_NOTEBOOK_DEPTH:
        nb.problem = (f"{name} is JSON nested more than {MAX_NOTEBOOK_DEPTH} levels deep (a "
                      f"notebook has about 10): it is not a notebook Jupyter saved")
        return nb
    if not isinstance(raw, dict) or not ("cells" in raw or "worksheets" in raw):
        nb.problem = f"{name} is JSON but not a Jupyter notebook (it has no cells)"
        return nb
    version = raw.get("nbformat")
    import nbformat

    if version == 4:
        node = nbformat.from_dict(raw)
    elif isinstance(version, int) and version < 4:
        try:
            node = nbformat.reads(json.dumps(raw), as_version=4)
        except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for old files
            nb.problem = (f"{name} uses the old notebook format v{version}, which could not be "
                          f"converted ({type(exc).__name__}: {exc}); open it in a current "
                          f"Jupyter and save it again")
            return nb
        nb.notes.append(f"{name} uses the old notebook format v{version}; the grader converted "
                        f"it to v4")
    else:
        nb.problem = (f"{name} declares notebook format {version!r}, which this grader does not "
                      f"read (it reads v4, and converts v1-v3)")
        return nb
    problem = schema_problem(node)
    if problem:
        nb.problem = (f"{name} is not a valid notebook ({problem}); open it in Jupyter and save "
                      f"it again, or export your code to {nb.path.stem}.py")
        return nb
    language = notebook_language(node)
    if language.lower() not in ("python", "python3", "ipython", "ipython3"):
        nb.problem = f"{name} is a {language} notebook; the assignments are graded in Python"
        return nb
    size = 0
    for index, raw_cell in enumerate(node.get("cells", [])):
        if raw_cell.get("cell_type") != "code":
            continue
        source = raw_cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        size += len(source.encode())
        count = raw_cell.get("execution_count")
        cell = Cell(index=index, source=source, code_number=len(nb.cells) + 1,
                    execution_count=count if type(count) is int else None)
        cell.skipped = skip_reason(raw_cell)
        if not cell.skipped:
            cell.python, cell.skipped, cell.notes = python_of(source)
        code = cell.python or _plain(source)
        cell.defines, cell.binds = defined_names(code), defined_names(code, imports=False)
        nb.cells.append(cell)
    if size > MAX_CODE_BYTES:
        nb.problem = f"{name} holds {size:,} bytes of code; the limit is {MAX_CODE_BYTES:,}"
    return nb


def schema_problem(node: Any) -> str:
    """Where a v4 notebook breaks the nbformat schema, in a few words ("" when it does not).
    Missing cell ids (an older 4.x writer) are not a problem: nbformat fills them."""
    import nbformat
    from nbformat.validator import ValidationError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. missing cell ids: nbformat fills them
            nbformat.validate(node)
    except ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", []) or [])
        return f"{where or 'the notebook'}: {str(getattr(exc, 'message', exc))[:200]}"
    except Exception as exc:  # noqa: BLE001 - a validator error on hostile input is a problem
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return ""


def notebook_language(node: Any) -> str:
    """The notebook's language from its metadata (default Python), whatever shape the metadata
    has: a malformed ``kernelspec`` (a string, a list) is no language, not a crash."""
    meta = node.get("metadata") if isinstance(node, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    for key, field_name in (("kernelspec", "language"), ("language_info", "name")):
        value = meta.get(key)
        if isinstance(value, dict) and isinstance(value.get(field_name), str) \
                and value[field_name].strip():
            return value[field_name].strip()
    return "python"


def _plain(source: str) -> str:
    """Best-effort Python of a cell the grader skips (to say where a name would have been)."""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                     for ln in source.splitlines())


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar: 0), without recursion, and
    counting no further than one past :data:`MAX_NOTEBOOK_DEPTH`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_NOTEBOOK_DEPTH:
                return d
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest
