"""The gradebook as CSV: the wide table, and import files for Canvas and Moodle.

Every table starts from :func:`entries`: one :class:`Entry` per student of the gradebook, in
roster order (students who submitted without being on the roster come last), holding the
grading that counts (:meth:`grader.out.gradebook.Gradebook.latest`). A student on the roster
without a submission is there with 0 and the status ``no_submission``.

The formats
-----------
**Wide table** (``grader export wide``): identity (``student_id``, ``name``, ``email``,
``section``), then for each assignment its score and one column per check
(``<assignment>.<check_id>``; empty for a skipped check), then ``total``, ``max``,
``percent``; with a late policy, ``raw_total``, ``days_late``, ``penalty``, ``final`` and
``late_note`` (``total`` and ``percent`` are then the final ones); then ``status``
(``graded``, ``error``, ``no_submission``), ``content_hash``, ``submitted_at``, ``graded_at``
and ``grading_seconds``. The first data row is ``Points Possible`` with each column's maximum.

**Canvas** (``grader export canvas``): Canvas's gradebook import columns, in order:
``Student`` (the display name, "Last, First" as the roster has it), ``ID`` (Canvas's user id),
``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per assignment (named
``<assignment>`` or as mapped with ``--column attention="Attention (12345)"``: a name with
Canvas's own assignment id in parentheses updates that assignment, any other creates a new one),
and a second row ``Points Possible`` holding each assignment's points. Canvas matches a row by
``ID``, ``SIS User ID`` or ``SIS Login ID``: the roster's ``canvas user id`` (or ``canvas id``),
``sis user id`` and ``sis login id`` columns; a student with none of them cannot be imported
and is reported, not guessed.

**Moodle** (``grader export moodle``): Moodle's CSV grade import maps one column to a user
field ("Map from" / "Map to": ``Email address`` to ``useremail``, or ``ID number`` to
``useridnumber``) and each other column to a grade item. We write ``First name``, ``Last name``,
``ID number``, ``Email address``, then one column per assignment; no points row (Moodle would
read it as a student). Emails are case-sensitive in Moodle's import: they are written as the
roster has them. A student without the chosen identifier is reported and left out.

Numbers are written with at most 4 decimals (percent: 2), without trailing zeros; cells of text
that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) are prefixed with
``'``. Rows end in CRLF (RFC 4180). The same gradebook gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.model.results import Status, SubmissionResult
from grader.out.exports.late import Lateness, LatePolicy, extension_days, lateness, penalised

POINTS_POSSIBLE = "Points Possible"
CANVAS_ID_KEYS = ("canvas user id", "canvas id", "canvas_user_id", "lms user id", "lms id")
IDNUMBER_KEYS = ("id number", "idnumber", "moodle id number")


@dataclass
class Entry:
    """One student's row: who, the grading that counts, and its results."""

    student_id: str
    name: str
    email: str
    section: str
    extra: dict[str, str]
    on_roster: bool
    status: str  # graded / error / no_submission
    result: SubmissionResult
    content_hash: str = ""
    submitted_at: str = ""  # the LMS's time, else the time the files were received
    graded_at: str = ""
    lms: dict[str, Any] = field(default_factory=dict)  # the submission's LMS metadata


def entries(book, run_id: int | None = None) -> list[Entry]:
    """The gradebook's students with the grading that counts for each (see the module doc)."""
    out = []
    for student, grading, result in book.results(run_id):
        sub = grading.submission
        out.append(Entry(
            student_id=student.id, name=student.name, email=student.email,
            section=student.section, extra=dict(student.extra), on_roster=student.on_roster,
            status=grading.status, result=result,
            content_hash=grading.content_hash or "",
            submitted_at=(sub.submitted_at or sub.received_at) if sub else "",
            graded_at=(grading.finished_at or "") if sub else "",
            lms=dict(sub.metadata) if sub else {}))
    return out


# ----------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Columns:
    """The assignments and checks of a class, in grading order, with their possible points."""

    assignments: list[tuple[str, float]]  # (name, max)
    checks: list[tuple[str, str, float]]  # (assignment, check id, max)


