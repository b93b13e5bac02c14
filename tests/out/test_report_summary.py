"""The terminal summary and the root-cause analysis on hand-made results: the likely mistake
under each failure, wrapping that never cuts, "follows from" instead of a misleading local
hint, and "Start here" first."""

from __future__ import annotations

import re

from grader.model.results import (
    AssignmentResult,
    CheckResult,
    Status,
    SubmissionResult,
    Visibility,
)
from grader.model.rootcause import raised_in, root_causes, start_here
from grader.out.reports import build_view, render_html, render_markdown
from grader.out.summary import render_terminal, terminal_width

NO_SCALE = {"id": "no_scale", "name": "the scores are not divided by sqrt(d_k)",
            "hint": "Scale the scores: softmax(QK^T / sqrt(d_k)) V.", "course": "day 3"}
LONG = ("the block's output does not match the reference: the largest difference is 5.22 at "
        "[1, 6, 0] (yours 6.75808, expected 1.5356); 384 of 448 values are outside atol=1e-06, "
        "rtol=1e-06 (raised in block.py, line 109, in __init__)")


def _check(id, status=Status.FAILED, message="", hint="", details=None, hidden=False):
    return CheckResult(id=id, name=f"check {id}", status=status, score=0.0 if status is not
                       Status.PASSED else 1.0, max_score=1.0, message=message, hint=hint,
                       details=details or {},
                       visibility=Visibility.HIDDEN if hidden else Visibility.PUBLIC)


def _result(*assignments):
    return SubmissionResult(submission="sub", assignments=list(assignments))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _no_scale_everywhere():
    attention = AssignmentResult("attention", source="attention.py", checks=[
        _check("shapes", Status.PASSED),
        _check("values", message="the attention weights do not match",
               details={"likely_mistake": NO_SCALE}),
    ])
    block = AssignmentResult("block", source="block.py", checks=[
        _check("block_values", message="the block's output does not match",
               hint="Pre-norm: the LayerNorm goes inside each residual branch.",
               details={"likely_mistake": NO_SCALE}),
        _check("init", Status.PASSED),
    ])
    return _result(attention, block)


def test_the_likely_mistake_is_shown_under_the_failure_without_verbose():
    text = render_terminal(_no_scale_everywhere(), width=100)
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if "check values" in line)
    assert "likely mistake: the scores are not divided by sqrt(d_k)" in _flat(
        "\n".join(lines[i:i + 4]))


def test_a_failure_that_follows_from_an_earlier_module_says_so_instead_of_its_hint():
    text = render_terminal(_no_scale_everywhere(), width=100, verbose=True)
    block = text[text.index("\nblock"):]
    assert "follows from attention.py: fix that first" in _flat(block)
    assert "Pre-norm" not in block  # the local hint would send the student to block.py


def test_start_here_opens_the_summary_with_the_first_module_its_check_and_mistake():
    text = render_terminal(_no_scale_everywhere(), width=100)
    head = _flat(text.split("\nattention")[0])
    assert "Start here: attention.py, check `check values`" in head
    assert "likely mistake: the scores are not divided by sqrt(d_k)" in head
    assert "1 failing check(s) in later modules follow from attention.py" in head


def test_messages_are_wrapped_to_the_width_and_never_cut():
    result = _result(AssignmentResult("block", source="block.py",
                                      checks=[_check("v", message=LONG)]))
    for width in (60, 80, 250):
        text = render_terminal(result, width=width)
        assert all(len(line) <= width for line in text.splitlines()), width
        flat = _flat(text)
        assert LONG in flat  # every word, in order: file:line and the tolerance included
        assert "…" not in text


def test_the_width_comes_from_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert terminal_width() == 250
    result = _result(AssignmentResult("block", source="block.py",
                                      checks=[_check("v", message=LONG)]))
    text = render_terminal(result)
    assert any(len(line) > 160 for line in text.splitlines())  # one line, not cut at 160
    monkeypatch.setenv("COLUMNS", "20")
    assert terminal_width() == 60  # too narrow to be useful: a floor


def test_an_error_raised_in_an_earlier_modules_code_follows_from_it():
    error = {"type": "NotImplementedError", "message": "Store config",
             "where": "block.py, line 109, in __init__: raise NotImplementedError(",
             "traceback": '  File "/submission/kv_cache.py", line 12, in generate\n'
                          '  File "/submission/block.py", line 109, in __init__\n'}
    block = AssignmentResult("block", source="block.py", checks=[
        _check("gpt", Status.ERROR, "your code raised NotImplementedError",
               details={"error": dict(error, traceback='  File "/submission/block.py", '
                                                       'line 109, in __init__\n')})])
    kv = AssignmentResult("kv_cache", source="kv_cache.py", checks=[
        _check(f"k{i}", Status.ERROR, "your code raised NotImplementedError: Store config",
               details={"error": error}) for i in range(9)])
    result = _result(block, kv)
    causes = root_causes(result)
    assert {k for k in causes} == {("kv_cache", f"k{i}") for i in range(9)}
    assert all(c.file == "block.py" and "raised in block.py" in c.because
               for c in causes.values())
    start = start_here(result)
    assert (start.file, start.check_id, start.follows) == ("block.py", "gpt", 9)
    assert raised_in(kv.checks[0]) == "block.py"  # the innermost frame, not the first
    text = render_terminal(result, width=100)
    assert text.count("Store config") == 1
    assert text.count("↳ the same as above; it follows from block.py") == 8
    assert text.count("follows from block.py: fix that first") == 1


