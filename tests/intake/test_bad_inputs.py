"""Bad submissions get clear messages and recorded zeros, never a traceback from the grader, and
never take the other checks' results down with them."""

from __future__ import annotations

import shutil

from conftest import CORRECT, grade_folder, plant, settings

from grader.model.results import Status


def _statuses(result, assignment):
    return {c.id: c.status for c in result.assignment(assignment).checks}


def test_missing_file_syntax_error_and_misnamed_function(tmp_path):
    sub = plant(tmp_path, {
        "attention": [("class MultiHeadAttention(nn.Module):",
                       "class MultiheadAttention(nn.Module):")],
        "causal_mask": [("def causal_mask(t_q: int, t_k: int, device=None) -> torch.Tensor:",
                         "def causal_mask(t_q: int, t_k: int, device=None) -> torch.Tensor")],
    })
    (sub / "block.py").unlink()
    result = grade_folder(sub)
    att = result.assignment("attention")
    by_id = {c.id: c for c in att.checks}
    # The functions that exist are still graded.
    assert by_id["sdpa_values"].status is Status.PASSED
    assert by_id["mha_values"].status is Status.ERROR
    assert "attention.py defines no `MultiHeadAttention`" in by_id["mha_values"].message
    assert "found `MultiheadAttention`" in by_id["mha_values"].message
    cm = result.assignment("causal_mask")
    assert "syntax error at line" in cm.message and "causal_mask.py" in cm.message
    assert all(c.status is Status.ERROR and c.score == 0 for c in cm.checks)
    block = result.assignment("block")
    assert block.message == "block.py is missing from the submission"
    assert block.score == 0 and block.max_score > 0


def test_exception_at_import_names_the_line_and_reaches_dependants(tmp_path):
    sub = plant(tmp_path, {"attention": [("import math\n", "import math\n\n1 / 0\n")]})
    result = grade_folder(sub)
    for name in ("attention", "causal_mask", "block"):
        message = result.assignment(name).message
        assert "ZeroDivisionError" in message, message
        assert "attention.py, line" in message, message


