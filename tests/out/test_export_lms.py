"""Gradescope and PrairieLearn: the converters on known results, validated against a schema
written from Gradescope's specification, and both entry points run on simulated trees (the
Gradescope one through the zip's own ``run_autograder``)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
from test_export_fixtures import submission

from grader.cli import main
from grader.model.results import Status
from grader.out.exports.gradescope import RESULTS_SCHEMA, build_autograder, to_gradescope
from grader.out.exports.prairielearn import SIZE_LIMIT, dumps, to_prairielearn

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def validate(data: dict) -> None:
    jsonschema.Draft202012Validator(RESULTS_SCHEMA).validate(data)


# ------------------------------------------------------------------------- Gradescope


def test_gradescope_results_map_every_check_in_order() -> None:
    data = to_gradescope(submission("bob"))
    validate(data)
    assert data["score"] == 14.0 and data["extra_data"]["max_score"] == 22.0
    assert data["output_format"] == "md" and data["stdout_visibility"] == "hidden"
    numbers = [t["number"] for t in data["tests"]]
    assert numbers == ["1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3"]
    by_name = {t["name"]: t for t in data["tests"]}
    values = by_name["attention: scaled_dot_product_attention: values equal the reference"]
    assert values["status"] == "failed" and values["score"] == 0 and values["max_score"] == 3
    # The diagnosis reaches the student in the course's words, and as a tag.
    assert "Likely mistake:" in values["output"] and "sqrt(d\\_k)" in values["output"]
    assert "day 30, Q2" in values["output"]
    assert "mistake:no_scale" in values["tags"] and "attention" in values["tags"]
    assert sum(t["score"] for t in data["tests"]) == data["score"]


def test_hidden_checks_are_after_published_and_redacted() -> None:
    result = submission("erin")  # the hidden mha_gradients timed out
    data = to_gradescope(result)
    hidden = [t for t in data["tests"] if "hidden" in t["tags"]]
    assert len(hidden) == 1
    (t,) = hidden
    assert t["visibility"] == "after_published" and t["status"] == "failed"
    assert "timeout" in t["tags"]
    assert "did not finish" not in t["output"] and "hidden check" in t["output"]
    bob = submission("bob")  # a hidden check's diagnosis is not in its tags either
    c = bob.assignment("attention").check("mha_gradients")
    c.status, c.score, c.details = Status.FAILED, 0.0, {"likely_mistake": {
        "id": "no_scale", "name": "the scores are not divided by sqrt(d_k)"}}
    tags = {t["number"]: t["tags"] for t in to_gradescope(bob)["tests"]}
    assert tags["1.5"] == ["attention", "failed", "hidden"]
    assert "mistake:no_scale" in to_gradescope(bob, reveal_hidden=True)["tests"][4]["tags"]
    assert all(t["visibility"] == "visible" for t in data["tests"] if "hidden" not in t["tags"])
    revealed = to_gradescope(result, reveal_hidden=True, hidden_visibility="hidden")
    t = next(t for t in revealed["tests"] if "hidden" in t["tags"])
    assert "did not finish within 60 s" in t["output"] and t["visibility"] == "hidden"
    validate(revealed)


def test_skipped_checks_count_for_nothing_and_untrusted_text_is_inert() -> None:
    result = submission("bob")
    c = result.assignment("training").checks[0]
    c.status, c.score, c.message = Status.SKIPPED, 0.0, "needs CUDA"
    f = result.assignment("attention").check("sdpa_values")
    f.message = "<script>alert(1)</script> **bold** [link](http://x)"
    data = to_gradescope(result)
    validate(data)
    skipped = next(t for t in data["tests"] if t["number"] == "2.1")
    assert skipped["max_score"] == 0 and "status" not in skipped
    out = next(t for t in data["tests"] if t["number"] == "1.2")["output"]
    assert "<script>" not in out and "\\<script\\>" in out and "\\*\\*bold" in out


def test_the_schema_rejects_what_the_spec_forbids() -> None:
    good = to_gradescope(submission("alice"))
    validate(good)
    for mutate in (lambda d: d["tests"][0].__setitem__("visibility", "after_graded"),
                   lambda d: d.__setitem__("output_format", "markdown"),
                   lambda d: d["tests"][0].__setitem__("status", "error"),
                   lambda d: d.__setitem__("score", "22"),
                   lambda d: d["tests"][0].__setitem__("number", 1.1),
                   lambda d: (d.pop("score"), d["tests"][0].pop("score"))):
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


def test_the_autograder_zip_is_deterministic_and_complete(tmp_path: Path) -> None:
    config = {"assignments": ["attention"], "weights": {}}
    a = build_autograder(tmp_path / "a.zip", config)
    b = build_autograder(tmp_path / "b.zip", config)
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        assert {"setup.sh", "run_autograder", "grader.json", "requirements.txt"} <= set(names)
        assert "lib/grader/cli/gradescope.py" in names and "lib/reference/attention.py" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
        setup = zf.read("setup.sh").decode()
        assert "torch==2.13.0" in setup and "requirements.txt" in setup
        reqs = zf.read("requirements.txt").decode().split()
        assert not any(r.startswith("torch") for r in reqs) and "copydetect" not in reqs
        assert json.loads(zf.read("grader.json"))["assignments"] == ["attention"]


@pytest.fixture(scope="module")
def autograder(tmp_path_factory) -> Path:
    """The zip built by the CLI, unpacked as Gradescope does: /autograder/source, with
    run_autograder copied to /autograder/run_autograder."""
    base = tmp_path_factory.mktemp("gradescope")
    zip_path = base / "autograder.zip"
    assert main(["gradescope", "build", str(zip_path), "-a", "attention"]) == 0
    return zip_path


def _autograder_tree(zip_path: Path, root: Path, files: dict[str, Path | str]) -> Path:
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
    for info in zipfile.ZipFile(zip_path).infolist():  # extractall drops the mode bits
        os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    for name, content in files.items():
        dest = root / "submission" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, dest)
        else:
            dest.write_text(content)
    (root / "submission").mkdir(exist_ok=True)
    return root


def _run_autograder(root: Path) -> dict:
    env = {**os.environ, "GRADER_AUTOGRADER_ROOT": str(root), "GRADER_PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    run = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads((root / "results" / "results.json").read_text())
    validate(data)
    return data


@pytest.mark.slow
def test_run_autograder_grades_a_simulated_submission(autograder: Path, tmp_path: Path) -> None:
    # The student uploaded a zip of a folder: the module is one level down.
    root = _autograder_tree(autograder, tmp_path / "autograder", {
        "my-work/attention.py": EXAMPLES / "buggy-attention-no-scale" / "attention.py"})
    data = _run_autograder(root)
    assert [t["name"].split(":")[0] for t in data["tests"]] == ["attention"] * 7
    assert 0 < data["score"] < data["extra_data"]["max_score"]
    failed = [t for t in data["tests"] if t.get("status") == "failed"]
    assert failed and all(t["score"] == 0 for t in failed)
    assert any("mistake:no_scale" in t["tags"] for t in failed)
    assert any(t["visibility"] == "after_published" for t in data["tests"])
    # The grader ran its code from the zip, not from this checkout.
    assert data["extra_data"]["grader_version"]


def test_run_autograder_gives_a_result_for_an_empty_submission(autograder: Path,
                                                               tmp_path: Path) -> None:
    root = _autograder_tree(autograder, tmp_path / "autograder", {"notes.txt": "hello"})
    data = _run_autograder(root)
    assert data["score"] == 0
    assert "attention.py is missing" in data["output"]
    assert all(t["status"] == "failed" and "error" in t["tags"] for t in data["tests"])


def test_run_autograder_reports_a_broken_config_without_a_grade(autograder: Path,
                                                                tmp_path: Path) -> None:
    root = _autograder_tree(autograder, tmp_path / "autograder", {"attention.py": "x = 1\n"})
    (root / "source" / "grader.json").write_text('{"assignmnets": ["attention"]}')
    data = _run_autograder(root)
    assert data["score"] == 0 and data["tests"] == []
    assert "could not grade" in data["output"] and "assignmnets" in data["output"]


# ------------------------------------------------------------------------ PrairieLearn


def test_prairielearn_results_score_is_a_fraction() -> None:
    data = to_prairielearn(submission("bob"))
    assert data["gradable"] is True
    assert data["score"] == pytest.approx(14 / 22, abs=1e-6)
    assert len(data["tests"]) == 8
    t = next(t for t in data["tests"] if t["name"].endswith("values equal the reference"))
    assert (t["points"], t["max_points"]) == (0, 3)
    assert t["description"] == "Scaled dot-product and multi-head attention"
    assert "Likely mistake: the scores are not divided by sqrt(d_k)" in t["output"]
    hidden = next(t for t in data["tests"] if "input and parameter" in t["name"])
    assert "hidden check" in hidden["output"]


def test_prairielearn_shows_the_prints_only_when_no_hidden_check_ran() -> None:
    result = submission("bob")
    result.log = "debug: q.shape = (2, 3, 5, 7)"
    assert to_prairielearn(result)["output"] == ""  # prints during a hidden check stay hidden
    assert to_prairielearn(result, reveal_hidden=True)["output"] == result.log
    c = result.assignment("attention").check("mha_gradients")
    c.status = Status.SKIPPED  # a student's self-check: hidden checks listed, not run
    assert to_prairielearn(result)["output"] == result.log


def test_prairielearn_missing_modules_are_not_gradable() -> None:
    result = submission("dave")  # attention missing, training present: gradable
    assert to_prairielearn(result)["gradable"] is True
    result.assignments = result.assignments[:1]  # only the missing one was asked for
    data = to_prairielearn(result)
    assert data["gradable"] is False and "score" not in data
    assert data["format_errors"] == ["attention: attention.py is missing from the submission"]


def test_prairielearn_results_stay_under_the_size_limit() -> None:
    result = submission("bob")
    for _, c in result.all_checks():
        c.message = "x" * 400_000
    result.log = "printed " * 200_000
    data = to_prairielearn(result)
    assert len(dumps(data).encode()) <= SIZE_LIMIT
    assert data["score"] == pytest.approx(14 / 22, abs=1e-6) and len(data["tests"]) == 8
    assert "size limit" in data["message"]
    small = to_prairielearn(submission("bob"))
    assert "size limit" not in small["message"]


def test_prairielearn_entry_point_on_a_simulated_tree(tmp_path: Path, capsys) -> None:
    root = tmp_path / "grade"
    (root / "student").mkdir(parents=True)
    (root / "student" / "attention.py").write_text("def scaled_dot_product_attention(:\n")
    (root / "tests").mkdir()
    (root / "tests" / "grader.json").write_text('{"assignments": ["attention"]}')
    assert main(["prairielearn", "grade", "--root", str(root)]) == 0
    data = json.loads((root / "results" / "results.json").read_text())
    assert data["gradable"] is False
    assert "syntax error" in data["format_errors"][0]


def test_prairielearn_entry_point_without_a_student_folder(tmp_path: Path) -> None:
    assert main(["prairielearn", "grade", "--root", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results" / "results.json").read_text())
    assert data["gradable"] is False and "no student folder" in data["format_errors"][0]


def test_gradescope_build_rejects_bad_options(tmp_path: Path, capsys) -> None:
    assert main(["gradescope", "build", str(tmp_path / "ag.zip"), "-a", "atention"]) == 2
    assert "unknown assignment 'atention'" in capsys.readouterr().err
    assert main(["gradescope", "build", str(tmp_path / "ag.tar")]) == 2
    assert ".zip" in capsys.readouterr().err
    weights = tmp_path / "w.yaml"
    weights.write_text("attention: {sdpa_values: -1}\n")
    assert main(["gradescope", "build", str(tmp_path / "ag.zip"), "--weights",
                 str(weights)]) == 2
    assert "points must be a number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "ag.zip").exists()


def test_exports_say_the_root_cause_first() -> None:
    # One bug in attention.py fails a block check too: both exports start with where to fix
    # it, and the block check's feedback says it follows from attention.py (not its own hint,
    # which would send the student to block.py).
    from test_report_summary import _no_scale_everywhere

    result = _no_scale_everywhere()
    gs = to_gradescope(result)
    validate(gs)
    head = gs["output"].split("| Assignment")[0].replace("\\", "")  # Markdown escapes
    assert "Start here: attention.py, check `check values`" in head
    assert "the scores are not divided by sqrt(d_k)" in head
    block = next(t for t in gs["tests"] if t["name"] == "block: check block_values")
    assert "Follows from attention.py: fix that first" in block["output"]
    assert "Pre-norm" not in block["output"]
    own = next(t for t in gs["tests"] if t["name"] == "attention: check values")
    assert "Follows from" not in own["output"]

    pl = to_prairielearn(result)
    assert "Start here: attention.py" in pl["message"]
    pl_block = next(t for t in pl["tests"] if t["name"] == "block: check block_values")
    assert "Follows from attention.py" in pl_block["output"]


def test_exports_of_a_passing_submission_have_no_start_here() -> None:
    from test_report_summary import _check, _result

    from grader.model.results import AssignmentResult

    ok = _result(AssignmentResult("attention", source="attention.py",
                                  checks=[_check("shapes", Status.PASSED)]))
    assert "Start here" not in to_gradescope(ok)["output"]
    assert "Start here" not in to_prairielearn(ok)["message"]
