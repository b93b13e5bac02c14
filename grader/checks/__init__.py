"""The checks: a small framework (``base``, ``harness``, ``compare``, ``expected``) and one
package per assignment, each declaring an :class:`~.base.Assignment`.

``ASSIGNMENTS`` lists them in course order: it is the one source of the assignment list (the
discovery, the release and the reports are given what they need from it, never import it).
"""

from __future__ import annotations

from grader.checks.base import (
    Assignment,
    Check,
    CheckFailed,
    CheckSettings,
    CheckSkipped,
    Context,
    Outcome,
    ok,
)

__all__ = ["ASSIGNMENTS", "Assignment", "Check", "CheckFailed", "CheckSettings", "CheckSkipped",
           "Context",
           "Outcome", "ok", "assignment", "graded_names", "names", "trains"]


def _load() -> dict[str, Assignment]:
    from grader.checks import attention, block, bpe, causal_mask, gpt2_loading, kv_cache, training

    ordered = [bpe, attention, causal_mask, block, training, kv_cache, gpt2_loading]
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


def trains(selected: list[str] | None) -> bool:
    """Whether grading the assignments ``selected`` (None: all) runs an optimizer, on either
    side: only those gradings need ``torch._dynamo``, which every ``Optimizer.step`` imports."""
    return any(ASSIGNMENTS[n].trains for n in (selected or ASSIGNMENTS))


def graded_names() -> dict[str, list[str]]:
    """Every assignment module, in course order -> the names its checks import (in declaration
    order): what discovery needs to know which notebook provides which module."""
    out: dict[str, list[str]] = {}
    for a in ASSIGNMENTS.values():
        names = out.setdefault(a.module, [])
        for c in a.checks:
            names.extend(n for n in c.needs if n not in names)
    return out
