"""Running the notebooks in the worker (inside its sandbox) and giving it their modules."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.intake.notebooks.modules import alias_source, module_source
from grader.intake.notebooks.reading import Notebook

if TYPE_CHECKING:
    from grader.intake.discover import Submission
    from grader.isolation.client import WorkerClient

def prepare(worker: WorkerClient, submission: Submission, *, cell_timeout: float = 60.0,
            total_timeout: float = 300.0, run: list[str] | None = None) -> dict[str, Any]:
    """Run the notebooks that provide the modules ``run`` (default: all) in the worker, write
    the modules of every notebook-provided assignment for the worker to import, and record what
    went wrong on the submission's files. Returns a report for the results' environment."""
    from grader.isolation.client import StudentCodeError, WorkerError, WorkerTimeout

    notebooks: list[Notebook] = []
    for f in submission.files.values():
        if f.notebook is not None and f.notebook not in notebooks:
            notebooks.append(f.notebook)
    if not notebooks:
        return {}
    wanted = set(run if run is not None else submission.files)
    staging = Path(tempfile.mkdtemp(prefix="grader-modules-"))
    report: dict[str, Any] = {}
    try:
        for nb in notebooks:
            entry: dict[str, Any] = {"provides": list(nb.provides), "module": nb.module}
            report[nb.name] = entry
            if nb.problem:
                continue
            if any(m in wanted for m in nb.provides) and nb.code_cells():
                cells = [{"index": c.index, "source": c.python} for c in nb.code_cells()]
                try:
                    reply = worker.request("notebook", {
                        "name": nb.name, "cells": cells, "cell_timeout": cell_timeout,
                        "total_timeout": total_timeout,
                        "kernel": os.environ.get("GRADER_NOTEBOOK_KERNEL", ""),
                    }, timeout=total_timeout + 60)
                    nb.run = reply.result
                    for c, outcome in zip(nb.code_cells(), reply.result["cells"], strict=False):
                        c.outcome = outcome
                except WorkerTimeout:
                    nb.problem = (f"running {nb.name} did not finish within {total_timeout:.0f} s"
                                  " (the notebook's total time)")
                    nb.timed_out = True
                except StudentCodeError as exc:
                    nb.problem = f"{nb.name} could not be run in a kernel: {exc.describe()}"
                except WorkerError as exc:
                    nb.problem = f"running {nb.name} stopped the worker: {exc}"
                entry.update({k: nb.run[k] for k in ("kernel", "kernel_starts", "seconds")
                              if k in nb.run})
                entry["failed_cells"] = nb.failures()
            if nb.problem:
                continue
            (staging / f"{nb.module}.py").write_text(module_source(nb))
            for module in nb.provides:
                if module != nb.module:
                    (staging / f"{module}.py").write_text(alias_source(module, nb))
            worker.share_file(worker.modules_dir.name, source=staging)
        if any(nb.module and not nb.problem for nb in notebooks):
            try:  # notebook code imported into the worker cannot start processes there either
                worker.forbid_processes()
            except WorkerError as exc:
                report.setdefault("_worker", {})["problem"] = (
                    f"could not restrict the worker: {exc}")
        for f in submission.files.values():
            if f.notebook is not None and not f.problem:
                f.problem, f.timed_out = _assignment_problem(f.notebook, f.module,
                                                             submission.graded)
        for nb in notebooks:
            report[nb.name].update({k: v for k, v in (("problem", nb.problem),
                                                      ("notes", nb.notes)) if v})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _assignment_problem(nb: Notebook, module: str, graded: Mapping[str, Sequence[str]]
                        ) -> tuple[str, bool]:
    """Why the assignment ``module`` cannot be graded from ``nb`` at all ("" if it can), and
    whether that is code that ran past a time limit."""
    if nb.problem:
        return nb.problem, nb.timed_out
    names = list(graded.get(module, []))
    runnable = nb.code_cells()
    if not runnable:
        skipped = [c for c in nb.cells if c.skipped]
        why = (f" (its {len(skipped)} code cells are all left out: "
               f"{skipped[0].label()}: {skipped[0].skipped}, ...)") if skipped else ""
        return f"{nb.name} has no code for {module} to grade{why}", False
    have = {n for c in runnable if c.outcome.get("status") in (None, "ok", "error")
            for n in c.defines}
    if names and not any(n in have for n in names):
        for n in names:
            message = nb.missing_message(n)
            if not message.endswith(f"defines no `{n}`"):
                return message, nb.ran_out_of_time(n)
        listed = ", ".join(f"`{n}`" for n in names)
        return f"{nb.name} has no code for {module}: it defines none of {listed}", False
    return "", False
