"""The diagnosis on bugs as students write them: a corpus of realistic mistakes in the first three
assignments, each written in a student's own words (other names, other calls, other layouts than
the catalogue's plants), graded end to end. Each entry says which check must fail and which
catalogued mistake that check should name.

The measure (printed, and held to issue 16's targets): at least 80 % of the corpus named
correctly in its aimed check, none named wrongly anywhere (a "one of ..." that includes the right
mistake is not wrong, only not named; one that does not include it is wrong), and no correct
style losing a point (``tests/checks/test_examples.py``).

Bugs that cannot meet share a submission: an attention bug is graded by the attention checks, a
``causal_mask`` bug by ``mask_table`` (which calls ``causal_mask`` alone), so one submission
carries one of each and is graded on those two assignments. Bugs of ``block.py`` get a
submission of their own.
"""

from __future__ import annotations

from conftest import grade_folder, plant

from grader.model.results import Status

SCALE = "scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)"
FILL = 'scores = scores.masked_fill(~mask, float("-inf"))'
SOFTMAX = "weights = F.softmax(scores, dim=-1)"
SPLIT = "q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)"
HEADS = "\n".join(f"        {n} = {n}.view(B, T, self.n_head, hd).transpose(1, 2)" for n in "qkv")
MERGE = "y = y.transpose(1, 2).contiguous().view(B, T, C)"
SDPA_CALL = "y, _ = scaled_dot_product_attention(q, k, v, mask)"
MASK = "return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=offset)"
IDX = ("rows = torch.arange(t_q, device=device).unsqueeze(1)\n"
       "    cols = torch.arange(t_k, device=device).unsqueeze(0)\n    ")
ATTN = "x = x + self.attn(self.ln_1(x))"
MLPB = "x = x + self.mlp(self.ln_2(x))"
FFN = "return self.c_proj(self.gelu(self.c_fc(x)))"
LOSS = "loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))"
POS = "pos = torch.arange(T, dtype=torch.long, device=idx.device)"
EMB = "x = self.transformer.wte(idx) + self.transformer.wpe(pos)"

