"""The grader as a student bundle carries it: without what only the instructor may have.

Taken out of the copy (source edits by position, so the rest of each file stays as written):

- the code of every hidden check (a function decorated with ``...check(..., hidden=True)``): its
  declaration (id, name, points) stays, so the self-check lists it as "runs when your
  instructor grades", and its body becomes ``raise FixtureMissing(...)``;
- the diagnosis's plants (``plant=`` and ``flavours=`` of the catalogue's mistakes): they are
  edits of the reference's source, i.e. solution lines. Their variant ids stay, so a bundle can
  still name a mistake from the variants' outputs stored in the fixtures;
- the module-level helpers that only the removed code used (dead code, iteratively).

:func:`strip_package` returns the lines that were taken out, for the release's final check that
none of them is anywhere in the bundle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

HIDDEN_BODY = ('from grader.checks.expected import FixtureMissing\n'
               'raise FixtureMissing("a hidden check: its code is not in the student bundle; it '
               'runs when your instructor grades the submission")')
_EMPTY_EDITS = '[("", "")]'


@dataclass
class Stripped:
    """What was taken out of one package copy."""

    hidden_checks: list[str] = field(default_factory=list)  # "module.function"
    removed_lines: set[str] = field(default_factory=set)  # stripped lines of removed code
    helpers: list[str] = field(default_factory=list)  # dead helpers removed


def _is_hidden_check(node: ast.AST) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and any(
                k.arg == "hidden" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in d.keywords):
            return True
    return False


def _plant_text(keyword: ast.keyword) -> str:
    """What a ``plant=``/``flavours=`` value becomes: the same keys, no edits."""
    value = keyword.value
    if keyword.arg == "plant":
        if isinstance(value, ast.Dict) and all(k is not None for k in value.keys):
            inner = ", ".join(f"{ast.unparse(k)}: {_EMPTY_EDITS}" for k in value.keys)
            return "{" + inner + "}"
        return "{'_': " + _EMPTY_EDITS + "}"
    if isinstance(value, ast.Dict) and all(k is not None for k in value.keys):
        inner = ", ".join(f"{ast.unparse(k)}: {{'_': {_EMPTY_EDITS}}}" for k in value.keys)
        return "{" + inner + "}"
    return "{}"


class _Editor:
    """Replacements of source spans given by AST positions (1-based lines, byte columns)."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.edits: list[tuple[int, int, str]] = []

    def offset(self, line: int, col: int) -> int:
        before = sum(len(x) for x in self.lines[:line - 1])
        return before + len(self.lines[line - 1].encode()[:col].decode(errors="ignore"))

    def replace(self, start: tuple[int, int], end: tuple[int, int], text: str) -> str:
        a, b = self.offset(*start), self.offset(*end)
        self.edits.append((a, b, text))
        return self.text[a:b]

    def apply(self) -> str:
        out = self.text
        for a, b, text in sorted(self.edits, reverse=True):
            out = out[:a] + text + out[b:]
        return out


def _lines(text: str) -> set[str]:
    return {ln.strip() for ln in text.splitlines() if ln.strip()}


def strip_source(text: str, name: str, keep: set[str]) -> tuple[str, Stripped]:
    """Strip one module's source; ``keep`` are names other modules import from it."""
    report = Stripped()
    tree = ast.parse(text)
    editor = _Editor(text)
    removed_refs: set[str] = set()
    for node in ast.walk(tree):
        if _is_hidden_check(node):
            body = node.body
            indent = " " * body[0].col_offset
            new = "\n".join(indent + ln for ln in HIDDEN_BODY.splitlines())
            old = editor.replace((body[0].lineno, 0), (node.end_lineno, node.end_col_offset),
                                 new)
            report.hidden_checks.append(f"{name}.{node.name}")
            report.removed_lines |= _lines(old)
            removed_refs |= {n.id for b in body for n in ast.walk(b) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Call):
            for k in node.keywords:
                if k.arg in ("plant", "flavours"):
                    old = editor.replace((k.value.lineno, k.value.col_offset),
                                         (k.value.end_lineno, k.value.end_col_offset),
                                         _plant_text(k))
                    report.removed_lines |= _lines(old)
                    removed_refs |= {n.id for n in ast.walk(k.value) if isinstance(n, ast.Name)}
    text = editor.apply()
    # Dead helpers: top-level definitions only the removed code referred to.
    while removed_refs:
        tree = ast.parse(text)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                and not isinstance(n.ctx, ast.Store)} | keep
        exported = _all(tree)
        dead = []
        for node in tree.body:
            bound = _bound(node)
            if bound and bound & removed_refs and not bound & (used | exported):
                dead.append(node)
        if not dead:
            break
        editor = _Editor(text)
        next_refs: set[str] = set()
        for node in dead:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            end_line = node.end_lineno
            old = editor.replace((first, 0), (end_line + 1, 0) if end_line < len(
                editor.lines) else (end_line, node.end_col_offset), "")
            report.removed_lines |= _lines(old)
            report.helpers.extend(sorted(_bound(node)))
            next_refs |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        text = editor.apply()
        removed_refs = next_refs
    ast.parse(text)
    return text, report


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if all(isinstance(t, ast.Name) for t in targets):
            return {t.id for t in targets}
    return set()


def _all(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return set()
    return set()


def strip_package(root: Path) -> Stripped:
    """Strip every module of the package copy at ``root`` in place."""
    files = sorted(Path(root).rglob("*.py"))
    imported: set[str] = set()
    for path in files:
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.Attribute):
                imported.add(node.attr)  # module.NAME used from elsewhere
    total = Stripped()
    for path in files:
        text = path.read_text()
        if "hidden" not in text and "plant" not in text and "flavours" not in text:
            continue
        new, report = strip_source(text, path.stem, imported)
        if new != text:
            path.write_text(new)
        total.hidden_checks += report.hidden_checks
        total.removed_lines |= report.removed_lines
        total.helpers += report.helpers
    return total
