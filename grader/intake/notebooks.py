"""Notebooks as submissions: read them, say which assignments they hold, run them, make modules.

The checks and the worker only know modules: ``Session.module("attention")`` imports
``attention.py``. A notebook therefore becomes a module, in three steps:

1. **Read** (here, on the trusted side; nothing of the student's runs): :func:`read_notebook`
   parses the file with nbformat (an old v3 notebook is converted to v4; invalid JSON, a newer or
   unconvertible format, or a notebook for another language gets a message). Each code cell is
   turned into plain Python by IPython's own input transformers (:func:`python_of`): line magics
   become what they mean when graded (``%time x = f()`` runs ``x = f()``, ``%run a.ipynb``
   imports ``a``, ``%timeit``, ``%matplotlib``, ``%pip`` and the like do nothing), cells under
   ``%%time``/``%%capture`` run their body, other cell magics (``%%bash``, ``%%html``...) and
   shell escapes (``!pip install``, ``x = !ls``) are never run. Line numbers are kept, so errors
   point at the student's own lines. Cells tagged ``skip-grading`` (or a first line
   ``# skip-grading``; see :data:`SKIP_TAGS`) are left out: long training runs, plots.
2. **Run** (in the worker, inside its isolation): the worker's ``notebook`` task executes the
   cells in a Jupyter kernel with nbclient, with a per-cell and a total timeout, and reports each
   cell's outcome (:mod:`grader.worker.notebook`). A cell that raises is reported and the next
   cells still run; a cell past its timeout or that kills the kernel is reported, and a new
   kernel replays the cells that worked and goes on.
3. **Import**: :func:`module_source` writes the cells that ran (those that raised included, their
   exception caught, so the module holds what the kernel held; those that timed out or killed the
   kernel left out) as a module in the worker's ``modules`` folder. Each cell is compiled under
   the name ``"<notebook>, cell <n>"``, so a traceback reads ``attention.ipynb, cell 5, line 3``.
   The worker imports it by name as it imports any module.

Which assignment a notebook provides: ``attention.ipynb`` provides ``attention`` (when there is no
``attention.py``: a module always wins over a notebook); a notebook with another name (``gpt.ipynb``
holding the whole course) provides every assignment whose graded names it defines, found by
parsing its cells with :mod:`ast` (never by running them). The other modules it provides are
aliases of its module, so ``block.GPTConfig`` and ``kv_cache``'s view of it are the same class.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grader.intake.discover import Submission
    from grader.isolation.client import WorkerClient

MAX_NOTEBOOK_BYTES = 64 * 2**20  # outputs (pictures) can be large; the code is capped apart
MAX_CODE_BYTES = 2 * 2**20

# Cell tags that mean "do not grade this cell" (compared lower-case, with "_" and spaces as "-").
SKIP_TAGS = frozenset({
    "skip-grading", "skip-grader", "skip-grade", "grader-skip", "no-grading", "no-grade",
    "nograde", "nograding", "not-graded", "ungraded", "skip-execution", "skip",
})
# The same, as a comment on a cell's first line (for editors without a tag UI, e.g. Colab).
_SKIP_COMMENT = re.compile(
    r"#\s*(skip[-_ ]?grad(ing|e|er)|grader[-_ :]+skip|no[-_ ]?grad(e|ing)|not[-_ ]graded)\b",
    re.I)

# Cell magics whose body is Python that runs in the user's namespace: the body is graded.
_BODY_MAGICS = frozenset({"time", "capture", "prun"})
# Line magics that run their argument as a statement (``%time x = f()`` defines ``x``).
_STATEMENT_MAGICS = frozenset({"time", "prun"})


# --------------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One code cell: what the student wrote, and the Python the grader runs instead."""

    index: int  # position in the notebook, 0-based (markdown cells count)
    source: str
    python: str = ""
    skipped: str = ""  # why the grader does not run it ("" when it does)
    defines: set[str] = field(default_factory=set)  # top-level names it binds, imports included
    binds: set[str] = field(default_factory=set)  # the same without imports: what it provides
    notes: list[str] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)  # from the run, when there was one
    code_number: int = 0  # 1-based among the code cells only, as Jupyter users count them
    execution_count: int | None = None  # the "In [n]" the file stores, if it was run

    def jupyter_label(self) -> str:
        """The cell as a Jupyter user finds it: "code cell 3 (In [7], `x = f()`)"."""
        seen = f"In [{self.execution_count}], " if self.execution_count else ""
        return f"code cell {self.code_number or self.number} ({seen}`{self.first_line}`)"

    @property
    def number(self) -> int:
        """The cell's number as the student counts: 1-based, markdown cells included."""
        return self.index + 1

    @property
    def first_line(self) -> str:
        line = next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")
        return line if len(line) <= 60 else line[:57] + "..."

    def label(self) -> str:
        return f"cell {self.number} (`{self.first_line}`)"

    @property
    def runs(self) -> bool:
        return not self.skipped and bool(self.python.strip())

    def failure(self) -> str:
        """What went wrong when this cell ran, in words ("" if nothing did)."""
        o = self.outcome
        status = o.get("status")
        if status == "error":
            line = f" at line {o['line']}" if o.get("line") else ""
            return f"raised {o.get('type', 'an error')}{line}: {o.get('message', '')}".rstrip(": ")
        if status == "timeout":
            return f"ran past its time limit of {o.get('timeout', '?')} s"
        if status == "died":
            return f"stopped the kernel ({o.get('message', 'it died')})"
        if status == "not_run":
            return "did not run" + (f" ({o['reason']})" if o.get("reason") else "")
        return ""


