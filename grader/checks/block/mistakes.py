"""The known mistakes of the block and the GPT model (reference/block.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.checks.causal_mask.mistakes import CAUSAL_ATTENTION
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

# The mistakes a check compares, in the order it compares them.
MLP = ("exact_gelu", "relu_instead_of_gelu")
BLOCK = CAUSAL_ATTENTION + MLP + ("post_norm", "missing_residual_attn", "missing_residual_mlp")
GPT = BLOCK + ("missing_final_layernorm", "missing_position_embeddings", "untied_embeddings")
INIT = ("unscaled_residual_init", "default_init")
