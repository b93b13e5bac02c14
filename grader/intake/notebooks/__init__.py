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

The steps, one module each (in the manner of nbgrader's preprocessors): :mod:`.cells` (code cells
and skip tags), :mod:`.ipython` (magics and escapes into Python), :mod:`.names` (names bound),
:mod:`.reading` (parse, validate against the nbformat schema, analyse), :mod:`.routing` (which
notebook provides which assignment), :mod:`.modules` (the modules the worker imports),
:mod:`.running` (the worker's run), :mod:`.convert` (release conversions).
"""

from grader.intake.notebooks.cells import SKIP_TAGS, Cell, skip_reason
from grader.intake.notebooks.convert import module_to_notebook, notebook_to_module
from grader.intake.notebooks.ipython import python_of
from grader.intake.notebooks.modules import alias_source, module_source
from grader.intake.notebooks.names import defined_names
from grader.intake.notebooks.reading import (
    MAX_CODE_BYTES,
    MAX_NOTEBOOK_BYTES,
    Notebook,
    notebook_language,
    read_notebook,
    schema_problem,
)
from grader.intake.notebooks.routing import assign
from grader.intake.notebooks.running import prepare

__all__ = [
    "MAX_CODE_BYTES", "MAX_NOTEBOOK_BYTES", "SKIP_TAGS", "Cell", "Notebook", "alias_source",
    "assign", "defined_names", "module_source", "module_to_notebook", "notebook_language",
    "notebook_to_module", "prepare", "python_of", "read_notebook", "schema_problem",
    "skip_reason",
]
