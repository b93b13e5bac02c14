"""The course items the quizzes should cover, and how many of them a question covers.

``quizzes/course-items.yaml`` lists the course's checkpoint items, quantitative facts and
concepts, each with its source passage. A question names the items it covers (``covers:``);
``grader quiz check`` reports the share of items with at least one question, and fails below
:data:`TARGET`. With the course texts at hand (``--course DIR``), every item's ``quote`` is checked
to appear in its source file, so the list cannot drift from the texts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .model import Bank
from .schema import COURSE_FILES, ID_RE, SOURCE_RE, BankError

ITEMS_FILE = "course-items.yaml"
TARGET = 0.85
ITEM_KINDS = ("checkpoint", "fact", "concept")


@dataclass
class Item:
    """One course item: what a learner should know, and where the course says it."""

    id: str
    source: str
    text: str
    kind: str = "concept"
    quote: str = ""


@dataclass
class Coverage:
    """Which items have questions (``covered``: item id → question ids) and which do not."""

    items: list[Item]
    covered: dict[str, list[str]] = field(default_factory=dict)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # question → unknown item ids

    @property
    def share(self) -> float:
        return len(self.covered) / len(self.items) if self.items else 0.0

    @property
    def missing(self) -> list[Item]:
        return [i for i in self.items if i.id not in self.covered]


def load_items(path: str | Path) -> list[Item]:
    """Read and validate the course-items list; :class:`BankError` lists every problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BankError([f"{path}: cannot read the course items: {exc}"]) from None
    raw = data.get("items") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise BankError([f"{path}: field 'items' must be a non-empty list"])
    items, errors, seen = [], [], set()
    for n, r in enumerate(raw, 1):
        where = f"{path}: item #{n}"
        if not isinstance(r, dict):
            errors.append(f"{where}: must be a mapping")
            continue
        iid, source, text = r.get("id"), r.get("source"), r.get("text")
        kind, quote = r.get("kind", "concept"), r.get("quote", "")
        if not isinstance(iid, str) or not ID_RE.match(iid):
            errors.append(f"{where}: 'id' must be lower-case letters, digits, '-_.'")
            continue
        if iid in seen:
            errors.append(f"{where}: id {iid!r} is used twice")
        seen.add(iid)
        m = SOURCE_RE.match(source.strip()) if isinstance(source, str) else None
        if not m or m.group("file") not in COURSE_FILES:
            errors.append(f"{where} ({iid}): 'source' must name a course file and section")
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where} ({iid}): 'text' is required")
        if kind not in ITEM_KINDS:
            errors.append(f"{where} ({iid}): 'kind' must be one of {', '.join(ITEM_KINDS)}")
        if not isinstance(quote, str):
            errors.append(f"{where} ({iid}): 'quote' must be text")
            quote = ""
        items.append(Item(iid, str(source).strip(), str(text).strip(), str(kind), quote.strip()))
    if errors:
        raise BankError(errors)
    return items


def coverage(banks: list[Bank], items: list[Item]) -> Coverage:
    """Which items the banks' questions cover (a question's ``covers`` list)."""
    known = {i.id for i in items}
    cov = Coverage(items)
    for bank in banks:
        for q in bank.questions:
            for c in q.covers:
                if c in known:
                    cov.covered.setdefault(c, []).append(q.id)
                else:
                    cov.unknown.setdefault(q.id, []).append(c)
    return cov


def _flat(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", " ", text).strip()


def check_quotes(items: list[Item], course_dir: str | Path) -> list[str]:
    """Items whose ``quote`` is not in their source file (ignoring case, spacing, punctuation)."""
    course_dir = Path(course_dir)
    texts: dict[str, str] = {}
    problems = []
    for item in items:
        if not item.quote:
            continue
        name = item.source.split(",")[0].split(";")[0].strip()
        if name not in texts:
            try:
                texts[name] = _flat((course_dir / name).read_text(encoding="utf-8"))
            except OSError as exc:
                problems.append(f"{item.id}: cannot read {course_dir / name}: {exc}")
                texts[name] = ""
                continue
        if _flat(item.quote) not in texts[name]:
            problems.append(f"{item.id}: the quote {item.quote!r} is not in {name}")
    return problems


def check_passages(banks: list[Bank], course_dir: str | Path) -> list[str]:
    """Questions whose ``passage`` (pieces joined by "...") is not in their source file."""
    items = []
    for bank in banks:
        for q in bank.questions:
            if not q.passage:
                continue
            first = q.source.split(";")[0]
            for n, piece in enumerate(p for p in re.split(r"\s*\.\.\.\s*|…", q.passage) if p):
                items.append(Item(f"question '{q.id}' passage part {n + 1}", first, q.id,
                                  quote=piece))
    return check_quotes(items, course_dir)
