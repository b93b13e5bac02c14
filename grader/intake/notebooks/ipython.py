"""Step 2: each code cell into plain Python, by IPython's own input transformers, with magics
and shell escapes replaced by what they mean when graded (line numbers kept). Linear in the
cell: a legal 2 MB cell of magics takes seconds, not minutes."""

from __future__ import annotations

import ast
import keyword
import re
from pathlib import Path

# Cell magics whose body is Python that runs in the user's namespace: the body is graded.
_BODY_MAGICS = frozenset({"time", "capture", "prun"})
# Line magics that run their argument as a statement (``%time x = f()`` defines ``x``).
_STATEMENT_MAGICS = frozenset({"time", "prun"})


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