# bug id -> (module, edits, aimed check, the mistake it should name)
ATTENTION_BUGS = {
    "divides_by_d_k": ("attention", [(SCALE, "scores = q @ k.transpose(-2, -1) / d_k")],
                       "attention.sdpa_values", "scale_d_k"),
    "multiplies_by_sqrt": ("attention", [(SCALE, "scores = q.matmul(k.transpose(-1, -2)) "
                                                 "* d_k ** 0.5")],
                           "attention.sdpa_values", "scale_multiplied"),
    "scales_by_d_v": ("attention", [(SCALE, "scores = q @ k.mT / math.sqrt(v.shape[-1])")],
                      "attention.sdpa_values", "scale_d_v"),
    "forgets_scale": ("attention", [(SCALE, "scores = q.matmul(k.transpose(-2, -1))")],
                      "attention.sdpa_values", "no_scale"),
    "softmax_dim_minus_2": ("attention", [(SOFTMAX, "weights = scores.softmax(-2)")],
                            "attention.sdpa_values", "softmax_wrong_axis"),
    "fill_minus_1e4": ("attention", [(FILL, "scores = scores.masked_fill(mask == 0, -10000.0)")],
                       "attention.sdpa_masking", "mask_fill_large_negative"),
    "fills_allowed": ("attention", [(FILL, "scores = scores.masked_fill(mask.bool(), "
                                           "float('-inf'))")],
                      "attention.sdpa_values", "mask_fill_inverted"),
    "multiplies_scores_by_mask": ("attention", [(FILL, "scores = scores * mask")],
                                  "attention.sdpa_values", "mask_fill_zero"),
    "zeros_weights_after_softmax": ("attention", [
        (FILL, "pass"), (SOFTMAX, "weights = F.softmax(scores, dim=-1)\n"
                                  "    if mask is not None:\n"
                                  "        weights = weights * mask.to(weights.dtype)")],
        "attention.sdpa_values", "mask_after_softmax"),
    "no_output_projection": ("attention", [("return self.c_proj(y)", "return y")],
                             "attention.mha_values", "c_proj_not_applied"),
    "one_big_head": ("attention", [(HEADS, "        q, k, v = (t.unsqueeze(1) for t in (q, k, v))"),
                                   (MERGE, "y = y.squeeze(1)")],
                     "attention.mha_values", "heads_not_split"),
    "merge_without_transpose": ("attention", [(MERGE, "y = y.reshape(B, T, C)")],
                                "attention.mha_values", "heads_merged_without_transpose"),
    "chunk_k_q_v": ("attention", [(SPLIT, "k, q, v = self.c_attn(x).chunk(3, dim=2)")],
                    "attention.mha_values", "qkv_order"),
    "scale_by_embedding_width": ("attention", [(SDPA_CALL, (
        "att = q.matmul(k.transpose(2, 3)) / (self.n_embd ** 0.5)\n"
        "        if mask is not None:\n"
        "            att = att.masked_fill(~mask, float('-inf'))\n"
        "        y = att.softmax(dim=-1) @ v"))],
        "attention.mha_values", "scale_d_model"),
    "reshape_straight_into_heads": ("attention", [(HEADS, "\n".join(
        f"        {n} = {n}.reshape(B, self.n_head, T, hd)" for n in "qkv"))],
        "attention.mha_values", "heads_split_without_transpose"),
    "qkv_cut_per_head": ("attention", [(SPLIT, (
        "qkv = self.c_attn(x).reshape(B, T, self.n_head, 3, hd)\n"
        "        q, k, v = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]"))],
        "attention.mha_values", "qkv_interleaved_per_head"),
}
MASK_BUGS = {
    "diagonal_sign_flipped": ("causal_mask", [(MASK, "return torch.tril(torch.ones(t_q, t_k, "
                                                     "device=device), diagonal=t_q - t_k).bool()")],
                              "causal_mask.mask_table", "mask_offset_wrong_sign"),
    "true_means_blocked": ("causal_mask", [(MASK, "return torch.triu(torch.ones(t_q, t_k, "
                                                  "device=device), diagonal=offset + 1) == 1")],
                           "causal_mask.mask_table", "mask_inverted"),
    "strictly_before": ("causal_mask", [(MASK, IDX + "return cols < rows + offset")],
                        "causal_mask.mask_table", "mask_excludes_diagonal"),
    "square_tril": ("causal_mask", [(MASK, "return torch.tril(torch.ones(t_q, t_k, "
                                           "dtype=torch.bool, device=device))")],
                    "causal_mask.mask_table", "mask_ignores_offset"),
    "float_mask": ("causal_mask", [(MASK, "return torch.ones(t_q, t_k, device=device)"
                                          ".tril(offset)")],
                   "causal_mask.mask_table", "mask_not_bool"),
    "one_step_ahead": ("causal_mask", [(MASK, IDX + "return cols <= rows + offset + 1")],
                       "causal_mask.mask_table", "mask_includes_future"),
}
BLOCK_BUGS = {
    "exact_gelu_functional": ("block", [(FFN, "return self.c_proj(F.gelu(self.c_fc(x)))")],
                              "block.mlp_values", "exact_gelu"),
    "relu_mlp": ("block", [(FFN, "h = torch.relu(self.c_fc(x))\n        return self.c_proj(h)")],
                 "block.mlp_values", "relu_instead_of_gelu"),
    "linear_mlp": ("block", [(FFN, "return self.c_proj(self.c_fc(x))  # TODO activation")],
                   "block.mlp_values", "no_activation"),
    "gelu_first": ("block", [(FFN, "x = self.gelu(x)\n        return self.c_proj(self.c_fc(x))")],
                   "block.mlp_values", "gelu_misplaced"),
    "dropout_always_on": ("block", [(FFN, "return F.dropout(self.c_proj(self.gelu(self.c_fc(x))), "
                                          "p=0.1)")],
                          "block.mlp_values", "eval_dropout"),
    "swapped_norms": ("block", [(ATTN, "x = x + self.attn(self.ln_2(x))"),
                                (MLPB, "x = x + self.mlp(self.ln_1(x))")],
                      "block.block_values", "layernorms_swapped"),
    "post_norm_written_out": ("block", [(ATTN, "h = x + self.attn(x)\n        x = self.ln_1(h)"),
                                        (MLPB, "h = x + self.mlp(x)\n        x = self.ln_2(h)")],
                              "block.block_values", "post_norm"),
    "normalises_the_stream": ("block", [(ATTN, "h = self.ln_1(x)\n        x = h + self.attn(h)"),
                                        (MLPB, "h = self.ln_2(x)\n        x = h + self.mlp(h)")],
                              "block.block_values", "residual_after_norm"),
    "mlp_replaces_stream": ("block", [(MLPB, "x = self.mlp(self.ln_2(x))")],
                            "block.block_values", "missing_residual_mlp"),
    "eps_1e_6": ("block", [("self.ln_1 = nn.LayerNorm(n_embd)",
                            "self.ln_1 = nn.LayerNorm(n_embd, eps=1e-6)"),
                           ("self.ln_2 = nn.LayerNorm(n_embd)",
                            "self.ln_2 = nn.LayerNorm(n_embd, eps=1e-6)"),
                           ('"ln_f": nn.LayerNorm(C),', '"ln_f": nn.LayerNorm(C, eps=1e-6),')],
                 "block.block_values", "layernorm_eps"),
    "forgets_ln_f": ("block", [("x = self.transformer.ln_f(x)", "")],
                     "block.gpt_logits", "missing_final_layernorm"),
    "positions_from_one": ("block", [(POS, "pos = torch.arange(1, T + 1, device=idx.device)")],
                           "block.gpt_logits", "positions_from_1"),
    "sqrt_d_embedding": ("block", [(EMB, "x = self.transformer.wte(idx) * (self.config.n_embd "
                                         "** 0.5) + self.transformer.wpe(pos)")],
                         "block.gpt_logits", "embedding_scaled"),
    "no_positions": ("block", [(EMB, "tok = self.transformer.wte(idx)\n        x = tok")],
                     "block.gpt_logits", "missing_position_embeddings"),
    "summed_loss": ("block", [(LOSS, "loss = F.cross_entropy(logits.flatten(0, 1), "
                                     "targets.flatten(), reduction='sum')")],
                    "block.gpt_logits", "loss_summed"),
    "shifts_targets_again": ("block", [(LOSS, "loss = F.cross_entropy(logits[:, :-1].reshape("
                                              "-1, logits.size(-1)), targets[:, 1:].reshape(-1))")],
                             "block.gpt_logits", "targets_shifted_twice"),
    "residual_init_sqrt_n_layer": ("block", [("std=0.02 / math.sqrt(2 * config.n_layer)",
                                              "std=0.02 * config.n_layer ** -0.5")],
                                   "block.gpt_init", "residual_init_without_2"),
    "embeddings_left_default": ("block", [(
        "elif isinstance(module, nn.Embedding):\n"
        "                nn.init.normal_(module.weight, mean=0.0, std=0.02)",
        "elif isinstance(module, nn.Embedding):\n                pass")],
        "block.gpt_init", "embedding_init_missing"),
    "separate_lm_head": ("block", [("self.lm_head.weight = self.transformer.wte.weight", "")],
                         "block.gpt_weight_tying", "untied_embeddings"),
}
CORPUS = {**ATTENTION_BUGS, **MASK_BUGS, **BLOCK_BUGS}


