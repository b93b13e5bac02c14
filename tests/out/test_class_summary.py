"""The class summary's numbers on a small class whose mistakes are known
(tests/out/test_export_fixtures.py), its files, its similarity flags and the CLI."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_export_fixtures import BAD_CURVE, REFERENCE_CURVE, STUDENTS, make_gradebook, submission

from grader.cli import main
from grader.out.class_report import build, rows
from grader.out.class_report.render import Page, render_html, render_markdown
from grader.out.class_report.similarity import available, compare
from grader.out.class_report.stats import Student, summarise
from grader.out.gradebook import Gradebook

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Who submitted which attention.py: bob and carol the same buggy file (a copied pair), alice the
# bundled correct one, erin and frank other correct styles, dave nothing.
FILES = {"alice": "correct", "bob": "buggy-attention-no-scale",
         "carol": "buggy-attention-no-scale", "erin": "correct-einsum",
         "frank": "correct-torch-sdpa"}


@pytest.fixture
def book(tmp_path: Path):
    b = make_gradebook(tmp_path / "run" / "gradebook.sqlite", regrade=True)
    yield b
    b.close()


@pytest.fixture
def class_dir(tmp_path: Path) -> Path:
    d = tmp_path / "class"
    for sid in STUDENTS:
        (d / sid).mkdir(parents=True)
        if sid in FILES:
            shutil.copy(EXAMPLES / FILES[sid] / "attention.py", d / sid / "attention.py")
    return d


def test_the_numbers_of_the_first_run(book) -> None:
    s = summarise(rows(book, run_id=1))
    assert (s.students, s.submitted, s.no_submission) == (7, 6, ["grace"])
    assert sorted(s.total.scores) == [9, 10, 14, 14, 16, 22]
    assert s.total.mean == pytest.approx(85 / 6) and s.total.median == 14
    assert s.total.histogram() == [0, 0, 0, 0, 2, 0, 2, 1, 0, 1]  # 2.2 points a bin
    by = {(c.assignment, c.check_id): c for c in s.checks}
    values = by[("attention", "sdpa_values")]
    assert (values.counted, values.failed, values.errored, values.timed_out) == (6, 4, 1, 0)
    assert values.rate == pytest.approx(5 / 6)
    hidden = by[("attention", "mha_gradients")]
    assert hidden.hidden and (hidden.errored, hidden.timed_out) == (1, 1)
    assert [(c.assignment, c.check_id) for c in s.checks[:2]] == [
        ("attention", "sdpa_values"), ("attention", "mha_values")]  # sorted by failure rate
    assert [c.rate for c in s.checks] == sorted((c.rate for c in s.checks), reverse=True)
    assert by[("training", "lr_schedule")].rate == 0

    (m,) = s.mistakes
    assert (m.id, m.students, m.assignment) == ("no_scale", ["bob", "carol"], "attention")
    assert m.checks == ["sdpa_values", "sdpa_gradients", "mha_values"]
    assert "sqrt(d_k)" in m.hint and m.course.startswith("day 30")

    clusters = {(c.assignment, c.checks): c.students for c in s.clusters}
    assert clusters == {("attention", ("sdpa_values", "mha_values")): ["erin", "frank"],
                        ("training", ("convergence_probe",)): ["carol"]}
    assert s.clusters[0].students == ["erin", "frank"]  # the largest first
    assert s.missing_modules == {"attention": ["dave"]}

    (curve,) = s.curves
    assert (curve.assignment, curve.check_id) == ("training", "convergence_probe")
    assert curve.reference == REFERENCE_CURVE and curve.students["carol"] == BAD_CURVE
    assert sorted(curve.students) == sorted(STUDENTS)

    assert [(o.student, o.kind) for o in s.outliers] == [("erin", "slow"), ("erin", "timeout")]
    assert "attention.mha_gradients" in s.outliers[1].text


def test_across_runs_the_latest_counts_and_history_moves(book) -> None:
    page = build(book, similarity=False)
    s = page.summary
    assert [m.students for m in s.mistakes] == [["carol"]]  # bob fixed his scale
    assert [r.label for r in page.history] == ["first", "regrade"]
    first, second = page.history
    key = ("attention", "sdpa_values")
    assert (first.rates[key], second.rates[key]) == (pytest.approx(5 / 6), pytest.approx(4 / 6))
    assert second.rates[("attention", "mha_gradients")] == pytest.approx(1 / 6)
    text = render_markdown(page)
    assert "## History across grading runs" in text
    assert "| attention.sdpa\\_values | 83% | 67% | -17 pts |" in text


@pytest.mark.skipif(not available(), reason="copydetect is not installed")
def test_similarity_flags_the_copied_pair_not_the_stub(tmp_path: Path, class_dir: Path) -> None:
    stub = ROOT / "assignments" / "attention.py"
    files = {"attention": {sid: class_dir / sid / "attention.py" for sid in FILES}}
    # Two students who handed in the untouched stub share only boilerplate.
    for sid in ("stub1", "stub2"):
        (class_dir / sid).mkdir()
        shutil.copy(stub, class_dir / sid / "attention.py")
        files["attention"][sid] = class_dir / sid / "attention.py"
    sim = compare(files, {"attention": stub}, threshold=0.6)
    flagged = {(p.a, p.b) for p in sim.pairs}
    assert ("bob", "carol") in flagged
    assert ("stub1", "stub2") not in flagged
    assert ("alice", "erin") not in flagged  # two correct solutions in different styles
    top = sim.pairs[0]
    assert (top.a, top.b, top.similarity) == ("bob", "carol", 1.0)
    assert top.slices[0] and top.code[0] == top.code[1]
    assert sim.compared == {"attention": 7}


def test_the_cli_writes_the_page_and_side_by_side_views(book, class_dir: Path, tmp_path: Path,
                                                        capsys) -> None:
    out = tmp_path / "summary"
    assert main(["summary", str(book.path), "-o", str(out), "--class-dir", str(class_dir),
                 "--stubs", str(ROOT / "assignments"), "--run", "1"]) == 0
    printed = capsys.readouterr().out
    assert "6/7 submitted" in printed and "the scores are not divided by sqrt(d_k)" in printed
    assert "unnamed failure clusters: 1" in printed
    page = (out / "summary.html").read_text()
    assert "Content-Security-Policy" in page and not re.search(r"<script\b", page, re.I)
    assert "not a verdict" in page and 'href="pairs/attention--bob--carol.html"' in page
    assert page.count("<svg") == 4  # histograms: total + 2 assignments; one curve overlay
    assert all(re.search(r'width="\d+" height="\d+"', tag) for tag in
               re.findall(r"<svg[^>]*>", page))
    pair = (out / "pairs" / "attention--bob--carol.html").read_text()
    assert "<mark>" in pair and "Content-Security-Policy" in pair
    md = (out / "summary.md").read_text()
    assert "bob, carol" in md and "erin, frank" in md


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    r = submission("erin")
    r.assignment("attention").check("sdpa_values").details = {
        "likely_mistake": {"id": "x", "name": evil, "hint": "**bold** <b>", "course": ""}}
    page = Page("Class <b>summary</b>", summarise([Student(evil, "error", r, evil)]))
    html = render_html(page)
    assert evil not in html and "&lt;img src=x" in html and "<b>" not in html
    md = render_markdown(page)
    assert "<img" not in md.replace("\\<img", "") and "\\*\\*bold" in md


def test_bad_input_is_a_clear_message(tmp_path: Path, capsys) -> None:
    assert main(["summary", str(tmp_path / "nope.sqlite"), "-o", str(tmp_path / "o")]) == 2
    assert "no gradebook" in capsys.readouterr().err
    empty = Gradebook.open(tmp_path / "empty.sqlite")
    empty.close()
    assert main(["summary", str(tmp_path / "empty.sqlite"), "-o", str(tmp_path / "o")]) == 2
    assert "no gradings" in capsys.readouterr().err


def test_the_page_is_deterministic(book, class_dir: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["summary", str(book.path), "-o", str(tmp_path / name), "--class-dir",
                     str(class_dir)]) == 0
    for f in ("summary.html", "summary.md", "pairs/attention--bob--carol.html"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert main(["summary", str(book.path), "-o", str(tmp_path / "c"),
                 "--similarity-threshold", "0"]) == 2


def test_a_common_exception_is_a_cluster_a_timeout_is_not() -> None:
    from grader.model.results import Status

    def raising(sid: str, status: Status) -> Student:
        r = submission("alice")
        c = r.assignment("attention").check("sdpa_gradients")
        c.status, c.score, c.message = status, 0.0, "your code raised RuntimeError: shape"
        return Student(sid, "graded", r)

    s = summarise([raising("x", Status.ERROR), raising("y", Status.ERROR),
                   raising("z", Status.TIMEOUT)])
    assert [(c.checks, c.students) for c in s.clusters] == [(("sdpa_gradients",), ["x", "y"])]
    assert [(o.student, o.kind) for o in s.outliers] == [("x", "error"), ("y", "error"),
                                                        ("z", "timeout")]
