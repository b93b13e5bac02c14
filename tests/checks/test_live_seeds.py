"""Live inputs are unpredictable (issue 10 §2): each grading run draws every check's inputs from
its own secret seed, recorded in the results; the released fixtures (public seed) serve only the
self-check; reference outputs are cached per (seed, key), in the process and on disk.

The attack: a submission that answers from a table of the public fixtures' outputs, looked up by
a hash of its input. Against the fixtures it scores (the bundle's inputs are public by design);
graded live it gains nothing over the same code with an empty table."""

from __future__ import annotations

import types

import pytest
import torch
import yaml
from conftest import CORRECT, EXAMPLES, grade_folder, worker_client

from grader.checks.expected import (
    PUBLIC_SEED,
    LiveReference,
    StoredFixtures,
    derive_seed,
    fingerprint,
)


def _make(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"x": torch.randn(4, generator=g)}


def test_inputs_come_from_the_run_seed_and_the_key():
    one, same, other = LiveReference(seed=1), LiveReference(seed=1), LiveReference(seed=2)
    x = one.inputs("a/k", _make)["x"]
    assert torch.equal(x, same.inputs("a/k", _make)["x"])  # reproducible with --seed
    assert not torch.equal(x, other.inputs("a/k", _make)["x"])
    assert not torch.equal(x, one.inputs("a/other", _make)["x"])  # each key its own numbers
    assert derive_seed(1, "a/k") != derive_seed(2, "a/k")
    # A make without arguments (no randomness, or its own) is called as it is.
    assert one.inputs("a/fixed", lambda: {"n": torch.tensor(3)})["n"] == 3
    # Fresh secret seeds by default, never the public one; a release records with the public.
    seeds = {LiveReference().seed for _ in range(5)}
    assert len(seeds) == 5 and PUBLIC_SEED not in seeds
    assert LiveReference(record=True).seed == PUBLIC_SEED


def test_reference_outputs_are_cached_per_seed_and_key_in_process_and_on_disk(tmp_path):
    calls = []

    def compute(ref):
        calls.append(1)
        return {"y": torch.arange(3.0) + len(calls)}

    first = LiveReference(seed=5, cache_dir=tmp_path)
    y = first.expected("a/k", compute)["y"]
    assert torch.equal(first.expected("a/k", compute)["y"], y) and len(calls) == 1
    # Another process of the same run (same seed, same code): read from disk, not recomputed.
    again = LiveReference(seed=5, cache_dir=tmp_path)
    assert torch.equal(again.expected("a/k", compute)["y"], y)
    assert len(calls) == 1 and again.disk_hits == 1
    # Another seed never reads this seed's entry, in the process or on disk.
    sibling = first.with_seed(6)
    assert not torch.equal(sibling.expected("a/k", compute)["y"], y) and len(calls) == 2
    assert torch.equal(first.expected("a/k", compute)["y"], y) and len(calls) == 2
    # A damaged entry is recomputed, never trusted.
    for path in tmp_path.rglob("*.safetensors"):
        path.write_bytes(b"garbage")
    assert torch.equal(LiveReference(seed=5, cache_dir=tmp_path).expected("a/k", compute)["y"],
                       torch.arange(3.0) + 3)


def test_the_disk_cache_fingerprint_follows_the_reference_code(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "__init__.py").write_text("X = 1\n")
    package = types.SimpleNamespace(__file__=str(tmp_path / "ref" / "__init__.py"))
    before = fingerprint(package)
    assert fingerprint(package) == before
    (tmp_path / "ref" / "__init__.py").write_text("X = 2\n")
    assert fingerprint(package) != before


def _verdicts(result) -> dict[str, tuple]:
    return {f"{a}.{c.id}": (c.status, c.score, ((c.details or {}).get("likely_mistake") or {})
                            .get("id")) for a, c in result.all_checks()}


