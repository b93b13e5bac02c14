"""``grader quiz check``: prove the banks sound over many seeds.

For every question (parameterised ones over ``seeds`` variants in each stream, practice and
sheet) :func:`audit` checks that an example answer is accepted and a wrong one rejected; that no
listed mistake is accepted, neither as given nor rounded to the precision the prompt asks for,
and that each is named by its own feedback; that every variant has a worked solution with its
own numbers; that every distractor has its feedback and every fixed numeric or text question a
hint; and that practice and sheets never share a variant. Every registered generator is
also drawn on its own, so a generator no bank uses yet is proven too. With the course-items list
it reports coverage (see :mod:`.coverage`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .answers import check_answer, example_answer, wrong_answer
from .generators import GENERATORS
from .instance import PRACTICE, SHEET, VariantError, draw, fingerprint, instantiate, stream_kind
from .model import GRADED_KINDS, Bank, Instance, Question, derive_seed, round_sig

AUDIT_SHEET_STREAM = "sheet:quiz-check"


@dataclass
class AuditReport:
    """What :func:`audit` proved, and the problems it found (empty when all is well)."""

    problems: list[str] = field(default_factory=list)
    variants: int = 0
    mistakes: int = 0
    generators: int = 0
    shared: int = 0  # variants seen in both practice and a sheet (must be 0)
    redraws: int = 0  # draws rejected because a mistake clashed or the stream did not match
    seconds: float = 0.0


def rounded_at_precision(inst: Instance, x: float) -> float:
    """``x`` rounded as the prompt asks answers to be rounded."""
    p = inst.precision
    if p is None or p.kind == "exact":
        return float(round(x))
    if p.kind == "dp":
        return round(x, p.digits)
    return round_sig(x, p.digits)


def check_instance(inst: Instance, where: str) -> tuple[list[str], int]:
    """Problems of one variant, and how many listed mistakes were proven rejected."""
    problems = []
    good = check_answer(inst, example_answer(inst))
    bad = check_answer(inst, wrong_answer(inst))
    if not good.correct:
        problems.append(f"{where}: its own answer is not accepted: {good.message}")
    if bad.status != "wrong":
        problems.append(f"{where}: a wrong answer is not rejected: {bad.message}")
    proven = 0
    if inst.kind == "numeric":
        for m in inst.mistakes:
            for given in (repr(float(m.value)), repr(rounded_at_precision(inst, m.value))):
                v = check_answer(inst, given)
                if v.correct:
                    problems.append(f"{where}: the listed mistake {given} is accepted as "
                                    f"correct ({m.message})")
                    break
            else:
                v = check_answer(inst, repr(float(m.value)))
                if m.message not in v.message:
                    problems.append(f"{where}: the listed mistake {m.value!r} does not get its "
                                    f"feedback ({m.message!r}); got {v.message!r}")
                else:
                    proven += 1
    return problems, proven


def _teaching_problems(q: Question, where: str) -> list[str]:
    """What a fixed question lacks to teach: feedback on every distractor, a hint for a second
    try on a numeric or text question."""
    problems = []
    if q.kind in ("single", "multiple"):
        bare = [c for c in q.choices if c not in q.correct and c not in q.feedback]
        if bare:
            problems.append(f"{where}: no feedback for the distractor(s) "
                            + "; ".join(repr(c) for c in bare))
    if q.kind in ("numeric", "text") and not q.hint:
        problems.append(f"{where}: no hint for a second try")
    return problems


def _check_steps(inst: Instance, where: str) -> list[str]:
    if not inst.question.parameterised:
        return []
    if not inst.steps:
        return [f"{where}: no worked solution"]
    text = " ".join(inst.steps)
    numbers = [str(v) for v in inst.vars.values() if isinstance(v, (int, float))]
    numbers += [str(v) for v in inst.vars.values() if isinstance(v, str) and any(
        ch.isdigit() for ch in v) and len(v) < 40]
    if numbers and not any(n in text for n in numbers):
        return [f"{where}: the worked solution does not use the variant's numbers"]
    return []


def audit(banks: list[Bank], seeds: int = 40) -> AuditReport:
    """Check every question (see the module docstring); problems name file, line and seed."""
    start = time.perf_counter()
    report = AuditReport()
    seen: dict[str, dict[str, set[str]]] = {}  # generator → stream → fingerprints
    for bank in banks:
        for q in bank.questions:
            if q.kind not in GRADED_KINDS:
                continue
            report.problems += _teaching_problems(q, f"{bank.path}:{q.line}: question '{q.id}'")
            streams = ("", AUDIT_SHEET_STREAM) if q.parameterised else ("",)
            for stream in streams:
                for s in range(seeds if q.parameterised else 1):
                    seed = derive_seed("quiz-check", q.id, s + 1, stream=stream)
                    where = (f"{bank.path}:{q.line}: question '{q.id}' ({stream_kind(stream)} "
                             f"variant, seed {seed})")
                    try:
                        inst = instantiate(q, seed, stream)
                        problems, proven = check_instance(inst, where)
                    except Exception as exc:  # a broken generator or template: report it
                        report.problems.append(f"{where}: {type(exc).__name__}: {exc}")
                        continue
                    report.problems += problems + _check_steps(inst, where)
                    report.mistakes += proven
                    report.variants += 1
                    if q.parameterised:
                        fp = fingerprint(q.generator, inst.vars)
                        seen.setdefault(q.generator, {}).setdefault(
                            stream_kind(stream), set()).add(fp)
    for name in sorted(GENERATORS):
        report.problems += _audit_generator(name, seeds, report, seen)
    report.generators = len(GENERATORS)
    for name, streams in seen.items():
        both = streams.get(PRACTICE, set()) & streams.get(SHEET, set())
        if both:
            report.shared += len(both)
            report.problems.append(f"generator {name}: {len(both)} variant(s) appear both in "
                                   "practice and on a sheet")
    report.seconds = time.perf_counter() - start
    return report


def _audit_generator(name: str, seeds: int, report: AuditReport,
                     seen: dict[str, dict[str, set[str]]]) -> list[str]:
    """Draw a generator on its own (default options, plain templates) in both streams."""
    gen = GENERATORS[name]
    q = Question(id=f"generator-{name}", kind="param", prompt="?", explanation="", tags=["audit"],
                 source="learning-plan.md", generator=name, options=dict(gen.options))
    problems = []
    for stream in ("", AUDIT_SHEET_STREAM):
        for s in range(seeds):
            seed = derive_seed("quiz-check-generator", name, s + 1, stream=stream)
            where = f"generator {name} ({stream_kind(stream)} variant, seed {seed})"
            try:
                _, _, draws = draw(q, seed, stream)
                report.redraws += draws - 1
                inst = instantiate(q, seed, stream)
                found, proven = check_instance(inst, where)
            except (VariantError, Exception) as exc:
                problems.append(f"{where}: {type(exc).__name__}: {exc}")
                continue
            problems += found + _check_steps(inst, where)
            report.mistakes += proven
            seen.setdefault(name, {}).setdefault(stream_kind(stream), set()).add(
                fingerprint(name, inst.vars))
    return problems


def self_test(banks: list[Bank], seeds: int = 5) -> list[str]:
    """The problems :func:`audit` finds (empty when all is well)."""
    return audit(banks, seeds).problems
