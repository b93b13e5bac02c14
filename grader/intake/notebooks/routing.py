"""Which notebook provides which assignment module, and the module name it is imported as."""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence

from grader.intake.notebooks.reading import Notebook


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
