"""The class summary's numbers, from the gradebook's rows: pure functions over plain data.

Who counts: the *submitted* students (a grading of status ``graded`` or ``error``); a roster
student without a submission is counted apart and is in no distribution or rate.
A check's *failure rate* is the share of the submitted students for whom it counted (not
skipped) whose result was failed, error or timeout; the three shares are given apart.
A *diagnosed mistake* is a ``likely_mistake`` named by the diagnosis on any check; a student
is counted once per mistake, with the checks it showed in. An *unnamed failure* is an
assignment of a student with failed checks of which none names a mistake; its *signature* is
the set of those checks, and students with the same signature form a cluster (an unknown
common bug shows up as a cluster of two or more); checks whose code raised count as failed
there, timeouts do not, and a module that could not be used at all is listed apart.
*Outliers*: a grading that took more than ``slow_factor`` times the median time (and at least
``slow_min`` seconds more), a grading that errored as a whole or whose checks errored (other
than a missing or unimportable module: that is the student's mistake, listed apart) or timed
out. *Curves*: a check's details holding a
series named ``reference``/``expected`` beside the student's (``{"student": [...],
"reference": [...]}``, or a ``curves`` figure spec): the class's series and the reference.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.model.figures import REFERENCE_NAMES, to_float
from grader.model.results import Status, SubmissionResult
from grader.out.exports.feedback_text import likely_mistake

SUBMITTED = ("graded", "error")
# What the training checks' ad-hoc series are (grader/checks/training: curves, grad_norms, lrs).
CURVE_TITLES = {"curves": "loss", "losses": "loss", "train_losses": "training loss",
                "val_losses": "validation loss", "grad_norms": "gradient norm",
                "lrs": "learning rate"}
BAD = (Status.FAILED, Status.ERROR, Status.TIMEOUT)


@dataclass(frozen=True)
class Student:
    """The part of a gradebook row the summary reads."""

    id: str
    status: str  # graded / error / no_submission
    result: SubmissionResult
    message: str = ""


@dataclass
class Distribution:
    name: str
    max_score: float
    scores: list[float]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.scores) if self.scores else None

    def histogram(self, bins: int = 10) -> list[int]:
        """Counts per bin of equal width over 0..max (the last bin includes max)."""
        counts = [0] * bins
        top = self.max_score or 1.0
        for s in self.scores:
            i = int(max(0.0, min(s, top)) / top * bins)
            counts[min(i, bins - 1)] += 1
        return counts


@dataclass
class CheckStat:
    assignment: str
    check_id: str
    name: str
    points: float
    hidden: bool
    counted: int = 0
    failed: int = 0
    errored: int = 0
    timed_out: int = 0
    students: list[str] = field(default_factory=list)  # who did not pass

    @property
    def bad(self) -> int:
        return self.failed + self.errored + self.timed_out

    def share(self, n: int) -> float:
        return n / self.counted if self.counted else 0.0

    @property
    def rate(self) -> float:
        return self.share(self.bad)


@dataclass
class Mistake:
    id: str
    name: str
    hint: str
    course: str
    assignment: str
    students: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    assignment: str
    checks: tuple[str, ...]
    students: list[str] = field(default_factory=list)


@dataclass
class Curves:
    assignment: str
    check_id: str
    key: str
    title: str
    reference: list[float | None]
    students: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class Outlier:
    student: str
    kind: str  # slow / error / timeout
    text: str


@dataclass
class Summary:
    students: int  # on the gradebook (roster and others)
    submitted: int
    no_submission: list[str]
    total: Distribution
    assignments: list[Distribution]
    checks: list[CheckStat]  # sorted by failure rate
    mistakes: list[Mistake]  # most students first
    clusters: list[Cluster]  # largest first
    curves: list[Curves]
    outliers: list[Outlier]
    median_seconds: float | None
    missing_modules: dict[str, list[str]]  # assignment -> students whose module was unusable


def _submitted(rows: Sequence[Student]) -> list[Student]:
    return [r for r in rows if r.status in SUBMITTED]


def summarise(rows: Sequence[Student], *, slow_factor: float = 3.0,
              slow_min: float = 10.0) -> Summary:
    """Every number of the class summary (see the module doc)."""
    sub = _submitted(rows)
    order: dict[str, float] = {}
    for r in sub:
        for a in r.result.assignments:
            order[a.name] = max(order.get(a.name, 0.0), a.max_score)
    assignments = [Distribution(name, m, [r.result.assignment(name).score for r in sub
                                          if _has(r.result, name)]) for name, m in order.items()]
    total = Distribution("total", sum(order.values()), [r.result.score for r in sub])
    return Summary(
        students=len(rows), submitted=len(sub),
        no_submission=[r.id for r in rows if r.status not in SUBMITTED],
        total=total, assignments=assignments, checks=check_stats(sub),
        mistakes=mistakes(sub), clusters=clusters(sub), curves=curves(sub),
        outliers=outliers(sub, slow_factor, slow_min),
        median_seconds=statistics.median([r.result.seconds for r in sub]) if sub else None,
        missing_modules=missing_modules(sub))


def _has(result: SubmissionResult, name: str) -> bool:
    return any(a.name == name for a in result.assignments)


def check_stats(rows: Sequence[Student]) -> list[CheckStat]:
    """Every check with its failure shares, highest failure rate first (ties: grading order)."""
    stats: dict[tuple[str, str], CheckStat] = {}
    for r in rows:
        for a in r.result.assignments:
            for c in a.checks:
                s = stats.setdefault((a.name, c.id), CheckStat(
                    a.name, c.id, c.name, c.max_score, c.visibility.value == "hidden"))
                if not c.counts:
                    continue
                s.points = max(s.points, c.max_score)
                s.counted += 1
                if c.status is Status.FAILED:
                    s.failed += 1
                elif c.status is Status.ERROR:
                    s.errored += 1
                elif c.status is Status.TIMEOUT:
                    s.timed_out += 1
                if c.status in BAD:
                    s.students.append(r.id)
    ordered = list(stats.values())
    return sorted(ordered, key=lambda s: (-s.rate, ordered.index(s)))


def mistakes(rows: Sequence[Student]) -> list[Mistake]:
    """Diagnosed mistakes, the most common first (ties: by name)."""
    found: dict[str, Mistake] = {}
    for r in rows:
        for a in r.result.assignments:
            for c in a.checks:
                m = likely_mistake(c) if c.status in BAD else None
                if m is None:
                    continue
                entry = found.setdefault(m["id"], Mistake(m["id"], m["name"], m["hint"],
                                                          m["course"], a.name))
                if r.id not in entry.students:
                    entry.students.append(r.id)
                if c.id not in entry.checks:
                    entry.checks.append(c.id)
    return sorted(found.values(), key=lambda m: (-len(m.students), m.name))


def clusters(rows: Sequence[Student]) -> list[Cluster]:
    """Failures the diagnosis could not name, grouped by the set of failed checks."""
    found: dict[tuple[str, tuple[str, ...]], Cluster] = {}
    for r in rows:
        for a in r.result.assignments:
            if a.message:  # a missing or unimportable module: listed apart
                continue
            # An exception in the student's code (error) is as much a symptom as a wrong value;
            # a timeout is left out: it says more about the machine than about the bug.
            failed = [c for c in a.checks if c.status in (Status.FAILED, Status.ERROR)]
            if not failed or any(likely_mistake(c) for c in a.checks if c.status in BAD):
                continue
            key = (a.name, tuple(c.id for c in failed))
            found.setdefault(key, Cluster(a.name, key[1])).students.append(r.id)
    return sorted(found.values(), key=lambda c: (-len(c.students), c.assignment, c.checks))


def missing_modules(rows: Sequence[Student]) -> dict[str, list[str]]:
    """Assignment -> the students whose module could not be used at all (missing, syntax
    error, import error): every check errored for a reason the assignment states."""
    out: dict[str, list[str]] = {}
    for r in rows:
        for a in r.result.assignments:
            if a.message and all(c.status in (Status.ERROR, Status.SKIPPED) for c in a.checks):
                out.setdefault(a.name, []).append(r.id)
    return out


def _series_pairs(details: Mapping[str, Any]) -> list[tuple[str, str, list, list]]:
    """``(key, title, student series, reference series)`` for every curve in ``details``."""
    out = []
    for key, value in details.items():
        if not isinstance(value, Mapping):
            continue
        series = value.get("series") if value.get("kind") == "curves" else value
        if not isinstance(series, Mapping):
            continue
        refs = [n for n in series if n in REFERENCE_NAMES]
        mine = [n for n in series if n not in REFERENCE_NAMES]
        if not refs or not mine:
            continue
        ref, student = series[refs[0]], series[mine[0]]
        if not (isinstance(ref, list) and isinstance(student, list)) or len(ref) < 2:
            continue
        title = str(value.get("title") or key) if value.get("kind") == "curves" else \
            CURVE_TITLES.get(key, key.replace("_", " "))
        out.append((key, title, [to_float(v) for v in student], [to_float(v) for v in ref]))
    return out


def curves(rows: Sequence[Student]) -> list[Curves]:
    """The class's curves per check and details key, with the reference's (the first seen)."""
    found: dict[tuple[str, str, str], Curves] = {}
    for r in rows:
        for a in r.result.assignments:
            for c in a.checks:
                for key, title, mine, ref in _series_pairs(c.details or {}):
                    entry = found.setdefault((a.name, c.id, key),
                                             Curves(a.name, c.id, key, title, ref))
                    entry.students[r.id] = mine
    return list(found.values())


def outliers(rows: Sequence[Student], slow_factor: float, slow_min: float) -> list[Outlier]:
    """Slow, errored and timed-out gradings (see the module doc), in roster order."""
    times = [r.result.seconds for r in rows]
    median = statistics.median(times) if times else 0.0
    out = []
    for r in rows:
        t = r.result.seconds
        if times and t > slow_factor * median and t - median >= slow_min:
            out.append(Outlier(r.id, "slow", f"{t:.1f} s, {t / median:.1f}x the median "
                                             f"{median:.1f} s" if median else f"{t:.1f} s"))
        if r.status == "error":
            out.append(Outlier(r.id, "error", r.message or "the grading failed as a whole"))
            continue
        timed = [f"{a.name}.{c.id}" for a in r.result.assignments for c in a.checks
                 if c.status is Status.TIMEOUT]
        if timed:
            out.append(Outlier(r.id, "timeout", "timed out: " + ", ".join(timed)))
        errored = [f"{a.name}.{c.id}" for a in r.result.assignments for c in a.checks
                   if c.status is Status.ERROR and not a.message]
        if errored:
            out.append(Outlier(r.id, "error", "errored: " + ", ".join(errored)))
    return out


# ------------------------------------------------------------------------------ history


@dataclass
class RunRates:
    run_id: int
    label: str
    created_at: str
    submitted: int
    rates: dict[tuple[str, str], float]  # (assignment, check) -> failure rate


def run_rates(run_id: int, label: str, created_at: str, rows: Sequence[Student]) -> RunRates:
    """The failure rate of every check in one run's gradings."""
    sub = _submitted(rows)
    return RunRates(run_id, label, created_at, len(sub),
                    {(s.assignment, s.check_id): s.rate for s in check_stats(sub)})


def movement(history: Sequence[RunRates]) -> list[tuple[str, str, list[float | None], float]]:
    """``(assignment, check, rate per run, change from the first to the last run)`` for every
    check, the largest movement first."""
    keys: list[tuple[str, str]] = []
    for h in history:
        keys += [k for k in h.rates if k not in keys]
    out = []
    for k in keys:
        rates = [h.rates.get(k) for h in history]
        known = [x for x in rates if x is not None]
        delta = known[-1] - known[0] if len(known) >= 2 else 0.0
        out.append((k[0], k[1], rates, delta))
    return sorted(out, key=lambda t: (-abs(t[3]), keys.index((t[0], t[1]))))
