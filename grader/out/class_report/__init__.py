"""The class summary: which mistakes are common, so the instructor knows what to re-teach.

``grader summary GRADEBOOK --out DIR`` (:mod:`grader.cli.summary`) writes ``summary.html`` and
``summary.md`` and prints a short table. What each number means is in
:mod:`~grader.out.class_report.stats`; the similarity flags in
:mod:`~grader.out.class_report.similarity`; the files in :mod:`~grader.out.class_report.render`.

From Python::

    from grader.out.gradebook import Gradebook
    from grader.out.class_report import build, write
    with Gradebook.open("run/gradebook.sqlite", readonly=True) as book:
        write(build(book), "summary/")
"""

from __future__ import annotations

from pathlib import Path

from grader.out.class_report.render import Page, terminal, write
from grader.out.class_report.similarity import Similarity, compare, find_files
from grader.out.class_report.stats import Student, run_rates, summarise

__all__ = ["Page", "build", "rows", "terminal", "write"]


def rows(book, run_id: int | None = None) -> list[Student]:
    """The gradebook's students with the grading that counts (of ``run_id`` if given)."""
    return [Student(s.id, g.status, r, g.message) for s, g, r in book.results(run_id)]


def build(book, run_id: int | None = None, *, title: str = "", similarity: bool = True,
          roots: list[Path] | None = None, stubs: Path | None = None,
          threshold: float = 0.6) -> Page:
    """The summary of ``book`` (one run, or the grading that counts across runs), with the
    history of every run and, when ``similarity``, the similar pairs of the files found under
    ``roots`` (the run's staging folder and the class folder) with ``stubs`` (the released
    ``assignments/`` folder) as boilerplate."""
    students = rows(book, run_id)
    summary = summarise(students)
    history = []
    for run in book.runs():
        run_students = rows(book, run.id)
        if run_students:
            history.append(run_rates(run.id, run.label, run.created_at, run_students))
    sim = None
    if similarity:
        modules = {}
        for s in students:
            for a in s.result.assignments:
                if a.source and a.source.endswith(".py"):
                    modules.setdefault(a.name, a.source)
        submitted = [s.id for s in students if s.status != "no_submission"]
        folders = {}
        for sid, g in book.latest(run_id).items():
            source = g.submission.source if g.submission else ""
            if source and Path(source).is_dir():  # the folders layout records the folder
                folders[sid] = Path(source)
        files = find_files(submitted, modules, [r for r in (roots or []) if r.is_dir()],
                           folders)
        boiler = {m: stubs / src for m, src in modules.items()} if stubs else {}
        sim = compare(files, boiler, threshold=threshold) if files else Similarity(
            [], {}, "no submitted files were found to compare (pass --class-dir, the folder "
                    "the batch graded)")
    label = ""
    if run_id is not None:
        run = book.run(run_id)
        label = f"Run {run.id}" + (f" ({run.label})" if run.label else "")
    return Page(title or "Class summary", summary, sim, history, label)