@pytest.mark.parametrize("folder,assignments", [
    (CORRECT, ["attention", "causal_mask", "block"]),
    (EXAMPLES / "buggy-attention-no-scale", ["attention"]),
    (EXAMPLES / "buggy-block-post-norm", ["block"]),
])
def test_two_seeds_send_different_inputs_and_give_the_same_verdicts(folder, assignments):
    runs = []
    for seed in (101, 202):
        source = LiveReference(seed=seed)
        result = grade_folder(folder, assignments, source=source)
        assert result.environment["seed"] == seed
        runs.append((source, _verdicts(result)))
    (one, verdicts_one), (two, verdicts_two) = runs
    spec = folder / "expected.yaml"
    for name in (yaml.safe_load(spec.read_text()).get("may_fail", []) if spec.exists() else []):
        verdicts_one.pop(name, None), verdicts_two.pop(name, None)  # the seed decides these
    assert verdicts_one == verdicts_two
    key = f"{assignments[0]}/" + {"attention": "sdpa_values/plain", "causal_mask": "csa_no_nan",
                                   "block": "gpt_inputs"}[assignments[0]]
    cached = [s.inputs(key, lambda *_: pytest.fail("not cached")) for s in (one, two)]
    assert cached[0].keys() == cached[1].keys()
    assert all(not torch.equal(cached[0][n], cached[1][n]) for n in cached[0])


ATTACK = '''
import hashlib
from pathlib import Path

import torch
from torch import nn

_FILE = Path(__file__).with_name("table.pt")
TABLE = torch.load(_FILE, weights_only=True) if _FILE.exists() else {}


def _key(t):
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()


def scaled_dot_product_attention(q, k, v, mask=None):
    hit = TABLE.get(_key(q))
    if hit is not None:  # a public input: the stored answer
        return hit["out"].to(q.dtype), hit["weights"].to(q.dtype)
    weights = torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2], dtype=q.dtype)
    return weights @ v, weights
'''


def test_replaying_the_public_fixtures_by_input_hash_gains_nothing_live(tmp_path):
    # The release: fixtures of the public checks, recorded with the public seed.
    live = LiveReference(record=True)
    grade_folder(CORRECT, ["attention"], source=live, include_hidden=False)
    live.save(tmp_path / "fixtures")
    fixtures = StoredFixtures(tmp_path / "fixtures")
    assert fixtures.seed == PUBLIC_SEED
    # The attacker's table: every public sdpa input's stored outputs, by a hash of q.
    table = {}
    for key in fixtures._entries:
        if key.startswith("in/attention/") and "q" in fixtures._entries[key]:
            out = fixtures._entries.get("out/" + key[3:], {})
            if "weights" in out:
                q = fixtures._entries[key]["q"]
                table[__import__("hashlib").sha256(q.contiguous().numpy().tobytes())
                      .hexdigest()] = {"out": out.get("out", torch.zeros(0)),
                                       "weights": out["weights"]}
    assert table
    sources = {}
    for name, with_table in (("attack", True), ("baseline", False)):
        sub = tmp_path / name
        sub.mkdir()
        (sub / "attention.py").write_text(ATTACK)
        if with_table:
            torch.save(table, sub / "table.pt")
        sources[name] = sub
    scores = {}
    for name, sub in sources.items():
        self_check = grade_folder(sub, ["attention"], source=fixtures, include_hidden=False)
        graded = grade_folder(sub, ["attention"], source=LiveReference())
        scores[name] = (self_check.assignment("attention").check("sdpa_values").status.value,
                        self_check.score, graded.score)
    # The attack is real: against the public fixtures, the table answers sdpa_values ...
    assert scores["attack"][0] == "passed" and scores["baseline"][0] != "passed", scores
    assert scores["attack"][1] > scores["baseline"][1], scores
    # ... and worth nothing when the instructor grades.
    assert scores["attack"][2] == scores["baseline"][2], scores


# Inputs that are the same under every seed, each for a reason that makes a table of them
# worthless: what is checked there is a rule the output must obey on ANY input (shapes, a
# permutation of the data, errors raised), not values stored beside the input in the fixtures.
FIXED_BY_DESIGN = {
    "bpe/train_ties": "a fixed text whose merge ties only the tie-break rule resolves",
    "training/batch_shapes": "shapes and dtypes of get_batch's output, whatever the data",
    "training/batch_targets": "y is x shifted by one: checked as a rule on arange data",
    "training/batch_spread": "the batch start positions cover the data: a rule on arange data",
    "training/batch_generator": "the same generator gives the same batches: a rule",
    # Checks with fixed cases beside ones drawn from the seed (under other keys): a table of
    # the fixed cases' outputs fails the drawn ones, and with them the check.
    "training/lr/0.0006_100_6e-05_10/": "lr_schedule's first schedule, beside a drawn one",
    "training/lr/1_20_0.1_4/": "lr_schedule's second schedule, beside a drawn one",
    "training/lr/0.01_8_0.001_2/": "the loop run's learning rates, the trusted side's own: what "
                                   "train's claimed schedule is compared with, never sent",
}


