"""The bundled examples, graded for real: every details key their checks emit has words, and a
student grading a buggy example reads first which file to fix and why."""

from __future__ import annotations

import shutil

import pytest
from conftest import EXAMPLES, ROOT, grade_folder, graded_example

from grader.cli import main
from grader.model import details as D
from grader.model.rootcause import root_causes, start_here
from grader.out.reports import build_view, render_markdown, words

# The correct example (every check's passing details) and every buggy one (their failures);
# the other correct styles emit the same keys as the correct example.
FOLDERS = ["correct"] + sorted(p.name for p in EXAMPLES.iterdir()
                               if p.is_dir() and p.name.startswith("buggy-"))


# Graded once per test process and shared with tests/checks/test_examples.py.
pytestmark = pytest.mark.xdist_group("examples")


@pytest.fixture(scope="module")
def graded():
    """Every example graded on its own assignments (see conftest.graded_example)."""
    return {name: graded_example(name) for name in FOLDERS}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_key_the_examples_emit_is_declared_and_has_words(graded):
    seen: dict[str, str] = {}
    for name, result in graded.items():
        for a, c in result.all_checks():
            for key in c.details:
                seen.setdefault(key, f"{name}: {a}.{c.id}")
    assert {"max_abs_diff", "likely_mistake", "tolerance"} <= set(seen)  # failures were seen
    undeclared = {k: w for k, w in seen.items() if k not in D.VOCABULARY}
    assert not undeclared, f"emitted but not declared in grader/model/details.py: {undeclared}"
    wordless = {k: w for k, w in seen.items() if k not in words.LABELS}
    assert not wordless, f"emitted but without words in words.LABELS: {wordless}"


def test_no_report_of_an_example_shows_a_raw_key(graded):
    for name, result in graded.items():
        for audience in ("student", "instructor"):
            view = build_view(result, audience)
            for a in view["assignments"]:
                for c in a["checks"]:
                    for o in c["other"]:
                        assert o["key"] in words.LABELS, (name, c["id"], o["key"])
                        assert o["label"] == words.LABELS[o["key"]]
                        assert not o["text"].lstrip().startswith("{"), (name, o)


def test_buggy_attention_no_scale_starts_at_attention_and_marks_what_follows(graded):
    result = graded["buggy-attention-no-scale"]
    causes = root_causes(result)
    followers = {f"{a}.{c}" for a, c in causes}
    assert followers == {"causal_mask.csa_values", "causal_mask.csa_gradients",
                         "block.block_values", "block.block_gradients", "block.gpt_logits",
                         "block.gpt_gradients"}
    assert {c.file for c in causes.values()} == {"attention.py"}
    start = start_here(result)
    assert (start.file, start.check_id) == ("attention.py", "sdpa_values")
    assert "sqrt(d_k)" in start.mistake
    md = render_markdown(result)
    assert md.index("**Start here:** `attention.py`") < md.index("## attention")


def test_a_student_reads_in_the_terminal_which_file_to_fix_first_and_why(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code = main(["run", str(EXAMPLES / "buggy-attention-no-scale"), "-a", "attention", "-a",
                 "causal_mask", "-a", "block", "--threads", "1", "--color", "never"])
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines)
    head = _flat("\n".join(lines[:8]))
    assert head.startswith("Submission") and "Start here: attention.py" in head
    assert "likely mistake: the scores are not divided by sqrt(d_k)" in head
    attention = _flat(out[out.index("\nattention "):out.index("\ncausal_mask ")])
    assert "likely mistake: the scores are not divided by sqrt(d_k)" in attention
    block = out[out.index("\nblock "):]
    assert "follows from attention.py: fix that first" in _flat(block)
    assert "Pre-norm" not in block  # block.py's own hint would be the wrong file
    assert "the logits do not match" in _flat(out)  # and the grammar is right
    assert "--report" in lines[-1]  # where the full report is


def test_untouched_block_stub_is_said_once_not_nine_times_in_kv_cache(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    for module in ("attention", "causal_mask", "kv_cache"):
        shutil.copy(EXAMPLES / "correct" / f"{module}.py", sub)
    shutil.copy(ROOT / "assignments" / "block.py", sub)
    result = grade_folder(sub, ["block", "kv_cache"])
    causes = root_causes(result)
    kv = [c for c in result.assignment("kv_cache").checks if c.status.value == "error"]
    assert kv and all(("kv_cache", c.id) in causes for c in kv)
    assert {causes[("kv_cache", c.id)].file for c in kv} == {"block.py"}
    assert start_here(result).file == "block.py"