def test_an_own_error_or_an_unrelated_failure_is_not_attributed_elsewhere():
    attention = AssignmentResult("attention", source="attention.py", checks=[
        _check("values", details={"likely_mistake": NO_SCALE})])
    block = AssignmentResult("block", source="block.py", checks=[
        _check("own", Status.ERROR, "raised",
               details={"error": {"type": "ValueError", "message": "x",
                                  "where": "block.py, line 3, in f"}}),
        _check("other", details={"likely_mistake": {"id": "post_norm", "name": "post-norm"}}),
    ])
    assert root_causes(_result(attention, block)) == {}


def test_a_module_that_cannot_import_an_earlier_missing_one_follows_from_it():
    attention = AssignmentResult("attention", message="attention.py is missing from the "
                                 "submission", checks=[_check("v", Status.ERROR)])
    problem = "importing block.py raised ModuleNotFoundError: No module named 'attention'"
    block = AssignmentResult("block", source="block.py", message=problem,
                             checks=[_check("b", Status.ERROR, problem)])
    result = _result(attention, block)
    assert root_causes(result)[("block", "b")].file == "attention.py"
    text = render_terminal(result, width=100)
    assert "follows from attention.py" in _flat(text)
    start = start_here(result)
    assert start.whole_module and start.file == "attention.py"
    assert text.splitlines()[2] == "Start here: attention.py"


def test_a_missing_later_module_does_not_come_before_a_real_failure():
    result = _result(
        AssignmentResult("attention", source="attention.py",
                         checks=[_check("v", details={"likely_mistake": NO_SCALE})]),
        AssignmentResult("training", message="training.py is missing from the submission",
                         checks=[_check("t", Status.ERROR)]))
    assert start_here(result).file == "attention.py"
    only_missing = _result(result.assignments[1])
    assert start_here(only_missing).file == "training.py"


def test_a_grader_error_is_not_where_the_student_starts():
    result = _result(
        AssignmentResult("attention", source="attention.py", checks=[
            _check("v", Status.ERROR, "internal grader error", details={"traceback": "..."})]),
        AssignmentResult("block", source="block.py", checks=[_check("b", message="off")]))
    assert start_here(result).file == "block.py"
    assert start_here(_result(result.assignments[0])) is None


def test_hidden_checks_give_a_student_no_mistake_and_no_details():
    result = _result(AssignmentResult("attention", source="attention.py", checks=[
        _check("g", message="secret numbers", details={"likely_mistake": NO_SCALE},
               hidden=True)]))
    text = render_terminal(result, show_hidden_details=False, width=100)
    assert "secret" not in text and "sqrt" not in text
    view = build_view(result, "student")
    assert view["start_here"]["mistake"] == "" and "secret" not in str(view["start_here"])
    assert build_view(result, "instructor")["start_here"]["mistake"] == NO_SCALE["name"]


def test_both_reports_open_with_start_here_and_mark_the_followers():
    result = _no_scale_everywhere()
    md = render_markdown(result)
    assert md.index("**Start here:** `attention.py`") < md.index("| Assignment |")
    assert "**Follows from `attention.py`: fix that first**" in md
    block = md[md.index("## block"):]
    assert "Pre-norm" not in block and "Likely mistake" not in block
    html = render_html(result)
    assert html.index('class="start"') < html.index('aria-label="Score per assignment"')
    assert re.search(r'Follows from <a href="#attention">attention\.py</a>: fix that first',
                     html)


def test_the_footer_is_said_last_and_notebook_cell_failures_are_warnings():
    result = _no_scale_everywhere()
    result.environment = {"notebooks": {"gpt.ipynb": {
        "failed_cells": ["gpt.ipynb, code cell 4 (`plot(losses)`) raised NameError: name "
                         "'plot' is not defined"]}}}
    result.environment["notebooks"]["notes"] = [
        "attention.ipynb is not graded: attention.py is there, and a module wins over a notebook"]
    text = render_terminal(result, width=100, footer="Full report: out/report.html")
    assert "note: attention.ipynb is not graded: attention.py is there" in _flat(text)
    assert text.splitlines()[-1] == "Full report: out/report.html"
    assert "warning: gpt.ipynb, code cell 4 (`plot(losses)`) raised NameError" in _flat(text)
    assert "Warning: gpt.ipynb, code cell 4" in render_markdown(result)