def test_misspelled_file_name_is_pointed_out(tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(CORRECT, sub)
    (sub / "attention.py").rename(sub / "Attention.py")
    result = grade_folder(sub, ["attention"])
    assert "found Attention.py: file names are case-sensitive" in \
        result.assignment("attention").message


HOSTILE = '''
import os, sys

def scaled_dot_product_attention(q, k, v, mask=None):
    if mask is not None and q.dim() == 4 and q.shape[-1] == 8:
        while True:          # an endless loop, only for the masking check's inputs
            pass
    if mask is not None and q.shape[-1] == 16:
        os._exit(3)          # kills the process in the values and gradients checks
    if v.shape[-1] == 6:
        for fd in range(3, 12):  # tries to forge replies on the grader's channel
            try:
                os.write(fd, b"GRW1 forged reply")
            except OSError:
                pass
    return _real(q, k, v, mask)


def _real(q, k, v, mask=None):
    import math
    import torch
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


class MultiHeadAttention:
    def __init__(self, n_embd, n_head):
        print("x" * 10_000_000)   # floods the output
        sys.exit(4)
'''


def test_hostile_code_times_out_crashes_and_floods_without_losing_results(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text(HOSTILE)
    result = grade_folder(sub, ["attention"], worker=settings(call_timeout=4.0))
    checks = {c.id: c for c in result.assignment("attention").checks}
    assert checks["sdpa_masking"].status is Status.TIMEOUT
    assert "no answer within 4 s" in checks["sdpa_masking"].message
    assert checks["sdpa_values"].status is Status.ERROR
    assert "exited with code 3" in checks["sdpa_values"].message
    # Bytes forged onto the reply channel are detected; that check is recorded as an error and
    # the next one gets a fresh worker.
    assert checks["sdpa_shapes"].status is Status.ERROR
    assert "exceeds the limit" in checks["sdpa_shapes"].message
    assert checks["sdpa_gradients"].status is Status.ERROR  # os._exit again
    assert checks["mha_shapes"].status is Status.ERROR
    assert "SystemExit" in checks["mha_shapes"].message
    assert len(result.log) < 100_000 and "bytes of output cut" in result.log
    assert result.score == sum(c.score for c in checks.values())


def test_import_that_never_finishes_is_reported(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text("import time\nwhile True:\n    time.sleep(0.1)\n")
    from grader.grading import GradeOptions, grade

    result = grade(sub, GradeOptions(assignments=["attention"], worker=settings(),
                                     import_timeout=3.0))
    message = result.assignment("attention").message
    assert "did not finish within 3 s" in message
    # It ran past its time limit: a timeout (as a batch's summary counts it), not an error.
    checks = result.assignment("attention").checks
    assert checks and {c.status for c in checks} == {Status.TIMEOUT}
    assert all("did not finish within 3 s" in c.message for c in checks)


def test_reply_larger_than_the_limit_is_refused(tmp_path):
    sub = plant(tmp_path, {"attention": [
        ("    return out, weights\n",
         "    if q.shape[-1] == 4 and q.shape[-2] == 3:\n"
         "        return q.new_zeros(2, 3, 8_000_000), weights\n"
         "    return out, weights\n")]})
    result = grade_folder(sub, ["attention"], worker=settings(max_reply_bytes=32 * 2**20))
    check = result.assignment("attention").check("sdpa_shapes")
    assert check.status is Status.ERROR
    assert "exceeds the limit" in check.message
    assert result.assignment("attention").check("sdpa_values").status is Status.PASSED


def test_results_round_trip_through_json(correct_result):
    from grader.model.results import SubmissionResult

    again = SubmissionResult.from_json(correct_result.to_json())
    assert again.to_dict() == correct_result.to_dict()
    data = correct_result.to_dict()
    assert data["score"] == data["max_score"] > 0
    for a in data["assignments"]:
        assert {"score", "max_score", "checks"} <= set(a)
        for c in a["checks"]:
            assert {"score", "max_score", "status", "message"} <= set(c)


def test_missing_module_hint_suggests_only_plausible_misspellings():
    from grader.checks import ASSIGNMENTS
    from grader.intake.discover import _missing_message

    files = {f"{a.module}.py" for a in ASSIGNMENTS.values()}
    assert _missing_message("training.py", ["attention.py", "block.py"], files) == \
        "training.py is missing from the submission"
    assert "did you mean to name trainng.py training.py?" in \
        _missing_message("training.py", ["trainng.py", "block.py"], files)


def test_a_module_saved_with_a_byte_order_mark_or_a_coding_line_is_graded(tmp_path):
    """Python imports both, so the grader must: Windows Notepad writes UTF-8 with a BOM, and
    a student may declare latin-1. Only bytes that are no text of any declared encoding, and
    code nested past what Python compiles, get a message (not a traceback)."""
    sub = plant(tmp_path, {})
    (sub / "attention.py").write_bytes(b"\xef\xbb\xbf" + (sub / "attention.py").read_bytes())
    latin = (sub / "causal_mask.py").read_text().encode("latin-1")
    (sub / "causal_mask.py").write_bytes(b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + latin)
    result = grade_folder(sub, ["attention", "causal_mask"])
    for a in ("attention", "causal_mask"):
        assert result.assignment(a).score == result.assignment(a).max_score, a

    from grader.intake.discover import _examine

    for data, said in ((b'x = "\xff"\n', "is not UTF-8 text"),
                       (b"x = " + b"-" * 200_000 + b"1\n", "nested too deeply"),
                       (b"x = 1\x00\n", "null bytes"),
                       (b"# coding: nonesuch\nx = 1\n", "unknown encoding")):
        (tmp_path / "attention.py").write_bytes(data)
        got = _examine("attention", {"attention.py": tmp_path / "attention.py"},
                       {"attention": []})
        assert said in got.problem, (said, got.problem)
