"""The class roster: a CSV of the students (id, name, email, section, and anything else).

Column names are matched loosely, as LMS exports spell them: the id from ``id``, ``student id``,
``sis user id``, ``username``...; the name from ``name`` / ``full name`` / ``student``, or from
``first name`` + ``last name``; ``email`` / ``email address``; ``section`` / ``group``. Every
other column is kept in the student's ``extra`` under its lower-cased name (an LMS user id such
as ``canvas user id`` or ``moodle participant id`` there lets LMS downloads be matched exactly;
``extension days`` is for a late policy at export).

:func:`match` maps the entries found in the class folder to roster students: by id, by an LMS
id kept in ``extra``, by email, then by name (Canvas's "smithjohn" is "John Smith").
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ID_COLUMNS = ("id", "student id", "student_id", "studentid", "sis user id", "sis_user_id",
              "sis id", "user id", "userid", "username", "login", "login id", "id number",
              "student number", "matriculation number")
NAME_COLUMNS = ("name", "full name", "fullname", "student", "student name")
FIRST_COLUMNS = ("first name", "firstname", "given name")
LAST_COLUMNS = ("last name", "lastname", "surname", "family name")
EMAIL_COLUMNS = ("email", "email address", "e-mail", "mail")
SECTION_COLUMNS = ("section", "group", "class")
LMS_ID_KEYS = {  # Entry.keys name -> roster columns that may hold the same id
    "canvas_user_id": ("canvas user id", "canvas id", "canvas_user_id", "lms id", "lms user id"),
    "moodle_participant_id": ("moodle participant id", "participant id", "moodle id", "lms id",
                              "lms user id"),
}


class RosterError(ValueError):
    """The roster file cannot be read or has no usable id column."""


@dataclass(frozen=True)
class RosterStudent:
    id: str
    name: str = ""
    email: str = ""
    section: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def read_roster(path: Path) -> list[RosterStudent]:
    """Read a roster CSV (UTF-8, with or without BOM; comma, semicolon or tab separated)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"cannot read the roster {path}: {exc}") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text.splitlines(), dialect)
    rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        raise RosterError(f"the roster {path} is empty")
    header = [_norm_header(h) for h in rows[0]]

    def column(names: Sequence[str]) -> int | None:
        return next((header.index(n) for n in names if n in header), None)

    id_col = column(ID_COLUMNS)
    if id_col is None:
        raise RosterError(f"the roster {path} has no student id column (one of: "
                          f"{', '.join(ID_COLUMNS[:6])}...); its columns are: "
                          f"{', '.join(rows[0])}")
    name_col, first_col = column(NAME_COLUMNS), column(FIRST_COLUMNS)
    last_col = column(LAST_COLUMNS)
    email_col, section_col = column(EMAIL_COLUMNS), column(SECTION_COLUMNS)
    used = {c for c in (id_col, name_col, first_col, last_col, email_col, section_col)
            if c is not None}
    students: list[RosterStudent] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        row = row + [""] * (len(header) - len(row))

        def cell(col: int | None, row=row) -> str:
            return row[col].strip() if col is not None else ""

        sid = cell(id_col)
        if not sid:
            if header[id_col] and any(c.strip().lower() == "points possible" for c in row):
                continue  # a Canvas gradebook export's "Points Possible" row
            raise RosterError(f"{path}, line {line}: no student id")
        if sid.lower() == "points possible":
            continue
        if sid in seen:
            raise RosterError(f"{path}, line {line}: student id {sid!r} already on line "
                              f"{seen[sid]}")
        seen[sid] = line
        name = cell(name_col) or " ".join(x for x in (cell(first_col), cell(last_col)) if x)
        extra = {header[i]: row[i].strip() for i in range(len(header))
                 if i not in used and header[i] and row[i].strip()}
        if first_col is not None or last_col is not None:
            extra.setdefault("first name", cell(first_col))
            extra.setdefault("last name", cell(last_col))
        students.append(RosterStudent(sid, name, cell(email_col), cell(section_col), extra))
    return students


def match(roster: Sequence[RosterStudent], student_id: str, keys: dict[str, str],
          name: str = "") -> RosterStudent | None:
    """The roster student an entry of the class folder belongs to, or None."""
    by_id = {s.id: s for s in roster}
    if student_id in by_id:
        return by_id[student_id]
    for key, columns in LMS_ID_KEYS.items():
        value = keys.get(key)
        if value:
            for s in roster:
                if any(s.extra.get(c) == value for c in columns):
                    return s
    lowered = student_id.lower()
    for s in roster:
        if s.email and (s.email.lower() == lowered or s.email.lower().split("@")[0] == lowered):
            return s
    wanted = {_name_key(n) for n in (name, keys.get("name", ""), keys.get("sortable_name", ""))
              if n}
    if wanted:
        hits = [s for s in roster if wanted & _name_keys(s)]
        if len(hits) == 1:  # an ambiguous name matches nobody rather than the wrong student
            return hits[0]
    return None


def _name_keys(s: RosterStudent) -> set[str]:
    keys = set()
    if s.name:
        keys.add(_name_key(s.name))
        parts = s.name.replace(",", " ").split()
        if "," in s.name:  # "Smith, John"
            keys.add(_name_key(" ".join(parts)))
            keys.add(_name_key(" ".join(parts[1:] + parts[:1])))
        elif len(parts) >= 2:  # "John Smith" -> Canvas's sortable "smithjohn"
            keys.add(_name_key(parts[-1] + " " + " ".join(parts[:-1])))
    first, last = s.extra.get("first name", ""), s.extra.get("last name", "")
    if first or last:
        keys.add(_name_key(f"{first} {last}"))
        keys.add(_name_key(f"{last} {first}"))
    keys.discard("")
    return keys


def _name_key(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _norm_header(h: str) -> str:
    return re.sub(r"\s+", " ", h.strip().lower().replace("_", " ")) if h else ""
