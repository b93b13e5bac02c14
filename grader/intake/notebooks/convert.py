"""Conversions for the release: a notebook's graded code as a module, and a module as a notebook."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from grader.intake.notebooks.reading import read_notebook


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