def skip_reason(cell: Any) -> str:
    """Why a cell is tagged as not for grading ("" if it is not)."""
    tags = cell.get("metadata", {}).get("tags", []) or []
    for tag in tags if isinstance(tags, list) else []:
        if re.sub(r"[\s_]+", "-", str(tag).strip().lower()) in SKIP_TAGS:
            return f"it is tagged `{tag}`"
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    if _SKIP_COMMENT.match(first):
        return f"its first line is `{first[:40]}`"
    return ""


# A line IPython would transform: a magic or shell escape, one assigned, help (``x?``), an
# escaped call (``/f x``). Lines inside strings may match too: then IPython decides.
_IPYTHON_SYNTAX = re.compile(r"^\s*([%!]|[\w.]+\s*=\s*[%!]|[/;,]\w|\?)|\?\s*$", re.M)
_TRANSFORMER = None


def _transform(source: str) -> str:
    """IPython's own transformation of a cell into Python, keeping line numbers.

    IPython re-tokenizes the whole cell for every escape it rewrites (quadratic: minutes for a
    legal 2 MB cell of magics). An escape never spans more than its logical line, so the cell is
    cut into logical lines and only those holding IPython syntax are transformed, each alone
    (dedented, then indented back): linear in the cell."""
    global _TRANSFORMER
    if _TRANSFORMER is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _TRANSFORMER = TransformerManager()
    lines = source.splitlines(keepends=True)
    out = []
    for a, b in _logical_lines(lines):
        group = lines[a:b]
        if not any(_IPYTHON_SYNTAX.search(ln) for ln in group):
            out += group
            continue
        text = "".join(group)
        indent = re.match(r"[ \t]*", group[0]).group(0)
        if indent and all(ln.startswith(indent) or not ln.strip() for ln in group):
            body = "".join(ln[len(indent):] if ln.strip() else ln for ln in group)
            done = _transform_chunk(body)
            out.append("".join(indent + ln if ln.strip() else ln
                               for ln in done.splitlines(keepends=True)))
        else:
            out.append(_transform_chunk(text))
    return "".join(out)


