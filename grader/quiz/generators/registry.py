"""The generator registry: what a generator returns, how it is declared, and template filling.

A bank's ``kind: param`` question names a generator; the generator draws its numbers from a seeded
:class:`random.Random` and returns a :class:`Generated`: the template variables (used in the
question's ``prompt`` and ``explanation``), the answer, the known mistakes, a hint for a second try
and the worked solution with this variant's own numbers. Each generator declares its variables so
that a bank's templates are checked when the bank is loaded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import Mistake, Tolerance


@dataclass
class Generated:
    """What a generator drew: template variables and the answer (numeric, choice or text)."""

    vars: dict[str, Any]
    kind: str = "numeric"
    value: float | None = None
    unit: str | None = None
    tolerance: Tolerance | None = None
    mistakes: list[Mistake] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    correct: list[str] = field(default_factory=list)
    shuffle: bool = True
    accepted: list[str] = field(default_factory=list)
    display: str = ""
    steps: list[str] = field(default_factory=list)  # the worked solution, numbers filled in
    hint: str = ""  # a nudge for the second try that does not give the answer away
    feedback: dict[str, str] = field(default_factory=dict)  # choice text -> why it is wrong


@dataclass(frozen=True)
class Generator:
    """A registered generator: its function, answer kind, template variables and options."""

    name: str
    func: Callable[[random.Random, dict[str, Any]], Generated]
    kind: str
    variables: tuple[str, ...]
    options: dict[str, Any]
    doc: str

    def generate(self, rng: random.Random, options: dict[str, Any] | None = None) -> Generated:
        """One draw with the generator's default options updated by ``options``."""
        opts = dict(self.options)
        opts.update(options or {})
        return self.func(rng, opts)


GENERATORS: dict[str, Generator] = {}


def generator(name: str, *, kind: str, variables: tuple[str, ...], options: dict | None = None):
    """Register the decorated function as generator ``name``."""

    def register(func: Callable[[random.Random, dict[str, Any]], Generated]):
        if name in GENERATORS:
            raise ValueError(f"generator {name!r} registered twice")
        GENERATORS[name] = Generator(
            name, func, kind, variables, dict(options or {}), (func.__doc__ or "").strip()
        )
        return func

    return register


def render(template: str, variables: dict[str, Any]) -> str:
    """Fill a bank template; only plain ``{name}`` / ``{name:spec}`` fields (checked on load)."""
    return template.format_map(variables)