def columns(rows: Sequence[Entry]) -> Columns:
    """Every assignment and check that appears in ``rows``, in first-seen grading order; a
    column's maximum is the largest maximum any student had for it (a skipped check has a
    smaller one)."""
    a_max: dict[str, float] = {}
    c_max: dict[tuple[str, str], float] = {}
    for e in rows:
        for a in e.result.assignments:
            a_max[a.name] = max(a_max.get(a.name, 0.0), a.max_score)
            for c in a.checks:
                key = (a.name, c.id)
                c_max[key] = max(c_max.get(key, 0.0), c.max_score if c.counts else 0.0)
    return Columns(list(a_max.items()), [(a, c, m) for (a, c), m in c_max.items()])


def num(x: float | None, places: int = 4) -> str:
    """A number as the CSVs write it: at most ``places`` decimals, no trailing zeros."""
    if x is None:
        return ""
    text = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula (CSV injection)."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return buf.getvalue()


@dataclass(frozen=True)
class Scores:
    """One student's scores after an optional late policy: per assignment ``(raw, penalty,
    final)``, and the lateness."""

    by_assignment: dict[str, tuple[float, float, float]]
    late: Lateness | None

    @property
    def raw(self) -> float:
        return round(sum(v[0] for v in self.by_assignment.values()), 6)

    @property
    def penalty(self) -> float:
        return round(sum(v[1] for v in self.by_assignment.values()), 6)

    @property
    def final(self) -> float:
        return round(sum(v[2] for v in self.by_assignment.values()), 6)


def scores(e: Entry, policy: LatePolicy | None) -> Scores:
    """``e``'s scores with ``policy`` applied (never to a student who submitted nothing)."""
    late = None
    if policy is not None and e.status != "no_submission":
        late = lateness(policy, e.submitted_at or None, extension_days(e.extra))
    out = {}
    for a in e.result.assignments:
        if late is None:
            out[a.name] = (a.score, 0.0, a.score)
        else:
            penalty, final = penalised(a.score, a.max_score, late)
            out[a.name] = (a.score, round(penalty, 6), round(final, 6))
    return Scores(out, late)


def _check_cell(result: SubmissionResult, assignment: str, check_id: str) -> str:
    try:
        c = result.assignment(assignment).check(check_id)
    except KeyError:
        return ""
    if c.status is Status.SKIPPED:
        return ""
    return num(c.score)


# ----------------------------------------------------------------------------- the tables


def wide(rows: Sequence[Entry], policy: LatePolicy | None = None) -> str:
    """The wide table (see the module doc) as CSV text."""
    cols = columns(rows)
    max_total = sum(m for _, m in cols.assignments)
    header = ["student_id", "name", "email", "section"]
    possible = [POINTS_POSSIBLE, "", "", ""]
    for a, m in cols.assignments:
        header.append(a)
        possible.append(num(m))
        for ca, cid, cm in cols.checks:
            if ca == a:
                header.append(f"{a}.{cid}")
                possible.append(num(cm))
    header += ["total", "max", "percent"]
    possible += [num(max_total), num(max_total), "100"]
    if policy is not None:
        header += ["raw_total", "days_late", "penalty", "final", "late_note"]
        possible += [num(max_total), "", "", num(max_total), ""]
    header += ["status", "content_hash", "submitted_at", "graded_at", "grading_seconds"]
    possible += ["", "", "", "", ""]
    table = [header, possible]
    for e in rows:
        s = scores(e, policy)
        line = [safe(e.student_id), safe(e.name), safe(e.email), safe(e.section)]
        for a, _ in cols.assignments:
            raw = s.by_assignment.get(a)
            line.append(num(raw[0]) if raw else "")
            for ca, cid, _ in cols.checks:
                if ca == a:
                    line.append(_check_cell(e.result, a, cid))
        total = s.final
        max_score = e.result.max_score
        line += [num(total), num(max_score), num(100 * total / max_score if max_score else 0, 2)]
        if policy is not None:
            late = s.late
            line += [num(s.raw), str(late.days_late) if late else "", num(s.penalty),
                     num(s.final), safe(late.note) if late else ""]
        line += [e.status, e.content_hash, e.submitted_at, e.graded_at,
                 num(e.result.seconds, 1)]
        table.append(line)
    return write_csv(table)


