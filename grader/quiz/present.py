"""How things are shown: the answer format and precision line, the worked solution, and the
``quiz progress`` table."""

from __future__ import annotations

from .model import Instance

UNIT_HINTS = {
    "bytes": "in bytes; KB/MB/GB or KiB/MiB/GiB also accepted",
    "bits": "in bits",
    "nats": "in nats",
    "count": "a count; 1,024 or 1.4M also work",
    "percent": "a percentage",
}


def how_to_answer(inst: Instance) -> str:
    """The answer format and the precision wanted, printed under a question (practice, sheets)."""
    if inst.kind in ("single", "multiple"):
        return "one letter" if inst.kind == "single" else "all letters that apply, e.g. a, c"
    if inst.kind == "recall":
        return "answer in your head, then press Enter to see the answer and rate your recall"
    if inst.kind != "numeric":
        return "a short text"
    base = UNIT_HINTS[inst.unit] if inst.unit else "a number"
    p = inst.precision
    if p is None:
        return base
    if p.kind == "exact":
        if inst.unit == "count":
            return "the exact count, every digit (1,024, not 1K)"
        return f"{base}: the exact value"
    return f"{base}, {p.phrase(inst.unit)}"


def worked_solution(inst: Instance) -> list[str]:
    """The worked steps of a variant (its own numbers), or an empty list."""
    return list(inst.steps)


def render_progress(rows, learner: str, answered: int, now: float) -> str:
    """The ``quiz progress`` table: one line per concept, the practised ones first, weakest
    first."""
    if not answered:
        return (f"No practice yet for {learner}. Start with: grader quiz practice")
    width = max(len(r.tag) for r in rows)
    lines = [f"Progress of {learner}: {answered} answers. Mastery is the recent credit over a "
             "concept's questions (unanswered count as 0).",
             f"{'concept':<{width}}  {'mastery':<17}  seen       due  next review"]
    for r in sorted(rows, key=lambda r: (r.seen == 0, r.mastery, r.tag)):  # practised first
        bar = "#" * round(10 * r.mastery) + "." * (10 - round(10 * r.mastery))
        if r.next_due is None:
            when = "-"
        elif r.next_due <= now:
            when = "now"
        else:
            hours = (r.next_due - now) / 3600
            days = round(hours / 24)
            when = f"in {hours:.0f} h" if hours < 36 else f"in {days} days"
        lines.append(f"{r.tag:<{width}}  {bar} {r.mastery:>5.0%}  {r.seen:>3}/{r.questions:<3}"
                     f"  {r.due:>4}  {when}")
    due = sum(r.due for r in rows)
    lines.append(f"Due for review now: {due} (question-concept pairs). Practise: grader quiz "
                 "practice")
    return "\n".join(lines)
