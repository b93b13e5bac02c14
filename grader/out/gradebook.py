"""The gradebook: every grading of every submission of a class, in one SQLite file.

One writer (the batch coordinator) and any number of readers (exports, the class summary,
instructors' scripts). The file is in WAL mode, so readers never block the writer, and every
finished submission is one committed transaction: a killed batch loses nothing it had finished,
and leaves nothing half-written.

What is kept, and why:

- ``students``: who is in the class (the roster's id, name, email, section, and its order), and
  students who submitted without being on the roster.
- ``submissions``: one row per *content version* of a student's submission (the content hash
  of its files), with its file names, when it was received (file times), and what the LMS said
  about it (submitted-at time, a late flag) where the input layout carries it.
- ``runs``: one row per grading configuration, named by its **fingerprint**: a hash of what
  decides a verdict (the checks' code and points, the expected-value source, the options, the
  grader version). A batch resumed under the same fingerprint reuses the run (and its secret
  input seed, so that a resumed batch grades exactly as an uninterrupted one would).
- ``gradings``: one row per grading of a submission under a run. Regrading adds a row; nothing
  is ever overwritten, so the history of a student is every grading of every version.
- ``assignment_results`` and ``check_results``: the grading's results, one row per assignment
  and per check (status, score, max, message, hint, the diagnosed mistake, seconds, details as
  bounded JSON), enough to rebuild the :class:`~grader.model.results.SubmissionResult`.
- ``choices``: the instructor's choice of which grading counts for a student, where it is not
  the default (the latest grading of the latest submission).

No SQL lives outside this module and its schema (:mod:`grader.out.gradebook_schema`:
the tables and their migrations): everything else uses the typed API below
(:meth:`Gradebook.open`, :meth:`students`, :meth:`latest`, :meth:`history`, :meth:`results`,
:meth:`runs`). The schema has a version (SQLite's ``user_version``) and a list of migrations
applied in order when an older file is opened for writing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult, Visibility
from grader.out.gradebook_schema import MIGRATIONS, SCHEMA_VERSION

# A check's details (curves, heatmaps) are kept for the class summary, but bounded: a hostile
# or merely huge detail must not make the gradebook grow without limit.
MAX_DETAILS_BYTES = 256 * 1024
MAX_LOG_BYTES = 64 * 1024
MAX_TEXT = 8 * 1024

# What a grading's ``status`` says about the submission as a whole.
GRADED = "graded"  # the checks ran (whatever their verdicts)
ERROR = "error"  # the submission could not be graded at all (the job failed); checks are errors
NO_SUBMISSION = "no_submission"  # on the roster, nothing submitted: a recorded zero
GRADING_STATUSES = (GRADED, ERROR, NO_SUBMISSION)


class GradebookError(Exception):
    """The gradebook file cannot be used (not a gradebook, newer schema, read-only misuse)."""


# --------------------------------------------------------------------------- typed records


@dataclass(frozen=True)
class Student:
    """A student of the class. ``roster_position`` is the order of the roster (None for a
    student who submitted without being on it)."""

    id: str
    name: str = ""
    email: str = ""
    section: str = ""
    roster_position: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def on_roster(self) -> bool:
        return self.roster_position is not None


@dataclass(frozen=True)
class Submission:
    """One content version of a student's submission."""

    id: int
    student_id: str
    content_hash: str
    files: tuple[str, ...]
    received_at: str  # ISO-8601 UTC: the newest file time when the grader first saw it
    submitted_at: str | None = None  # from the LMS (file name, timestamp.txt), when known
    late: bool | None = None  # the LMS's own late flag, when the layout carries one
    source: str = ""  # where it was found (a folder, or the LMS file names)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """A grading configuration: everything that decides a verdict, hashed into ``fingerprint``.

    ``components`` says what went into the fingerprint (per-part hashes, the options); ``seed``
    is the run's secret input seed (instructor-side only: never print it into student
    feedback)."""

    id: int
    fingerprint: str
    grader_version: str
    created_at: str
    components: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: str = ""
    label: str = ""


@dataclass(frozen=True)
class CheckRow:
    """One check's result as stored (a flat view for exports and the class summary)."""

    assignment: str
    check_id: str
    name: str
    status: str
    score: float
    max_score: float
    visibility: str
    message: str
    hint: str
    diagnosis_id: str | None
    diagnosis_name: str | None
    seconds: float


