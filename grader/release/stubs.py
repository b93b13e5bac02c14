"""Student stubs (and the matching notebooks) made from the reference's solution markers.

A reference module marks each part of the solution::

    def forward(self, x):
        \"\"\"The docstring stays: it is the specification.\"\"\"
        # BEGIN SOLUTION: Return c_proj(gelu(c_fc(x))).
        return self.c_proj(self.gelu(self.c_fc(x)))
        # END SOLUTION

In the stub a region inside a function becomes ``raise NotImplementedError("<message>")`` at the
marker's indentation; a region outside any function (a helper constant of the solution) is
removed. The message is the text after ``BEGIN SOLUTION:``, continued on the comment lines right
below it that start with ``#:``; without one it is "Implement <name> as its docstring describes.".
Besides that, the stub gets the student's module docstring (from ``release.yaml`` beside the
reference modules, ``<module>: {doc: ...}``; by default one made from the reference's), imports
of the reference package become imports of the sibling modules (``from .block import GPT`` ->
``from block import GPT``), and imports the stub no longer uses are marked "you will need it".
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\b:?\s*(?P<message>.*?)\s*$")
END = re.compile(r"^[ \t]*#\s*END SOLUTION\b")
MORE = re.compile(r"^[ \t]*#:\s?(?P<message>.*?)\s*$")
META_FILE = "release.yaml"
# The key of release.yaml listing solution lines the grader may show on purpose (e.g. a hint).
ALLOW_KEY = "allowed_in_bundle"
WIDTH = 100
NEED_IT = "  # noqa: F401  (you will need it)"


class MarkerError(ValueError):
    """The solution markers of a reference module are malformed."""


@dataclass
class Region:
    """One solution region: lines ``begin``..``end`` (0-based, inclusive of both markers)."""

    begin: int
    end: int
    indent: str
    message: str
    function: str = ""  # qualified name of the function it is in ("" at module/class level)


def regions(source: str, name: str = "<module>") -> list[Region]:
    """The solution regions of ``source``, checked (closed, not nested, whole lines)."""
    lines = source.splitlines()
    found: list[Region] = []
    open_: Region | None = None
    for i, line in enumerate(lines):
        if BEGIN.match(line):
            if open_ is not None:
                raise MarkerError(f"{name}:{i + 1}: BEGIN SOLUTION inside the region opened at "
                                  f"line {open_.begin + 1}")
            m = BEGIN.match(line)
            parts = [m.group("message")] if m.group("message") else []
            j = i + 1
            while j < len(lines) and MORE.match(lines[j]):
                parts.append(MORE.match(lines[j]).group("message"))
                j += 1
            open_ = Region(i, -1, m.group("indent"), " ".join(p for p in parts if p))
        elif END.match(line):
            if open_ is None:
                raise MarkerError(f"{name}:{i + 1}: END SOLUTION without BEGIN SOLUTION")
            open_.end = i
            found.append(open_)
            open_ = None
    if open_ is not None:
        raise MarkerError(f"{name}:{open_.begin + 1}: BEGIN SOLUTION is never closed")
    functions = _functions(source)
    for r in found:
        inside = [(first, last, q) for first, last, q in functions if first < r.begin + 1 <= last]
        if inside:
            r.function = max(inside, key=lambda f: f[0])[2]  # the innermost
    return found


def _functions(source: str) -> list[tuple[int, int, str]]:
    """``(first line, last line, qualified name)`` of every function (1-based lines)."""
    out: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                q = prefix + child.name
                out.append((child.lineno, child.end_lineno, q))
                visit(child, q + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(source), "")
    return out


def solution_lines(source: str) -> list[str]:
    """The stripped lines inside the solution regions (the markers excluded)."""
    lines = source.splitlines()
    return [lines[i].strip() for r in regions(source) for i in range(r.begin + 1, r.end)
            if lines[i].strip() and not MORE.match(lines[i])]


def outside_lines(source: str) -> list[str]:
    """The lines outside the solution regions (markers excluded)."""
    lines = source.splitlines()
    inside = {i for r in regions(source) for i in range(r.begin, r.end + 1)}
    return [ln for i, ln in enumerate(lines) if i not in inside]


# ------------------------------------------------------------------------------ the stubs


def _raise(message: str, indent: str) -> list[str]:
    """``raise NotImplementedError(...)`` at ``indent``, wrapped to the line length."""
    one = f"{indent}raise NotImplementedError({_quote(message)})"
    if len(one) <= WIDTH - 1:
        return [one]
    inner = indent + " " * 4
    chunks: list[str] = []
    for word in message.split(" "):
        candidate = (chunks[-1] + " " + word) if chunks else word
        if chunks and len(inner) + len(_quote(candidate + " ")) > WIDTH - 1:
            chunks[-1] += " "  # the space goes at the end of the line, as people write it
            chunks.append(word)
        elif chunks:
            chunks[-1] = candidate
        else:
            chunks.append(word)
    return ([f"{indent}raise NotImplementedError("] + [inner + _quote(c) for c in chunks]
            + [f"{indent})"])


def _quote(text: str) -> str:
    if '"' in text and "'" not in text:
        return "'" + text.replace("\\", "\\\\") + "'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _docstring_span(tree: ast.Module) -> tuple[int, int] | None:
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(
            tree.body[0].value, ast.Constant) and isinstance(tree.body[0].value.value, str):
        return tree.body[0].lineno - 1, tree.body[0].end_lineno  # 0-based, end exclusive
    return None


def _absolute_imports(lines: list[str], tree: ast.Module) -> list[str]:
    """``from .x import y`` -> ``from x import y``; ``from . import x`` -> ``import x``."""
    out = list(lines)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "")
                              for a in node.names)
            text = f"from {node.module} import {names}" if node.module else f"import {names}"
            out[node.lineno - 1] = text
            for k in range(node.lineno, node.end_lineno):
                out[k] = None  # type: ignore[call-overload]
    return [ln for ln in out if ln is not None]


def _sort_imports(lines: list[str]) -> list[str]:
    """Re-sort the first block of top-level imports as ruff's isort would (stdlib, then the
    rest; ``import x`` before ``from x import``; by module name). Comment lines in the block
    leave it as it is."""
    tree = ast.parse("\n".join(lines))
    nodes = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            nodes.append(node)
        elif nodes or not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            break
    if len(nodes) < 2 or any(n.end_lineno != n.lineno for n in nodes) or any(
            n.module == "__future__" for n in nodes if isinstance(n, ast.ImportFrom)):
        return lines
    first, last = nodes[0].lineno - 1, nodes[-1].end_lineno
    between = [ln for ln in lines[first:last] if ln.strip()]
    if len(between) != len(nodes):  # comments in the block
        return lines

    def module(n: ast.AST) -> str:
        return n.names[0].name if isinstance(n, ast.Import) else (n.module or "")

    def section(n: ast.AST) -> int:
        return 0 if module(n).split(".")[0] in sys.stdlib_module_names else 1

    def key(n: ast.AST) -> tuple:
        return (section(n), isinstance(n, ast.ImportFrom), module(n).lower(), module(n))

    ordered = sorted(nodes, key=key)
    block: list[str] = []
    for i, n in enumerate(ordered):
        if i and section(n) != section(ordered[i - 1]):
            block.append("")
        block.append(lines[n.lineno - 1])
    return lines[:first] + block + lines[last:]


def _mark_unused_imports(lines: list[str]) -> list[str]:
    """Add "you will need it" to top-level imports the stub itself does not use."""
    text = "\n".join(lines)
    tree = ast.parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {a.value.id for a in ast.walk(tree)
             if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)}
    out = list(lines)
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno != node.end_lineno:
            continue
        bound = [a.asname or a.name.split(".")[0] for a in node.names]
        line = out[node.lineno - 1]
        if not any(b in used for b in bound) and "noqa" not in line:
            out[node.lineno - 1] = line.rstrip() + NEED_IT
    return out


def _collapse_blank_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for ln in lines:
        if not ln.strip() and len(out) >= 2 and not out[-1].strip() and not out[-2].strip():
            continue
        out.append(ln.rstrip() if not ln.strip() else ln)
    while out and not out[-1].strip():
        out.pop()
    return out


def _docstring_lines(doc: str) -> list[str]:
    body = doc.strip("\n")
    if "\n" not in body:
        return [f'"""{body}"""']
    return ['"""' + body.split("\n", 1)[0], *body.split("\n")[1:], '"""']


def stub_source(source: str, name: str, meta: dict[str, Any] | None = None) -> str:
    """The student's stub of the reference module ``name`` (its source, and its entry of
    ``release.yaml``)."""
    meta = meta or {}
    lines = source.splitlines()
    found = regions(source, f"{name}.py")
    out: list[str] = []
    cursor = 0
    for r in found:
        out.extend(lines[cursor:r.begin])
        if r.function:
            short = r.function.split(".<locals>")[0]
            message = r.message or f"Implement {short} as its docstring describes."
            out.extend(_raise(message, r.indent))
        cursor = r.end + 1
    out.extend(lines[cursor:])
    tree = ast.parse("\n".join(out))
    span = _docstring_span(tree)
    doc = meta.get("doc") or default_doc(name, ast.get_docstring(tree) or "")
    if span is not None:
        out = out[:span[0]] + _docstring_lines(doc) + out[span[1]:]
    else:
        out = _docstring_lines(doc) + [""] + out
    out = _absolute_imports(out, ast.parse("\n".join(out)))
    out = _sort_imports(out)
    out = _mark_unused_imports(out)
    text = "\n".join(_collapse_blank_lines(out)) + "\n"
    compile(text, f"{name}.py", "exec", dont_inherit=True)
    return text


def solution_source(source: str, name: str) -> str:
    """The reference module as a student module that solves the assignment: markers dropped,
    imports of the reference package made sibling imports (used to record the fixtures)."""
    lines = [ln for ln in source.splitlines() if not (BEGIN.match(ln) or END.match(ln)
                                                     or MORE.match(ln))]
    out = _absolute_imports(lines, ast.parse("\n".join(lines)))
    return "\n".join(out) + "\n"


def graded_names(module: str) -> list[str]:
    """The names the checks of the assignment graded from ``module`` import."""
    try:
        from grader.checks import graded_names as table
    except ImportError:  # pragma: no cover
        return []
    return table().get(module, [])


def _title(module: str) -> str:
    try:
        from grader.checks import ASSIGNMENTS

        for a in ASSIGNMENTS.values():
            if a.module == module:
                return a.title
    except ImportError:  # pragma: no cover
        pass
    return module.replace("_", " ")


def _listing(names: list[str]) -> str:
    quoted = [f"``{n}``" for n in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def default_doc(module: str, reference_doc: str) -> str:
    """The stub's module docstring when ``release.yaml`` gives none: the reference's, without
    "(reference solution)", and what the student must do."""
    text = re.sub(r"\s*\(reference solution\)", "", reference_doc).strip()
    names = graded_names(module)
    paragraphs = [f"Assignment: {_title(module)}.", text,
                  "Replace every ``raise NotImplementedError`` with your code; the docstrings are "
                  "the specification."]
    if names:
        paragraphs.append(f"The grader imports these exact names from this module: "
                          f"{_listing(names)}. Do not rename them or change their signatures.")
    return "\n\n".join(textwrap.fill(p, WIDTH - 1) if "\n" not in p else p for p in paragraphs
                       if p) + "\n"


def load_meta(reference_dir: Path) -> dict[str, dict[str, Any]]:
    """``release.yaml`` beside the reference modules (``{}`` when there is none)."""
    path = Path(reference_dir) / META_FILE
    if not path.is_file():
        return {}
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of module -> settings")
    return data


def reference_modules(reference_dir: Path) -> list[Path]:
    """The assignment modules of the reference: every ``*.py`` but ``__init__`` and private
    ones, in the course's order where known."""
    paths = [p for p in sorted(Path(reference_dir).glob("*.py"))
             if not p.name.startswith("_")]
    try:
        from grader.checks import ASSIGNMENTS

        order = [a.module for a in ASSIGNMENTS.values()]
    except ImportError:  # pragma: no cover
        order = []
    return sorted(paths, key=lambda p: (order.index(p.stem) if p.stem in order else len(order),
                                        p.stem))


