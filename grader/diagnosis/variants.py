"""Buggy variants of the reference, built on the trusted side (never in the worker).

A variant is the reference package with one mistake planted in its source: the catalogue's
edits applied to a private copy of the reference's modules, imported under a package name of
its own (``_grader_variant_<id>``), so that every class of the copy uses the planted code (a
``GPT`` of the ``no_scale`` variant attends without the scale). A check never calls the variant
itself: :class:`~grader.diagnosis.Diagnosis` reruns the check's own reference computation on it
through ``ctx.expected``, which is how fixtures made at release carry the variants' outputs.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from grader.diagnosis.catalogue import Edits, mistake

_PLANTED: dict[tuple[str, str], ModuleType] = {}


def planted(ref: ModuleType, variant_id: str) -> ModuleType:
    """The reference package ``ref`` with the variant ``variant_id`` planted (built once per
    process)."""
    key = (ref.__name__, variant_id)
    if key not in _PLANTED:
        edits = mistake(variant_id).variants().get(variant_id)
        if edits is None:
            raise KeyError(f"mistake {variant_id!r} has no planted variant")
        name = "_grader_variant_" + re.sub(r"\W", "_", f"{ref.__name__}_{variant_id}")
        _PLANTED[key] = load_edited(ref, edits, name, variant_id)
    return _PLANTED[key]


def edit_source(text: str, pairs: list[tuple[str, str]], where: str) -> str:
    """Apply ``(old, new)`` replacements; each ``old`` must occur exactly once, so that a
    variant cannot silently stop planting its mistake when the reference changes."""
    for old, new in pairs:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"{old!r} occurs {count} times in {where}, expected exactly once")
        text = text.replace(old, new)
    return text


def load_edited(ref: ModuleType, edits: Edits, name: str, label: str) -> ModuleType:
    """Import every module of the package ``ref`` afresh as package ``name``, with ``edits``
    applied to their sources."""
    root = Path(ref.__file__).parent
    sources = {p.stem: p.read_text() for p in sorted(root.glob("*.py"))}
    for module, pairs in edits.items():
        if module not in sources:
            raise ValueError(f"variant {label}: no module {module}.py in {root}")
        sources[module] = edit_source(sources[module], pairs, f"{root / module}.py ({label})")
    finder = _Finder(name, root, sources, label)
    sys.meta_path.insert(0, finder)
    try:
        package = importlib.import_module(name)
        for stem in sources:
            if stem != "__init__":
                importlib.import_module(f"{name}.{stem}")
    finally:
        sys.meta_path.remove(finder)
    return package


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads ``name`` and ``name.<module>`` from the edited sources."""

    def __init__(self, name: str, root: Path, sources: dict[str, str], label: str):
        self.name, self.root, self.sources, self.label = name, root, sources, label

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            stem, package = "__init__", True
        elif fullname.startswith(self.name + ".") and fullname.count(".") == 1:
            stem, package = fullname.split(".", 1)[1], False
        else:
            return None
        if stem not in self.sources:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, is_package=package,
                                               origin=str(self.root / f"{stem}.py"))
        spec.has_location = False
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        stem = "__init__" if module.__name__ == self.name else module.__name__.split(".", 1)[1]
        code = compile(self.sources[stem], f"{self.root / stem}.py ({self.label} planted)",
                       "exec")
        exec(code, module.__dict__)  # noqa: S102 - our own reference code, edited by us
