"""The modules the worker imports for notebooks: the cells that ran, each compiled under the
notebook's name and the cell's number, and aliases for a notebook providing several modules."""

from __future__ import annotations

import re

from grader.intake.notebooks.reading import Notebook

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
