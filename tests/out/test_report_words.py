"""The details contract: every key a check can put into its details is declared
(grader.model.details.VOCABULARY) and has words (grader/out/reports/words.py), read from the
checks' source (this file) and from grading the bundled examples (test_report_examples.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from grader.model import details as D
from grader.out.reports import build_view, words
from grader.out.reports.render import interpret

ROOT = Path(__file__).resolve().parents[2]
# The trusted code that writes details: the checks, the diagnosis engine, the grading glue.
SOURCES = [ROOT / "grader" / "checks", ROOT / "grader" / "diagnosis", ROOT / "grader" / "grading"]
# Calls whose keywords become details keys.
EMITTERS = {"CheckFailed", "ok"}
# Functions whose returned dict literal is merged into details.
DETAIL_BUILDERS = {"as_details", "details", "_verdict", "_error", "likely"}


def _literal_keys(node: ast.AST) -> set[str]:
    return {k.value for k in getattr(node, "keys", []) if isinstance(k, ast.Constant)
            and isinstance(k.value, str)} if isinstance(node, ast.Dict) else set()


def emitted_keys(path: Path) -> dict[str, str]:
    """Detail keys written in one source file: keywords of ``CheckFailed(...)``/``ok(...)``
    and of ``<x>.details.update(...)``, keys of dict literals assigned to ``details`` or
    returned by a details builder. Key -> "file:line"."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, str] = {}

    def add(keys, node):
        for key in keys:
            found.setdefault(key, f"{path.relative_to(ROOT)}:{node.lineno}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            is_update = (name == "update" and isinstance(f, ast.Attribute)
                         and isinstance(f.value, ast.Attribute) and f.value.attr == "details")
            if name in EMITTERS or is_update:
                add((kw.arg for kw in node.keywords if kw.arg not in (None, "hint")), node)
                if is_update:
                    for arg in node.args:
                        add(_literal_keys(arg), node)
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == "details" for t in node.targets):
                add(_literal_keys(node.value), node)
        elif isinstance(node, ast.FunctionDef) and node.name in DETAIL_BUILDERS:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    add(_literal_keys(sub.value), sub)
    found.pop("message", None)  # ok(message, ...) and CheckFailed(message) take it first
    return found


def all_emitted() -> dict[str, str]:
    out: dict[str, str] = {}
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            if path.name == "catalogue.py":  # Mistake.as_details is likely_mistake's *value*
                continue
            for key, where in emitted_keys(path).items():
                out.setdefault(key, where)
    return out


def test_the_scan_sees_the_keys_the_checks_write():
    found = all_emitted()
    # Keys of every kind, from the framework, the diagnosis and the assignments' checks: a
    # scan that missed the checks would pass trivially.
    for key in ("max_abs_diff", "tolerance", "mismatched", "likely_mistake", "diagnosis_error",
                "error", "traceback", "heatmap", "measured", "tokens_fed_cached"):
        assert key in found, key
    assert len(found) >= 30


def test_every_key_in_the_checks_source_is_declared_and_has_words():
    undeclared = {k: w for k, w in all_emitted().items() if k not in D.VOCABULARY}
    assert not undeclared, (f"details keys not declared in grader/model/details.py: "
                            f"{undeclared}")
    wordless = {k: w for k, w in all_emitted().items() if k not in words.LABELS}
    assert not wordless, f"details keys with no words in words.LABELS: {wordless}"


def test_the_vocabulary_and_the_words_are_the_same_keys():
    assert set(D.VOCABULARY) - set(words.LABELS) == set()
    assert set(words.LABELS) - set(D.VOCABULARY) == set()  # no words for keys nobody emits
    assert all(v.holds for v in D.VOCABULARY.values())


def test_a_misspelt_key_is_caught():
    assert D.unknown_keys({"max_abs_dif": 0.3, "tolerance": {}}) == ["max_abs_dif"]
    with pytest.raises(D.UnknownDetail, match="max_abs_dif"):
        D.checked({"max_abs_dif": 0.3})
    assert D.checked({"max_abs_diff": 0.3}) == {"max_abs_diff": 0.3}


def test_builders_write_declared_keys_only():
    made = {**D.mismatch(max_abs_diff=0.5, where=(1, 2), actual_at=1.0, expected_at=0.5,
                         mismatched=3, shape=(2, 3), atol=1e-6, rtol=1e-6, max_rel_diff=1.0,
                         nonfinite=0),
            "likely_mistake": D.mistake("no_scale", "the scores are not scaled", "hint"),
            "error": D.error("ValueError", "bad", where="block.py, line 3"),
            "measured": D.table({"wte": {"std": 0.05, "expected_std": 0.02}}),
            "curves": D.series(student=[3.0, 2.0], reference=[3.0, 1.5]),
            "limits": D.bounds(loss_ratio=1.15, grad_norm_ratio=(0.5, 2.0))}
    assert D.unknown_keys(made) == []
    view = interpret(made)
    assert {f["label"] for f in view["facts"]} >= {"Largest absolute difference",
                                                   "Values outside the tolerance", "Raised"}
    assert view["tables"] and view["figures"] and view["likely_mistake"]
    with pytest.raises(ValueError, match="not a scalar"):
        D.table({"wte": {"std": [1, 2]}})


def test_values_are_said_in_words_not_json():
    said = interpret({"limits": {"loss_ratio": 1.15, "grad_norm_ratio": [0.5, 2.0]},
                      "parameter_travel_ratio": 0.0213, "stale_steps": list(range(1, 30)),
                      "seconds": 2.5, "heldout_loss": {"student": 2.1, "reference": 1.2}})
    other = {o["key"]: o for o in said["other"]}
    assert other["limits"]["text"] == ("your held-out loss ÷ the reference loop's at most 1.15; "
                                       "your gradient norms ÷ the reference's (median after "
                                       "warmup) between 0.5 and 2")
    assert other["parameter_travel_ratio"]["label"].startswith("How far your loop moved")
    assert other["parameter_travel_ratio"]["text"] == "0.0213×"
    assert other["stale_steps"]["text"].endswith("(29 values)")
    assert other["seconds"]["text"] == "2.5 s"
    assert other["heldout_loss"]["text"] == "yours 2.1, reference 1.2"
    assert not any(o["text"].startswith(("{", "[{")) for o in said["other"])


def test_lists_of_tokens_are_compared_in_words():
    facts = interpret({"actual": [1, 2, 3], "expected": [1, 2, 4]})
    assert {"label": "Values", "text": "yours [1, 2, 3], expected [1, 2, 4]"} in facts["facts"]
    assert facts["other"] == []


def test_the_report_labels_values_with_words(tmp_path):
    from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult

    check = CheckResult(id="probe", name="probe", status=Status.FAILED, score=0, max_score=1,
                        message="slow", details={"parameter_travel_ratio": 0.02,
                                                 "limits": {"loss_ratio": 1.15}})
    result = SubmissionResult("s", [AssignmentResult("training", [check])])
    view = build_view(result, "instructor")
    labels = [o["label"] for o in view["assignments"][0]["checks"][0]["other"]]
    assert "parameter_travel_ratio" not in labels and "limits" not in labels
    from grader.out.reports import render_markdown

    md = render_markdown(result)
    assert "parameter_travel_ratio" not in md and '{"loss_ratio"' not in md
