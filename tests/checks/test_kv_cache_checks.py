"""The KV-cache assignment: every check passes the correct example and one written in another
style, and each planted bug fails exactly the checks aimed at it. Also: the reference's own
numbers that the checks rely on (greedy margins far above float32 rounding, seeds that differ),
the stub's API, and the bundled buggy examples being the correct one plus their bug."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import yaml
from conftest import CORRECT, EXAMPLES, failing, grade_folder, plant

import reference
from grader.checks import ASSIGNMENTS
from grader.checks import kv_cache as checks
from grader.checks.base import Context
from grader.checks.common import random_parameters
from grader.checks.expected import LiveReference, StoredFixtures
from grader.checks.kv_cache import task
from grader.model.results import Status
from reference import kv_cache as ref_kv

KV = ["kv_cache"]
ALL = {f"kv_cache.{c.id}" for c in ASSIGNMENTS["kv_cache"].checks}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The correct example graded live, recording the expected values as a release would."""
    live = LiveReference(record=True)
    result = grade_folder(CORRECT, KV, source=live)
    fixtures = tmp_path_factory.mktemp("fixtures")
    live.save(fixtures)
    return result, fixtures


@pytest.fixture(scope="module")
def correct_result(recorded):
    return recorded[0]


def test_correct_example_passes_every_check(correct_result):
    a = correct_result.assignment("kv_cache")
    bad = [(c.id, c.message) for c in a.checks if c.status is not Status.PASSED]
    assert not bad
    assert a.score == a.max_score == ASSIGNMENTS["kv_cache"].max_score
    details = {c.id: c.details for c in a.checks}
    # float64 cached vs uncached: only the order of the sums differs.
    assert details["cached_steps"]["max_abs_diff"] < 1e-12
    assert details["one_token_per_step"]["tokens_fed_cached"] == 2 * (6 + 23)


def test_another_correct_style_passes_every_check():
    """A preallocated cache exposing views, PyTorch's fused attention, positions computed from
    the cache's k, generate written differently: all within the contract."""
    folder = EXAMPLES / "correct-kv-cache-style"
    result = grade_folder(folder, KV)
    bad = [(c.id, c.message) for _, c in result.all_checks() if c.status is not Status.PASSED]
    assert not bad


