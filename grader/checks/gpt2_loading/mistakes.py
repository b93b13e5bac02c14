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

EPS = "    return model.eval()\n    # END SOLUTION"


def _eps(value: str):
    return {"gpt2_loading": [(EPS, "    for m in model.modules():\n"
                                  "        if isinstance(m, torch.nn.LayerNorm):\n"
                                  f"            m.eps = {value}\n" + EPS)]}


register(
    Mistake(
        "loader_changes_ln_eps", "the loader changes the LayerNorms' eps",
        "GPT-2's LayerNorms use eps = 1e-5 (config.json's layer_norm_epsilon, nn.LayerNorm's "
        "default): the loader copies weights and must leave the modules of your GPT as built.",
        S43 + " (loading real weights)", plant=_eps("1e-12"),
        flavours={"1e-6": _eps("1e-6"), "1e-8": _eps("1e-8"), "zero": _eps("0.0")},
    ),
    Mistake(
        "tie_broken_by_loader", "the loader breaks the tie between lm_head and wte",
        "Copy the checkpoint's wte into the existing parameter (with torch.no_grad(): "
        "p.copy_(w)), or load_state_dict without assign=True; never give lm_head a Parameter "
        "of its own: lm_head.weight must stay the very tensor transformer.wte.weight.",
        S43 + " (weight tying)",
    ),
)

GPT2_LOADING = ("conv1d_not_transposed", "loader_changes_ln_eps")
