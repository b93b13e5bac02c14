"""A small graded class whose mistakes are known, built from results without grading (fast).

Seven students on the roster, six submissions:

========  =====================================================================================
alice     everything right (attention 12 + training 10 = 22 of 22)
bob       attention without the 1/sqrt(d_k) scale: sdpa_values, sdpa_gradients, mha_values fail,
          diagnosed ``no_scale``; the probe trains as the reference (22 - 8 = 14)
carol     the same ``no_scale`` mistake, and a convergence probe that diverges (no mistake
          named: training's probe hint only) -> 14 - 5 = 9
dave      attention.py missing (every attention check errors); training right (10)
erin      an unnamed attention bug: sdpa_values and mha_values fail, no likely mistake; the
          hidden mha_gradients times out after 60 s (a slow outlier) -> 22 - 6 - 2 = 14
frank     an unnamed bug with erin's signature (sdpa_values, mha_values) -> 16; 2 days late,
          with a 1-day extension
grace     on the roster, no submission
========  =====================================================================================
"""

from __future__ import annotations

import math

from grader.model.results import (
    AssignmentResult,
    CheckResult,
    Status,
    SubmissionResult,
    Visibility,
)

ATTENTION = [("sdpa_shapes", "scaled_dot_product_attention: output shapes", 2),
             ("sdpa_values", "scaled_dot_product_attention: values equal the reference", 3),
             ("sdpa_gradients", "scaled_dot_product_attention: gradients equal the reference", 2),
             ("mha_values", "MultiHeadAttention: output equals the reference", 3),
             ("mha_gradients", "MultiHeadAttention: input and parameter gradients", 2)]
HIDDEN = {"mha_gradients"}
TRAINING = [("lr_schedule", "get_lr: warmup and cosine decay at the boundary steps", 3),
            ("convergence_probe", "train: learns the task like the reference loop", 5),
            ("loop_metrics", "train: the metrics dict", 2)]

NO_SCALE = {"id": "no_scale", "name": "the scores are not divided by sqrt(d_k)",
            "hint": "Scale the scores: softmax(QK^T / sqrt(d_k)) V.",
            "course": "day 30, Q2 (why scale by sqrt(d_k))"}

REFERENCE_CURVE = [round(2.3 * math.exp(-i / 40) + 0.2, 4) for i in range(0, 300, 10)]
GOOD_CURVE = [round(v * 1.02, 4) for v in REFERENCE_CURVE]
BAD_CURVE = [round(2.3 + 0.01 * i, 4) for i in range(len(REFERENCE_CURVE))]

ROSTER_CSV = """\
student_id,name,email,sis_user_id,sis_login_id,section,canvas_id,id_number,extension_days
alice,"Liddell, Alice",alice@uni.example,S001,aliddell,Section A,101,1001,0
bob,"Builder, Bob",bob@uni.example,S002,bbuilder,Section A,102,1002,0
carol,"Danvers, Carol",carol@uni.example,S003,cdanvers,Section B,103,1003,0
dave,"Bowman, Dave",dave@uni.example,S004,dbowman,Section B,104,1004,0
erin,"Brockovich, Erin",erin@uni.example,S005,ebrock,Section A,105,1005,0
frank,"Herbert, Frank",frank@uni.example,S006,fherbert,Section B,106,1006,1
grace,"Hopper, Grace",grace@uni.example,S007,ghopper,Section A,107,1007,0
"""

# Submission times (UTC, ISO 8601) and the due date the tests use: frank is 2 days late
# (1 day after his 1-day extension), erin 5 hours late.
DUE = "2026-11-20T23:59:00+00:00"
SUBMITTED = {"alice": "2026-11-19T10:00:00+00:00", "bob": "2026-11-20T22:00:00+00:00",
             "carol": "2026-11-20T12:00:00+00:00", "dave": "2026-11-18T09:30:00+00:00",
             "erin": "2026-11-21T04:59:00+00:00", "frank": "2026-11-22T20:00:00+00:00"}


def _check(cid: str, name: str, points: float, status: Status = Status.PASSED, *,
           message: str = "", hint: str = "", details: dict | None = None,
           seconds: float = 0.2) -> CheckResult:
    score = points if status is Status.PASSED else 0.0
    return CheckResult(id=cid, name=name, status=status, score=score, max_score=points,
                       message=message, hint=hint, details=details or {}, seconds=seconds,
                       visibility=Visibility.HIDDEN if cid in HIDDEN else Visibility.PUBLIC)


def attention(failing: dict[str, tuple[Status, dict]] | None = None,
              missing: bool = False) -> AssignmentResult:
    """The attention assignment with the given checks failing (id -> (status, details))."""
    failing = failing or {}
    a = AssignmentResult(name="attention", source="" if missing else "attention.py",
                         title="Scaled dot-product and multi-head attention",
                         course="day 30")
    if missing:
        a.message = "attention.py is missing from the submission"
        a.checks = [_check(c, n, p, Status.ERROR, message=a.message) for c, n, p in ATTENTION]
        return a
    for cid, name, points in ATTENTION:
        if cid in failing:
            status, details = failing[cid]
            msg = {Status.FAILED: f"{cid}: the output does not match the reference",
                   Status.TIMEOUT: "the request did not finish within 60 s"}.get(status, "")
            a.checks.append(_check(cid, name, points, status, message=msg, details=details,
                                   seconds=60.0 if status is Status.TIMEOUT else 0.3))
        else:
            a.checks.append(_check(cid, name, points))
    return a


