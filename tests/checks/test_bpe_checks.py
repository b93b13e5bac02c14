"""The BPE assignment's checks: a correct submission passes every one, and each fails a bug
planted for it, with the diagnosis naming the mistake where the catalogue knows it. The
bundled examples (examples/correct-bpe-heap, examples/buggy-bpe-*) are graded by
tests/checks/test_examples.py; here they are checked for the mistake each one names."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import CORRECT, EXAMPLES, failing, grade_folder, plant

from grader.checks import ASSIGNMENTS, names
from grader.checks.expected import LiveReference, StoredFixtures
from grader.model.results import Status

BPE = ["bpe"]


@pytest.fixture(scope="module")
def correct_bpe():
    return grade_folder(CORRECT, BPE)


def test_bpe_is_the_first_of_seven_assignments():
    assert names()[0] == "bpe"
    assert len(names()) == 7
    assert ASSIGNMENTS["bpe"].module == "bpe"


def test_correct_submission_gets_full_marks_fast(correct_bpe):
    a = correct_bpe.assignment("bpe")
    bad = [(c.id, c.status, c.message) for c in a.checks if c.status is not Status.PASSED]
    assert not bad
    assert a.score == a.max_score == ASSIGNMENTS["bpe"].max_score > 0
    # The checks take ~1.5 s on an idle CPU (the GPT-2 tokenizer is built once per worker);
    # the bound is loose for a loaded machine, but catches a rebuild per request (~10 s).
    assert sum(c.seconds for c in a.checks) < 8.0


def test_speed_is_a_note_that_scores_nothing(correct_bpe):
    speed = correct_bpe.assignment("bpe").check("gpt2_speed")
    assert speed.max_score == 0 and speed.status is Status.PASSED
    assert "yours" in speed.message and "tokens/s" in speed.message
    assert "tiktoken" in speed.message and "reference" in speed.message


def test_day30_counts_are_reported(correct_bpe):
    day30 = correct_bpe.assignment("bpe").check("gpt2_day30")
    assert "'The ': 2 tokens for 4 characters" in day30.message
    assert "'To be or ': 4 tokens" in day30.message


# bug -> (edits of bpe.py, exactly the checks that must fail, {check: the mistake it names}).
VOCAB_LINE = "vocab[FIRST_MERGE_ID + i] = vocab[a] + vocab[b]"
GPT2_BEST = '            best = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))'
GPT2_DECODE = ('        return bytes(self.byte_decoder[c] for c in text).decode("utf-8", '
               'errors="replace")')
BUGS = {
    "vocab_off_by_one": (
        [(VOCAB_LINE, "vocab[FIRST_MERGE_ID + i + 1] = vocab.get(a, b'') + vocab.get(b, b'')")],
        {"bpe.build_vocab", "bpe.roundtrip", "bpe.decode_invalid"},
        {"build_vocab": "bpe_id_offset"},
    ),
    "ties_to_the_largest_pair": (
        [("pair = min(counts, key=lambda p: (-counts[p], p))",
          "pair = max(counts, key=lambda p: (counts[p], p))")],
        {"bpe.train_merges", "bpe.train_ties"},
        {"train_merges": "bpe_ties_first_seen", "train_ties": "bpe_ties_first_seen"},
    ),
    "invalid_utf8_ignored": (
        [('    return data.decode("utf-8", errors="replace")',
          '    return data.decode("utf-8", errors="ignore")')],
        {"bpe.decode_invalid"},
        {},
    ),
    "gpt2_merges_by_frequency": (
        [(GPT2_BEST, "            known = [p for p in zip(parts, parts[1:]) if p in "
                     "self.bpe_ranks]\n"
                     "            best = max(known, key=known.count) if known else ('', '')")],
        {"bpe.gpt2_tiktoken", "bpe.gpt2_day30"},
        {"gpt2_tiktoken": "bpe_encode_by_frequency"},
    ),
    "gpt2_decode_per_token": (
        [(GPT2_DECODE, "        return ''.join(bytes(self.byte_decoder[c] for c in "
                       "self.decoder[i]).decode('utf-8', errors='replace') for i in ids)")],
        {"bpe.gpt2_decode"},
        {"gpt2_decode": "bpe_decode_per_token"},
    ),
    "gpt2_space_as_a_character": (  # the space handled outside bytes_to_unicode's alphabet
        [('            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))',
          '            word = piece.replace(" ", "\\u0120")')],
        # ASCII text still works (the Day 30 prompts); other bytes are not in encoder.json
        {"bpe.gpt2_tiktoken", "bpe.gpt2_speed"},
        {},
    ),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_planted_bug_fails_exactly_its_checks(tmp_path, bug):
    edits, fails, named = BUGS[bug]
    result = grade_folder(plant(tmp_path, {"bpe": edits}), BPE)
    assert failing(result) == fails
    a = result.assignment("bpe")
    for check_id, mistake in named.items():
        details = a.check(check_id).details
        assert details.get("likely_mistake", {}).get("id") == mistake, (check_id, details)
    for c in a.checks:
        if f"bpe.{c.id}" in fails:
            assert c.message and c.score == 0


def test_every_check_but_the_note_is_failed_by_some_planted_bug():
    caught = set().union(*(fails for _, fails, _ in BUGS.values()))
    for example in EXAMPLES.glob("buggy-bpe-*"):
        caught |= set(yaml.safe_load((example / "expected.yaml").read_text())["fails"])
    scored = {f"bpe.{c.id}" for c in ASSIGNMENTS["bpe"].checks if c.points > 0}
    assert scored <= caught


# Each buggy example's failures name its mistake (where the check compares variants).
NAMED = {
    "buggy-bpe-encode-frequency": {"encode_by_rank": "bpe_encode_by_frequency"},
    "buggy-bpe-ties-first-seen": {"train_merges": "bpe_ties_first_seen",
                                  "train_ties": "bpe_ties_first_seen"},
    "buggy-bpe-no-pretokenize": {"train_merges": "bpe_no_pretokenize",
                                 "gpt2_tiktoken": "bpe_no_pretokenize"},
    "buggy-bpe-decode-per-token": {"decode_invalid": "bpe_decode_per_token"},
    "buggy-bpe-merge-overlap": {"train_merges": "bpe_merge_overlap",
                                "train_ties": "bpe_merge_overlap",
                                "encode_by_rank": "bpe_merge_overlap"},
    "buggy-bpe-id-offset": {"train_merges": "bpe_id_offset", "encode_by_rank": "bpe_id_offset"},
    "buggy-bpe-space-apart": {"train_merges": "bpe_space_apart",
                              "gpt2_tiktoken": "bpe_space_apart",
                              "gpt2_day30": "bpe_space_apart"},
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_buggy_examples_name_their_mistake(name):
    a = grade_folder(EXAMPLES / name, BPE).assignment("bpe")
    for check_id, mistake in NAMED[name].items():
        details = a.check(check_id).details
        assert details.get("likely_mistake", {}).get("id") == mistake, (check_id, details)


def test_the_bundle_path_fixtures_grade_the_same(tmp_path):
    """Recorded fixtures (what a student bundle carries: no reference, no tiktoken needed)
    grade the correct solution fully and still diagnose a buggy one."""
    live = LiveReference(record=True)
    grade_folder(CORRECT, BPE, source=live, include_hidden=False)
    stored = StoredFixtures(live.save(tmp_path / "fixtures").parent)
    result = grade_folder(CORRECT, BPE, source=stored, include_hidden=False)
    a = result.assignment("bpe")
    hidden = {c.id for c in ASSIGNMENTS["bpe"].checks if c.visibility.value == "hidden"}
    assert hidden and all(a.check(h).status is Status.SKIPPED for h in hidden)
    assert [c.id for c in a.checks if c.status is not Status.PASSED and c.id not in hidden] == []
    buggy = grade_folder(EXAMPLES / "buggy-bpe-space-apart", BPE, source=stored,
                         include_hidden=False).assignment("bpe")
    details = buggy.check("gpt2_tiktoken").details
    assert details["likely_mistake"]["id"] == "bpe_space_apart"
    json.dumps(details)  # what the reports store


def test_a_notebook_submission_grades_the_same(tmp_path):
    import os

    import nbformat

    from grader.intake.notebooks import module_to_notebook

    folder = tmp_path / "nb"
    folder.mkdir()
    nbformat.write(module_to_notebook((CORRECT / "bpe.py").read_text()), folder / "bpe.ipynb")
    for p in (tmp_path, folder, folder / "bpe.ipynb"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)  # the sandboxed worker is another user
    a = grade_folder(folder, BPE).assignment("bpe")
    assert a.score == a.max_score > 0
