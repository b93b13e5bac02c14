"""`grader batch --no-warm-pool`: the instructor's switch back to fresh workers per submission,
with the same verdicts as the default (a warm pool, where one can be had)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_helpers import CORRECT_ATTENTION, NO_SCALE_ATTENTION, NO_SCALE_FAILS, student

from grader.cli import main
from grader.isolation.pool import pool_available


def _isolation_and_failures(run: Path, name: str) -> tuple[str, set[str]]:
    data = json.loads((run / "results" / f"{name}.json").read_text())
    failed = {c["id"] for a in data["assignments"] for c in a["checks"]
              if c["status"] != "passed"}
    return data["environment"]["isolation"], failed


def test_no_warm_pool_grades_with_fresh_workers_and_the_same_verdicts(tmp_path: Path) -> None:
    ok, why = pool_available()
    if not ok:
        pytest.skip(f"no warm pool here: {why}")
    cls = tmp_path / "class"
    student(cls, "ann", CORRECT_ATTENTION)
    student(cls, "bob", NO_SCALE_ATTENTION)
    seen = {}
    for kind, extra in (("warm", []), ("fresh", ["--no-warm-pool"])):
        run = tmp_path / kind
        code = main(["batch", str(cls), "--out", str(run), "-a", "attention", "--progress",
                     "none", "--seed", "20261202", *extra])
        assert code == 0
        seen[kind] = {s: _isolation_and_failures(run, s) for s in ("ann", "bob")}
    for s in ("ann", "bob"):
        assert seen["warm"][s][0].startswith("bubblewrap (warm pool"), seen["warm"][s][0]
        assert not seen["fresh"][s][0].startswith("bubblewrap (warm pool"), seen["fresh"][s][0]
        assert seen["warm"][s][1] == seen["fresh"][s][1]
    assert seen["fresh"]["ann"][1] == set() and seen["fresh"]["bob"][1] == NO_SCALE_FAILS
