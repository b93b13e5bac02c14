"""The gradebook file's format: its tables, and the migrations that bring an older file to the
current schema version (SQLite's ``user_version``).

:class:`grader.out.gradebook.Gradebook` applies ``MIGRATIONS[version:]`` in order, each in one
transaction, when it opens an older file for writing. This module and the gradebook's are the
only ones that hold SQL.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1


def _script(db: sqlite3.Connection, sql: str) -> None:
    # Not executescript(): it commits first, and a migration must be one transaction.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE students (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            section TEXT NOT NULL DEFAULT '',
            roster_position INTEGER,
            extra TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE submissions (
            id INTEGER PRIMARY KEY,
            student_id TEXT NOT NULL REFERENCES students(id),
            content_hash TEXT NOT NULL,
            files TEXT NOT NULL,
            received_at TEXT NOT NULL,
            submitted_at TEXT,
            late INTEGER,
            source TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}',
            UNIQUE (student_id, content_hash)
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            grader_version TEXT NOT NULL,
            created_at TEXT NOT NULL,
            components TEXT NOT NULL,
            options TEXT NOT NULL,
            seed TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE gradings (
            id INTEGER PRIMARY KEY,
            student_id TEXT NOT NULL REFERENCES students(id),
            submission_id INTEGER REFERENCES submissions(id),
            run_id INTEGER NOT NULL REFERENCES runs(id),
            status TEXT NOT NULL,
            score REAL NOT NULL,
            max_score REAL NOT NULL,
            seconds REAL NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            submission_label TEXT NOT NULL DEFAULT '',
            grader_version TEXT NOT NULL DEFAULT '',
            environment TEXT NOT NULL DEFAULT '{}',
            log TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX gradings_by_student ON gradings (student_id, id);
        CREATE INDEX gradings_by_run ON gradings (run_id, submission_id);
        CREATE TABLE assignment_results (
            grading_id INTEGER NOT NULL REFERENCES gradings(id),
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            score REAL NOT NULL,
            max_score REAL NOT NULL,
            message TEXT NOT NULL,
            source TEXT NOT NULL,
            title TEXT NOT NULL,
            course TEXT NOT NULL,
            PRIMARY KEY (grading_id, position)
        );
        CREATE TABLE check_results (
            grading_id INTEGER NOT NULL REFERENCES gradings(id),
            position INTEGER NOT NULL,
            assignment TEXT NOT NULL,
            check_id TEXT NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            score REAL NOT NULL,
            max_score REAL NOT NULL,
            visibility TEXT NOT NULL,
            message TEXT NOT NULL,
            hint TEXT NOT NULL,
            diagnosis_id TEXT,
            diagnosis_name TEXT,
            seconds REAL NOT NULL,
            details TEXT NOT NULL,
            PRIMARY KEY (grading_id, position)
        );
        CREATE INDEX check_results_by_check ON check_results (assignment, check_id);
        CREATE TABLE choices (
            student_id TEXT PRIMARY KEY REFERENCES students(id),
            grading_id INTEGER NOT NULL REFERENCES gradings(id),
            chosen_at TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        );
        """
    )


# MIGRATIONS[n] takes a gradebook of schema version n to n + 1. A new schema version appends a
# function here (ALTER TABLE / new tables / backfills); old files are upgraded on open.
MIGRATIONS = [_migrate_0_to_1]
assert len(MIGRATIONS) == SCHEMA_VERSION
