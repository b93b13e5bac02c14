"""The catalogue of known mistakes: the registry the engine reads, and the type of its entries.

The mistakes themselves live with their assignment (``grader/checks/<assignment>/mistakes.py``),
which registers them here when it is imported; the engine never imports the checks. A mistake
says what it is called, gives a hint in the course's words, points to where the course explains
it, and says how to plant it in the reference (so that its output can be computed).

A mistake is planted by editing the reference's source: ``plant`` maps a module of the reference
package (``"attention"``, ``"block"``, ...) to ``(old, new)`` replacements, each ``old`` occurring
exactly once (see :mod:`.variants`). ``flavours`` are other ways of writing the same mistake; a
variant's id is the mistake's id, or ``"<id>/<flavour>"``. A mistake without a plant is named by
a check's own rule (e.g. two parameter objects where one tied one is expected).

A new assignment adds its mistakes with :func:`register` (from its ``mistakes.py``); its checks
compare with :func:`affecting` the modules their values depend on; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# module of the reference package -> (old, new) source replacements
Edits = dict[str, list[tuple[str, str]]]

Q1 = "day30-capstone-and-checkpoint.md Q1 (the attention equation)"
Q2 = "day30-capstone-and-checkpoint.md Q2 (why scale by sqrt(d_k))"
Q3 = "day30-capstone-and-checkpoint.md Q3 (the causal mask, applied before softmax)"
Q8 = "day30-capstone-and-checkpoint.md Q8 (multi-head attention: split into heads, transpose)"
S41 = "series4-llms-and-transformers-summary.md Module 4.1"
S42 = "series4-llms-and-transformers-summary.md Module 4.2"
S43 = "series4-llms-and-transformers-summary.md Module 4.3"


@dataclass(frozen=True)
class Mistake:
    """One known mistake. ``name`` completes "Likely mistake: ..."; ``hint`` says what to look
    at, in the course's words; ``course`` points to the course text that explains it."""

    id: str
    name: str
    hint: str
    course: str
    plant: Edits = field(default_factory=dict)
    flavours: dict[str, Edits] = field(default_factory=dict)

    def variants(self) -> dict[str, Edits]:
        """Variant id -> the edits that plant this mistake in the reference."""
        out = {self.id: self.plant} if self.plant else {}
        out.update({f"{self.id}/{name}": edits for name, edits in self.flavours.items()})
        return out

    def modules(self) -> set[str]:
        """The reference modules its variants edit (kept in a student bundle, whose plants are
        stripped of their text but not of their keys)."""
        return {module for edits in self.variants().values() for module in edits}

    def as_details(self) -> dict[str, str]:
        """What a check stores as ``details["likely_mistake"]`` (the reports' keys)."""
        return {"id": self.id, "name": self.name, "hint": self.hint, "course": self.course}


CATALOGUE: dict[str, Mistake] = {}


def register(*mistakes: Mistake) -> None:
    """Add mistakes to the catalogue (ids are unique across assignments)."""
    for m in mistakes:
        if m.id in CATALOGUE and CATALOGUE[m.id] != m:
            raise ValueError(f"duplicate mistake id {m.id!r}")
        if "/" in m.id:
            raise ValueError(f"mistake id {m.id!r} may not contain '/'")
        CATALOGUE[m.id] = m


def mistake(id_or_variant: str) -> Mistake:
    """The mistake a mistake id or a variant id (``"<id>/<flavour>"``) stands for."""
    key = id_or_variant.split("/", 1)[0]
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown mistake {key!r}; known: {', '.join(CATALOGUE)}") from None


def likely(mistake_id: str, **extra: Any) -> dict[str, Any]:
    """``likely_mistake`` details for a mistake a check recognises by its own rule."""
    return {"likely_mistake": {**mistake(mistake_id).as_details(), **extra}}



def affecting(*modules: str) -> tuple[str, ...]:
    """Every registered mistake planted in one of the reference ``modules``, in registration
    order: what a check whose values depend on those modules compares with (all of them, not a
    hand-picked subset, so that a mistake is never missed because nobody listed it)."""
    wanted = set(modules)
    return tuple(m.id for m in CATALOGUE.values() if m.modules() & wanted)