def _logical_lines(lines: list[str]) -> list[tuple[int, int]]:
    """Ranges of physical lines forming one logical line each (brackets, strings and
    backslashes joined). If the cell cannot be tokenized, the whole cell when short, else each
    physical line alone."""
    import io
    import tokenize

    # Escapes are not Python: tokenize a copy where they are `pass` (same indentation).
    plain = "".join(re.sub(r"^(\s*)(?:[\w.]+\s*=\s*)?[%!/;,?].*?(\r?\n?)$", r"\1pass\2", ln)
                    if _IPYTHON_SYNTAX.match(ln) else ln for ln in lines)
    ranges, first = [], 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(plain).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT) and \
                    tok.end[0] > first:
                if tok.type == tokenize.COMMENT:
                    continue
                ranges.append((first, tok.end[0]))
                first = tok.end[0]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        if len(lines) <= 200:
            return [(0, len(lines))]
        return [(i, i + 1) for i in range(len(lines))]
    if first < len(lines):
        ranges.append((first, len(lines)))
    return ranges


def _transform_chunk(source: str) -> str:
    lines = source.splitlines()
    leading = 0
    while leading < len(lines) and not lines[leading].strip():
        leading += 1  # IPython drops leading blank lines: put them back
    try:
        out = _TRANSFORMER.transform_cell(source)
    except Exception:  # noqa: BLE001 - e.g. a tokenizer error: the kernel will report it
        return source
    out = "\n" * leading + out
    # Keep the chunk's line count exactly (IPython may drop or add a trailing newline).
    want = source.count("\n") + (0 if source.endswith("\n") or not source else 1)
    have = out.count("\n") + (0 if out.endswith("\n") or not out else 1)
    if have != want:
        return source if have > want else out.rstrip("\n") + "\n" * (want - have + 1)
    return out if source.endswith("\n") else out.rstrip("\n")


def python_of(source: str) -> tuple[str, str, list[str]]:
    """``(python, skip_reason, notes)`` of a code cell's source (see the module docstring)."""
    lines = source.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name = lines[first].lstrip()[2:].split(maxsplit=1)[0] if lines[first].strip() != "%%" \
            else ""
        if name not in _BODY_MAGICS:
            return "", f"it is a `%%{name}` cell", []
        body = "\n" * (first + 1) + "\n".join(lines[first + 1:])
        python, _, notes = python_of(body)
        return python, "", [f"`%%{name}`: its body is graded", *notes]
    if not _IPYTHON_SYNTAX.search(source):
        return source, "", []  # plain Python: no need for IPython (0.5 s to import)
    python = _transform(source)
    return _neutralise(python)


def _neutralise(python: str) -> tuple[str, str, list[str]]:
    """Replace IPython calls (magics, shell escapes) by what they mean when graded."""
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return python, "", []
    edits: list[tuple[ast.AST, str, bool]] = []  # (node, replacement, is_statement)
    notes: list[str] = []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        call = _ipython_call(node)
        if call is None:
            continue
        method, args = call
        statement = isinstance(parents.get(node), ast.Expr)
        target = parents[node] if statement else node
        replacement, note = _meaning(method, args, statement)
        edits.append((target, replacement, statement))
        if note:
            notes.append(note)
    return _splice(python, edits), "", notes


