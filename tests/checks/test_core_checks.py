"""Every check of the first three assignments passes a correct submission and fails a bug aimed
at it. One parametrised contract test per assignment, driven by that assignment's bug list: each
bug is planted in a copy of the correct example and graded on its assignment; the entry names
exactly which checks must fail and which catalogued mistake the failing checks name (``None``:
no check may name any), so a check that stops catching its bug, starts failing correct code, or
names a mistake that is not there, is caught."""

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


# Each list: bug id -> (edits, exactly the checks that must fail, the mistake they name).
ATTENTION_BUGS = {
    'no_scale': (
        {'attention': [('scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)',
                        'scores = q @ k.transpose(-2, -1)')]},
        {'attention.mha_gradients',
         'attention.mha_values',
         'attention.sdpa_gradients',
         'attention.sdpa_values'},
        'no_scale',
    ),
    'softmax_wrong_axis': (
        {'attention': [('weights = F.softmax(scores, dim=-1)',
                        'weights = F.softmax(scores, dim=-2)')]},
        {'attention.mha_gradients',
         'attention.mha_values',
         'attention.sdpa_gradients',
         'attention.sdpa_masking',
         'attention.sdpa_values'},
        'softmax_wrong_axis',
    ),
    'mask_after_softmax': (
        {'attention': [('scores = scores.masked_fill(~mask, float("-inf"))', 'pass'),
                       ('    weights = F.softmax(scores, dim=-1)\n',
                        '    weights = F.softmax(scores, dim=-1)\n'
                        '    if mask is not None:\n'
                        '        weights = weights.masked_fill(~mask, 0.0)\n')]},
        {'attention.mha_gradients',
         'attention.mha_values',
         'attention.sdpa_gradients',
         'attention.sdpa_masking',
         'attention.sdpa_values'},
        'mask_after_softmax',
    ),
    'mask_fill_zero': (
        {'attention': [('scores = scores.masked_fill(~mask, float("-inf"))',
                        'scores = scores.masked_fill(~mask, 0.0)')]},
        {'attention.mha_gradients',
         'attention.mha_values',
         'attention.sdpa_gradients',
         'attention.sdpa_masking',
         'attention.sdpa_values'},
        'mask_fill_zero',
    ),
    'weights_detached': (
        {'attention': [('weights = F.softmax(scores, dim=-1)',
                        'weights = F.softmax(scores, dim=-1).detach()')]},
        {'attention.sdpa_gradients', 'attention.mha_gradients'},
        None,
    ),
    'returns_only_output': (
        {'attention': [('    return out, weights\n', '    return out\n'),
                       ('y, _ = scaled_dot_product_attention(q, k, v, mask)',
                        'y = scaled_dot_product_attention(q, k, v, mask)')]},
        {'attention.sdpa_gradients',
         'attention.sdpa_masking',
         'attention.sdpa_shapes',
         'attention.sdpa_values'},
        None,
    ),
    'heads_merged_without_transpose': (
        {'attention': [('y = y.transpose(1, 2).contiguous().view(B, T, C)',
                        'y = y.contiguous().view(B, T, C)')]},
        {'attention.mha_gradients', 'attention.mha_values'},
        'heads_merged_without_transpose',
    ),
    'qkv_order': (
        {'attention': [('q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)',
                        'k, q, v = self.c_attn(x).split(self.n_embd, dim=-1)')]},
        {'attention.mha_gradients', 'attention.mha_values'},
        'qkv_order',
    ),
    'misnamed_projection': (
        {'attention': [('self.c_proj = nn.Linear(n_embd, n_embd)',
                        'self.out_proj = nn.Linear(n_embd, n_embd)'),
                       ('return self.c_proj(y)', 'return self.out_proj(y)')]},
        {'attention.mha_gradients', 'attention.mha_values', 'attention.mha_shapes'},
        None,
    ),
    'fill_minus_1e4': (
        {'attention': [('scores = scores.masked_fill(~mask, float("-inf"))',
                        'scores = scores.masked_fill(~mask, -1e4)')]},
        {'attention.sdpa_masking'},
        'mask_fill_large_negative',
    ),
}

