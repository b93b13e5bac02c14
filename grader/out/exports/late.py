"""A late policy, applied at export only: the gradebook keeps the raw scores, always.

The policy (every part optional but the due date):

* ``due``: the deadline (ISO 8601; a time without a zone is UTC);
* ``per_day``: the share of an assignment's *possible* points deducted per day late (Canvas's
  "late submission deduction ... percent per day"), 0..1; a started day counts as a full one;
* ``cap``: the largest share of the possible points that may be deducted in total (e.g. 0.5);
  the deduction never takes a score below 0;
* ``cutoff_days``: more than this many days late scores 0 (Moodle's "cut-off date");
* per-student extensions: the roster's ``extension days`` column moves that student's due date
  (and cut-off) by as many days.

The submission time is the LMS's when the gradebook has one (``submitted_at``: the Canvas or
nbgrader time), else the time the grader received the files (their newest modification time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = timedelta(days=1)
EXTENSION_KEYS = ("extension days", "extension_days", "extension", "extra days")


class PolicyError(ValueError):
    """A late policy that cannot be applied (a bad date, a share outside 0..1)."""


def parse_time(text: str) -> datetime:
    """An ISO-8601 time as an aware datetime (UTC when it names no zone)."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PolicyError(f"not an ISO 8601 date and time: {text!r} (e.g. "
                          "2026-11-20T23:59:00+01:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LatePolicy:
    due: datetime
    per_day: float = 0.0
    cap: float = 1.0
    cutoff_days: float | None = None

    def __post_init__(self) -> None:
        for name in ("per_day", "cap"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise PolicyError(f"{name} must be a share between 0 and 1 (10% is 0.1), "
                                  f"not {v}")
        if self.cutoff_days is not None and self.cutoff_days < 0:
            raise PolicyError("cutoff_days must be >= 0")


@dataclass(frozen=True)
class Lateness:
    """How late one submission was, and the share of the possible points it loses."""

    days_late: int  # 0 when on time; started days
    share: float  # deducted share of the possible points (0..1)
    zero: bool  # past the cut-off: the score becomes 0
    note: str


def extension_days(extra: dict) -> float:
    """The student's extension in days, from the roster's ``extension days`` column (0 when
    absent or unreadable)."""
    for key in EXTENSION_KEYS:
        if str(extra.get(key, "")).strip():
            try:
                return max(0.0, float(str(extra[key]).strip()))
            except ValueError:
                return 0.0
    return 0.0


def lateness(policy: LatePolicy, submitted: str | None, extension: float = 0.0) -> Lateness:
    """Apply ``policy`` to a submission made at ``submitted`` (ISO time; None: unknown, which
    is never penalised)."""
    if not submitted:
        return Lateness(0, 0.0, False, "submission time unknown: no penalty")
    due = policy.due + timedelta(days=extension)
    late = parse_time(submitted) - due
    if late <= timedelta(0):
        return Lateness(0, 0.0, False, "")
    days = math.ceil(late / DAY)
    if policy.cutoff_days is not None and late > timedelta(days=policy.cutoff_days):
        return Lateness(days, 1.0, True, f"{days} day(s) late, past the cut-off: 0")
    share = min(policy.cap, days * policy.per_day)
    return Lateness(days, share, False, f"{days} day(s) late")


def penalised(score: float, max_score: float, late: Lateness) -> tuple[float, float]:
    """``(penalty, final)`` of one score: the deduction is ``share`` of the possible points,
    never more than the score itself."""
    if late.zero:
        return score, 0.0
    penalty = min(score, late.share * max_score)
    return penalty, score - penalty