def _ipython_call(node: ast.AST) -> tuple[str, list[str]] | None:
    """``(method, string args)`` of ``get_ipython().method('...', ...)``, else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
            and owner.func.id == "get_ipython" and not owner.args):
        return None
    args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else ""
            for a in node.args]
    return node.func.attr, args


def _meaning(method: str, args: list[str], statement: bool) -> tuple[str, str]:
    """What an IPython call becomes when graded, and a note for the student."""
    if method in ("system", "getoutput"):
        cmd = args[0] if args else ""
        return ("pass" if statement else "[]"), f"shell escape `!{cmd[:40]}` not run"
    if method == "magic" and args:  # the old spelling: get_ipython().magic("time x = 1")
        name, _, rest = args[0].lstrip("%").partition(" ")
        method, args = "run_line_magic", [name, rest]
    if method != "run_line_magic" or not args:
        return ("pass" if statement else "None"), f"`get_ipython().{method}` not run"
    name, arg = args[0], (args[1] if len(args) > 1 else "")
    if name in _STATEMENT_MAGICS and arg.strip():
        try:
            parsed = ast.parse(arg.strip())
        except SyntaxError:
            parsed = None
        if parsed is not None and len(arg.strip().splitlines()) == 1:
            if statement:
                return arg.strip(), ""
            if len(parsed.body) == 1 and isinstance(parsed.body[0], ast.Expr):
                return f"({arg.strip()})", ""
    if name == "run" and arg.strip():
        target = Path(arg.split()[-1]).name
        stem = target.rsplit(".", 1)[0] if target.endswith((".py", ".ipynb")) else target
        if stem.isidentifier() and not keyword.iskeyword(stem) and statement:
            return f"from {stem} import *", f"`%run {target}` imports {stem}"
    return ("pass" if statement else "None"), f"`%{name}` not run when graded"


def _splice(text: str, edits: list[tuple[ast.AST, str, bool]]) -> str:
    """Apply replacements of AST nodes' source spans, keeping the number of lines.

    Linear in the text and the edits (a 2 MB cell of magics is legal): line offsets are
    computed once, and the result is joined from pieces instead of re-slicing per edit."""
    if not edits:
        return text
    lines = text.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        line = lines[lineno - 1]
        return starts[lineno - 1] + (col if line.isascii() else
                                     len(line.encode()[:col].decode(errors="ignore")))

    spans = []
    for node, replacement, _ in edits:
        start = offset(node.lineno, node.col_offset)
        end = offset(node.end_lineno, node.end_col_offset)
        extra = text.count("\n", start, end)
        spans.append((start, end, replacement + "\n" * extra if extra else replacement))
    spans.sort()
    pieces, last = [], 0
    for start, end, replacement in spans:
        if start < last:
            continue  # nested in a replaced node
        pieces += [text[last:start], replacement]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def defined_names(python: str, imports: bool = True) -> set[str]:
    """Top-level names a cell binds: defs, classes, assignments and (with ``imports``) imports,
    also inside top-level ``if``/``try``/``with``/``for``. Of unparseable code, the names of
    the ``def`` and ``class`` lines."""
    try:
        tree = ast.parse(python)
    except (SyntaxError, ValueError):
        return {m.group(2) for m in re.finditer(r"^(def|class)\s+(\w+)", python, re.M)}
    names: set[str] = set()

    def targets(t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            names.add(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                targets(e)
        elif isinstance(t, ast.Starred):
            targets(t.value)

    def visit(body: list[ast.stmt]) -> None:
        for st in body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(st.name)
            elif isinstance(st, ast.Assign):
                for t in st.targets:
                    targets(t)
            elif isinstance(st, (ast.AnnAssign, ast.AugAssign)):
                targets(st.target)
            elif isinstance(st, (ast.Import, ast.ImportFrom)) and imports:
                for a in st.names:
                    if a.name != "*":
                        names.add(a.asname or a.name.split(".")[0])
            elif isinstance(st, (ast.For, ast.AsyncFor)):
                targets(st.target)
                visit(st.body + st.orelse)
            for part in ("body", "orelse", "finalbody", "handlers"):
                if isinstance(st, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.While)) \
                        and hasattr(st, part):
                    inner = getattr(st, part)
                    visit([h for x in inner for h in (x.body if isinstance(x, ast.ExceptHandler)
                                                       else [x])])

    visit(tree.body)
    return names


# ----------------------------------------------------------------------------- notebooks


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
        cells = self.where_defined(name)
        ran = [c for c in cells if c.runs and c.outcome.get("status") in ("ok", None)]
        if ran:  # defined by a cell that ran; its own code must have failed before the name
            c = ran[0]
            return f"{self.name} does not define `{name}` when its {c.label()} runs"
        for c in cells:
            if c.skipped:
                return (f"{self.name} defines `{name}` only in {c.label()}, which the grader does "
                        f"not run: {c.skipped}")
            if c.failure():
                return (f"{self.name}: `{name}` is defined in {c.label()}, which "
                        f"{c.failure()}{self._cause(c)}")
        return f"{self.name} defines no `{name}`"

    def _cause(self, cell: Cell) -> str:
        """For a NameError, the earlier cell that should have defined the name, if it failed."""
        o = cell.outcome
        found = re.search(r"name '(\w+)' is not defined", o.get("message", ""))
        if o.get("type") != "NameError" or not found:
            return ""
        for c in self.where_defined(found.group(1)):
            if c.index < cell.index and (c.skipped or c.failure()):
                return f" (`{found.group(1)}` comes from {c.label()}, which " + (
                    f"the grader does not run: {c.skipped})" if c.skipped else f"{c.failure()})")
        return ""

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
        with _quiet():
            nbformat.validate(node)
    except ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", []) or [])
        return f"{where or 'the notebook'}: {str(getattr(exc, 'message', exc))[:200]}"
    except Exception as exc:  # noqa: BLE001 - a validator error on hostile input is a problem
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return ""


def _quiet():
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")

    class _Done:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            ctx.__exit__(*exc)

    return _Done()


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


# ------------------------------------------------------------------- which notebook is which


def assign(notebooks: list[Notebook], modules: list[str], taken: set[str],
           present: set[str], table: Mapping[str, Sequence[str]]) -> dict[str, Notebook]:
    """Decide which notebook provides each assignment module not already ``taken`` by a
    ``.py`` file, and name the modules the notebooks become. ``modules`` are every assignment
    module in course order; ``present`` the file names of the submission; ``table`` the names
    each module's checks import."""
    usable = [nb for nb in notebooks if not nb.problem]
    chosen: dict[str, Notebook] = {}
    for module in modules:
        if module in taken:
            continue
        by_name = next((nb for nb in notebooks if nb.path.stem == module), None)
        if by_name is not None:
            chosen[module] = by_name
            continue
        wanted = set(table.get(module, []))
        scored = [(len(wanted & {n for c in nb.cells for n in c.binds}), nb) for nb in usable]
        scored = [(s, nb) for s, nb in scored if s]
        if scored:
            best = max(s for s, _ in scored)
            chosen[module] = sorted((nb for s, nb in scored if s == best),
                                    key=lambda nb: nb.name)[0]
    for module, nb in chosen.items():
        if module not in nb.provides:
            nb.provides.append(module)
    for nb in {id(nb): nb for nb in chosen.values()}.values():
        stem = nb.path.stem
        if stem in nb.provides:
            nb.module = stem
        else:
            base = re.sub(r"\W", "_", stem) or "notebook"
            base = base if base[0].isalpha() else f"nb_{base}"
            nb.module = base
            while (f"{nb.module}.py" in present or nb.module in modules
                   or keyword.iskeyword(nb.module) or _importable(nb.module)):
                nb.module += "_notebook"
    return chosen


