"""The HTML and Markdown reports: content, audiences, escaping, pictures.

A buggy submission's result is built directly, with details made the way the checks make them
(real tensors through ``assert_close`` and ``small_heatmap``), so that every kind of failure and
picture is covered without a worker; the correct example is graded for real once.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import graded_example

from grader.checks.base import CheckFailed
from grader.checks.common import F64_ATOL, F64_RTOL, causal_table, small_heatmap
from grader.checks.compare import assert_close
from grader.model import figures
from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult, Visibility
from grader.out.reports import build_view, render_html, render_markdown, write_reports

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "<script>alert('pwned')</script>"
SECRET = "SECRET-hidden-input-7f3a"

# The correct example is graded once per test process for every module of this group.
pytestmark = pytest.mark.xdist_group("examples")


# ---------------------------------------------------------------------------- a buggy result


def _check(id, name, status, score, max_score, message="", hint="", details=None,
           hidden=False) -> CheckResult:
    return CheckResult(id=id, name=name, status=status, score=score, max_score=max_score,
                       message=message, hint=hint, details=details or {},
                       visibility=Visibility.HIDDEN if hidden else Visibility.PUBLIC,
                       seconds=0.05)


def _failure(fn) -> CheckFailed:
    try:
        fn()
    except CheckFailed as failure:
        return failure
    raise AssertionError("expected a CheckFailed")


def _attention(mask=None, scale=True, fill=float("-inf")):
    g = torch.Generator().manual_seed(11)
    q = torch.randn(2, 3, 5, 16, generator=g, dtype=torch.float64)
    k = torch.randn(2, 3, 7, 16, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    scores = q @ k.transpose(-2, -1) / (math.sqrt(16) if scale else 1.0)
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    w = torch.softmax(scores, dim=-1)
    return {"q": q, "k": k, "v": v}, w, w @ v


def buggy_result() -> SubmissionResult:
    """A submission with one of each kind of failure, as the checks would record them."""
    inp, w_ok, _ = _attention()
    _, w_bad, _ = _attention(scale=False)
    sdpa = _failure(lambda: assert_close(w_bad, w_ok, "the attention weights (no mask)",
                                         atol=F64_ATOL, rtol=F64_RTOL))
    sdpa.details.update(
        weights={"actual": small_heatmap(w_bad[0, 0]), "expected": small_heatmap(w_ok[0, 0])},
        inputs={k: list(v.shape) for k, v in inp.items()},
        likely_mistake={"name": "no 1/sqrt(d_k) scaling",
                        "hint": "Divide the scores q @ k^T by sqrt(d_k), the size of a head.",
                        "course": "series4 summary, Module 4.3"})
    mask = torch.rand(5, 7, generator=torch.Generator().manual_seed(3)) < 0.6
    mask[:, 0] = True
    _, w_leak, _ = _attention(mask=mask, fill=0.0)  # filled with 0 instead of -inf
    mask_table = causal_table(4, 4)
    wrong_table = torch.tril(torch.ones(4, 4, dtype=torch.bool), diagonal=-1)
    steps = 60
    ref_loss = [4.6 * math.exp(-s / 18) + 1.9 for s in range(steps)]
    mine_loss = [4.6 * math.exp(-s / 45) + 2.3 for s in range(steps)]
    mine_loss[-3:] = [float("nan")] * 3
    exp_lr = [6e-4 * (s + 1) / 10 if s < 10 else
              6e-5 + 0.5 * (1 + math.cos(math.pi * (s - 10) / 50)) * (6e-4 - 6e-5)
              for s in range(steps)]
    my_lr = [6e-4 * s / 10 if s < 10 else v for s, v in enumerate(exp_lr)]
    attention = AssignmentResult("attention", source="attention.py", checks=[
        _check("sdpa_shapes", "scaled_dot_product_attention: output shapes", Status.PASSED, 2, 2,
               details={"cases": 5}),
        _check("sdpa_values", "scaled_dot_product_attention: values equal the reference",
               Status.FAILED, 0, 3, sdpa.message, sdpa.hint, sdpa.details),
        _check("sdpa_masking", "scaled_dot_product_attention: rows sum to 1, blocked weights "
               "are 0", Status.FAILED, 0, 2,
               "blocked positions (mask False) get weight up to 0.31; they must be exactly 0",
               "Fill the blocked scores with -inf BEFORE the softmax: exp(-inf) is exactly 0.",
               {"heatmap": small_heatmap(w_leak[0, 0]), "mask": small_heatmap(mask.double())}),
        _check("mha_values", "MultiHeadAttention: output equals the reference", Status.ERROR, 0,
               3, f"your code raised RuntimeError: shapes do not match {PLANTED}",
               details={"error": {"type": "RuntimeError", "message": "shapes do not match "
                                  + PLANTED, "where": "attention.py:88, in forward",
                                  "traceback": '  File "attention.py", line 88, in forward\n'
                                               "    y = att @ v\n", "contract": False}}),
        _check("mha_gradients", "MultiHeadAttention: input and parameter gradients",
               Status.FAILED, 0, 2, f"the gradient of x differs at {SECRET}",
               f"hint {SECRET}", {"inputs": {SECRET: [2, 7, 48]}, "max_abs_diff": 0.5,
                                  "weights": {"actual": [[1.0, 0.0]], "expected": [[0.5, 0.5]]}},
               hidden=True),
    ])
    causal = AssignmentResult("causal_mask", source="causal_mask.py", checks=[
        _check("mask_table", "causal_mask: the mask itself", Status.FAILED, 0, 3,
               "causal_mask(4, 4) is wrong at 4 position(s), first at (query 0, key 0)",
               "Query i may attend keys 0..i, itself included.",
               {"actual": small_heatmap(wrong_table.double()),
                "expected": small_heatmap(mask_table.double())}),
        _check("csa_causality",
               "CausalSelfAttention: each position sees its past, never the future",
               Status.FAILED, 0, 3, "changing the inputs after position 0 changed the output at "
               "position(s) [0] (by up to 0.42): they can see the future",
               details={"changed": [0.42]}),
        _check("csa_no_nan", "CausalSelfAttention: no NaN in any row", Status.TIMEOUT, 0, 1,
               "the call did not finish within 60 s"),
        _check("csa_gradients", "CausalSelfAttention: gradients", Status.PASSED, 2, 2,
               hidden=True, details={"note": SECRET}),
    ])
    block = AssignmentResult("block", source="block.py", checks=[
        _check("gpt_init", "GPT: initialisation (std 0.02, scaled residual projections)",
               Status.FAILED, 0, 2, "the residual projections `c_proj.weight` has std 0.02 "
               "(mean 1e-05); expected N(0, 0.007071)", "Scale c_proj by 1/sqrt(2*n_layer).",
               {"measured": {"token embedding": {"std": 0.0201, "expected_std": 0.02,
                                                 "mean": 1e-5},
                             "c_proj.weight": {"std": 0.02, "expected_std": 0.007071,
                                               "mean": 1e-5}}}),
        _check("gpt_init_loss", "GPT: loss at initialisation is close to ln(vocab_size)",
               Status.FAILED, 0, 2, "the loss at initialisation is 7.9; expected about 6.238",
               details={"loss": 7.9, "ln_vocab": math.log(512)}),
        _check("gpt_param_count", "GPT: number of parameters", Status.FAILED, 0, 1,
               "the model has 923,520 parameters, expected 858,112",
               details={"actual": 923520, "expected": 858112}),
    ])
    training = AssignmentResult("training", source="training.py", checks=[
        _check("convergence", "train: converges about as well as the reference loop",
               Status.FAILED, 0, 4, "your final loss 2.97 is 0.97 above the reference's",
               details={"curves": {"student": mine_loss, "reference": ref_loss}}),
        _check("lr_schedule", "get_lr: warmup and cosine decay", Status.FAILED, 1, 2,
               "get_lr(0) is 0; expected 6e-05 (warmup starts at max_lr / warmup_steps)",
               details={"lrs": {"student": my_lr, "expected": exp_lr}, "max_abs_diff": 6e-5,
                        "where": [0], "actual_at": 0.0, "expected_at": 6e-5}),
        _check("grad_norms", "train: gradient clipping", Status.PASSED, 1, 1, details={
            "norms": figures.curves({"student": [1.2, 1.0, 0.9], PLANTED: [1.0, 1.0, 1.0]},
                                    title="Gradient norm " + PLANTED, y_label="norm",
                                    markers=[{"x": 1, "label": "clip"}])}),
    ])
    loading = AssignmentResult(
        "gpt2_loading", source="gpt2_loading.py",
        message="importing gpt2_loading.py raised SyntaxError: invalid syntax (line 12)",
        checks=[_check("load_logits", "load: logits equal the reference", Status.ERROR, 0, 3,
                       "importing gpt2_loading.py raised SyntaxError: invalid syntax (line 12)")])
    return SubmissionResult(
        submission="submissions/ada", assignments=[attention, causal, block, training, loading],
        submission_id="abc123", grader_version="0.1.0", seconds=6.2,
        environment={"isolation": "none (bubblewrap not installed)", "threads": 1,
                     "expected": "live", "worker": {"python": "3.11", "torch": "2.13.0"}},
        log=f"epoch 1 {PLANTED}\n")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def correct() -> SubmissionResult:
    """The correct example, graded for real, shared with the other example tests."""
    return graded_example("correct")


@pytest.fixture(scope="module")
def buggy() -> SubmissionResult:
    return buggy_result()


def _text(page: str) -> str:
    """The visible text of an HTML page, roughly: tags dropped, entities decoded."""
    page = re.sub(r"<(style|title|desc)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# ---------------------------------------------------------------------------- tests


def test_correct_submission_reports(correct: SubmissionResult, tmp_path: Path) -> None:
    assert correct.score == correct.max_score > 0
    paths = write_reports(correct, tmp_path / "out")
    assert [p.name for p in paths] == ["report.html", "report.md"]
    page, md = (p.read_text(encoding="utf-8") for p in paths)
    text = _text(page)
    total = f"{correct.score:g} / {correct.max_score:g} points"
    assert total in text and "100 %" in text
    assert total in md
    for a in correct.assignments:
        assert f"{a.score:g} / {a.max_score:g}" in text
        for c in a.checks:
            assert c.name in text, c.name
            assert c.name in md, c.name
    assert "badge b-failed" not in page and "badge b-error" not in page and "❌ **" not in md
    ran = [c for _, c in correct.all_checks() if c.status.value != "skipped"]
    assert page.count('"badge b-passed"') == len(ran)
    # Passing checks keep their pictures (collapsed): the attention weights of sdpa_values.
    assert "<details>" in page and page.count("<svg") >= 2
    assert "Likely mistake" not in page


def test_buggy_submission_html(buggy: SubmissionResult) -> None:
    page = render_html(buggy, audience="student")
    text = _text(page)
    assert f"{buggy.score:g} / {buggy.max_score:g} points" in text
    for a in buggy.assignments:
        assert f"{a.score:g} / {a.max_score:g}" in text
    # A failure: message, inputs' shapes, largest differences and where, likely mistake, hint.
    c = buggy.assignment("attention").check("sdpa_values")
    assert c.message in text
    assert "Inputs q (2, 3, 5, 16), k (2, 3, 7, 16), v (2, 3, 7, 8)" in text
    assert f"Largest absolute difference {c.details['max_abs_diff']:.4g} at index " \
           f"{c.details['where']}".replace("'", "") in text
    assert "Largest relative difference" in text and "Values outside the tolerance" in text
    assert "Likely mistake: no 1/sqrt(d_k) scaling" in text
    assert "Divide the scores q @ k^T by sqrt(d_k)" in text
    assert "Read again: series4 summary, Module 4.3" in text
    assert "Hint:" in text
    # Colour and text for every status.
    for label in ("✓ PASS", "✗ FAIL", "! ERROR", "◔ TIMEOUT"):
        assert label in text
    # Facts of other checks.
    assert "Loss 7.9 (ln V = 6.238, 1.66 away)" in text
    assert "Value yours 923,520, expected 858,112" in text
    assert "Token embedding" not in text and "token embedding" in text  # the measured table
    assert "Raised RuntimeError: shapes do not match" in text
    assert "attention.py:88, in forward" in text and "y = att @ v" in text
    assert "Problem with this assignment: importing gpt2_loading.py raised SyntaxError" in text
    # Said once, above the checks it stopped, not once more per check.
    assert text.count("importing gpt2_loading.py raised SyntaxError") == 1
    assert "without a sandbox" in text


def test_pictures(buggy: SubmissionResult) -> None:
    page = render_html(buggy, audience="student")
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    titles = [html.unescape(re.search(r"<title[^>]*>(.*?)</title>", s, re.S).group(1))
              for s in svgs]
    # Attention weights yours vs expected, with the difference heatmap.
    weights = svgs[titles.index(
        "Attention weights without a mask (first batch element and head)")]
    assert "yours − expected" in weights and weights.count("<rect") > 3 * 35
    # The mask leak is outlined and said.
    leak = svgs[titles.index("Your attention weights (first batch element and head)")]
    assert 'stroke="#e00000"' in leak and "LEAK" in leak
    # The mask vs expected.
    assert "Yours and expected" in titles
    # Loss curve against the reference (dashed), and the LR schedule against the expected one.
    loss = svgs[titles.index("Loss curve: yours and the reference's")]
    assert loss.count("<path") == 2 and 'stroke-dasharray="6 4"' in loss
    assert "Learning-rate schedule: yours and the expected one" in titles
    # Every SVG has a title and a description for screen readers, and sizes.
    for s in svgs:
        assert re.search(r'aria-labelledby="(\S+)-t \1-d"', s)
        assert re.search(r"<desc[^>]*>[^<]+</desc>", s)
        assert re.search(r'width="[1-9]\d*" height="[1-9]\d*"', s)
    # Ids are unique within the page.
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_untrusted_text_is_escaped(buggy: SubmissionResult) -> None:
    page = render_html(buggy, audience="instructor")
    assert "<script" not in page.lower()
    assert html.escape(PLANTED, quote=False) in page or "&lt;script&gt;" in page
    # A Content-Security-Policy forbids scripts even if escaping ever failed.
    assert "default-src 'none'" in html.unescape(page)
    md = render_markdown(buggy, audience="instructor")
    # Outside code blocks (the printed log and tracebacks are shown verbatim inside fences,
    # where Markdown interprets nothing), no tag can open.
    prose = re.sub(r"^( *)(`{3,})\n.*?^\1\2$", "", md, flags=re.S | re.M)
    assert "epoch 1" not in prose and "<script" not in prose.lower()
    assert "&lt;script>" in prose and "&lt;/script>" in prose
    # Markdown: untrusted text cannot make a link or an image.
    bad = buggy_result()
    bad.assignments[0].checks[1].message = "see ![x](http://evil.example/t.png) [y](javascript:1)"
    md = render_markdown(bad)
    assert "](" not in md.split("## attention")[1].split("## causal_mask")[0]


def test_self_contained(buggy: SubmissionResult) -> None:
    page = render_html(buggy, audience="instructor")
    assert not re.search(r"<(script|link|iframe|img|object|embed)\b", page, re.I)
    assert not re.search(r"\bsrc\s*=", page, re.I)
    assert "@import" not in page and "url(http" not in page
    # The only http(s) text is the SVG namespace, which is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<)]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_hidden_checks_student_vs_instructor(buggy: SubmissionResult) -> None:
    for render in (render_html, render_markdown):
        student = render(buggy, audience="student")
        assert SECRET not in student
        assert "MultiHeadAttention: input and parameter gradients" in student
        assert "0 / 2" in student
        instructor = render(buggy, audience="instructor")
        assert SECRET in instructor
    view = build_view(buggy, "student")
    hidden = [c for a in view["assignments"] for c in a["checks"] if c["hidden"]]
    assert hidden and all(c["redacted"] and not c["message"] and not c["figures"]
                          and not c["inputs"] and not c["hint"] for c in hidden)
    # The student's printed output may echo hidden inputs: shown only when no hidden check ran.
    assert "What your code printed" not in render_html(buggy, audience="student")
    assert "What your code printed" in render_html(buggy, audience="instructor")
    assert "How it was graded" in render_html(buggy, audience="instructor")
    with pytest.raises(ValueError):
        build_view(buggy, "teacher")


def test_markdown_in_words(buggy: SubmissionResult) -> None:
    md = render_markdown(buggy, audience="student")
    assert md.startswith("# Grading report: submissions/ada\n")
    assert f"**Score: {buggy.score:g} / {buggy.max_score:g} points" in md
    assert "| attention | 2 / 12 | 1 / 5 |" in md
    assert "❌ **FAIL** 0 / 3 · scaled_dot_product_attention: values equal the reference" in md
    assert "**Likely mistake: no 1/sqrt(d_k) scaling.**" in md
    assert "Inputs: `q` (2, 3, 5, 16), `k` (2, 3, 7, 16), `v` (2, 3, 7, 8)" in md
    assert "Largest absolute difference:" in md and "Values outside the tolerance:" in md
    # Pictures in words: the difference, the leak, the masks as grids, the curves compared.
    assert "yours − expected: 5×7 (query × key)" in md and "largest difference" in md
    assert "blocked position(s) have a non-zero value (a leak)" in md
    assert "# # # #" in md and "# . . ." in md  # the expected causal mask
    assert "Largest gap between student and reference" in md
    assert "no finite value after step 56" in md
    assert "Largest gap between student and expected: 6e-05 at step" in md
    assert "token embedding: std 0.0201, expected std 0.02, mean 1e-05" in md
    assert "> **Problem with this assignment:** importing gpt2_loading.py" in md
    # Passing checks are one line each.
    assert "✅ **PASS** 2 / 2 · scaled_dot_product_attention: output shapes\n" in md


def test_json_round_trip_renders_the_same(buggy: SubmissionResult) -> None:
    again = SubmissionResult.from_json(buggy.to_json())
    assert render_markdown(again, audience="instructor") == \
        render_markdown(buggy, audience="instructor")
    assert render_html(again) == render_html(buggy)


def test_figure_helpers_are_plain_json() -> None:
    import json

    t = torch.tensor([[0.5, float("nan")], [1.0, 0.0]])
    fig = figures.comparison(t, torch.zeros(2, 2), title="t")
    assert fig["kind"] == "heatmaps" and len(fig["panels"]) == 3
    assert fig["panels"][0]["matrix"] == [[0.5, "nan"], [1.0, 0.0]]
    assert fig["panels"][2]["diverging"] and fig["panels"][2]["matrix"][0] == [0.5, None]
    c = figures.curves({"student": torch.tensor([1.0, float("inf"), 0.5])}, title="x")
    assert c["series"]["student"] == [1.0, None, 0.5]
    h = figures.heatmap(torch.ones(2, 3, 40, 40), mask=torch.ones(40, 40, dtype=torch.bool))
    assert len(h["matrix"]) == 32 and h["full_shape"] == [40, 40] and h["mask"][0][0] is True
    for f in (fig, c, h):
        assert figures.is_figure(f)
        json.dumps(f, allow_nan=False)
    # A new check's figure is drawn without any template change, under any key.
    res = SubmissionResult("s", [AssignmentResult("new", checks=[_check(
        "x", "new check", Status.FAILED, 0, 1, "m", details={"anything": c, "more": [h, fig]})])])
    page = render_html(res)
    assert page.count("<svg") == 3


def test_no_assignments_and_empty_details() -> None:
    res = SubmissionResult("empty")
    assert "0 / 0 points" in _text(render_html(res))
    assert "0 / 0 points" in render_markdown(res)
