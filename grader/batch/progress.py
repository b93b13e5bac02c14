"""Progress of a batch: a live display on a terminal (``rich``), one plain line per finished
submission otherwise (a log file, CI), and the final table either way."""

from __future__ import annotations

import sys
import time
import unicodedata
from dataclasses import dataclass, field
from typing import TextIO


def printable(text: str) -> str:
    """``text`` as one line that cannot drive a terminal: control characters (newlines, ESC
    sequences that move the cursor or retitle the window) and invisible format characters
    (bidi overrides that reorder what is shown) are written as escapes. Student ids come from
    folder and file names, and messages from the students' code."""
    return "".join(
        c if c == " " or unicodedata.category(c)[0] not in "CZ" else
        c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass
class Tally:
    """What the batch did, for the final table."""

    total: int = 0
    graded: int = 0
    errors: int = 0  # submissions that could not be graded, or with a check that errored
    timeouts: int = 0  # submissions with a check that timed out
    skipped: int = 0  # already graded under this fingerprint
    no_submission: int = 0
    failures: list[str] = field(default_factory=list)  # "student: reason", the latest first
    started: float = field(default_factory=time.monotonic)

    @property
    def wall(self) -> float:
        return time.monotonic() - self.started


class Progress:
    """Reports each finished submission. ``live``: None chooses by whether ``stream`` is a
    terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, live: bool | None = None,
                 quiet: bool = False):
        self.stream = stream or sys.stdout
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self._rich = None
        self._failures = 0
        self._t0 = time.monotonic()
        if self.live:
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )
                from rich.progress import Progress as RichProgress
            except ImportError:
                self.live = False
            else:
                self._console = Console(file=self.stream)
                self._rich = RichProgress(
                    TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("ETA"),
                    TimeRemainingColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[failures]}"), console=self._console,
                    transient=False)
                self._task = self._rich.add_task("grading", total=total, rate="",
                                                 failures="")
                self._rich.start()

    def note(self, text: str) -> None:
        """A line above the display (or on its own)."""
        if self.quiet:
            return
        text = printable(text)
        if self._rich is not None:
            self._rich.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def finished(self, student: str, line: str, failed: bool) -> None:
        """One submission is recorded: ``line`` says its score or its problem."""
        self.done += 1
        self._failures += failed
        student, line = printable(student), printable(line)
        if self._rich is not None:
            elapsed = max(1e-9, time.monotonic() - self._t0)
            self._rich.update(self._task, advance=1, rate=f"{self.done / elapsed * 60:.1f}/min",
                              failures=f"[red]{self._failures} failed" if self._failures else "")
            if failed:
                self._rich.console.print(f"  {student}: {line}", markup=False, highlight=False)
        elif not self.quiet:
            width = len(str(self.total))
            print(f"[{self.done:>{width}}/{self.total}] {student}  {line}", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def table(self, tally: Tally, title: str = "Batch") -> None:
        """The final table: graded, errors, timeouts, skipped, no submission, wall time."""
        if self.quiet:
            return
        rows = [("graded", tally.graded), ("errors", tally.errors),
                ("timeouts", tally.timeouts), ("skipped (already graded)", tally.skipped),
                ("no submission", tally.no_submission)]
        wall = f"{tally.wall:.1f} s"
        title = printable(title)
        if self.live:
            from rich.table import Table
            from rich.text import Text

            t = Table(title=Text(title))  # plain text: a folder named "[/]" is not markup
            t.add_column("")
            t.add_column("submissions", justify="right")
            for name, n in rows:
                t.add_row(name, str(n))
            t.add_row("wall time", wall)
            self._console.print(t)
        else:
            print(f"{title}: " + ", ".join(f"{n} {name}" for name, n in rows)
                  + f"; wall time {wall}", file=self.stream, flush=True)