def _importable(name: str) -> bool:
    """Whether ``name`` is already a module (stdlib, torch...): a notebook must not shadow it."""
    import importlib.util
    import sys

    if name in sys.stdlib_module_names or name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


# ------------------------------------------------------------------------- module sources


_RUNNER = '''
def _grader_run(cells, namespace, notebook):
    import __future__
    import linecache
    import os

    folder = os.path.dirname(os.path.abspath(__file__))
    futures, flags = 0, 0
    for feature in __future__.all_feature_names:
        futures |= getattr(__future__, feature).compiler_flag
    for number, source, raised in cells:
        filename = os.path.join(folder, f"{notebook}, cell {number}")
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec", flags=flags, dont_inherit=True)
        flags |= code.co_flags & futures  # a __future__ import holds for the next cells too
        if not raised:
            exec(code, namespace)
            continue
        try:  # it raised when the notebook ran: keep what it defined before, as the kernel did
            exec(code, namespace)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001
            pass


_grader_run(_GRADER_CELLS, globals(), _GRADER_NOTEBOOK)
del _grader_run, _GRADER_CELLS, _GRADER_NOTEBOOK
'''

_SHIMS = {
    "display": "def display(*objs, **kwargs):  # IPython's display: nothing to show when graded\n"
               "    pass\n",
    "get_ipython": "def get_ipython():  # no IPython shell when graded\n    return None\n",
}