CAUSAL_MASK_BUGS = {
    'mask_strict_diagonal': (
        {'causal_mask': [('.tril(diagonal=offset)', '.tril(diagonal=offset - 1)')]},
        {'causal_mask.csa_gradients',
         'causal_mask.csa_no_nan',
         'causal_mask.csa_values',
         'causal_mask.mask_table'},
        'mask_excludes_diagonal',
    ),
    'mask_ignores_offset': (
        {'causal_mask': [('.tril(diagonal=offset)', '.tril(diagonal=0)')]},
        {'causal_mask.mask_table'},
        'mask_ignores_offset',
    ),
    'mask_inverted': (
        {'causal_mask': [('return torch.ones(t_q, t_k, dtype=torch.bool, '
                          'device=device).tril(diagonal=offset)',
                          'return ~torch.ones(t_q, t_k, dtype=torch.bool, '
                          'device=device).tril(diagonal=offset)')]},
        {'causal_mask.csa_causality',
         'causal_mask.csa_gradients',
         'causal_mask.csa_no_nan',
         'causal_mask.csa_values',
         'causal_mask.mask_table'},
        'mask_inverted',
    ),
    'no_mask_in_attention': (
        {'causal_mask': [('return super().forward(x, mask)', 'return super().forward(x)')]},
        {'causal_mask.csa_values', 'causal_mask.csa_gradients', 'causal_mask.csa_causality'},
        'mask_not_applied',
    ),
    'attention_output_last_position_only': (
        {'causal_mask': [('return super().forward(x, mask)',
                          'return super().forward(x, mask)[:, -1:]')]},
        {'causal_mask.csa_causality',
         'causal_mask.csa_gradients',
         'causal_mask.csa_shapes',
         'causal_mask.csa_values'},
        None,
    ),
    # Each position attends to itself alone: it sees no future, and no past either.
    'attends_only_to_itself': (
        {'causal_mask': [('.tril(diagonal=offset)',
                          '.tril(diagonal=offset).triu(diagonal=offset)')]},
        {'causal_mask.csa_causality',
         'causal_mask.csa_gradients',
         'causal_mask.csa_values',
         'causal_mask.mask_table'},
        None,
    ),
    'accepts_more_queries_than_keys': (
        {'causal_mask': [('    if t_q > t_k:\n', '    if False:\n')]},
        {'causal_mask.mask_errors'},
        None,
    ),
    'mask_buffer_in_state_dict': (
        {'causal_mask': [('        self.block_size = block_size\n',
                          '        self.block_size = block_size\n'
                          '        self.register_buffer("bias", causal_mask(block_size, '
                          'block_size))\n')]},
        {'causal_mask.csa_shapes'},
        None,
    ),
}

BLOCK_BUGS = {
    'exact_gelu': (
        {'block': [('self.gelu = nn.GELU(approximate="tanh")', 'self.gelu = nn.GELU()')]},
        {'block.block_gradients',
         'block.block_values',
         'block.gpt_gradients',
         'block.gpt_logits',
         'block.mlp_values'},
        'exact_gelu',
    ),
    'post_norm': (
        {'block': [('x = x + self.attn(self.ln_1(x))', 'x = self.ln_1(x + self.attn(x))'),
                   ('x = x + self.mlp(self.ln_2(x))', 'x = self.ln_2(x + self.mlp(x))')]},
        {'block.gpt_logits', 'block.gpt_gradients', 'block.block_values', 'block.block_gradients'},
        'post_norm',
    ),
    'missing_residual': (
        {'block': [('x = x + self.mlp(self.ln_2(x))', 'x = self.mlp(self.ln_2(x))')]},
        {'block.gpt_logits', 'block.gpt_gradients', 'block.block_values', 'block.block_gradients'},
        'missing_residual_mlp',
    ),
    'missing_attention_residual': (  # the probe's sure catch (+0.96..+1.76 over 20 seeds)
        {'block': [('x = x + self.attn(self.ln_1(x))', 'x = self.attn(self.ln_1(x))')]},
        {'block.gpt_logits', 'block.gpt_gradients', 'block.block_values', 'block.block_gradients',
         'block.gpt_probe'},
        'missing_residual_attn',
    ),
    'copied_lm_head': (
        {'block': [('self.lm_head.weight = self.transformer.wte.weight',
                    'self.lm_head.weight.data.copy_(self.transformer.wte.weight.data)')]},
        {'block.gpt_weight_tying', 'block.gpt_gradients', 'block.gpt_param_count'},
        'untied_embeddings',
    ),
    'unscaled_residual_init': (
        {'block': [('std=0.02 / math.sqrt(2 * config.n_layer)', 'std=0.02')]},
        {'block.gpt_init'},
        'unscaled_residual_init',
    ),
    'pytorch_default_init': (
        {'block': [('self.apply(init_weights)', 'pass')]},
        {'block.gpt_init', 'block.gpt_init_loss'},
        'default_init',
    ),
    'position_embedding_detached': (
        {'block': [('x = self.transformer.wte(idx) + self.transformer.wpe(pos)',
                    'x = self.transformer.wte(idx) + self.transformer.wpe(pos).detach()')]},
        {'block.gpt_gradients'},
        None,
    ),
    'no_final_layernorm': (
        {'block': [('x = self.transformer.ln_f(x)', 'x = x')]},
        {'block.gpt_logits', 'block.gpt_gradients'},
        'missing_final_layernorm',
    ),
    'last_position_logits_only': (
        {'block': [('logits = self.lm_head(x)',
                    'logits = self.lm_head(x) if targets is not None else self.lm_head(x[:, '
                    '[-1], :])')]},
        {'block.gpt_shapes', 'block.gpt_logits'},
        None,
    ),
    'accepts_too_long_sequences': (
        {'block': [('if T > self.config.block_size:', 'if False:')]},
        {'block.gpt_too_long'},
        None,
    ),
    'counts_tied_matrix_twice': (
        {'block': [('return sum(p.numel() for p in self.parameters())',
                    'return sum(p.numel() for _, p in '
                    'self.named_parameters(remove_duplicate=False))')]},
        {'block.gpt_param_count'},
        'one_of:num_parameters_counts_tied_twice+untied_embeddings',
    ),
    'num_parameters_not_written': (
        {'block': [('return sum(p.numel() for p in self.parameters())',
                    'raise NotImplementedError')]},
        {'block.gpt_param_count'},
        None,
    ),
}

