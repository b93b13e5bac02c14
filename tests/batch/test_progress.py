"""The batch's progress: one plain line per submission off a terminal, a live display on one,
and the final table either way."""

from __future__ import annotations

import io

from grader.batch.progress import Progress, Tally


def test_plain_lines_and_table():
    out = io.StringIO()
    p = Progress(2, out, live=False)
    p.finished("alice", "16/16  (1.0 s)", False)
    p.finished("bob", "ERROR  the submission folder is empty", True)
    p.table(Tally(total=2, graded=1, errors=1, skipped=3), title="Batch c")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] alice  16/16  (1.0 s)"
    assert lines[1] == "[2/2] bob  ERROR  the submission folder is empty"
    assert lines[2].startswith("Batch c: 1 graded, 1 errors, 0 timeouts, 3 skipped")
    assert "wall time" in lines[2]


def test_live_display_names_failures_and_draws_the_table():
    out = io.StringIO()
    p = Progress(2, out, live=True)
    p.finished("alice", "16/16", False)
    p.finished("bob", "ERROR  crashed", True)
    p.close()
    p.table(Tally(total=2, graded=1, errors=1))
    text = out.getvalue()
    assert "bob: ERROR  crashed" in text and "alice" not in text.split("bob")[0]
    assert "2/2" in text and "1 failed" in text
    assert "skipped (already graded)" in text and "wall time" in text


def test_quiet_prints_nothing():
    out = io.StringIO()
    p = Progress(1, out, quiet=True)
    p.finished("alice", "16/16", False)
    p.table(Tally(total=1, graded=1))
    assert out.getvalue() == ""


def test_names_and_messages_cannot_break_lines_or_drive_the_terminal():
    # Student ids are folder and file names; messages come from the students' own code.
    hostile = "eve\n[2/2] mallory  16/16\x1b[2J\x1b]0;owned\x07\u202e [/] [bold]"
    for live in (False, True):
        out = io.StringIO()
        p = Progress(2, out, live=live)
        p.note(f"note about {hostile}")
        p.finished(hostile, "ERROR  raised ValueError: a\rb\x1b[1A", True)
        p.finished("Zoë Müller 李", "16/16", False)
        p.close()
        p.table(Tally(total=2, graded=1, errors=1), title=f"Batch {hostile}")
        text = out.getvalue()
        assert "\x1b[2J" not in text and "\x07" not in text and "\u202e" not in text
        assert "\r" not in text and "\x1b[1A" not in text
        assert "\\x1b[2J" in text and "\\u202e" in text  # shown, as escapes
        # Not taken as markup, nor an error (a live table wraps its long title: not counted).
        assert text.count("[/] [bold]") == (2 if live else 3)
        if not live:
            assert "[2/2] Zoë Müller 李  16/16" in text  # printable names stay as they are
            lines = text.splitlines()
            assert len(lines) == 4, lines
            assert lines[1].startswith("[1/2] eve\\n[2/2] mallory  16/16\\x1b[2J")