@dataclass(frozen=True)
class Grading:
    """One grading of one submission (or a recorded "no submission") under one run."""

    id: int
    student_id: str
    run_id: int
    status: str  # GRADED, ERROR or NO_SUBMISSION
    score: float
    max_score: float
    seconds: float
    started_at: str
    finished_at: str
    message: str
    submission: Submission | None  # None for NO_SUBMISSION
    _book: Gradebook | None = field(default=None, repr=False, compare=False)

    @property
    def content_hash(self) -> str | None:
        return self.submission.content_hash if self.submission else None

    @property
    def failed(self) -> bool:
        """Whether any check of it errored or timed out, or the job itself failed."""
        return self.status == ERROR or any(
            c.status in (Status.ERROR.value, Status.TIMEOUT.value) for c in self.checks())

    def result(self) -> SubmissionResult:
        """The full results (as :class:`SubmissionResult`), rebuilt from the stored rows."""
        if self._book is None:
            raise GradebookError("this grading is not attached to an open gradebook")
        return self._book.result(self.id)

    def checks(self) -> list[CheckRow]:
        """Every check's stored result, in grading order."""
        if self._book is None:
            raise GradebookError("this grading is not attached to an open gradebook")
        return self._book.check_rows(self.id)


def now_iso() -> str:
    """The current time as ISO-8601 UTC with seconds (what every time column holds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- the gradebook


class Gradebook:
    """A class's gradebook. Open with :meth:`open`; use as a context manager.

    Reading: :meth:`students`, :meth:`student`, :meth:`runs`, :meth:`latest`, :meth:`history`,
    :meth:`results`, :meth:`grading`, :meth:`result`, :meth:`check_rows`.
    Writing (the batch coordinator; one writer at a time): :meth:`set_roster`,
    :meth:`ensure_student`, :meth:`run_for`, :meth:`record`, :meth:`record_no_submission`,
    :meth:`choose`.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, readonly: bool):
        self._db = db
        self.path = path
        self.readonly = readonly
        self._lock = threading.Lock()  # one connection, usable from the coordinator's threads

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str, *, readonly: bool = False) -> Gradebook:
        """Open (creating, or migrating, unless ``readonly``) the gradebook at ``path``."""
        path = Path(path)
        if readonly:
            if not path.is_file():
                raise GradebookError(f"no gradebook at {path}")
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                                 timeout=30)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, timeout=30,
                                 isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not readonly:
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise GradebookError(f"{path} is an SQLite file but not a gradebook")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise GradebookError(f"{path} is not a gradebook: {exc}") from None
        except GradebookError:
            db.close()
            raise
        if version > SCHEMA_VERSION:
            db.close()
            raise GradebookError(f"{path} has gradebook schema {version}, newer than this "
                                 f"grader's {SCHEMA_VERSION}: upgrade the grader")
        if readonly:
            if version < SCHEMA_VERSION:
                db.close()
                raise GradebookError(f"{path} has the older schema {version}; open it once "
                                     "for writing to migrate it")
        else:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoint, safe
            db.execute("PRAGMA foreign_keys=ON")
            for step in range(version, SCHEMA_VERSION):
                db.execute("BEGIN IMMEDIATE")
                try:
                    MIGRATIONS[step](db)
                    db.execute(f"PRAGMA user_version={step + 1}")
                    if step == 0:
                        db.execute("INSERT INTO meta VALUES ('created_at', ?)", (now_iso(),))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    db.close()
                    raise
        return cls(db, path, readonly)

    def close(self) -> None:
        """Close the file (a WAL checkpoint folds the log into the main file)."""
        with self._lock:
            if self._db is not None:
                if not self.readonly:
                    try:
                        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:
                        pass
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._query("PRAGMA user_version")[0][0]

    def journal_mode(self) -> str:
        """SQLite's journal mode of the file (``wal`` for every gradebook)."""
        return self._query("PRAGMA journal_mode")[0][0]

    # -- internals ----------------------------------------------------------------------
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._db is None:
                raise GradebookError("the gradebook is closed")
            return self._db.execute(sql, args).fetchall()

    def _write(self, fn) -> Any:
        """Run ``fn(db)`` in one IMMEDIATE transaction: all of it is committed, or none."""
        if self.readonly:
            raise GradebookError("the gradebook was opened read-only")
        with self._lock:
            if self._db is None:
                raise GradebookError("the gradebook is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._db)
                self._db.execute("COMMIT")
                return out
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- students -----------------------------------------------------------------------
    def students(self) -> list[Student]:
        """Every student: roster order first, then students not on the roster by id."""
        rows = self._query("SELECT * FROM students ORDER BY roster_position IS NULL, "
                           "roster_position, id")
        return [_student(r) for r in rows]

    def student(self, student_id: str) -> Student:
        """One student (``KeyError`` if unknown)."""
        rows = self._query("SELECT * FROM students WHERE id = ?", (student_id,))
        if not rows:
            raise KeyError(student_id)
        return _student(rows[0])

    def set_roster(self, students: Sequence[Student]) -> None:
        """Record the roster: its students (name, email, section, order) are inserted or
        updated; students no longer on it keep their rows and history but lose their position."""
        def write(db: sqlite3.Connection) -> None:
            db.execute("UPDATE students SET roster_position = NULL")
            for position, s in enumerate(students):
                db.execute(
                    "INSERT INTO students (id, name, email, section, roster_position, extra) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = "
                    "excluded.name, email = excluded.email, section = excluded.section, "
                    "roster_position = excluded.roster_position, extra = excluded.extra",
                    (s.id, s.name, s.email, s.section, position,
                     json.dumps(dict(s.extra), sort_keys=True)))
        self._write(write)

    def ensure_student(self, student_id: str, name: str = "") -> None:
        """Add a student who is not on the roster (found in the class folder)."""
        self._write(lambda db: _ensure_student(db, student_id, name))

    # -- runs ---------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """Every grading run, oldest first."""
        return [_run(r) for r in self._query("SELECT * FROM runs ORDER BY id")]

    def run(self, run_id: int) -> Run:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise KeyError(run_id)
        return _run(rows[0])

    def run_for(self, fingerprint: str, *, grader_version: str, components: Mapping[str, Any],
                options: Mapping[str, Any], seed: str, label: str = "") -> Run:
        """The run of this fingerprint: the existing one (its seed is kept, so a resumed batch
        grades exactly as before), or a new one with ``seed``."""
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO runs (fingerprint, grader_version, created_at, components, options,"
                " seed, label) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING",
                (fingerprint, grader_version, now_iso(), _dumps(components), _dumps(options),
                 seed, label))
        self._write(write)
        return _run(self._query("SELECT * FROM runs WHERE fingerprint = ?", (fingerprint,))[0])

    # -- reading gradings ---------------------------------------------------------------
    def grading(self, grading_id: int) -> Grading:
        rows = self._query(_GRADING_SELECT + " WHERE g.id = ?", (grading_id,))
        if not rows:
            raise KeyError(grading_id)
        return self._grading(rows[0])

    def history(self, student_id: str) -> list[Grading]:
        """Every grading of the student, oldest first (every version, every run)."""
        rows = self._query(_GRADING_SELECT + " WHERE g.student_id = ? ORDER BY g.id",
                           (student_id,))
        return [self._grading(r) for r in rows]

    def gradings(self, run_id: int | None = None) -> list[Grading]:
        """Every grading (of one run, if given), oldest first."""
        if run_id is None:
            rows = self._query(_GRADING_SELECT + " ORDER BY g.id")
        else:
            rows = self._query(_GRADING_SELECT + " WHERE g.run_id = ? ORDER BY g.id", (run_id,))
        return [self._grading(r) for r in rows]

    def latest(self, run_id: int | None = None, *, honour_choices: bool = True
               ) -> dict[str, Grading]:
        """The grading that counts for each student, keyed by student id in roster order.

        By default: the instructor's choice where one was made (:meth:`choose`), else the latest
        grading of the student's latest submission (a "no submission" zero only when the student
        has no submission at all). ``run_id`` restricts to the gradings of one run (a choice of a
        grading from another run is then ignored). Students with no grading are absent."""
        chosen: dict[str, int] = {}
        if honour_choices:
            chosen = {r["student_id"]: r["grading_id"]
                      for r in self._query("SELECT student_id, grading_id FROM choices")}
        all_rows = self._query(_GRADING_SELECT + (" WHERE g.run_id = ?" if run_id is not None
                                                   else "") + " ORDER BY g.id",
                               (run_id,) if run_id is not None else ())
        by_student: dict[str, list[sqlite3.Row]] = {}
        for r in all_rows:
            by_student.setdefault(r["student_id"], []).append(r)
        out: dict[str, Grading] = {}
        for s in self.students():
            rows = by_student.get(s.id)
            if not rows:
                continue
            pick = next((r for r in rows if r["id"] == chosen.get(s.id)), None)
            if pick is None:
                pick = max(rows, key=_latest_key)
            out[s.id] = self._grading(pick)
        return out

    def results(self, run_id: int | None = None, *, honour_choices: bool = True
                ) -> Iterator[tuple[Student, Grading, SubmissionResult]]:
        """``(student, grading, results)`` of the grading that counts, per student, in roster
        order (see :meth:`latest`)."""
        students = {s.id: s for s in self.students()}
        for sid, g in self.latest(run_id, honour_choices=honour_choices).items():
            yield students[sid], g, self.result(g.id)

    def result(self, grading_id: int) -> SubmissionResult:
        """The :class:`SubmissionResult` of a grading, rebuilt from its rows."""
        head = self._query("SELECT g.*, s.source AS sub_source FROM gradings g LEFT JOIN "
                           "submissions s ON s.id = g.submission_id WHERE g.id = ?",
                           (grading_id,))
        if not head:
            raise KeyError(grading_id)
        g = head[0]
        assignments = self._query("SELECT * FROM assignment_results WHERE grading_id = ? "
                                  "ORDER BY position", (grading_id,))
        checks = self._query("SELECT * FROM check_results WHERE grading_id = ? ORDER BY "
                             "position", (grading_id,))
        by_assignment: dict[str, AssignmentResult] = {}
        out = SubmissionResult(
            submission=g["submission_label"], submission_id=_content_hash_of(self, g),
            grader_version=g["grader_version"], environment=json.loads(g["environment"]),
            log=g["log"], seconds=g["seconds"])
        for a in assignments:
            ar = AssignmentResult(name=a["name"], message=a["message"], source=a["source"],
                                  title=a["title"], course=a["course"])
            by_assignment[a["name"]] = ar
            out.assignments.append(ar)
        for c in checks:
            ar = by_assignment.get(c["assignment"])
            if ar is None:  # cannot happen for rows we wrote; keep the check anyway
                ar = AssignmentResult(name=c["assignment"])
                by_assignment[c["assignment"]] = ar
                out.assignments.append(ar)
            ar.checks.append(CheckResult(
                id=c["check_id"], name=c["name"], status=Status(c["status"]), score=c["score"],
                max_score=c["max_score"], message=c["message"],
                visibility=Visibility(c["visibility"]), hint=c["hint"],
                details=json.loads(c["details"]), seconds=c["seconds"]))
        return out

    def check_rows(self, grading_id: int) -> list[CheckRow]:
        """The stored check results of a grading, flat, in grading order."""
        rows = self._query("SELECT * FROM check_results WHERE grading_id = ? ORDER BY position",
                           (grading_id,))
        return [CheckRow(assignment=r["assignment"], check_id=r["check_id"], name=r["name"],
                         status=r["status"], score=r["score"], max_score=r["max_score"],
                         visibility=r["visibility"], message=r["message"], hint=r["hint"],
                         diagnosis_id=r["diagnosis_id"], diagnosis_name=r["diagnosis_name"],
                         seconds=r["seconds"]) for r in rows]

    def submissions(self, student_id: str | None = None) -> list[Submission]:
        """Every submission version (of one student), oldest first."""
        if student_id is None:
            rows = self._query("SELECT * FROM submissions ORDER BY id")
        else:
            rows = self._query("SELECT * FROM submissions WHERE student_id = ? ORDER BY id",
                               (student_id,))
        return [_submission(r) for r in rows]

    def graded(self, run_id: int) -> dict[tuple[str, str | None], Grading]:
        """The latest grading under ``run_id`` of each (student id, content hash) pair (content
        hash None for a recorded "no submission"): what a resumed batch need not grade again."""
        out: dict[tuple[str, str | None], Grading] = {}
        for g in self.gradings(run_id):
            out[(g.student_id, g.content_hash)] = g
        return out

    # -- writing ------------------------------------------------------------------------
    def record(self, student_id: str, result: SubmissionResult, run: Run, *,
               files: Sequence[str], received_at: str, submitted_at: str | None = None,
               late: bool | None = None, source: str = "",
               metadata: Mapping[str, Any] | None = None, status: str = GRADED,
               message: str = "", started_at: str | None = None,
               student_name: str = "") -> Grading:
        """Record one finished submission in one transaction: the student (if new), the
        submission version (if new: keyed by ``result.submission_id``, the content hash), and
        a new grading with all its results. Returns the grading."""
        if status not in (GRADED, ERROR):
            raise ValueError(f"status must be {GRADED!r} or {ERROR!r}, not {status!r}")
        if not result.submission_id:
            raise ValueError("the result carries no content hash (submission_id)")

        def write(db: sqlite3.Connection) -> int:
            _ensure_student(db, student_id, student_name)
            db.execute(
                "INSERT INTO submissions (student_id, content_hash, files, received_at, "
                "submitted_at, late, source, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (student_id, content_hash) DO NOTHING",
                (student_id, result.submission_id, json.dumps(list(files)), received_at,
                 submitted_at, None if late is None else int(late), source,
                 _dumps(metadata or {})))
            sub_id = db.execute("SELECT id FROM submissions WHERE student_id = ? AND "
                                "content_hash = ?", (student_id, result.submission_id)
                                ).fetchone()[0]
            return _insert_grading(db, student_id, sub_id, run, result, status, message,
                                   started_at)
        return self.grading(self._write(write))

    def record_no_submission(self, student_id: str, result: SubmissionResult, run: Run,
                             message: str = "no submission") -> Grading:
        """Record a student of the roster who submitted nothing: a zero whose ``result`` lists
        every check with its points (so the maximum is the same as everyone's)."""
        def write(db: sqlite3.Connection) -> int:
            _ensure_student(db, student_id, "")
            return _insert_grading(db, student_id, None, run, result, NO_SUBMISSION, message,
                                   None)
        return self.grading(self._write(write))

    def choose(self, student_id: str, grading_id: int | None, note: str = "") -> None:
        """The instructor's choice of the grading that counts for a student (None: back to the
        default, the latest grading of the latest submission)."""
        def write(db: sqlite3.Connection) -> None:
            if grading_id is None:
                db.execute("DELETE FROM choices WHERE student_id = ?", (student_id,))
                return
            row = db.execute("SELECT student_id FROM gradings WHERE id = ?",
                             (grading_id,)).fetchone()
            if row is None or row[0] != student_id:
                raise ValueError(f"grading {grading_id} is not one of {student_id}'s")
            db.execute("INSERT INTO choices VALUES (?, ?, ?, ?) ON CONFLICT (student_id) DO "
                       "UPDATE SET grading_id = excluded.grading_id, chosen_at = "
                       "excluded.chosen_at, note = excluded.note",
                       (student_id, grading_id, now_iso(), note))
        self._write(write)

    def comparable(self, run_id: int | None = None) -> dict[str, Any]:
        """What the gradings that count say, without times, ids or logs: two gradebooks of the
        same class graded the same way compare equal on this (used to check that a killed and
        resumed batch ends where an uninterrupted one does)."""
        out: dict[str, Any] = {}
        for sid, g in self.latest(run_id, honour_choices=False).items():
            out[sid] = {
                "status": g.status, "score": g.score, "max_score": g.max_score,
                "content_hash": g.content_hash,
                "checks": [(c.assignment, c.check_id, c.status, c.score, c.max_score, c.message,
                            c.diagnosis_id) for c in g.checks()],
            }
        return out

    def _grading(self, r: sqlite3.Row) -> Grading:
        sub = None
        if r["submission_id"] is not None:
            sub = Submission(
                id=r["submission_id"], student_id=r["student_id"], content_hash=r["s_hash"],
                files=tuple(json.loads(r["s_files"])), received_at=r["s_received"],
                submitted_at=r["s_submitted"], late=None if r["s_late"] is None
                else bool(r["s_late"]), source=r["s_source"],
                metadata=json.loads(r["s_metadata"]))
        return Grading(id=r["id"], student_id=r["student_id"], run_id=r["run_id"],
                       status=r["status"], score=r["score"], max_score=r["max_score"],
                       seconds=r["seconds"], started_at=r["started_at"],
                       finished_at=r["finished_at"], message=r["message"], submission=sub,
                       _book=self)


_GRADING_SELECT = (
    "SELECT g.*, s.content_hash AS s_hash, s.files AS s_files, s.received_at AS s_received, "
    "s.submitted_at AS s_submitted, s.late AS s_late, s.source AS s_source, "
    "s.metadata AS s_metadata FROM gradings g LEFT JOIN submissions s ON s.id = g.submission_id"
)


def _latest_key(r: sqlite3.Row) -> tuple:
    # A real submission beats "no submission"; then the latest grading. A batch grades the
    # content it finds, so the latest grading is of the latest submission (also when a student
    # goes back to an earlier version, whose row is reused).
    return (r["submission_id"] is not None, r["id"])


def _content_hash_of(book: Gradebook, g: sqlite3.Row) -> str:
    if g["submission_id"] is None:
        return ""
    return book._query("SELECT content_hash FROM submissions WHERE id = ?",
                       (g["submission_id"],))[0][0]


def _ensure_student(db: sqlite3.Connection, student_id: str, name: str) -> None:
    if not student_id:
        raise ValueError("a student id may not be empty")
    db.execute("INSERT INTO students (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
               (student_id, name))


def _insert_grading(db: sqlite3.Connection, student_id: str, submission_id: int | None,
                    run: Run, result: SubmissionResult, status: str, message: str,
                    started_at: str | None) -> int:
    finished = now_iso()
    cur = db.execute(
        "INSERT INTO gradings (student_id, submission_id, run_id, status, score, max_score, "
        "seconds, started_at, finished_at, message, submission_label, grader_version, "
        "environment, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (student_id, submission_id, run.id, status, result.score, result.max_score,
         round(result.seconds, 3), started_at or finished, finished, _clip(message, MAX_TEXT),
         _clip(result.submission, MAX_TEXT), result.grader_version,
         _dumps(result.environment), _clip(result.log, MAX_LOG_BYTES)))
    grading_id = cur.lastrowid
    position = 0
    for a_pos, a in enumerate(result.assignments):
        db.execute("INSERT INTO assignment_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (grading_id, a_pos, a.name, a.score, a.max_score, _clip(a.message, MAX_TEXT),
                    a.source, a.title, a.course))
        for c in a.checks:
            mistake = c.details.get("likely_mistake") if isinstance(c.details, dict) else None
            mistake = mistake if isinstance(mistake, dict) else {}
            db.execute(
                "INSERT INTO check_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (grading_id, position, a.name, c.id, c.name, c.status.value, c.score,
                 c.max_score, c.visibility.value, _clip(c.message, MAX_TEXT),
                 _clip(c.hint, MAX_TEXT), _str_or_none(mistake.get("id")),
                 _str_or_none(mistake.get("name")), round(c.seconds, 3),
                 _bounded_details(c)))
            position += 1
    return grading_id


