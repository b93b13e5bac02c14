"""The known mistakes of loading GPT-2's weights (reference/gpt2_loading.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import S43, Mistake, register

register(
    Mistake(
        "conv1d_not_transposed", "a Conv1D weight is loaded without its transpose (the square "
                                 "attn.c_proj)",
        "Hugging Face's Conv1D stores weights (in, out); nn.Linear wants (out, in): transpose "
        "ALL four of attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj, by name. attn.c_proj "
        "is square, so its missing transpose never shows in the shapes; only the logits tell.",
        S43 + " (Conv1D vs nn.Linear weight transposition; logit comparison)",
        plant={"gpt2_loading": [("if key.endswith(_CONV1D):",
                                 "if w.shape != ours[ours_name].shape:")]},
    ),
)

GPT2_LOADING = ("conv1d_not_transposed",)
