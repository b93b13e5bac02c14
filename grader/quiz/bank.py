"""Finding and loading the YAML question banks.

Where the banks are, first found wins: an explicit directory (``--quizzes``), the environment
variable ``GRADER_QUIZZES``, ``quizzes/`` at the repository root (next to the ``grader`` package),
then ``grader/quizzes`` (the banks shipped as package data).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .model import Bank, Question
from .schema import BankError, validate_bank

ENV_VAR = "GRADER_QUIZZES"


def candidate_dirs() -> list[Path]:
    import grader

    here = Path(grader.__file__).resolve().parent
    return [here.parent / "quizzes", here / "quizzes"]


def quizzes_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The directory of the banks (see the module docstring for the order)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    for d in candidate_dirs():
        if d.is_dir():
            return d
    return candidate_dirs()[0]


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: faster


class _LineLoader(_BaseLoader):
    """A safe loader that remembers the line of every mapping (for error messages)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.lines: dict[int, int] = {}

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=True)
        self.lines[id(mapping)] = node.start_mark.line + 1
        return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: loader.construct_mapping(node),
)


def read_yaml(path: Path) -> tuple[object, dict[int, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BankError([f"{path}: cannot read: {exc}"]) from None
    loader = _LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise BankError([f"{where}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    return data, loader.lines


def load_bank(path: str | os.PathLike) -> Bank:
    """Load and validate one bank; :class:`BankError` lists every problem found."""
    path = Path(path)
    data, lines = read_yaml(path)
    return validate_bank(data, path, lines)


ITEMS_FILE = "course-items.yaml"  # the coverage list (see .coverage), not a bank


def bank_files(directory: Path) -> list[Path]:
    """The bank files of a directory (every ``*.yaml`` but the course-items list)."""
    return sorted(p for p in directory.glob("*.y*ml")
                  if p.suffix in (".yaml", ".yml") and p.name != ITEMS_FILE)


def load_banks(directory: str | os.PathLike | None = None) -> list[Bank]:
    """Every bank of the directory, validated, with question ids unique across banks."""
    directory = quizzes_dir(directory)
    if not directory.is_dir():
        raise BankError([f"{directory}: no quiz bank directory (set {ENV_VAR} or --quizzes)"])
    banks, errors = [], []
    for path in bank_files(directory):
        try:
            banks.append(load_bank(path))
        except BankError as exc:
            errors.extend(exc.messages)
    seen: dict[str, Bank] = {}
    for bank in banks:
        for q in bank.questions:
            if q.id in seen:
                errors.append(f"{bank.path}:{q.line}: question '{q.id}': field 'id': also used in "
                              f"{seen[q.id].path}; ids must be unique across banks")
            seen.setdefault(q.id, bank)
    if not banks and not errors:
        errors.append(f"{directory}: no *.yaml banks found")
    if errors:
        raise BankError(errors)
    return banks


def find_bank(banks: list[Bank], name: str) -> Bank:
    for bank in banks:
        if bank.name == name or bank.path.name == name:
            return bank
    known = ", ".join(b.name for b in banks)
    raise KeyError(f"no quiz bank named {name!r} (banks: {known})")


def find_question(banks: list[Bank], question_id: str) -> Question:
    for bank in banks:
        for q in bank.questions:
            if q.id == question_id:
                return q
    raise KeyError(question_id)
