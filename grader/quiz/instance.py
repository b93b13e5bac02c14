"""Turning a question into the concrete variant a learner sees (seeded, reproducible)."""

from __future__ import annotations

import random

from .answers import UNIT_FAMILIES, format_number, letter
from .model import Instance, Question, Tolerance
from .params import GENERATORS, human, human_bytes, render

_SHUFFLE_SALT = 0x5EED_C401CE


def instantiate(question: Question, seed: int) -> Instance:
    """The variant of ``question`` for ``seed``: same seed, same numbers and choice order."""
    if question.kind == "param":
        return _instantiate_param(question, seed)
    inst = Instance(
        question=question,
        seed=seed,
        kind=question.kind,
        prompt=question.prompt.rstrip(),
        explanation=question.explanation.rstrip(),
        value=question.answer,
        tolerance=question.tolerance,
        unit=question.unit,
        mistakes=list(question.mistakes),
        accepted=list(question.accepted),
    )
    if question.kind in ("single", "multiple"):
        _place_choices(inst, question.choices, question.correct, question.shuffle, seed)
    _set_display(inst)
    return inst


def _instantiate_param(question: Question, seed: int) -> Instance:
    gen = GENERATORS[question.generator]
    g = gen.generate(random.Random(seed), question.options)
    inst = Instance(
        question=question,
        seed=seed,
        kind=g.kind,
        prompt="",
        explanation="",
        value=g.value,
        tolerance=question.tolerance_override or g.tolerance or Tolerance(),
        unit=g.unit,
        mistakes=list(g.mistakes),
        accepted=list(g.accepted),
        display=g.display,
    )
    if g.kind in ("single", "multiple"):
        _place_choices(inst, g.choices, g.correct, g.shuffle and question.shuffle, seed)
    _set_display(inst)
    variables = dict(g.vars)
    variables["answer"] = inst.display
    inst.prompt = render(question.prompt, variables).rstrip()
    inst.explanation = render(question.explanation, variables).rstrip()
    return inst


def _place_choices(inst: Instance, choices: list[str], correct: list[str], shuffle: bool,
                   seed: int) -> None:
    order = list(range(len(choices)))
    if shuffle:
        random.Random(seed ^ _SHUFFLE_SALT).shuffle(order)
    inst.choices = [choices[i] for i in order]
    inst.correct = sorted(j for j, i in enumerate(order) if choices[i] in correct)


def _set_display(inst: Instance) -> None:
    if inst.display:
        return
    if inst.kind in ("single", "multiple"):
        inst.display = "; ".join(f"{letter(i)}) {inst.choices[i]}" for i in inst.correct)
    elif inst.kind == "text":
        inst.display = inst.accepted[0]
    else:
        assert inst.value is not None
        inst.display = display_number(inst.value, inst.unit)


def display_number(value: float, unit: str | None) -> str:
    text = format_number(value)
    if unit is None:
        return text
    if unit == "bytes":
        return f"{text} bytes" + (f" ({human_bytes(value)})" if value >= 1024 else "")
    if unit == "count":
        return text + (f" ({human(value)})" if value >= 1e6 else "")
    if unit == "percent":
        return f"{text}%"
    return f"{text} {UNIT_FAMILIES[unit][0]}"
