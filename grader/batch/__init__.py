"""Grading a whole class: layouts, roster, jobs, executors and the coordinator.

    from grader.batch import grade_class
    book = grade_class("class/", "run/", assignments=["attention"], roster="roster.csv")
    for student, grading, result in book.results():
        print(student.id, grading.score, grading.max_score)

Imports are lazy: ``python -m grader.batch.cleanup`` (the reaper) must not pay for torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchError", "BatchOptions", "grade_class", "run_batch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from grader.batch import coordinator

        return getattr(coordinator, name)
    raise AttributeError(name)
