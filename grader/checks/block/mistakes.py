"""The known mistakes of the block and the GPT model (reference/block.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import S41, S42, S43, Mistake, register

GELU = 'self.gelu = nn.GELU(approximate="tanh")'
ATTN_BRANCH = "x = x + self.attn(self.ln_1(x))"
MLP_BRANCH = "x = x + self.mlp(self.ln_2(x))"

register(
    Mistake(
        "exact_gelu", "the MLP uses the exact GELU where GPT-2's tanh approximation is expected",
        "GPT-2's GELU is the tanh approximation: nn.GELU(approximate=\"tanh\"). The exact "
        "nn.GELU() differs by up to ~1e-3, enough to change GPT-2's logits.",
        f"{S42} (FFN structure: 4x expansion, GELU)",
        plant={"block": [(GELU, "self.gelu = nn.GELU()")]},
    ),
    Mistake(
        "relu_instead_of_gelu", "the MLP uses ReLU instead of GELU",
        "The FFN's activation is GELU (tanh approximation): nn.GELU(approximate=\"tanh\"), "
        "not ReLU.",
        f"{S42} (FFN structure: 4x expansion, GELU)",
        plant={"block": [(GELU, "self.gelu = nn.ReLU()")]},
    ),
    Mistake(
        "post_norm", "the block normalises after the residual addition (post-norm)",
        "GPT-2 is pre-norm: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)). The LayerNorm goes "
        "inside each branch and keeps the residual stream clean.",
        f"{S42} (pre-norm vs post-norm)",
        plant={"block": [(ATTN_BRANCH, "x = self.ln_1(x + self.attn(x))"),
                         (MLP_BRANCH, "x = self.ln_2(x + self.mlp(x))")]},
    ),
    Mistake(
        "missing_residual_attn", "the attention branch is not added back to its input "
                                 "(missing residual)",
        "The residual stream is a shared document: each sub-layer's output is ADDED to it, not "
        "substituted: x = x + attn(ln_1(x)).",
        f"{S42} (residual stream)",
        plant={"block": [(ATTN_BRANCH, "x = self.attn(self.ln_1(x))")]},
    ),
    Mistake(
        "missing_residual_mlp", "the MLP branch is not added back to its input "
                                "(missing residual)",
        "The residual stream is a shared document: each sub-layer's output is ADDED to it, not "
        "substituted: x = x + mlp(ln_2(x)).",
        f"{S42} (residual stream)",
        plant={"block": [(MLP_BRANCH, "x = self.mlp(self.ln_2(x))")]},
    ),
    Mistake(
        "missing_final_layernorm", "the final LayerNorm (ln_f) is not applied",
        "The full GPT: embeddings -> N blocks -> final layer norm (transformer.ln_f) -> output "
        "projection. Apply ln_f to the last block's output before lm_head.",
        f"{S42} (full GPT architecture end-to-end)",
        plant={"block": [("x = self.transformer.ln_f(x)", "x = x")]},
    ),
    Mistake(
        "missing_position_embeddings", "the position embeddings are not added",
        "Without position, embeddings are a bag of words: the model's input is token embedding "
        "+ position embedding, wte(idx) + wpe(arange(T)).",
        f"{S41} (token embedding + positional encoding = model input)",
        plant={"block": [("x = self.transformer.wte(idx) + self.transformer.wpe(pos)",
                          "x = self.transformer.wte(idx)")]},
    ),
    Mistake(
        "untied_embeddings", "lm_head holds a copy of the token embedding instead of the same "
                             "(tied) weight",
        "Weight tying means ONE Parameter used twice: self.lm_head.weight = "
        "self.transformer.wte.weight. A copy has its own storage and gradients (check with "
        "data_ptr()) and adds vocab_size x n_embd parameters.",
        f"{S43} (weight tying)",
        plant={"block": [("self.lm_head.weight = self.transformer.wte.weight",
                          "self.lm_head.weight.data.copy_(self.transformer.wte.weight.data)")]},
    ),
    Mistake(
        "unscaled_residual_init", "the residual projections (c_proj) are not initialised with "
                                  "the scaled std 0.02/sqrt(2 n_layer)",
        "Initialise weights with normal sigma = 0.02, then every c_proj.weight with "
        "0.02/sqrt(2 * n_layer): each block adds two contributions to the residual stream, and "
        "the scaling keeps its variance from growing with depth.",
        f"{S43} (weight initialization: scaled residual projections)",
        plant={"block": [("std=0.02 / math.sqrt(2 * config.n_layer)", "std=0.02")]},
    ),
    Mistake(
        "default_init", "the weights keep PyTorch's default initialisation",
        "Initialise every nn.Linear and nn.Embedding weight with normal sigma = 0.02 (biases 0), "
        "e.g. with self.apply(init_fn); PyTorch's defaults (N(0, 1) embeddings, uniform "
        "linears) make activations grow layer after layer.",
        f"{S43} (weight initialization)",
        plant={"block": [("self.apply(init_weights)", "pass")]},
        flavours={"no_init_at_all": {"block": [
            ("self.apply(init_weights)", "pass"),
            ("nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))",
             "pass")]}},
    ),
)

LOSS = "loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))"
FFN = "return self.c_proj(self.gelu(self.c_fc(x)))"


def _eps(value: str) -> list[tuple[str, str]]:
    # Used inside dict literals keyed by module: a student bundle keeps the keys.
    return [("self.ln_1 = nn.LayerNorm(n_embd)", f"self.ln_1 = nn.LayerNorm(n_embd, eps={value})"),
            ("self.ln_2 = nn.LayerNorm(n_embd)", f"self.ln_2 = nn.LayerNorm(n_embd, eps={value})"),
            ('"ln_f": nn.LayerNorm(C),', f'"ln_f": nn.LayerNorm(C, eps={value}),')]


register(
    Mistake(
        "layernorms_swapped", "the two LayerNorms are swapped (ln_2 before the attention, ln_1 "
                              "before the MLP)",
        "Each sub-layer has its own LayerNorm: x = x + attn(ln_1(x)), then "
        "x = x + mlp(ln_2(x)). The names matter: GPT-2's weights for ln_1 belong to the "
        "attention branch.",
        f"{S42} (pre-norm blocks)",
        plant={"block": [(ATTN_BRANCH, "x = x + self.attn(self.ln_2(x))"),
                         (MLP_BRANCH, "x = x + self.mlp(self.ln_1(x))")]},
    ),
    Mistake(
        "residual_after_norm", "the residual adds the normalised x instead of the block's input",
        "Pre-norm normalises only the branch's input: x = x + attn(ln_1(x)). Writing "
        "x = ln_1(x) first makes the residual stream itself normalised, losing the clean path "
        "from input to output.",
        f"{S42} (pre-norm vs post-norm; residual stream)",
        plant={"block": [(ATTN_BRANCH, "x = self.ln_1(x)\n        x = x + self.attn(x)"),
                         (MLP_BRANCH, "x = self.ln_2(x)\n        x = x + self.mlp(x)")]},
    ),
    Mistake(
        "gelu_misplaced", "the GELU is applied in the wrong place in the MLP",
        "The MLP is c_proj(gelu(c_fc(x))): expand to 4C, apply the non-linearity to the "
        "expanded hidden layer, project back to C.",
        f"{S42} (FFN structure: 4x expansion, GELU)",
        plant={"block": [(FFN, "return self.c_proj(self.c_fc(self.gelu(x)))")]},
        flavours={"after_c_proj": {"block": [
            (FFN, "return self.gelu(self.c_proj(self.c_fc(x)))")]}},
    ),
    Mistake(
        "no_activation", "the MLP has no activation (GELU) between c_fc and c_proj",
        "Without the non-linearity, c_proj(c_fc(x)) is one linear map: apply "
        "gelu = nn.GELU(approximate=\"tanh\") to the hidden layer, c_proj(gelu(c_fc(x))).",
        f"{S42} (FFN structure: 4x expansion, GELU)",
        plant={"block": [(FFN, "return self.c_proj(self.c_fc(x))")]},
    ),
    Mistake(
        "positions_from_1", "the positions start at 1 instead of 0",
        "Positions are 0 .. T-1: pos = torch.arange(T). Starting at 1 shifts every position "
        "embedding and runs past the table at T = block_size.",
        f"{S41} (token embedding + positional encoding = model input)",
        plant={"block": [("pos = torch.arange(T, dtype=torch.long, device=idx.device)",
                          "pos = torch.arange(1, T + 1, dtype=torch.long, device=idx.device)")]},
    ),
    Mistake(
        "embedding_scaled", "the token embeddings are multiplied by sqrt(n_embd)",
        "GPT-2 adds the token and position embeddings as they are: wte(idx) + wpe(pos). The "
        "sqrt(d_model) factor belongs to the original Transformer's sinusoidal setup, not here.",
        f"{S41} (token embedding + positional encoding = model input)",
        plant={"block": [("x = self.transformer.wte(idx) + self.transformer.wpe(pos)",
                          "x = self.transformer.wte(idx) * math.sqrt(self.config.n_embd) + "
                          "self.transformer.wpe(pos)")]},
    ),
    Mistake(
        "layernorm_eps", "the LayerNorms use another eps than PyTorch's default 1e-5",
        "GPT-2's LayerNorm uses eps = 1e-5, nn.LayerNorm's default: keep nn.LayerNorm(n_embd) "
        "(or eps=1e-5 in your own LayerNorm). Another eps changes the output wherever the "
        "variance is small.",
        f"{S42} (layer normalisation)",
        plant={"block": _eps("1e-6")},
        flavours={"1e-12": {"block": _eps("1e-12")}, "1e-3": {"block": _eps("1e-3")}},
    ),
    Mistake(
        "eval_dropout", "the forward pass is random in eval mode (dropout that ignores "
                        "model.eval())",
        "The graded modules have no dropout; if you add one, use nn.Dropout modules (which "
        "model.eval() turns off), never F.dropout(x, p) without training=self.training. Two "
        "calls on the same input in eval mode must give the same output.",
        f"{S43} (train vs eval mode)",
    ),
    Mistake(
        "targets_shifted_twice", "the loss shifts the targets again (they are already the next "
                                 "tokens)",
        "targets[b, t] is already the token that follows idx[b, t]: compare every position, "
        "F.cross_entropy(logits.view(-1, V), targets.view(-1)), without dropping the last logit "
        "or the first target.",
        f"{S43} (next-token prediction loss)",
        plant={"block": [(LOSS, "loss = F.cross_entropy(logits[:, :-1].reshape(-1, "
                                "logits.size(-1)), targets[:, 1:].reshape(-1))")]},
    ),
    Mistake(
        "loss_summed", "the loss is summed over the positions instead of averaged",
        "The loss is the MEAN cross-entropy over every position (F.cross_entropy's default "
        "reduction): a sum grows with B*T and changes the learning rate's meaning.",
        f"{S43} (next-token prediction loss)",
        plant={"block": [(LOSS, LOSS[:-1] + ', reduction="sum")')]},
    ),
    Mistake(
        "embedding_init_missing", "the embeddings keep PyTorch's N(0, 1) initialisation",
        "Initialise nn.Embedding weights like the linears, normal with std 0.02 (the position "
        "embedding wpe too; wte is tied to lm_head). PyTorch's default N(0, 1) is 50 times "
        "larger.",
        f"{S43} (weight initialization)",
        plant={"block": [("elif isinstance(module, nn.Embedding):",
                          "elif isinstance(module, type(None)):")]},
    ),
    Mistake(
        "num_parameters_counts_tied_twice", "num_parameters() counts the tied wte/lm_head "
                                            "matrix twice",
        "The tied matrix is ONE Parameter used twice: count it once, e.g. "
        "sum(p.numel() for p in self.parameters()) (parameters() yields each Parameter once; "
        "named_parameters(remove_duplicate=False) or a sum over state_dict() counts it twice).",
        f"{S43} (weight tying)",
    ),
    Mistake(
        "residual_init_without_2", "the residual projections use 0.02/sqrt(n_layer) (the factor "
                                   "2 is missing)",
        "Each block adds TWO contributions to the residual stream (attention and MLP), so the "
        "c_proj weights get std 0.02/sqrt(2 * n_layer).",
        f"{S43} (weight initialization: scaled residual projections)",
        plant={"block": [("std=0.02 / math.sqrt(2 * config.n_layer)",
                          "std=0.02 / math.sqrt(config.n_layer)")]},
    ),
)
