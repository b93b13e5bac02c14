"""A student whose files sit a folder or two down (`ann/hw1/attention.py`, as an unpacked zip
of a folder gives) is graded on those files in a batch, as `grader run` grades them: with a
warm pool's worker and with a fresh one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_helpers import CORRECT_ATTENTION, need_sandbox

from grader.cli import main


@pytest.mark.parametrize("extra", [[], ["--no-warm-pool"]], ids=["warm", "fresh"])
def test_files_one_and_two_folders_down_are_found_and_graded(tmp_path: Path, extra) -> None:
    need_sandbox()
    cls = tmp_path / "class"
    for name, sub in (("ann", "hw1"), ("bob", "Downloads/gpt")):
        (cls / name / sub).mkdir(parents=True)
        (cls / name / sub / "attention.py").write_text(CORRECT_ATTENTION)
    run = tmp_path / "run"
    assert main(["batch", str(cls), "--out", str(run), "-a", "attention", "--progress", "none",
                 *extra]) == 0
    for name in ("ann", "bob"):
        data = json.loads((run / "results" / f"{name}.json").read_text())
        assert data["score"] == data["max_score"] > 0, [
            c["message"] for a in data["assignments"] for c in a["checks"]][:1]