BUGS = {"attention": ATTENTION_BUGS, "causal_mask": CAUSAL_MASK_BUGS, "block": BLOCK_BUGS}


# Checks whose verdict on a bug depends on the grading's seed. The GPT probe trains 120 steps
# from a drawn initialisation on drawn data (so that nothing trained offline answers it). Over
# 20 seeds (the probe's cosine-decayed loop; held-out loss minus the reference's, limit 0.05):
# a GPT without its MLP residual +0.007..+2.50, PyTorch's default init +0.017..+0.30, a copied
# lm_head -0.002..+0.108 and an unscaled residual init -0.010..+0.054 cross the limit under some
# seeds and not others. A post-norm GPT (at most +0.018), a detached wpe (+0.017) and a missing
# ln_f (+0.015) stayed below it, but they are real bugs the probe is not held to pass. The
# checks listed for every bug fail under every seed; the exact GELU passes the probe (+0.000)
# and a missing attention residual fails it (+0.96..+1.76) under all.
SEED_DEPENDENT = {bug: {"block.gpt_probe"} for bug in
                  ("missing_residual", "post_norm", "position_embedding_detached",
                   "no_final_layernorm", "copied_lm_head", "pytorch_default_init",
                   "unscaled_residual_init")}


def _contract(assignment: str, bug: str, tmp_path) -> None:
    edits, expected, named = BUGS[assignment][bug]
    result = grade_folder(plant(tmp_path, edits), [assignment])
    got = failing(result) - SEED_DEPENDENT.get(bug, set())
    assert got == expected, f"{bug}: failing {sorted(got)}"
    names = {}
    for a, c in result.all_checks():
        if c.status is not Status.PASSED:
            assert c.score == 0 and c.message, c
            assert "internal grader error" not in c.message, c.message
        d = c.details or {}
        assert "diagnosis_error" not in d, (c.id, d["diagnosis_error"])
        if d.get("likely_mistake"):
            names[f"{a}.{c.id}"] = d["likely_mistake"]["id"]
            assert c.status is not Status.PASSED, c.id
            assert c.hint == d["likely_mistake"]["hint"], c.id  # the diagnosis's words
    if named is None:
        assert not names, f"{bug}: names {names}"
    else:
        # Exactly the planted mistake, or "one of" a set that includes it where the check's
        # outputs cannot tell it from another (an inverted mask and an inverted fill give the
        # same attention), and named outright somewhere.
        assert named in names.values(), f"{bug}: names {names}"
        assert all(v == named or v.startswith("one_of:") and named in v[7:].split("+")
                   for v in names.values()), f"{bug}: names {names}"


@pytest.mark.parametrize("bug", sorted(ATTENTION_BUGS))
def test_attention_bug_fails_exactly_its_checks(bug, tmp_path):
    _contract("attention", bug, tmp_path)


@pytest.mark.parametrize("bug", sorted(CAUSAL_MASK_BUGS))
def test_causal_mask_bug_fails_exactly_its_checks(bug, tmp_path):
    _contract("causal_mask", bug, tmp_path)


@pytest.mark.parametrize("bug", sorted(BLOCK_BUGS))
def test_block_bug_fails_exactly_its_checks(bug, tmp_path):
    _contract("block", bug, tmp_path)


def test_every_core_check_is_aimed_at_by_a_planted_bug():
    for name in CORE:
        aimed = set().union(*(expected for _, expected, _ in BUGS[name].values()))
        for check in ASSIGNMENTS[name].checks:
            assert f"{name}.{check.id}" in aimed, f"no planted bug fails {name}.{check.id}"
