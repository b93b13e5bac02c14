"""The checks, one module per assignment, each declaring an :class:`~.base.Assignment`.

``ASSIGNMENTS`` lists them in course order; a new assignment is added here and nowhere else.
"""

from __future__ import annotations

from .base import Assignment, Check, CheckFailed, CheckSkipped, Context, Outcome, ok

__all__ = ["ASSIGNMENTS", "Assignment", "Check", "CheckFailed", "CheckSkipped", "Context",
           "Outcome", "ok", "assignment", "names"]


def _load() -> dict[str, Assignment]:
    from . import attention, block, causal_mask, gpt2_loading, kv_cache, training

    ordered = [attention, causal_mask, block, training, kv_cache, gpt2_loading]
    return {m.ASSIGNMENT.name: m.ASSIGNMENT for m in ordered}


ASSIGNMENTS: dict[str, Assignment] = _load()


def names() -> list[str]:
    """Assignment names in course order."""
    return list(ASSIGNMENTS)


def assignment(name: str) -> Assignment:
    """The assignment called ``name``; ``KeyError`` names the known ones."""
    try:
        return ASSIGNMENTS[name]
    except KeyError:
        raise KeyError(f"unknown assignment {name!r}; known: {', '.join(ASSIGNMENTS)}") from None
