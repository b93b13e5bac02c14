"""Answer sheets: ``quiz take`` writes one (the learner's own variants), ``quiz grade`` grades it.

A sheet is YAML. Each question carries its ``variant`` code, derived from (sheet id, learner,
question id, attempt); grading derives it again and refuses a question whose code does not match
(the sheet was edited, or belongs to another learner or attempt). The sheet id is the instructor's
salt (``quiz take --sheet-id``): sheets draw from their own seed stream, and only variants that
practice never shows (see :mod:`.instance`), so a graded sheet never repeats a practice variant.
Self-graded reveal cards (``kind: recall``) are practice only, never on a sheet. Sheets are read
with YAML's base loader, so an answer is always the text the learner typed (``yes``, ``1e3`` or
``0x10`` stay text).

Each graded sheet becomes a :class:`~grader.model.results.SubmissionResult` whose assignments are
the quiz banks and whose checks are the questions; partial credit is a failed check with a score.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult

from .answers import FORMS_HELP, check_answer, letter
from .bank import find_question
from .instance import instantiate
from .model import GRADED_KINDS, Bank, derive_seed, variant_code
from .present import how_to_answer

SHEET_FORMAT = "grader-quiz-sheet/2"
OLD_FORMATS = ("grader-quiz-sheet/1",)
DEFAULT_SHEET_ID = "default"


def sheet_stream(sheet_id: str) -> str:
    """The seed stream of a sheet: never the practice stream."""
    return f"sheet:{sheet_id}"


def sheet_seed(sheet_id: str, learner: str, question_id: str, attempt: int) -> int:
    """The variant seed of a question on a sheet."""
    return derive_seed(learner, question_id, attempt, stream=sheet_stream(sheet_id))


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


def make_sheet(banks: list[Bank], learner: str, attempt: int = 1,
               sheet_id: str = DEFAULT_SHEET_ID) -> str:
    """The YAML text of a blank answer sheet for ``learner`` over ``banks``."""
    entries = []
    stream = sheet_stream(sheet_id)
    for bank in banks:
        for q in bank.questions:
            if q.kind not in GRADED_KINDS:
                continue
            inst = instantiate(q, sheet_seed(sheet_id, learner, q.id, attempt), stream)
            entry: dict[str, Any] = {
                "id": q.id,
                "bank": bank.name,
                "variant": inst.variant,
                "points": int(q.points) if float(q.points).is_integer() else q.points,
                "question": inst.prompt,
            }
            if inst.kind in ("single", "multiple"):
                entry["choices"] = {letter(i): c for i, c in enumerate(inst.choices)}
            entry["how"] = how_to_answer(inst)
            entry["answer"] = None
            entries.append(entry)
    data = {
        "sheet": SHEET_FORMAT,
        "sheet_id": sheet_id,
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


def write_sheet(path: str | Path, banks: list[Bank], learner: str, attempt: int = 1,
                sheet_id: str = DEFAULT_SHEET_ID) -> Path:
    """Write a blank sheet (see :func:`make_sheet`) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make_sheet(banks, learner, attempt, sheet_id), encoding="utf-8")
    return path


@dataclass
class _Entry:
    id: str
    bank: str
    variant: str
    points: float
    answer: str


@dataclass
class _Sheet:
    learner: str
    attempt: int
    sheet_id: str
    banks: list[str]
    entries: list[_Entry]


def read_sheet(text: str, origin: str = "<sheet>") -> _Sheet:
    """Parse a sheet's YAML (answers stay the text typed); :class:`SheetError` when unusable."""
    try:
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        raise SheetError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or "questions" not in data:
        raise SheetError(f"{origin}: not an answer sheet (no 'questions'); make one with "
                         "'grader quiz take BANK --out FILE'")
    fmt = data.get("sheet")
    if fmt in OLD_FORMATS:
        raise SheetError(f"{origin}: this sheet ({fmt}) was written by an older grader whose "
                         "variants are no longer drawn; write a new one with 'grader quiz take'")
    sheet_id = data.get("sheet_id", DEFAULT_SHEET_ID)
    if not isinstance(sheet_id, str) or not sheet_id.strip():
        raise SheetError(f"{origin}: field 'sheet_id' must be a non-empty text")
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
    return _Sheet(learner.strip(), attempt, sheet_id.strip(), [str(b) for b in banks], entries)


# A sheet cannot ask again: a "reask" (a correctly rounded but too coarse number) is failed with
# its message, which says it is not a wrong value; partial credit is a failed check with a score.
_STATUS = {"correct": Status.PASSED, "partial": Status.FAILED, "wrong": Status.FAILED,
           "reask": Status.FAILED, "unreadable": Status.ERROR}


def grade_sheet(text: str, banks: list[Bank], origin: str = "<sheet>") -> SubmissionResult:
    """Grade the text of one sheet against the banks."""
    start = time.perf_counter()
    sheet = read_sheet(text, origin)
    learner, attempt = sheet.learner, sheet.attempt
    groups: dict[str, list[CheckResult]] = {name: [] for name in sheet.banks}
    sources = {b.name: str(b.path) for b in banks}
    for e in sheet.entries:
        check, bank_name = _grade_entry(e, banks, learner, attempt, sheet.sheet_id)
        groups.setdefault(bank_name, []).append(check)
    from grader import __version__

    result = SubmissionResult(
        submission=f"{learner} ({Path(origin).name})" if origin != "<sheet>" else learner,
        assignments=[AssignmentResult(name=name, checks=checks, source=sources.get(name, ""))
                     for name, checks in groups.items() if checks],
        submission_id=hashlib.sha256(text.encode()).hexdigest()[:16],
        grader_version=__version__,
        environment={"kind": "quiz", "learner": learner, "attempt": attempt, "sheet": origin,
                     "sheet_id": sheet.sheet_id},
    )
    result.seconds = time.perf_counter() - start
    return result


def _grade_entry(e: _Entry, banks: list[Bank], learner: str, attempt: int, sheet_id: str
                 ) -> tuple[CheckResult, str]:
    try:
        q = find_question(banks, e.id)
    except KeyError:
        return CheckResult(
            id=e.id, name=e.id, status=Status.ERROR, score=0.0, max_score=e.points,
            message=f"Question '{e.id}' is not in the quiz banks (renamed or removed?).",
            details={"your_answer": e.answer},
        ), e.bank or "unknown"
    if q.kind not in GRADED_KINDS:
        return CheckResult(
            id=q.id, name=q.name, status=Status.ERROR, score=0.0, max_score=e.points,
            message=f"Question '{q.id}' is a self-graded card (practice only), not for a sheet.",
            details={"your_answer": e.answer},
        ), q.bank
    seed = sheet_seed(sheet_id, learner, q.id, attempt)
    inst = instantiate(q, seed, sheet_stream(sheet_id))
    details: dict[str, Any] = {
        "your_answer": e.answer,
        "accepted_answer": inst.display,
        "explanation": inst.explanation,
        "worked_solution": list(inst.steps),
        "source": q.source,
        "variant": inst.variant,
        "tags": list(q.tags),
        "kind": inst.kind,
    }
    common = dict(id=q.id, name=q.name, max_score=q.points, hint=f"See {q.source}.")
    if e.variant != variant_code(seed):
        details.pop("accepted_answer")
        details.pop("explanation")
        details.pop("worked_solution")
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
    if verdict.status == "partial":
        details["credit"] = verdict.credit
    return CheckResult(status=status, score=round(q.points * verdict.credit, 4),
                       message=verdict.message, details=details, **common), q.bank
