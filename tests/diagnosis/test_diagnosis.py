"""The diagnosis names the mistake: each catalogued mistake, planted in a copy of the correct
example (written as a student would, not with the catalogue's own edits), is named in the check
aimed at it; no check ever names a mistake that is not there; a correct submission gets none; an
output that matches no variant says so; and fixtures diagnose like the live reference.

Bugs in different assignments that do not meet in the aimed checks share one submission (the
attention bug is graded by the attention checks, the mask bug by ``mask_table``, the MLP or init
bug by checks that do not run attention), to save worker starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, grade_folder, plant

from grader.checks.expected import LiveReference, StoredFixtures
from grader.checks.gpt2_loading.mistakes import GPT2_LOADING
from grader.checks.kv_cache.mistakes import KV_CACHE
from grader.checks.training.mistakes import LR_SCHEDULE
from grader.diagnosis import CATALOGUE, NO_MATCH, affecting, mistake
from grader.diagnosis.match import matches
from grader.diagnosis.variants import planted
from grader.model.results import Status

ALL = ["attention", "causal_mask", "block"]
SCALE = "scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)"
FILL = 'scores = scores.masked_fill(~mask, float("-inf"))'
SOFTMAX = "weights = F.softmax(scores, dim=-1)"
SDPA_CALL = "y, _ = scaled_dot_product_attention(q, k, v, mask)"
MERGE = "y = y.transpose(1, 2).contiguous().view(B, T, C)"
MASK = "return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=offset)"
INDEX = ("i = torch.arange(t_q, device=device)[:, None] + offset\n"
         "    j = torch.arange(t_k, device=device)[None, :]\n    ")


def _heads(new: str) -> list[tuple[str, str]]:
    return [(f"{n} = {n}.view(B, T, self.n_head, hd).transpose(1, 2)", new.format(n=n))
            for n in "qkv"]


# Each submission: the edits (module -> (old, new)), the assignments graded, and for each
# planted mistake the check that must name it.
SUBMISSIONS = {
    # MultiHeadAttention computes its attention inline here, so its mistake does not meet the
    # one in scaled_dot_product_attention.
    "no_scale+d_model+strict_mask+exact_gelu": (
        {"attention": [(SCALE, "scores = q @ k.mT"),
                       (SDPA_CALL, "att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C))\n"
                                   "        if mask is not None:\n"
                                   "            att = att.masked_fill(mask == 0, float('-inf'))\n"
                                   "        y = F.softmax(att, dim=-1) @ v")],
         "causal_mask": [(MASK, INDEX + "return j < i")],
         "block": [('self.gelu = nn.GELU(approximate="tanh")', "self.gelu = nn.GELU()")]},
        ALL,
        {"no_scale": "attention.sdpa_values", "scale_d_model": "attention.mha_values",
         "mask_excludes_diagonal": "causal_mask.mask_table", "exact_gelu": "block.mlp_values"},
    ),
    "wrong_axis+future+relu": (
        {"attention": [(SOFTMAX, "weights = scores.softmax(dim=-2)")],
         "causal_mask": [(MASK, INDEX + "return j <= i + 1")],
         "block": [('self.gelu = nn.GELU(approximate="tanh")', "self.gelu = nn.ReLU()")]},
        ALL,
        {"softmax_wrong_axis": "attention.sdpa_values",
         "mask_includes_future": "causal_mask.mask_table",
         "relu_instead_of_gelu": "block.mlp_values"},
    ),
    "after_softmax+no_offset+unscaled_init": (
        {"attention": [(FILL, "pass"),
                       (f"    {SOFTMAX}\n", f"    {SOFTMAX}\n    if mask is not None:\n"
                                             "        weights = weights * mask\n")],
         "causal_mask": [(MASK, "return torch.tril(torch.ones(t_q, t_k, device=device)).bool()")],
         "block": [("std=0.02 / math.sqrt(2 * config.n_layer)", "std=0.02")]},
        ALL,
        {"mask_after_softmax": "attention.sdpa_values",
         "mask_ignores_offset": "causal_mask.mask_table",
         "unscaled_residual_init": "block.gpt_init"},
    ),
    "fill_small+inverted+no_init": (
        {"attention": [(FILL, "scores = scores.masked_fill(~mask, 1e-9)")],
         "causal_mask": [(MASK, "return torch.ones(t_q, t_k, dtype=torch.bool, device=device)"
                                ".triu(diagonal=offset + 1)")],
         "block": [("self.apply(init_weights)", "pass"),
                   ("nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))",
                    "pass")]},
        ALL,
        {"mask_fill_zero": "attention.sdpa_values", "mask_inverted": "causal_mask.mask_table",
         "default_init": "block.gpt_init"},
    ),
    "merge_no_transpose+triu+untied": (
        {"attention": [(MERGE, "y = y.reshape(B, T, C)")],
         "causal_mask": [(MASK, "return torch.triu(torch.ones(t_q, t_k, device=device), "
                                "diagonal=offset) > 0")],
         "block": [("self.lm_head.weight = self.transformer.wte.weight",
                    "self.lm_head.weight = nn.Parameter(self.transformer.wte.weight.detach()"
                    ".clone())")]},
        ALL,
        {"heads_merged_without_transpose": "attention.mha_values",
         "mask_upper_triangle": "causal_mask.mask_table",
         "untied_embeddings": "block.gpt_weight_tying"},
    ),
    "split_no_transpose": (
        {"attention": [*_heads("{n} = {n}.reshape(B, self.n_head, T, hd)"),
                       (MERGE, "y = y.reshape(B, T, C)")]},
        ["attention"], {"heads_split_without_transpose": "attention.mha_values"},
    ),
    "qkv_order": (
        {"attention": [("q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)",
                        "q, v, k = self.c_attn(x).chunk(3, dim=-1)")]},
        ["attention"], {"qkv_order": "attention.mha_values"},
    ),
    "mask_not_applied": (
        {"causal_mask": [("return super().forward(x, mask)", "return super().forward(x)")]},
        ["causal_mask"], {"mask_not_applied": "causal_mask.csa_values"},
    ),
    "post_norm": (
        {"block": [("x = x + self.attn(self.ln_1(x))", "x = self.ln_1(x + self.attn(x))"),
                   ("x = x + self.mlp(self.ln_2(x))", "x = self.ln_2(x + self.mlp(x))")]},
        ["block"], {"post_norm": "block.block_values"},
    ),
    "missing_residual_attn": (
        {"block": [("x = x + self.attn(self.ln_1(x))", "x = self.attn(self.ln_1(x))")]},
        ["block"], {"missing_residual_attn": "block.block_values"},
    ),
    "missing_residual_mlp": (
        {"block": [("x = x + self.mlp(self.ln_2(x))", "x = self.mlp(self.ln_2(x))")]},
        ["block"], {"missing_residual_mlp": "block.block_values"},
    ),
    "missing_final_layernorm": (
        {"block": [("x = self.transformer.ln_f(x)", "pass")]},
        ["block"], {"missing_final_layernorm": "block.gpt_logits"},
    ),
    "missing_position_embeddings": (
        {"block": [("x = self.transformer.wte(idx) + self.transformer.wpe(pos)",
                    "x = self.transformer.wte(idx)")]},
        ["block"], {"missing_position_embeddings": "block.gpt_logits"},
    ),
}

# The later assignments' mistakes, named in their buggy examples (the warmup bug planted in one
# of them, which it does not meet: the loop checks do not read get_lr's values): the source
# folder, the edits, the assignments graded, and for each mistake the checks that must name it.
WARMUP = ("return max_lr * (step + 1) / warmup_steps", "return max_lr * step / warmup_steps")
LATER = {
    "kv_position_offset": (
        EXAMPLES / "buggy-kvcache-position", {}, ["kv_cache"],
        {"kv_position_offset": ["kv_cache.positions", "kv_cache.cached_steps",
                                "kv_cache.cached_chunks"]},
    ),
    "conv1d_not_transposed": (
        EXAMPLES / "buggy-gpt2-cproj", {}, ["gpt2_loading"],
        {"conv1d_not_transposed": ["gpt2_loading.logits", "gpt2_loading.state_dict"]},
    ),
    "zero_grad_missing+warmup_off_by_one": (
        EXAMPLES / "buggy-training-no-zero-grad", {"training": [WARMUP]}, ["training"],
        {"zero_grad_missing": ["training.loop_zero_grad"],
         "warmup_off_by_one": ["training.lr_schedule", "training.lr_curve"]},
    ),
    "clip_before_backward+warmup_late": (
        EXAMPLES / "buggy-training-clip-before-backward",
        {"training": [("if step < warmup_steps:", "if step <= warmup_steps:")]}, ["training"],
        {"clip_before_backward": ["training.loop_clipping"],
         "warmup_off_by_one": ["training.lr_schedule", "training.lr_curve"]},
    ),
}

# Catalogued mistakes no check declares yet; each leaves this set when its check declares it and
# a test names it.
AWAITING_HOOK: set[str] = set()


def _named(result) -> dict[str, str]:
    """``assignment.check`` -> the id of the likely mistake it names, for every check."""
    return {f"{a}.{c.id}": c.details["likely_mistake"]["id"] for a, c in result.all_checks()
            if (c.details or {}).get("likely_mistake")}


def _plausible(named: str, planted) -> bool:
    if named.startswith("one_of:"):
        return bool(set(named[len("one_of:"):].split("+")) & set(planted))
    return named in planted


@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_planted_mistakes_are_named(name, tmp_path):
    edits, assignments, aimed = SUBMISSIONS[name]
    result = grade_folder(plant(tmp_path, edits), assignments)
    named = _named(result)
    for mistake_id, check in aimed.items():
        assert named.get(check) == mistake_id, (
            f"{check} names {named.get(check)!r}, expected {mistake_id!r}; named: {named}")
    # No false diagnosis: every name given anywhere is one of the planted mistakes (or "one of"
    # a set that includes one: the bugs of one submission meet in the later checks).
    assert all(_plausible(v, aimed) for v in named.values()), named
    for a, c in result.all_checks():
        d = c.details or {}
        assert "diagnosis_error" not in d, (a, c.id, d["diagnosis_error"])
        if d.get("likely_mistake"):
            assert c.status is Status.FAILED
            lm = d["likely_mistake"]
            assert lm["name"] and lm["hint"] and lm["course"]


@pytest.mark.parametrize("name", sorted(LATER))
def test_later_assignments_name_their_mistakes(name, tmp_path):
    source, edits, assignments, aimed = LATER[name]
    sub = plant(tmp_path, edits, source=source) if edits else source
    result = grade_folder(sub, assignments)
    named = _named(result)
    for mistake_id, checks in aimed.items():
        for check in checks:
            assert named.get(check) == mistake_id, (
                f"{check} names {named.get(check)!r}, expected {mistake_id!r}; named: {named}")
    assert all(_plausible(v, aimed) for v in named.values()), named
    for a, c in result.all_checks():
        d = c.details or {}
        assert "diagnosis_error" not in d, (a, c.id, d["diagnosis_error"])
        if d.get("likely_mistake"):
            assert c.status is Status.FAILED


# The first three assignments' mistakes that a check names by its own rule (no plant).
CORE_BY_RULE = {"mask_not_bool", "eval_dropout", "num_parameters_counts_tied_twice"}


def test_every_core_mistake_is_named_by_a_test():
    from test_corpus import CORPUS

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checks"))
    from test_core_checks import BUGS

    core = set(affecting("attention", "causal_mask", "block")) | CORE_BY_RULE
    covered = ({m for _, _, aimed in SUBMISSIONS.values() for m in aimed}
               | {m for *_, m in CORPUS.values()}
               | {m for bugs in BUGS.values() for *_, named in bugs.values() if named
                  for m in named.removeprefix("one_of:").split("+")}
               | {m for *_, aimed in LATER.values() for m in aimed} | AWAITING_HOOK)
    assert core <= covered, sorted(core - covered)
    assert len(core) >= 40
    assert len(CATALOGUE) >= 60, len(CATALOGUE)


def test_an_unknown_mistake_is_reported_as_matching_none(tmp_path):
    # The scale doubled: a real mistake, but none of the catalogue's.
    sub = plant(tmp_path, {"attention": [(SCALE, "scores = (q @ k.transpose(-2, -1)) / "
                                                 "(2 * math.sqrt(d_k))")]})
    attention = grade_folder(sub, ["attention"]).assignment("attention")
    # With 4 heads, 2 sqrt(d_k) IS sqrt(d_model): only the 3-head case of mha_values tells them
    # apart, and the diagnosis judges the cases together.
    for check in (attention.check("sdpa_values"), attention.check("mha_values")):
        assert check.status is Status.FAILED
        assert "likely_mistake" not in check.details
        assert check.details["diagnosis"].startswith(NO_MATCH)


def test_a_correct_submission_gets_none_and_fixtures_diagnose_like_the_live_reference(
        tmp_path, monkeypatch):
    # A release grades the correct example with a recording reference: every variant of every
    # diagnosis is computed and stored (which runs each variant on each check's inputs).
    live = LiveReference(record=True)
    correct = grade_folder(EXAMPLES / "correct", ALL, source=live)
    for a, c in correct.all_checks():
        assert c.status is Status.PASSED, (a, c.id, c.message)
        assert not {"likely_mistake", "diagnosis", "diagnosis_error"} & set(c.details), (a, c.id)
    assert any("/variant/" in key for key in live.recorded)
    live.save(tmp_path)
    from test_corpus import CORPUS

    others, live_names = {}, {}
    for bug in ("square_tril", "swapped_norms", "eps_1e_6"):
        module, edits, aimed, mistake_id = CORPUS[bug]
        sub = plant(tmp_path, {module: edits}, name=bug)
        others[bug] = (module, aimed, mistake_id, sub)
        live_names[bug] = _named(grade_folder(sub, [module], source=LiveReference()))
    monkeypatch.setitem(sys.modules, "reference", None)  # a student bundle has no reference
    result = grade_folder(EXAMPLES / "buggy-attention-no-scale", ["attention"],
                          source=StoredFixtures(tmp_path))
    assert _named(result) == {f"attention.{c}": "no_scale" for c in
                              ("sdpa_values", "sdpa_gradients", "mha_values", "mha_gradients")}
    # Bugs of the other two assignments, from the same fixtures: named as live grading names
    # them (live: its own secret seed; fixtures: the public one).
    for bug, (module, aimed, mistake_id, sub) in others.items():
        stored = _named(grade_folder(sub, [module], source=StoredFixtures(tmp_path)))
        assert stored.get(aimed) == live_names[bug].get(aimed) == mistake_id, (
            bug, stored, live_names[bug])


# --- the matcher and the catalogue, without a worker ------------------------------------------

def _t(*values: float) -> dict[str, torch.Tensor]:
    return {"y": torch.tensor(values, dtype=torch.float64)}


def test_matcher_names_the_closest_variant_and_never_the_correct_output():
    ref = _t(1.0, 2.0, 3.0)
    variants = {"a": _t(1.0, 2.0, 3.5), "b": _t(1.0, 2.0, 3.5 + 5e-7), "c": _t(0.0, 2.0, 3.0)}
    tol = {"atol": 1e-6, "rtol": 1e-6}
    assert matches(_t(1.0, 2.0, 3.0 + 1e-7), ref, variants, **tol) is None  # correct: nothing
    assert matches(_t(1.0, 2.0, 3.0), ref, {"same": ref}, **tol) is None
    assert [m.variant for m in matches(_t(1.0, 2.0, 3.5), ref, variants, **tol)] == ["a", "b"]
    assert matches(_t(9.0, 2.0, 3.0), ref, variants, **tol) == []  # matches none
    assert matches({"y": torch.zeros(2)}, ref, variants, **tol) == []  # another shape
    nan = _t(float("nan"), 2.0, 3.5)
    assert [m.variant for m in matches(nan, ref, {"n": nan}, **tol)] == ["n"]


def test_every_variant_plants_and_changes_the_reference():
    import reference

    q, k, v = (torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(i),
                           dtype=torch.float64) for i in range(3))
    for m in CATALOGUE.values():
        assert m.name and m.hint and m.course.split(" ")[0].endswith(".md"), m.id
        course = Path("/work/shared/course") / m.course.split(" ")[0]
        assert not course.parent.is_dir() or course.is_file(), m.course
        for variant, edits in m.variants().items():
            if not all((Path(reference.__file__).parent / f"{mod}.py").is_file() for mod in edits):
                continue  # an assignment not written yet
            package = planted(reference, variant)
            assert mistake(variant) is m
            assert package.GPT is not reference.GPT
    # A planted mistake changes what the code computes, and only in its own copy.
    no_scale = planted(reference, "no_scale").scaled_dot_product_attention(q, k, v)[0]
    assert not torch.allclose(no_scale, reference.scaled_dot_product_attention(q, k, v)[0])
    assert {*KV_CACHE, *GPT2_LOADING, *LR_SCHEDULE} <= set(CATALOGUE)
    # A check compares with every mistake planted in the modules its values depend on.
    assert {"no_scale", "qkv_order", "c_proj_not_applied"} <= set(affecting("attention"))
    assert not {"mask_inverted", "post_norm"} & set(affecting("attention"))
    assert {"mask_inverted", "no_scale", "post_norm", "positions_from_1"} <= set(
        affecting("attention", "causal_mask", "block"))


def test_no_mistake_is_named_on_nan_agreement_and_ties_are_one_of():
    from grader.diagnosis.hook import _verdict

    tol = {"atol": 1e-6, "rtol": 1e-6}
    ref = {"g": torch.ones(4, dtype=torch.float64)}
    nans = {"g": torch.full((4,), float("nan"), dtype=torch.float64)}
    # An all-NaN gradient "agrees" with every NaN-producing variant: no evidence, no name.
    assert matches(nans, ref, {"mask_inverted": nans, "mask_excludes_diagonal": nans},
                   **tol) == []
    said = _verdict(nans, ref, {"mask_inverted": nans}, **tol)
    assert "likely_mistake" not in said and "NaN" in said["diagnosis"]
    # Finite evidence beside the NaNs still names.
    part = {"g": torch.tensor([float("nan"), 2.0, 1.0, 1.0], dtype=torch.float64)}
    assert _verdict(part, ref, {"mask_excludes_diagonal": part}, **tol)[
        "likely_mistake"]["id"] == "mask_excludes_diagonal"
    # Two mistakes the output cannot tell apart: "one of", whatever the order.
    two = {"g": torch.full((4,), 2.0, dtype=torch.float64)}
    for order in (["no_scale", "scale_d_k"], ["scale_d_k", "no_scale"]):
        said = _verdict(two, ref, {v: two for v in order}, **tol)["likely_mistake"]
        assert said["id"] == "one_of:no_scale+scale_d_k"
        assert said["candidates"] == ["no_scale", "scale_d_k"]
        assert said["name"].startswith("one of: ")
    # Two flavours of one mistake are that mistake.
    said = _verdict(two, ref, {"qkv_order": two, "qkv_order/kvq": two}, **tol)
    assert said["likely_mistake"]["id"] == "qkv_order"