def _submissions() -> dict[str, tuple[list[str], list[str]]]:
    """Submission name -> (bug ids, assignments graded)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    masks = list(MASK_BUGS)
    for i, bug in enumerate(ATTENTION_BUGS):
        bugs = [bug] + ([masks[i]] if i < len(masks) else [])
        out["+".join(bugs)] = (bugs, ["attention", "causal_mask"] if len(bugs) > 1
                               else ["attention"])
    for bug in BLOCK_BUGS:
        out[bug] = ([bug], ["block"])
    return out


SUBMISSIONS = _submissions()


def _verdict(details: dict, mistake_id: str) -> str:
    lm = details.get("likely_mistake")
    if not lm:
        return "unnamed"
    if lm["id"] == mistake_id:
        return "named"
    if mistake_id in lm.get("candidates", []):
        return "unnamed"  # "one of ...", the right one among them
    return f"wrong: {lm['id']}"


def _grade(name: str, tmp_path) -> tuple[dict[str, str], list[str]]:
    """Grade one submission of the corpus: each bug's outcome, and the problems seen."""
    bugs, assignments = SUBMISSIONS[name]
    edits: dict[str, list[tuple[str, str]]] = {}
    for bug in bugs:
        module, pairs, _, _ = CORPUS[bug]
        edits.setdefault(module, []).extend(pairs)
    result = grade_folder(plant(tmp_path, edits, name=name.replace("+", "_")), assignments)
    checks = {f"{a}.{c.id}": c for a, c in result.all_checks()}
    planted = {CORPUS[b][3] for b in bugs}
    outcomes, problems = {}, []
    for bug in bugs:
        _, _, aimed, mistake_id = CORPUS[bug]
        check = checks[aimed]
        if check.status is not Status.FAILED:
            problems.append(f"{bug}: {aimed} is {check.status.value}: {check.message[:100]}")
        outcomes[bug] = _verdict(check.details or {}, mistake_id)
        lm = (check.details or {}).get("likely_mistake")
        if outcomes[bug] == "named" and check.hint != lm["hint"]:
            problems.append(f"{bug}: the hint is not the named mistake's")
    # Never a wrong name on any check: every name given is one of the planted mistakes, and
    # every "one of ..." includes one of them.
    for key, c in checks.items():
        d = c.details or {}
        lm = d.get("likely_mistake")
        if lm and (c.status is Status.PASSED or not (
                lm["id"] in planted or set(lm.get("candidates", [])) & planted)):
            problems.append(f"{name}: {key} names {lm['id']} ({c.status.value})")
        if "diagnosis_error" in d:
            problems.append(f"{name}: {key} diagnosis error {d['diagnosis_error']}")
    return outcomes, problems


def test_realistic_bugs_are_failed_and_named(tmp_path):
    """Every bug of the corpus fails its aimed check; at least 80 % are named correctly there,
    none wrongly anywhere. Prints the measure."""
    outcomes: dict[str, str] = {}
    problems: list[str] = []
    for name in SUBMISSIONS:
        got, seen = _grade(name, tmp_path)
        outcomes.update(got)
        problems += seen
    named = sorted(b for b, o in outcomes.items() if o == "named")
    wrong = {b: o for b, o in outcomes.items() if o.startswith("wrong")}
    unnamed = sorted(b for b, o in outcomes.items() if o == "unnamed")
    share = len(named) / len(CORPUS)
    print(f"\ndiagnosis corpus: {len(named)}/{len(CORPUS)} named correctly ({share:.0%}), "
          f"{len(wrong)} wrongly; unnamed: {unnamed}")
    assert not problems, problems
    assert not wrong, wrong
    assert share >= 0.8, unnamed
