"""Finding a student's modules in a submission folder and saying clearly what is missing or broken.

Nothing here runs the student's code: a syntax check uses ``compile``, which only parses.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git", ".venv", "venv", "node_modules"}
MAX_SOURCE_BYTES = 2 * 2**20


@dataclass
class SourceFile:
    """One expected module of a submission. ``problem`` is empty when it can be imported."""

    module: str
    path: Path | None
    problem: str = ""


@dataclass
class Submission:
    """A submission folder: its expected modules and a hash of everything in it."""

    root: Path
    files: dict[str, SourceFile] = field(default_factory=dict)
    content_hash: str = ""

    def usable(self, module: str) -> bool:
        f = self.files.get(module)
        return f is not None and not f.problem


def discover(root: Path, modules: list[str]) -> Submission:
    """Look for ``<module>.py`` for each module name in ``root``, and check each parses."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder not found: {root}")
    sub = Submission(root=root.resolve(), content_hash=content_hash(root))
    present = {p.name: p for p in root.iterdir() if p.is_file()}
    for module in modules:
        sub.files[module] = _examine(module, present)
    return sub


def _examine(module: str, present: dict[str, Path]) -> SourceFile:
    name = f"{module}.py"
    path = present.get(name)
    if path is None:
        return SourceFile(module, None, _missing_message(name, list(present)))
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


def _missing_message(name: str, present: list[str]) -> str:
    if not present:
        return f"{name} is missing (the submission folder is empty)"
    lower = {p.lower(): p for p in present}
    if name.lower() in lower:
        return f"{name} is missing; found {lower[name.lower()]}: file names are case-sensitive"
    close = difflib.get_close_matches(name, present, n=1, cutoff=0.6)
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