def module_source(nb: Notebook) -> str:
    """The module the worker imports for ``nb``: its cells that ran (all of its runnable cells
    when it was not run), each compiled under the notebook's name and the cell's number."""
    cells = []
    for c in nb.code_cells():
        status = c.outcome.get("status", "ok")
        if status in ("ok", "error"):
            cells.append((c.number, c.python, status == "error"))
    used = {n for _, src, _ in cells for n in re.findall(r"\b(display|get_ipython)\b", src)}
    defined = {n for c in nb.code_cells() for n in c.defines}
    shims = "".join(_SHIMS[n] + "\n\n" for n in sorted(used - defined))
    listing = "".join(f"    ({number}, {src!r}, {raised}),\n" for number, src, raised in cells)
    return (f"# {nb.name!r} as a module, made by the grader from the code cells it runs.\n\n"
            f"{shims}_GRADER_NOTEBOOK = {nb.name!r}\n_GRADER_CELLS = [\n{listing}]\n"
            + _RUNNER)


def alias_source(module: str, nb: Notebook) -> str:
    """A module that is another name for the module of ``nb`` (a notebook providing several
    assignments): ``import block`` gives the same module object as ``import gpt``."""
    return (f"# `{module}` is provided by {nb.name!r} (module `{nb.module}`).\n\n"
            f"import sys\n\nimport {nb.module}\n\nsys.modules[__name__] = {nb.module}\n")


# ------------------------------------------------------------------- running in the worker


def prepare(worker: WorkerClient, submission: Submission, *, cell_timeout: float = 60.0,
            total_timeout: float = 300.0, run: list[str] | None = None) -> dict[str, Any]:
    """Run the notebooks that provide the modules ``run`` (default: all) in the worker, write
    the modules of every notebook-provided assignment for the worker to import, and record what
    went wrong on the submission's files. Returns a report for the results' environment."""
    from grader.isolation.client import StudentCodeError, WorkerError, WorkerTimeout

    notebooks: list[Notebook] = []
    for f in submission.files.values():
        if f.notebook is not None and f.notebook not in notebooks:
            notebooks.append(f.notebook)
    if not notebooks:
        return {}
    wanted = set(run if run is not None else submission.files)
    staging = Path(tempfile.mkdtemp(prefix="grader-modules-"))
    report: dict[str, Any] = {}
    try:
        for nb in notebooks:
            entry: dict[str, Any] = {"provides": list(nb.provides), "module": nb.module}
            report[nb.name] = entry
            if nb.problem:
                continue
            if any(m in wanted for m in nb.provides) and nb.code_cells():
                cells = [{"index": c.index, "source": c.python} for c in nb.code_cells()]
                try:
                    reply = worker.request("notebook", {
                        "name": nb.name, "cells": cells, "cell_timeout": cell_timeout,
                        "total_timeout": total_timeout,
                        "kernel": os.environ.get("GRADER_NOTEBOOK_KERNEL", ""),
                    }, timeout=total_timeout + 60)
                    nb.run = reply.result
                    for c, outcome in zip(nb.code_cells(), reply.result["cells"], strict=False):
                        c.outcome = outcome
                except WorkerTimeout:
                    nb.problem = (f"running {nb.name} did not finish within {total_timeout:.0f} s"
                                  " (the notebook's total time)")
                except StudentCodeError as exc:
                    nb.problem = f"{nb.name} could not be run in a kernel: {exc.describe()}"
                except WorkerError as exc:
                    nb.problem = f"running {nb.name} stopped the worker: {exc}"
                entry.update({k: nb.run[k] for k in ("kernel", "kernel_starts", "seconds")
                              if k in nb.run})
                entry["failed_cells"] = nb.failures()
            if nb.problem:
                continue
            (staging / f"{nb.module}.py").write_text(module_source(nb))
            for module in nb.provides:
                if module != nb.module:
                    (staging / f"{module}.py").write_text(alias_source(module, nb))
            worker.share_file(worker.modules_dir.name, source=staging)
        if any(nb.module and not nb.problem for nb in notebooks):
            try:  # notebook code imported into the worker cannot start processes there either
                worker.forbid_processes()
            except WorkerError as exc:
                report.setdefault("_worker", {})["problem"] = f"could not restrict the worker: {exc}"
        for f in submission.files.values():
            if f.notebook is not None and not f.problem:
                f.problem = _assignment_problem(f.notebook, f.module, submission.graded)
        for nb in notebooks:
            report[nb.name].update({k: v for k, v in (("problem", nb.problem),
                                                      ("notes", nb.notes)) if v})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _assignment_problem(nb: Notebook, module: str, graded: Mapping[str, Sequence[str]]) -> str:
    """Why the assignment ``module`` cannot be graded from ``nb`` at all ("" if it can)."""
    if nb.problem:
        return nb.problem
    names = list(graded.get(module, []))
    runnable = nb.code_cells()
    if not runnable:
        skipped = [c for c in nb.cells if c.skipped]
        why = (f" (its {len(skipped)} code cells are all left out: "
               f"{skipped[0].label()}: {skipped[0].skipped}, ...)") if skipped else ""
        return f"{nb.name} has no code for {module} to grade{why}"
    have = {n for c in runnable if c.outcome.get("status") in (None, "ok", "error")
            for n in c.defines}
    if names and not any(n in have for n in names):
        for n in names:
            message = nb.missing_message(n)
            if not message.endswith(f"defines no `{n}`"):
                return message
        listed = ", ".join(f"`{n}`" for n in names)
        return f"{nb.name} has no code for {module}: it defines none of {listed}"
    return ""