@dataclass
class Skipped:
    """Students left out of an LMS import, and why."""

    reasons: dict[str, str] = field(default_factory=dict)


def _column_names(cols: Columns, names: dict[str, str]) -> list[str]:
    unknown = set(names) - {a for a, _ in cols.assignments}
    if unknown:
        raise ValueError(f"--column names unknown assignments: {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(a for a, _ in cols.assignments)})")
    return [names.get(a, a) for a, _ in cols.assignments]


def canvas(rows: Sequence[Entry], policy: LatePolicy | None = None,
           names: dict[str, str] | None = None) -> tuple[str, Skipped]:
    """Canvas's gradebook import CSV (see the module doc) and the students left out."""
    cols = columns(rows)
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
              *_column_names(cols, names or {})]
    table = [header, [POINTS_POSSIBLE, "", "", "", "", *(num(m) for _, m in cols.assignments)]]
    skipped = Skipped()
    for e in rows:
        canvas_id = _first(e.extra, CANVAS_ID_KEYS) or str(
            e.lms.get("lms_user_id", "") if e.lms.get("layout") == "canvas" else "")
        sis_user, sis_login = e.extra.get("sis user id", ""), e.extra.get("sis login id", "")
        if not (canvas_id or sis_user or sis_login):
            skipped.reasons[e.student_id] = ("no Canvas ID, SIS User ID or SIS Login ID (add a "
                                             "`canvas user id` or `sis user id` column to the "
                                             "roster)")
            continue
        s = scores(e, policy)
        table.append([safe(e.name or e.student_id), safe(canvas_id), safe(sis_user),
                      safe(sis_login), safe(e.section),
                      *(num(s.by_assignment[a][2]) if a in s.by_assignment else ""
                        for a, _ in cols.assignments)])
    return write_csv(table), skipped


def moodle(rows: Sequence[Entry], policy: LatePolicy | None = None,
           names: dict[str, str] | None = None, identify: str = "email"
           ) -> tuple[str, Skipped]:
    """Moodle's CSV grade import (see the module doc), users identified by ``identify``
    (``email`` or ``idnumber``), and the students left out."""
    if identify not in ("email", "idnumber"):
        raise ValueError("identify must be 'email' or 'idnumber'")
    cols = columns(rows)
    table = [["First name", "Last name", "ID number", "Email address",
              *_column_names(cols, names or {})]]
    skipped = Skipped()
    for e in rows:
        idnumber = _first(e.extra, IDNUMBER_KEYS) or (e.student_id if e.on_roster else "")
        if identify == "email" and not e.email:
            skipped.reasons[e.student_id] = "no email address in the roster"
            continue
        if identify == "idnumber" and not idnumber:
            skipped.reasons[e.student_id] = "no ID number in the roster"
            continue
        first, last = split_name(e.name, e.extra)
        s = scores(e, policy)
        table.append([safe(first), safe(last), safe(idnumber), safe(e.email),
                      *(num(s.by_assignment[a][2]) if a in s.by_assignment else ""
                        for a, _ in cols.assignments)])
    return write_csv(table), skipped


def split_name(name: str, extra: dict[str, str]) -> tuple[str, str]:
    """``(first, last)``: the roster's own columns, else "Last, First", else "First ... Last"."""
    if extra.get("first name") or extra.get("last name"):
        return extra.get("first name", ""), extra.get("last name", "")
    if "," in name:
        last, first = name.split(",", 1)
        return first.strip(), last.strip()
    parts = name.split()
    return (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else (name, "")


def _first(extra: dict[str, str], keys: Sequence[str]) -> str:
    return next((str(extra[k]).strip() for k in keys if str(extra.get(k, "")).strip()), "")
