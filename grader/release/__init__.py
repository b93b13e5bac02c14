"""Releasing the assignments from the reference: stubs, notebooks, and the student bundle.

``grader release OUTDIR`` (:func:`.bundle.build`) writes everything a student needs and nothing
they must not see:

- ``assignments/``: one stub module per reference module (:mod:`.stubs`: each solution region
  replaced by ``raise NotImplementedError("<message from its marker>")``). The repository's own
  ``assignments/`` folder is this output (``grader release --stubs-only assignments``), and a
  test fails when it is out of date with ``reference/``;
- ``notebooks/``: the same assignments as notebooks (the task and the docstrings as Markdown, the
  stubs as code cells, a cell tagged ``skip-grading`` for experiments);
- ``grader/``: a copy of the grader without this package, with the hidden checks' code and the
  diagnosis's reference edits taken out (:mod:`.strip`), carrying ``fixtures.safetensors`` (inputs
  and expected outputs recorded from the reference while its solution is graded, hidden checks
  excluded) and ``bundle.json``, so that ``python -m grader run assignments`` in the bundle runs
  the public checks against the fixtures, and says so;
- ``README.md`` and ``requirements.txt``.

The build refuses to finish if any line of a solution region, or of a hidden check, is found
anywhere in the bundle.
"""

from grader.release.bundle import ReleaseError, build, write_stubs
from grader.release.stubs import render_stubs, solution_lines, stub_notebook, stub_source

__all__ = ["ReleaseError", "build", "render_stubs", "solution_lines", "stub_notebook",
           "stub_source", "write_stubs"]
