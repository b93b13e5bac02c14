"""How a question is presented: the answer format and precision line, and the worked solution."""

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
            return "the exact count, every digit: 124,439,808, not 124.4M"
        return f"{base}: the exact value"
    return f"{base}, {p.phrase(inst.unit)}"


def worked_solution(inst: Instance) -> list[str]:
    """The worked steps of a variant (its own numbers), or an empty list."""
    return list(inst.steps)