def _bounded_details(c: CheckResult) -> str:
    text = json.dumps(c.to_dict()["details"], sort_keys=True, allow_nan=False)
    if len(text) <= MAX_DETAILS_BYTES:
        return text
    # Too big to keep whole: keep the small facts (the diagnosis above all), drop the bulk.
    kept: dict[str, Any] = {"truncated": f"details of {len(text):,} bytes cut to their small "
                                         "entries"}
    for key, value in c.to_dict()["details"].items():
        piece = json.dumps(value, allow_nan=False)
        if len(piece) <= 4096:
            kept[key] = value
    return json.dumps(kept, sort_keys=True, allow_nan=False)


def _clip(text: str, limit: int) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    return text[: limit - 40] + f"\n[... {len(text) - limit + 40:,} characters cut]"


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _student(r: sqlite3.Row) -> Student:
    return Student(id=r["id"], name=r["name"], email=r["email"], section=r["section"],
                   roster_position=r["roster_position"], extra=json.loads(r["extra"]))


def _submission(r: sqlite3.Row) -> Submission:
    return Submission(id=r["id"], student_id=r["student_id"], content_hash=r["content_hash"],
                      files=tuple(json.loads(r["files"])), received_at=r["received_at"],
                      submitted_at=r["submitted_at"],
                      late=None if r["late"] is None else bool(r["late"]), source=r["source"],
                      metadata=json.loads(r["metadata"]))


def _run(r: sqlite3.Row) -> Run:
    return Run(id=r["id"], fingerprint=r["fingerprint"], grader_version=r["grader_version"],
               created_at=r["created_at"], components=json.loads(r["components"]),
               options=json.loads(r["options"]), seed=r["seed"], label=r["label"])


__all__ = [
    "ERROR", "GRADED", "GRADING_STATUSES", "MIGRATIONS", "NO_SUBMISSION", "SCHEMA_VERSION",
    "CheckRow", "Gradebook", "GradebookError", "Grading", "Run", "Student", "Submission",
    "now_iso",
]