def _fixed_by_design(key: str) -> bool:
    return any(key == k or k.endswith("/") and key.startswith(k) for k in FIXED_BY_DESIGN)


def _keys(source: LiveReference, prefix: str) -> dict[str, dict[str, torch.Tensor]]:
    return {key[len(prefix):]: values for (_, key), values in source._cache.items()
            if key.startswith(prefix)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[n].shape == b[n].shape and a[n].dtype == b[n].dtype and torch.equal(a[n], b[n])
        for n in a)


def test_no_check_sends_an_input_that_another_seed_would_send_too():
    """The class of issue 10 §2, for every check at once: graded under two seeds, every input
    of every check (and every reference output, which the bundle's fixtures would hold beside
    it) differs, but the few fixed by design above. A check that hard-codes a seed of its own
    (``seeded(502)``, ``seed=601``) fails here."""
    from grader.checks import ASSIGNMENTS

    sources = [LiveReference(seed=seed) for seed in (303, 404)]
    for source in sources:
        result = grade_folder(CORRECT, list(ASSIGNMENTS), source=source)
        assert result.score == result.max_score, failing_ids(result)
    one, two = sources
    for prefix in ("in/", "out/"):
        mine, theirs = _keys(one, prefix), _keys(two, prefix)
        assert mine, prefix
        same = sorted(k for k in mine.keys() & theirs.keys() if _same(mine[k], theirs[k])
                      and not _fixed_by_design(k))
        assert not same, f"the same {prefix[:-1]}puts under two seeds: {same}"


def failing_ids(result) -> list[str]:
    return [f"{a}.{c.id}: {c.message}" for a, c in result.all_checks()
            if c.status.value not in ("passed", "skipped")]


FORGED_TRAIN = '''

_TABLE = __import__("pathlib").Path(__file__).with_name("trained.pt")


def train(model, train_data, val_data, config):
    """Trains nothing: loads parameters trained offline, and reports a plausible run."""
    if _TABLE.exists():
        model.load_state_dict(torch.load(_TABLE, weights_only=True))
    n = config.max_steps
    lrs = [get_lr(s, max_lr=config.max_lr, min_lr=config.min_lr,
                  warmup_steps=config.warmup_steps, max_steps=n) for s in range(n)]
    return {"train_losses": [1.0] * n, "val_losses": [1.0] * (n // config.eval_interval),
            "lrs": lrs, "grad_norms": [1.0] * n}
'''


def test_parameters_trained_offline_on_a_known_seed_gain_nothing_live(tmp_path):
    """The convergence probe judges the parameters ``train`` leaves: a ``train`` that loads
    parameters the reference loop trained on the public seed's probe (what the bundle's
    self-check runs) passes that self-check, and graded live gains nothing over the same
    ``train`` without them. The task's 5,000 examples are public, so the split alone would
    not do: the run's seed also draws which id is which symbol."""
    import reference.training as ref_training
    from grader.checks.base import Context
    from grader.checks.training import probe as P
    from grader.checks.training.task import task_data
    from grader.shared.probe import probe_model

    seed = derive_seed(PUBLIC_SEED, "training/probe") % 2**31
    data = task_data(seed)
    with torch.random.fork_rng(devices=[]):
        model = probe_model(P.PROBE_MODEL, seed, "cpu")
        ref_training.train(model, data["train_data"], data["val_data"],
                           ref_training.TrainConfig(**P.PROBE_CONFIG, seed=seed, device="cpu"))
    verdicts = {}
    for name, with_table in (("attack", True), ("baseline", False)):
        sub = tmp_path / name
        sub.mkdir()
        (sub / "training.py").write_text((CORRECT / "training.py").read_text() + FORGED_TRAIN)
        if with_table:
            torch.save(model.state_dict(), sub / "trained.pt")
        with worker_client(sub) as worker:
            worker.request("import", {"modules": ["training"]})
            verdicts[name] = [
                P.run_probe(Context(assignment="training", worker=worker, source=source)).passed
                for source in (LiveReference(seed=PUBLIC_SEED), LiveReference())]
    # The attack is real where the seed is known ...
    assert verdicts["attack"][0] and not verdicts["baseline"][0], verdicts
    # ... and graded live it is worth what training nothing is worth.
    assert verdicts["attack"][1] == verdicts["baseline"][1] is False, verdicts