KV_LINE = "pos = torch.arange(L, L + T, dtype=torch.long, device=idx.device)"
# bug id -> (edits of kv_cache.py, exactly the checks that must fail)
BUGS = {
    "position_offset_lost": (
        [(KV_LINE, "pos = torch.arange(T, dtype=torch.long, device=idx.device)")],
        {"cached_steps", "cached_chunks", "positions", "cache_contents", "greedy", "sampling",
         "sampling_reference"},
    ),
    "no_mask_over_a_cached_prefix": (  # fine for one token, or for a prompt into an empty cache
        [("mask = causal_mask(T, k.size(2), device=x.device)",
          "mask = causal_mask(T, T, device=x.device) if k.size(2) == T else None")],
        {"cached_chunks", "cache_contents"},
    ),
    "len_counts_layers": (  # the shapes are right, the positions and the limit are not
        [("return 0 if self.k[0] is None else self.k[0].size(2)", "return len(self.k)")],
        {"cached_steps", "cached_chunks", "positions", "limits", "cache_contents",
         "greedy", "one_token_per_step", "sampling", "sampling_reference"},
    ),
    "cache_kept_only_last": (  # a cache that forgets what it was given
        [("            self.k[layer] = torch.cat([self.k[layer], k], dim=2)",
          "            self.k[layer] = torch.cat([self.k[layer][:, :, :0], k], dim=2)"),
         ("            self.v[layer] = torch.cat([self.v[layer], v], dim=2)",
          "            self.v[layer] = torch.cat([self.v[layer][:, :, :0], v], dim=2)")],
        {"cached_steps", "cached_chunks", "positions", "cache_shapes", "cache_contents",
         "greedy", "sampling", "sampling_reference", "one_token_per_step"},
    ),
    "cache_not_used_in_generate": (
        [("cache = KVCache(model.config.n_layer) if use_cache else None", "cache = None")],
        {"one_token_per_step"},
    ),
    "temperature_multiplies": (
        [("logits = logits / temperature", "logits = logits * temperature")],
        {"sampling", "sampling_reference"},
    ),
    "generator_ignored": (
        [("next_token = torch.multinomial(probs, num_samples=1, generator=generator)",
          "next_token = torch.multinomial(probs, num_samples=1)")],
        {"sampling", "sampling_reference"},
    ),
    "top_k_one_too_many": (
        [("min(top_k, logits.size(-1))", "min(top_k + 1, logits.size(-1))")],
        {"sampling", "sampling_reference"},
    ),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_fails_exactly_its_checks(bug, tmp_path):
    edits, expected = BUGS[bug]
    result = grade_folder(plant(tmp_path, {"kv_cache": edits}), KV)
    got = failing(result)
    assert got == {f"kv_cache.{c}" for c in expected}, f"{bug}: failing {sorted(got)}"
    for _, c in result.all_checks():
        if c.status is not Status.PASSED:
            assert c.score == 0 and c.message and "internal grader error" not in c.message
    for check_id, parts in MESSAGES.get(bug, {}).items():
        message = result.assignment("kv_cache").check(check_id).message
        assert all(p in message for p in parts), message


# What some failures must say (the mistake named, not just "differs").
MESSAGES = {
    "temperature_multiplies": {"sampling_reference": ["multiplied by the temperature"]},
    "top_k_one_too_many": {"sampling_reference": ["top_k keeps one token too many"]},
    "cache_not_used_in_generate": {"one_token_per_step": ["call 2", "(2x7)", "expected (2x1)"]},
    "position_offset_lost": {"positions": ["positions [0] given to transformer.wpe",
                                           "expected [9]"]},
    "cache_kept_only_last": {"cache_shapes": ["(2, 4, 25, 8)"]},
    "generator_ignored": {"sampling": ["different seeds gave exactly the same tokens"]},
}


def test_every_check_is_aimed_at_by_a_planted_bug():
    aimed = {f"kv_cache.{c}" for _, expected in BUGS.values() for c in expected}
    assert aimed == ALL


EXAMPLE_BUGS = {"buggy-kvcache-position": "position_offset_lost",
                "buggy-kvcache-recompute": "cache_not_used_in_generate",
                "buggy-kvcache-temperature": "temperature_multiplies"}


@pytest.mark.parametrize("name", sorted(EXAMPLE_BUGS))
def test_bundled_buggy_examples_are_the_correct_one_plus_their_bug(name, tmp_path):
    folder = EXAMPLES / name
    edits, expected = BUGS[EXAMPLE_BUGS[name]]
    planted = plant(tmp_path, {"kv_cache": edits})
    for path in folder.glob("*.py"):
        assert path.read_text() == (planted / path.name).read_text(), path.name
    spec = yaml.safe_load((folder / "expected.yaml").read_text())
    assert set(spec["fails"]) == {f"kv_cache.{c}" for c in expected}


def test_fixtures_recorded_on_the_correct_example_give_the_live_verdicts(recorded,
                                                                         monkeypatch):
    """A student bundle: expected values recorded at release (on the correct example), no
    reference package; a buggy submission gets the same verdicts as with the live reference
    (the named diagnosis of a sampling mistake is live-only)."""
    monkeypatch.setitem(sys.modules, "reference", None)
    buggy = EXAMPLES / "buggy-kvcache-temperature"
    result = grade_folder(buggy, KV, source=StoredFixtures(recorded[1]))
    spec = yaml.safe_load((buggy / "expected.yaml").read_text())
    assert failing(result) == set(spec["fails"])
    assert {c.status for _, c in result.all_checks()} == {Status.PASSED, Status.FAILED}


# ------------------------------------------------------------------ the reference's numbers


def _reference_model(dtype=torch.float64):
    model = ref_kv.CachedGPT(reference.GPTConfig(**checks.KV))
    params = random_parameters(model, seed=501, std=0.2)
    model.load_state_dict(params)
    return model.to(dtype).eval()


def _prompt():
    g = torch.Generator().manual_seed(502)
    torch.randint(0, checks.KV["vocab_size"], (checks.BATCH, max(
        checks.PROMPT + checks.STEPS, sum(checks.CHUNKS))), generator=g)
    return torch.randint(0, checks.KV["vocab_size"], (checks.BATCH, checks.GEN_PROMPT),
                         generator=g)


# Run seeds whose FIRST draw of weights sends a row of the greedy path into a fixed point (one
# token 24 times): a lost cache offset then generated exactly the right tokens.
COLLAPSING_SEEDS = [4, 9, 14]


def _task(seed):
    ctx = Context("kv_cache", worker=None, source=LiveReference(seed=seed))
    model = ref_kv.CachedGPT(reference.GPTConfig(**checks.KV)).double()
    model.load_state_dict(task.task_params(ctx))
    return model.eval(), task.task_tokens(ctx)["prompt"]


@pytest.mark.parametrize("seed", COLLAPSING_SEEDS + [1, 2, 3, 501, 7777])
def test_task_weights_give_a_greedy_path_with_margins_far_above_rounding(seed):
    """The greedy check compares float32 runs with the float64 reference, temperature 1e-5
    must behave as greedy, and a wrong position must change the path: whatever the run's seed,
    every step's top-2 gap is far above rounding and no row is stuck on one token."""
    model, prompt = _task(seed)
    tokens = ref_kv.generate(model, prompt, checks.GEN_NEW, temperature=0)
    with torch.no_grad():
        logits = model(tokens[:, :-1])[0][:, checks.GEN_PROMPT - 1:]
    top2 = logits.topk(2, dim=-1).values
    gap = float((top2[..., 0] - top2[..., 1]).min())
    # float32 logit errors are ~1e-6; at temperature 1e-5 the runner-up gets exp(-gap / 1e-5)
    # < exp(-100) of the probability.
    assert gap >= 1e-3, gap
    assert min(len(set(row)) for row in tokens[:, checks.GEN_PROMPT:].tolist()) >= 3
    f32 = ref_kv.generate(model.float(), prompt, checks.GEN_NEW, temperature=0)
    assert torch.equal(f32, tokens)


def test_a_path_stuck_on_one_token_or_on_a_near_tie_is_not_telling():
    model, prompt = _task(1)
    path = ref_kv.generate(model, prompt, checks.GEN_NEW, temperature=0)

    def replay(tokens):
        return lambda model, prompt, n, temperature: tokens

    assert task.greedy_path_is_telling(model, replay(path), prompt)
    stuck = path.clone()
    stuck[0, checks.GEN_PROMPT:] = path[0, checks.GEN_PROMPT]
    assert not task.greedy_path_is_telling(model, replay(stuck), prompt)

    class NearTie(torch.nn.Module):  # the same model, but two logits 1e-4 apart at one step
        def forward(self, idx):
            logits = model(idx)[0].clone()
            row = logits[1, checks.GEN_PROMPT + 3]
            row[row.argsort()[-2]] = row.max() - 1e-4
            return logits, None

    assert not task.greedy_path_is_telling(NearTie(), replay(path), prompt)


@pytest.mark.parametrize("bug", ["position_offset_lost", "len_counts_layers"])
def test_a_wrong_position_fails_generation_even_where_the_first_weights_collapse(bug, tmp_path):
    result = grade_folder(plant(tmp_path, {"kv_cache": BUGS[bug][0]}), KV,
                          source=LiveReference(seed=COLLAPSING_SEEDS[0]))
    assert {"kv_cache.greedy", "kv_cache.sampling"} <= failing(result)


def test_different_seeds_sample_different_tokens_and_same_seeds_the_same():
    model, prompt = _reference_model(), _prompt()

    def sample(seed, use_cache=True, **kw):
        return ref_kv.generate(model, prompt, checks.GEN_NEW, use_cache=use_cache,
                               generator=torch.Generator().manual_seed(seed), **kw)

    assert not torch.equal(sample(13), sample(14))
    assert torch.equal(sample(13), sample(13))
    assert torch.equal(sample(22, temperature=0.7, top_k=5),
                       sample(22, use_cache=False, temperature=0.7, top_k=5))


def test_reference_cache_matches_uncached_in_float32_within_rounding():
    """DESIGN's figure: cached and uncached float32 logits are not bitwise equal (~3e-7)."""
    model = _reference_model(torch.float32)
    seq = torch.randint(0, checks.KV["vocab_size"], (2, 37), generator=torch.Generator())
    with torch.no_grad():
        full = model(seq)[0]
        cache = ref_kv.KVCache(checks.KV["n_layer"])
        steps = [model(seq[:, :5], kv_cache=cache)[0]]
        steps += [model(seq[:, t:t + 1], kv_cache=cache)[0] for t in range(5, 37)]
    diff = float((torch.cat(steps, dim=1) - full).abs().max())
    assert diff < 1e-4
    assert len(cache) == 37 and cache.k[1].shape == (2, 4, 37, 8)


def test_generate_rejects_sequences_beyond_block_size():
    model = _reference_model()
    prompt = torch.zeros(1, 40, dtype=torch.long)
    assert ref_kv.generate(model, prompt, 9).shape == (1, 49)  # longest fed: 48 tokens
    with pytest.raises(ValueError):
        ref_kv.generate(model, prompt, 10)


# ------------------------------------------------------------------ the stub


def test_stub_has_the_reference_api(monkeypatch):
    import inspect

    root = CORRECT.parent.parent / "assignments"
    for name in ("attention", "causal_mask", "block", "kv_cache"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(root))
    spec = importlib.util.spec_from_file_location("kv_cache", root / "kv_cache.py")
    stub = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "kv_cache", stub)
    spec.loader.exec_module(stub)
    for name in ("KVCache", "cached_attention", "CachedGPT", "generate"):
        mine, ref = getattr(stub, name), getattr(ref_kv, name)
        assert inspect.getdoc(mine) == inspect.getdoc(ref), name
        if inspect.isclass(ref):
            for meth, fn in vars(ref).items():
                if inspect.isfunction(fn):
                    assert inspect.signature(getattr(mine, meth)) == inspect.signature(fn)
                    assert inspect.getdoc(getattr(mine, meth)) == inspect.getdoc(fn)
        else:
            assert inspect.signature(mine) == inspect.signature(ref)
    with pytest.raises(NotImplementedError):
        stub.KVCache(2)
    with pytest.raises(NotImplementedError):
        stub.generate(None, None, 1)


def test_a_sampling_mistake_is_named_by_every_run_not_by_the_first_that_fits(tmp_path):
    """Under run seed 21 a generate that ignores the temperature draws, at temperature 0.7 with
    top_k=5, exactly the tokens of one that multiplies by it (a dominant token): the runs at
    other temperatures tell them apart, and the order the mistakes are tried in must not."""
    folder = plant(tmp_path, {"kv_cache": [("            logits = logits / temperature\n", "")]})
    result = grade_folder(folder, KV, source=LiveReference(seed=21))
    check = result.assignment("kv_cache").check("sampling_reference")
    assert check.status is Status.FAILED
    assert check.details["likely_mistake"]["id"] == "temperature_ignored", check.message
    assert "the temperature is ignored" in check.message
