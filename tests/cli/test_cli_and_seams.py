"""The command line, instructor weights, hidden checks, determinism, and the expected-value seam
(live reference vs stored fixtures give the same verdicts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import CORRECT, EXAMPLES, grade_folder

from grader.checks import ASSIGNMENTS
from grader.checks.expected import LiveReference, StoredFixtures
from grader.cli import main
from grader.grading import load_weights
from grader.model.results import Status, Visibility

CORE = ["attention", "causal_mask", "block"]


def _verdicts(result):
    return {(a, c.id): (c.status, c.score, c.max_score) for a, c in result.all_checks()}


def test_run_prints_summary_writes_json_and_exits_zero_on_failures(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["run", str(EXAMPLES / "buggy-block-post-norm"), "-a", "block", "--json",
                 str(out), "--threads", "1", "--color", "never"])
    assert code == 0
    text = capsys.readouterr().out
    assert "FAIL     0/3  Block: output equals the reference" in text
    assert "does not match the reference" in " ".join(text.split())  # wrapped to the width
    data = json.loads(out.read_text())
    block = ASSIGNMENTS["block"]
    spec = yaml.safe_load((EXAMPLES / "buggy-block-post-norm" / "expected.yaml").read_text())
    fails = {f.split(".", 1)[1] for f in spec["fails"] if f.startswith("block.")}
    # A check whose verdict on this bug depends on the run's seed counts as it came out.
    fails |= {c["id"] for a in data["assignments"] for c in a["checks"]
              if f"block.{c['id']}" in spec.get("may_fail", []) and c["status"] != "passed"}
    lost = sum(c.points for c in block.checks if c.id in fails)
    assert fails and data["max_score"] == block.max_score
    assert data["score"] == block.max_score - lost


def test_run_on_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope")]) == 2
    assert "submission folder not found" in capsys.readouterr().err


def test_unknown_assignment_and_bad_weights_are_usage_errors(tmp_path, capsys):
    assert main(["run", str(CORRECT), "-a", "attenton"]) == 2
    assert "unknown assignment 'attenton'" in capsys.readouterr().err
    weights = tmp_path / "w.yaml"
    weights.write_text("attention: {sdpa_valuez: 3}\n")
    assert main(["run", str(CORRECT), "--weights", str(weights)]) == 2
    assert "unknown check 'sdpa_valuez'" in capsys.readouterr().err


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "grader", "checks"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert "sdpa_values" in done.stdout and "mha_gradients" not in done.stdout


def test_weights_hidden_checks_and_determinism(tmp_path):
    weights = tmp_path / "w.yaml"
    weights.write_text("attention:\n  sdpa_values: 10\n  mha_shapes: 0.5\n")
    w = load_weights(weights)
    first = grade_folder(CORRECT, ["attention"], weights=w)
    a = first.assignment("attention")
    assert a.check("sdpa_values").max_score == 10 and a.check("mha_shapes").max_score == 0.5
    assert a.score == a.max_score == 16 - 3 + 10 - 2 + 0.5

    student = grade_folder(CORRECT, ["attention"], include_hidden=False)
    hidden = [c for _, c in student.all_checks() if c.visibility is Visibility.HIDDEN]
    assert hidden and all(c.status is Status.SKIPPED for c in hidden)
    assert student.max_score == 16 - sum(c.max_score for c in hidden)

    again = grade_folder(CORRECT, ["attention"], weights=w)
    assert _verdicts(again) == _verdicts(first)


@pytest.mark.parametrize("folder", ["correct", "buggy-attention-no-scale"])
def test_fixtures_give_the_same_verdicts_as_the_live_reference(folder, tmp_path):
    live = LiveReference(record=True)
    live_result = grade_folder(EXAMPLES / folder, CORE, source=live)
    live.save(tmp_path)
    stored = StoredFixtures(tmp_path)
    fixture_result = grade_folder(EXAMPLES / folder, CORE, source=stored)
    assert _verdicts(fixture_result) == _verdicts(live_result)
    assert fixture_result.environment["expected"] == "fixtures"


def test_fixtures_never_import_the_reference(tmp_path, monkeypatch):
    live = LiveReference(record=True)
    grade_folder(CORRECT, ["causal_mask"], source=live)
    live.save(tmp_path)
    # A student bundle has no reference package: make importing it impossible.
    monkeypatch.setitem(sys.modules, "reference", None)
    result = grade_folder(CORRECT, ["causal_mask"], source=StoredFixtures(tmp_path))
    assert result.score == result.max_score
