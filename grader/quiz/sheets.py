"""Answer sheets: ``quiz take`` writes one (the learner's own variants), ``quiz grade`` grades it.

A sheet is YAML. Each question carries its ``variant`` code, derived from (learner, question id,
attempt); grading derives it again and refuses a question whose code does not match (the sheet was
edited, or belongs to another learner or attempt). Sheets are read with YAML's base loader, so an
answer is always the text the learner typed (``yes``, ``1e3`` or ``0x10`` stay text).

Each graded sheet becomes a :class:`~grader.results.SubmissionResult` whose assignments are the
quiz banks and whose checks are the questions.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..results import AssignmentResult, CheckResult, Status, SubmissionResult
from .answers import FORMS_HELP, check_answer, letter
from .bank import find_question
from .instance import instantiate
from .model import Bank, derive_seed, variant_code
from .practice import UNIT_HINTS

SHEET_FORMAT = "grader-quiz-sheet/1"


class SheetError(ValueError):
    """The sheet as a whole cannot be graded (not YAML, no learner, no questions...)."""


class _SheetDumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_SheetDumper.add_representer(str, _str_presenter)
_SheetDumper.add_representer(
    type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", "")
)


def make_sheet(banks: list[Bank], learner: str, attempt: int = 1) -> str:
    """The YAML text of a blank answer sheet for ``learner`` over ``banks``."""
    entries = []
    for bank in banks:
        for q in bank.questions:
            inst = instantiate(q, derive_seed(learner, q.id, attempt))
            entry: dict[str, Any] = {
                "id": q.id,
                "bank": bank.name,
                "variant": inst.variant,
                "points": int(q.points) if float(q.points).is_integer() else q.points,
                "question": inst.prompt,
            }
            if inst.kind in ("single", "multiple"):
                entry["choices"] = {letter(i): c for i, c in enumerate(inst.choices)}
                entry["how"] = ("one letter" if inst.kind == "single"
                                else "all letters that apply, e.g. [a, c]")
            elif inst.kind == "numeric":
                entry["how"] = UNIT_HINTS[inst.unit] if inst.unit else "a number"
            else:
                entry["how"] = "a short text"
            entry["answer"] = None
            entries.append(entry)
    data = {
        "sheet": SHEET_FORMAT,
        "learner": learner,
        "attempt": attempt,
        "banks": [b.name for b in banks],
        "questions": entries,
    }
    names = ", ".join(b.name for b in banks)
    header = (
        f"# Answer sheet: {names} ({len(entries)} questions) for {learner}, attempt {attempt}.\n"
        "# Write each answer after 'answer:' and do not change anything else: the variant codes\n"
        "# tie the numbers in the questions to you. Grade it with: grader quiz grade THIS_FILE\n"
        f"# Numbers: {FORMS_HELP}. Choices: the letter(s).\n"
        "# Put an answer in quotes if it contains ': ' or '#'.\n"
    )
    body = yaml.dump(data, Dumper=_SheetDumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def write_sheet(path: str | Path, banks: list[Bank], learner: str, attempt: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make_sheet(banks, learner, attempt), encoding="utf-8")
    return path


@dataclass
class _Entry:
    id: str
    bank: str
    variant: str
    points: float
    answer: str


def read_sheet(text: str, origin: str = "<sheet>") -> tuple[str, int, list[str], list[_Entry]]:
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        raise SheetError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or "questions" not in data:
        raise SheetError(f"{origin}: not an answer sheet (no 'questions'); make one with "
                         "'grader quiz take BANK --out FILE'")
    learner = data.get("learner")
    if not isinstance(learner, str) or not learner.strip():
        raise SheetError(f"{origin}: field 'learner' is missing")
    try:
        attempt = int(data.get("attempt", "1"))
    except (TypeError, ValueError):
        raise SheetError(f"{origin}: field 'attempt' must be a whole number") from None
    raw = data["questions"]
    if not isinstance(raw, list):
        raise SheetError(f"{origin}: field 'questions' must be a list")
    banks = data.get("banks") if isinstance(data.get("banks"), list) else []
    entries = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or not isinstance(e.get("id"), str):
            raise SheetError(f"{origin}: question #{i + 1} has no 'id'")
        answer = e.get("answer", "")
        if isinstance(answer, list):
            answer = ", ".join(str(a) for a in answer)
        elif isinstance(answer, dict):
            answer = ", ".join(str(k) for k in answer)
        try:
            points = float(e.get("points", "1"))
        except (TypeError, ValueError):
            points = 1.0
        entries.append(_Entry(e["id"], str(e.get("bank", "")), str(e.get("variant", "")),
                              points, str(answer or "")))
    return learner.strip(), attempt, [str(b) for b in banks], entries


_STATUS = {"correct": Status.PASSED, "wrong": Status.FAILED, "unreadable": Status.ERROR}


def grade_sheet(text: str, banks: list[Bank], origin: str = "<sheet>") -> SubmissionResult:
    """Grade the text of one sheet against the banks."""
    start = time.perf_counter()
    learner, attempt, bank_order, entries = read_sheet(text, origin)
    groups: dict[str, list[CheckResult]] = {name: [] for name in bank_order}
    sources = {b.name: str(b.path) for b in banks}
    for e in entries:
        check, bank_name = _grade_entry(e, banks, learner, attempt)
        groups.setdefault(bank_name, []).append(check)
    from .. import __version__

    result = SubmissionResult(
        submission=f"{learner} ({Path(origin).name})" if origin != "<sheet>" else learner,
        assignments=[AssignmentResult(name=name, checks=checks, source=sources.get(name, ""))
                     for name, checks in groups.items() if checks],
        submission_id=hashlib.sha256(text.encode()).hexdigest()[:16],
        grader_version=__version__,
        environment={"kind": "quiz", "learner": learner, "attempt": attempt, "sheet": origin},
    )
    result.seconds = time.perf_counter() - start
    return result


def _grade_entry(e: _Entry, banks: list[Bank], learner: str, attempt: int
                 ) -> tuple[CheckResult, str]:
    try:
        q = find_question(banks, e.id)
    except KeyError:
        return CheckResult(
            id=e.id, name=e.id, status=Status.ERROR, score=0.0, max_score=e.points,
            message=f"Question '{e.id}' is not in the quiz banks (renamed or removed?).",
            details={"your_answer": e.answer},
        ), e.bank or "unknown"
    seed = derive_seed(learner, q.id, attempt)
    inst = instantiate(q, seed)
    details: dict[str, Any] = {
        "your_answer": e.answer,
        "accepted_answer": inst.display,
        "explanation": inst.explanation,
        "source": q.source,
        "variant": inst.variant,
        "tags": list(q.tags),
        "kind": inst.kind,
    }
    common = dict(id=q.id, name=q.name, max_score=q.points, hint=f"See {q.source}.")
    if e.variant != variant_code(seed):
        details.pop("accepted_answer")
        details.pop("explanation")
        return CheckResult(
            status=Status.ERROR, score=0.0, details=details,
            message=(f"The variant code {e.variant!r} on the sheet is not the one of {learner}, "
                     f"attempt {attempt} ({inst.variant}): was the sheet edited or swapped?"),
            **common,
        ), q.bank
    if not e.answer.strip():
        return CheckResult(status=Status.FAILED, score=0.0, details=details,
                           message=f"No answer given; the answer is {inst.display}.",
                           **common), q.bank
    verdict = check_answer(inst, e.answer)
    details["read_as"] = verdict.read_as
    status = _STATUS[verdict.status]
    return CheckResult(status=status, score=q.points if verdict.correct else 0.0,
                       message=verdict.message, details=details, **common), q.bank
