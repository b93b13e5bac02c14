"""Step 3: the names a cell binds at top level, read with :mod:`ast` (never by running it)."""

from __future__ import annotations

import ast
import re


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
