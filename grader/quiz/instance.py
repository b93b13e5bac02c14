"""Turning a question into the concrete variant a learner sees (seeded, reproducible).

A parameterised question's variant is drawn again (from the same seeded generator) until it is
sound: no listed mistake may fall inside the tolerance (or so near it that the two cannot be told
apart), so a named misconception is never marked correct. The draw also separates practice from
graded sheets: every variant has a fingerprint (a hash of its numbers), practice keeps only
variants with an even fingerprint and sheets only odd ones, so a sheet never shows a variant that
practice could have shown, with its answer, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import json
import random

from .answers import format_number, letter
from .generators import GENERATORS, Generated, human, human_bytes, render
from .model import Instance, Question, Tolerance, mistake_clashes, needed_precision
from .units import UNIT_FAMILIES

_SHUFFLE_SALT = 0x5EED_C401CE
MAX_DRAWS = 400
PRACTICE, SHEET = "practice", "sheet"


class VariantError(RuntimeError):
    """No sound variant could be drawn (a generator whose mistakes always clash)."""


def stream_kind(stream: str) -> str:
    """``"sheet"`` for a graded sheet's stream (``"sheet:<salt>"``), else ``"practice"``."""
    return SHEET if stream.startswith(SHEET) else PRACTICE


def fingerprint(generator: str, variables: dict) -> str:
    """A stable hash of a variant's numbers: two variants with the same numbers are the same."""
    text = json.dumps({"g": generator, "v": variables}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_stream(fp: str) -> str:
    """Which stream may show a variant with fingerprint ``fp``."""
    return SHEET if int(fp[-1], 16) % 2 else PRACTICE


def clashing_mistakes(g: Generated, tol: Tolerance) -> list[str]:
    """The messages of ``g``'s mistakes that fall inside (or touch) its tolerance."""
    if g.kind != "numeric" or g.value is None:
        return []
    return [m.message for m in g.mistakes if mistake_clashes(tol, g.value, m.value)]


def draw(question: Question, seed: int, stream: str = "") -> tuple[Generated, Tolerance, int]:
    """A sound variant of a parameterised question for ``stream``: (generated, tolerance, draws)."""
    gen = GENERATORS[question.generator]
    rng = random.Random(seed)
    want = stream_kind(stream)
    for n in range(1, MAX_DRAWS + 1):
        g = gen.generate(rng, question.options)
        tol = question.tolerance_override or g.tolerance or Tolerance()
        if clashing_mistakes(g, tol):
            continue
        if fingerprint_stream(fingerprint(question.generator, g.vars)) != want:
            continue
        return g, tol, n
    raise VariantError(f"{question.generator}: no sound {want} variant in {MAX_DRAWS} draws")


def instantiate(question: Question, seed: int, stream: str = "") -> Instance:
    """The variant of ``question`` for ``seed`` in ``stream`` (``""``: practice; a sheet passes
    ``"sheet:<salt>"``): same seed and stream, same numbers and choice order."""
    if question.kind == "param":
        return _instantiate_param(question, seed, stream)
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
        hint=question.hint,
        steps=list(question.solution),
        stream=stream,
    )
    if question.kind in ("single", "multiple"):
        _place_choices(inst, question.choices, question.correct, question.shuffle, seed,
                       question.feedback)
    _finish(inst)
    return inst


def _instantiate_param(question: Question, seed: int, stream: str) -> Instance:
    g, tol, _ = draw(question, seed, stream)
    inst = Instance(
        question=question,
        seed=seed,
        kind=g.kind,
        prompt="",
        explanation="",
        value=g.value,
        tolerance=tol,
        unit=g.unit,
        mistakes=list(g.mistakes),
        accepted=list(g.accepted),
        display=g.display,
        hint=question.hint or g.hint,
        steps=list(g.steps),
        vars=dict(g.vars),
        stream=stream,
    )
    if g.kind in ("single", "multiple"):
        _place_choices(inst, g.choices, g.correct, g.shuffle and question.shuffle, seed,
                       g.feedback)
    _finish(inst)
    variables = dict(g.vars)
    variables["answer"] = inst.display
    inst.prompt = render(question.prompt, variables).rstrip()
    inst.explanation = render(question.explanation, variables).rstrip()
    return inst


def _place_choices(inst: Instance, choices: list[str], correct: list[str], shuffle: bool,
                   seed: int, feedback: dict[str, str]) -> None:
    order = list(range(len(choices)))
    if shuffle:
        random.Random(seed ^ _SHUFFLE_SALT).shuffle(order)
    inst.choices = [choices[i] for i in order]
    inst.correct = sorted(j for j, i in enumerate(order) if choices[i] in correct)
    inst.feedback = {j: feedback[choices[i]] for j, i in enumerate(order) if choices[i] in feedback}


def _finish(inst: Instance) -> None:
    if inst.kind == "numeric" and inst.value is not None:
        inst.precision = needed_precision(inst.value, inst.tolerance)
    if inst.display:
        return
    if inst.kind in ("single", "multiple"):
        inst.display = "; ".join(f"{letter(i)}) {inst.choices[i]}" for i in inst.correct)
    elif inst.kind == "text":
        inst.display = inst.accepted[0]
    elif inst.kind == "recall":
        inst.display = inst.explanation
    else:
        assert inst.value is not None
        inst.display = display_number(inst.value, inst.unit)


def display_number(value: float, unit: str | None) -> str:
    """An answer as shown to the learner, with its unit (``18,874,368 bytes (18 MiB)``)."""
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
