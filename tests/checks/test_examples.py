"""The bundled examples grade as documented: correct ones (in several styles) get full marks, and
each buggy one fails exactly the checks listed in its ``expected.yaml``, losing exactly their
points, with messages that name what differs."""

from __future__ import annotations

import pytest
import yaml
from conftest import EXAMPLES, failing, graded_example

from grader.model.results import Status

# Graded once per test process and shared with the report tests (see conftest.graded_example).
pytestmark = pytest.mark.xdist_group("examples")
MAY_SKIP = {("gpt2_loading", "real_gpt2")}
CORRECT_STYLES = sorted(p.name for p in EXAMPLES.iterdir() if p.name.startswith("correct-"))
BUGGY = sorted(p.name for p in EXAMPLES.iterdir() if (p / "expected.yaml").exists())


@pytest.mark.parametrize("name", CORRECT_STYLES)
def test_correct_submissions_in_other_styles_get_full_marks(name):
    result = graded_example(name)
    # Only checks that cannot apply on this machine (real GPT-2 weights absent) may be skipped.
    bad = [(a, c.id, c.message) for a, c in result.all_checks()
           if c.status is not Status.PASSED
           and not (c.status is Status.SKIPPED and (a, c.id) in MAY_SKIP)]
    assert not bad
    assert result.score == result.max_score > 0


@pytest.mark.parametrize("name", BUGGY)
def test_buggy_example_loses_exactly_the_points_of_its_bug(name):
    folder = EXAMPLES / name
    spec = yaml.safe_load((folder / "expected.yaml").read_text())
    result = graded_example(name)
    maybe = set(spec.get("may_fail", []))  # verdicts that depend on the grading's seed
    assert failing(result) - maybe == set(spec["fails"])
    lost = sum(c.max_score for a, c in result.all_checks()
               if f"{a}.{c.id}" in spec["fails"] or f"{a}.{c.id}" in maybe
               and c.status is not Status.PASSED)
    assert result.score == result.max_score - lost
    for a, c in result.all_checks():
        if f"{a}.{c.id}" in spec["fails"]:
            assert c.status is Status.FAILED and c.message, (a, c.id)


def test_every_buggy_example_is_documented():
    for folder in EXAMPLES.iterdir():
        if folder.name.startswith("buggy-"):
            assert (folder / "expected.yaml").exists(), folder