def training(curve: list[float] = GOOD_CURVE) -> AssignmentResult:
    a = AssignmentResult(name="training", source="training.py",
                         title="The training loop", course="day 12")
    for cid, name, points in TRAINING:
        details: dict = {}
        status = Status.PASSED
        message = ""
        hint = ""
        if cid == "convergence_probe":
            details = {"curves": {"student": curve, "reference": REFERENCE_CURVE},
                       "loss_ratio": round(curve[-1] / REFERENCE_CURVE[-1], 4)}
            if curve is BAD_CURVE:
                status = Status.FAILED
                message = "your loop's model does not learn the task"
                hint = "The gradient norms grow far above the reference's: zero them every step."
        a.checks.append(_check(cid, name, points, status, message=message, hint=hint,
                               details=details, seconds=2.0 if cid == "convergence_probe"
                               else 0.1))
    return a


def mistake_details() -> dict:
    return {"likely_mistake": dict(NO_SCALE), "max_abs_diff": 0.549, "where": [1, 0, 2, 6]}


def unnamed_details() -> dict:
    return {"diagnosis": "matches none of the known mistakes (12 variants)",
            "max_abs_diff": 0.1}


def submission(student: str) -> SubmissionResult:
    """The graded result of one student of the class (not grace: she did not submit)."""
    fail = (Status.FAILED, mistake_details())
    unnamed = (Status.FAILED, unnamed_details())
    if student == "alice":
        parts = [attention(), training()]
    elif student == "bob":
        parts = [attention({"sdpa_values": fail, "sdpa_gradients": fail, "mha_values": fail}),
                 training()]
    elif student == "carol":
        parts = [attention({"sdpa_values": fail, "sdpa_gradients": fail, "mha_values": fail}),
                 training(BAD_CURVE)]
    elif student == "dave":
        parts = [attention(missing=True), training()]
    elif student == "erin":
        parts = [attention({"sdpa_values": unnamed, "mha_values": unnamed,
                            "mha_gradients": (Status.TIMEOUT, {})}), training()]
    elif student == "frank":
        parts = [attention({"sdpa_values": unnamed, "mha_values": unnamed}), training()]
    else:
        raise KeyError(student)
    seconds = sum(c.seconds for a in parts for c in a.checks) + 3.0
    return SubmissionResult(submission=f"class/{student}", assignments=parts,
                            submission_id=f"sha256:{student:0<8}"[:15] + "0" * 49,
                            grader_version="0.1.0", seconds=round(seconds, 3),
                            environment={"isolation": "bubblewrap", "threads": 1},
                            log="")


STUDENTS = ["alice", "bob", "carol", "dave", "erin", "frank"]
EXPECTED_TOTALS = {"alice": 22.0, "bob": 14.0, "carol": 9.0, "dave": 10.0, "erin": 14.0,
                   "frank": 16.0}


def test_the_class_is_what_its_docstring_says() -> None:
    """The fixture's own numbers (the other tests rely on them)."""
    totals = {s: submission(s).score for s in STUDENTS}
    assert totals == EXPECTED_TOTALS
    assert {submission(s).max_score for s in STUDENTS} == {22.0}
    r = submission("bob")
    assert SubmissionResult.from_json(r.to_json()).to_dict() == r.to_dict()


def no_submission_result() -> SubmissionResult:
    """What the batch records for a roster student who submitted nothing: every check listed,
    with its points, as an error with 0."""
    r = submission("alice")
    for a in r.assignments:
        a.message = "no submission"
        for c in a.checks:
            c.status, c.score, c.message, c.details = Status.ERROR, 0.0, "no submission", {}
    r.submission, r.submission_id, r.seconds = "", "", 0.0
    return r


def make_gradebook(path, *, regrade: bool = False):
    """The class as a batch would record it, in a gradebook file at ``path``. With ``regrade``,
    a second run where bob fixed his scale (a new version) and erin's timeout is gone."""
    import csv
    import io

    from grader.batch.roster import read_roster
    from grader.out.gradebook import Gradebook, Student

    path.parent.mkdir(parents=True, exist_ok=True)
    roster_path = path.parent / "roster.csv"
    roster_path.write_text(ROSTER_CSV)
    roster = read_roster(roster_path)
    assert [s.id for s in roster] == [r["student_id"] for r in csv.DictReader(
        io.StringIO(ROSTER_CSV))]
    book = Gradebook.open(path)
    book.set_roster([Student(s.id, s.name, s.email, s.section, extra=s.extra) for s in roster])
    run = book.run_for("fp-1", grader_version="0.1.0", components={}, options={}, seed="1",
                       label="first")
    for sid in STUDENTS:
        book.record(sid, submission(sid), run, files=["attention.py", "training.py"],
                    received_at=SUBMITTED[sid], started_at="2026-11-23T10:00:00+00:00",
                    source=f"class/{sid}")
    book.record_no_submission("grace", no_submission_result(), run)
    if regrade:
        run2 = book.run_for("fp-2", grader_version="0.1.0", components={}, options={},
                            seed="2", label="regrade")
        for sid in STUDENTS:
            r = submission("alice" if sid == "bob" else sid)
            if sid == "bob":
                r.submission_id = "sha256:bobfixed" + "0" * 48
            if sid == "erin":
                c = r.assignment("attention").check("mha_gradients")
                c.status, c.score, c.message = Status.PASSED, c.max_score, ""
            book.record(sid, r, run2, files=["attention.py", "training.py"],
                        received_at=SUBMITTED[sid], source=f"class/{sid}")
        book.record_no_submission("grace", no_submission_result(), run2)
    return book
