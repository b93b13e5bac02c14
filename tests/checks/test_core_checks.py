"""Every check of the first three assignments passes a correct submission and fails a bug aimed
at it. Each planted bug is graded on the assignment it lives in (and, where the bug is in a
module others import, on the assignments it reaches), and the test names exactly which checks
must fail, so a check that stops catching its bug, or starts failing correct code, is caught."""

from __future__ import annotations

import pytest
from conftest import failing, grade_folder, plant

from grader.checks import ASSIGNMENTS
from grader.model.results import Status

CORE = ["attention", "causal_mask", "block"]


def test_correct_example_gets_full_marks(correct_result):
    for name in CORE:
        a = correct_result.assignment(name)
        bad = [(c.id, c.message) for c in a.checks if c.status is not Status.PASSED]
        assert not bad, f"{name}: {bad}"
        assert a.score == a.max_score == ASSIGNMENTS[name].max_score


# Each entry: bug id -> (edits, assignments graded, exactly the checks that must fail).
SCALE_LINE = "scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)"
BUGS = {
    "no_scale": (
        {"attention": [(SCALE_LINE, "scores = q @ k.transpose(-2, -1)")]},
        ["attention"],
        {"attention.sdpa_values", "attention.sdpa_gradients", "attention.mha_values",
         "attention.mha_gradients"},
    ),
    "softmax_wrong_axis": (
        {"attention": [("weights = F.softmax(scores, dim=-1)",
                        "weights = F.softmax(scores, dim=-2)")]},
        ["attention"],
        {"attention.sdpa_values", "attention.sdpa_gradients", "attention.sdpa_masking",
         "attention.mha_values", "attention.mha_gradients"},
    ),
    "mask_after_softmax": (
        {"attention": [
            ('scores = scores.masked_fill(~mask, float("-inf"))', "pass"),
            ("    weights = F.softmax(scores, dim=-1)\n",
             "    weights = F.softmax(scores, dim=-1)\n    if mask is not None:\n"
             "        weights = weights.masked_fill(~mask, 0.0)\n")]},
        ["attention"],
        {"attention.sdpa_values", "attention.sdpa_gradients", "attention.sdpa_masking",
         "attention.mha_values", "attention.mha_gradients"},
    ),
    "mask_fill_zero": (
        {"attention": [('scores = scores.masked_fill(~mask, float("-inf"))',
                        "scores = scores.masked_fill(~mask, 0.0)")]},
        ["attention"],
        {"attention.sdpa_values", "attention.sdpa_gradients", "attention.sdpa_masking",
         "attention.mha_values", "attention.mha_gradients"},
    ),
    "weights_detached": (
        {"attention": [("weights = F.softmax(scores, dim=-1)",
                        "weights = F.softmax(scores, dim=-1).detach()")]},
        ["attention"],
        {"attention.sdpa_gradients", "attention.mha_gradients"},
    ),
    "returns_only_output": (
        {"attention": [("    return out, weights\n", "    return out\n"),
                       ("y, _ = scaled_dot_product_attention(q, k, v, mask)",
                        "y = scaled_dot_product_attention(q, k, v, mask)")]},
        ["attention"],
        {"attention.sdpa_shapes", "attention.sdpa_values", "attention.sdpa_gradients",
         "attention.sdpa_masking"},
    ),
    "heads_merged_without_transpose": (
        {"attention": [("y = y.transpose(1, 2).contiguous().view(B, T, C)",
                        "y = y.contiguous().view(B, T, C)")]},
        ["attention"],
        {"attention.mha_values", "attention.mha_gradients"},
    ),
    "qkv_order": (
        {"attention": [("q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)",
                        "k, q, v = self.c_attn(x).split(self.n_embd, dim=-1)")]},
        ["attention"],
        {"attention.mha_values", "attention.mha_gradients"},
    ),
    "misnamed_projection": (
        {"attention": [("self.c_proj = nn.Linear(n_embd, n_embd)",
                        "self.out_proj = nn.Linear(n_embd, n_embd)"),
                       ("return self.c_proj(y)", "return self.out_proj(y)")]},
        ["attention"],
        {"attention.mha_shapes", "attention.mha_values", "attention.mha_gradients"},
    ),
    "mask_strict_diagonal": (
        {"causal_mask": [(".tril(diagonal=offset)", ".tril(diagonal=offset - 1)")]},
        ["causal_mask"],
        {"causal_mask.mask_table", "causal_mask.csa_values", "causal_mask.csa_gradients",
         "causal_mask.csa_no_nan"},
    ),
    "mask_ignores_offset": (
        {"causal_mask": [(".tril(diagonal=offset)", ".tril(diagonal=0)")]},
        ["causal_mask"],
        {"causal_mask.mask_table"},
    ),
    "mask_inverted": (
        {"causal_mask": [("return torch.ones(t_q, t_k, dtype=torch.bool, device=device)"
                          ".tril(diagonal=offset)",
                          "return ~torch.ones(t_q, t_k, dtype=torch.bool, device=device)"
                          ".tril(diagonal=offset)")]},
        ["causal_mask"],
        {"causal_mask.mask_table", "causal_mask.csa_values", "causal_mask.csa_gradients",
         "causal_mask.csa_causality", "causal_mask.csa_no_nan"},
    ),
    "no_mask_in_attention": (
        {"causal_mask": [("return super().forward(x, mask)", "return super().forward(x)")]},
        ["causal_mask"],
        {"causal_mask.csa_values", "causal_mask.csa_gradients", "causal_mask.csa_causality"},
    ),
    "attention_output_last_position_only": (
        {"causal_mask": [("return super().forward(x, mask)",
                          "return super().forward(x, mask)[:, -1:]")]},
        ["causal_mask"],
        {"causal_mask.csa_shapes", "causal_mask.csa_values", "causal_mask.csa_gradients",
         "causal_mask.csa_causality"},
    ),
    "exact_gelu": (
        {"block": [('self.gelu = nn.GELU(approximate="tanh")', "self.gelu = nn.GELU()")]},
        ["block"],
        {"block.mlp_values", "block.block_values", "block.block_gradients", "block.gpt_logits",
         "block.gpt_gradients"},
    ),
    "post_norm": (
        {"block": [("x = x + self.attn(self.ln_1(x))", "x = self.ln_1(x + self.attn(x))"),
                   ("x = x + self.mlp(self.ln_2(x))", "x = self.ln_2(x + self.mlp(x))")]},
        ["block"],
        {"block.block_values", "block.block_gradients", "block.gpt_logits",
         "block.gpt_gradients"},
    ),
    "missing_residual": (
        {"block": [("x = x + self.mlp(self.ln_2(x))", "x = self.mlp(self.ln_2(x))")]},
        ["block"],
        {"block.block_values", "block.block_gradients", "block.gpt_logits",
         "block.gpt_gradients"},
    ),
    "copied_lm_head": (
        {"block": [("self.lm_head.weight = self.transformer.wte.weight",
                    "self.lm_head.weight.data.copy_(self.transformer.wte.weight.data)")]},
        ["block"],
        {"block.gpt_weight_tying", "block.gpt_param_count", "block.gpt_gradients"},
    ),
    "unscaled_residual_init": (
        {"block": [("std=0.02 / math.sqrt(2 * config.n_layer)", "std=0.02")]},
        ["block"],
        {"block.gpt_init"},
    ),
    "pytorch_default_init": (
        {"block": [("self.apply(init_weights)", "pass")]},
        ["block"],
        {"block.gpt_init", "block.gpt_init_loss"},
    ),
    "position_embedding_detached": (
        {"block": [("x = self.transformer.wte(idx) + self.transformer.wpe(pos)",
                    "x = self.transformer.wte(idx) + self.transformer.wpe(pos).detach()")]},
        ["block"],
        {"block.gpt_gradients"},
    ),
    "no_final_layernorm": (
        {"block": [("x = self.transformer.ln_f(x)", "x = x")]},
        ["block"],
        {"block.gpt_logits", "block.gpt_gradients"},
    ),
    "last_position_logits_only": (
        {"block": [("logits = self.lm_head(x)",
                    "logits = self.lm_head(x) if targets is not None else "
                    "self.lm_head(x[:, [-1], :])")]},
        ["block"],
        {"block.gpt_logits", "block.gpt_shapes"},
    ),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_fails_exactly_its_checks(bug, tmp_path):
    edits, assignments, expected = BUGS[bug]
    result = grade_folder(plant(tmp_path, edits), assignments)
    got = failing(result)
    assert got == expected, f"{bug}: failing {sorted(got)}"
    for _, c in result.all_checks():
        if c.status is not Status.PASSED:
            assert c.score == 0 and c.message, c
            assert "internal grader error" not in c.message


def test_every_core_check_is_aimed_at_by_a_planted_bug():
    aimed = set().union(*(expected for _, _, expected in BUGS.values()))
    for name in CORE:
        for check in ASSIGNMENTS[name].checks:
            assert f"{name}.{check.id}" in aimed, f"no planted bug fails {name}.{check.id}"