def render_stubs(reference_dir: Path) -> dict[str, str]:
    """``{file name: stub source}`` for every assignment module of the reference."""
    meta = load_meta(reference_dir)
    return {f"{p.stem}.py": stub_source(p.read_text(), p.stem, meta.get(p.stem))
            for p in reference_modules(reference_dir)}


# --------------------------------------------------------------------------- the notebooks


def _markdown_of_docstring(doc: str) -> str:
    """A docstring (reST-ish, Google style) as Markdown: ``code`` -> `code`, section titles in
    bold, indented items as a list, ``::`` blocks fenced."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    fence = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if fence is not None:
            if stripped and len(line) - len(line.lstrip()) <= fence:
                out.append("```")
                fence = None
                continue
            out.append(line[fence + 4:] if line.strip() else "")
            i += 1
            continue
        md = re.sub(r"``([^`]+)``", r"`\1`", line)
        if stripped.endswith("::"):
            out.append(md.rstrip()[:-1].rstrip(":") + ":" if stripped != "::" else "")
            out.append("```python")
            fence = len(line) - len(line.lstrip())
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            continue
        if re.match(r"^[A-Z][\w ()',-]*:$", stripped) and not line.startswith(" "):
            out.append(f"**{stripped}**")
        elif line.startswith("    ") and not line.startswith("        ") and stripped:
            out.append("- " + re.sub(r"^(- )?", "", md.strip()))
        elif line.startswith("        ") and out and out[-1].startswith("- "):
            out[-1] += " " + md.strip()
        else:
            out.append(md)
        i += 1
    if fence is not None:
        out.append("```")
    return "\n".join(out).strip()


def stub_notebook(stub: str, module: str) -> Any:
    """The notebook of an assignment: the task (module docstring) and how it is graded, then
    for each def/class a Markdown cell with its docstring and a code cell with its stub, and a
    last cell, tagged ``skip-grading``, for the student's experiments."""
    import nbformat

    from grader.intake.notebooks import module_to_notebook

    base = module_to_notebook(stub)
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(base.metadata)
    tree = ast.parse(stub)
    doc = ast.get_docstring(tree) or ""
    siblings = sorted({n.module for n in ast.walk(tree)
                       if isinstance(n, ast.ImportFrom) and n.module and "." not in n.module
                       and n.module not in sys.stdlib_module_names
                       and n.module not in ("torch", "numpy", "safetensors")})
    intro = [f"# {_markdown_of_docstring(doc.splitlines()[0]) if doc else module}", "",
             _markdown_of_docstring("\n".join(doc.splitlines()[1:]))]
    intro += ["", "**How this notebook is graded.** Put it (named "
              f"`{module}.ipynb`) in your submission folder and run `grader run <folder>`. The "
              "grader runs its code cells in order and grades the names above; cells tagged "
              "`skip-grading` (or whose first line is `# skip-grading`) are not run, so keep "
              "long experiments and plots there. Shell commands (`!pip ...`) are never run."]
    if siblings:
        mods = ", ".join(f"`{s}`" for s in siblings)
        intro += ["", f"This assignment builds on {mods}: keep your `.py` files or notebooks of "
                      f"those next to this one (the grader imports a notebook `{siblings[0]}"
                      f".ipynb` as `{siblings[0]}`). To run this notebook in Jupyter with a "
                      f"notebook version of them, replace the import by `%run "
                      f"{siblings[0]}.ipynb`."]
    nb.cells.append(nbformat.v4.new_markdown_cell("\n".join(intro).strip()))
    nodes = {n.name: n for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
    for cell in base.cells:
        if cell.cell_type != "code":
            continue
        try:
            head = ast.parse(cell.source).body
        except SyntaxError:
            head = []
        named = [n for n in head if getattr(n, "name", None) in nodes]
        if named:
            n = named[0]
            kind = "class" if isinstance(n, ast.ClassDef) else "function"
            text = ast.get_docstring(n) or ""
            nb.cells.append(nbformat.v4.new_markdown_cell(
                f"## The {kind} `{n.name}`\n\n{_markdown_of_docstring(text)}".strip()))
        nb.cells.append(nbformat.v4.new_code_cell(cell.source))
    names = graded_names(module)
    example = (f"# For example: check a shape, plot something, time a call.\n"
               f"# {', '.join(names)}" if names else "# Try your code here.")
    experiments = nbformat.v4.new_code_cell(
        "# Your experiments: this cell is tagged `skip-grading`, so the grader does not run it.\n"
        + example)
    experiments.metadata["tags"] = ["skip-grading"]
    nb.cells.append(nbformat.v4.new_markdown_cell("## Experiments"))
    nb.cells.append(experiments)
    return nb