# ------------------------------------------------------------- conversions (both directions)


def notebook_to_module(nb_path: Path) -> str:
    """A plain Python module with a notebook's graded code: the cells the grader runs, turned
    into Python the same way, separated by ``# %% cell N`` comments (what a student gets with
    "export as Python", without magics or shell escapes)."""
    nb = read_notebook(Path(nb_path))
    if nb.problem:
        raise ValueError(nb.problem)
    parts = [f"# %% cell {c.number}\n{c.python.rstrip()}\n" for c in nb.code_cells()]
    return f"# Made from {nb.name} by the grader.\n\n" + "\n\n".join(parts)


def module_to_notebook(source: str, *, split: bool = True) -> Any:
    """A v4 notebook with a module's code: the module docstring as a markdown cell, then one
    code cell per top-level statement group (imports together, each def/class on its own), so
    that running all cells in order is running the module."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                             ast.Constant) \
            and isinstance(body[0].value.value, str):
        nb.cells.append(nbformat.v4.new_markdown_cell(ast.get_docstring(tree) or ""))
        start = body[0].end_lineno
        body = body[1:]
    else:
        start = 0
    if not split:
        code = "".join(lines[start:]).strip("\n")
        nb.cells.append(nbformat.v4.new_code_cell(code))
        return nb
    firsts: list[int] = []  # 0-based first line of each group of statements
    previous = None
    for node in body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        imports = (ast.Import, ast.ImportFrom)
        if not (isinstance(node, imports) and isinstance(previous, imports)):
            firsts.append(first)
        previous = node
    cuts = []
    for first in firsts:  # comment lines just above a statement go with it
        cut = first
        while cut > max([start, *cuts]) and lines[cut - 1].lstrip().startswith("#"):
            cut -= 1
        cuts.append(cut)
    if cuts:
        cuts[0] = start
    for cut, end in zip(cuts, [*cuts[1:], len(lines)], strict=True):
        text = "".join(lines[cut:end]).strip("\n")
        if text:
            nb.cells.append(nbformat.v4.new_code_cell(text))
    return nb
