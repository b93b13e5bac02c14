"""The check that a checkpoint which is not GPT-2 (a Llama folder, a BERT state dict, a GPT-2
state dict missing one weight) raises a ValueError whose message names the problem."""

from __future__ import annotations

from typing import Any

import torch

from grader.checks import checkpoints as ck
from grader.checks.base import CheckFailed, Context, ok
from grader.checks.gpt2_loading import ASSIGNMENT, MODULE, NEEDS
from grader.checks.gpt2_loading.task import (
    TINY,
    TINY_CONFIG,
    model_config,
    share,
    tiny_weights,
)
from grader.checks.harness import seeded

check = ASSIGNMENT.check

_LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                 "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                 "num_hidden_layers": 1, "vocab_size": 99, "max_position_embeddings": 24}


def _llama_tensors() -> dict[str, torch.Tensor]:
    g = seeded(604)
    shapes = {"model.embed_tokens.weight": (99, 32), "model.norm.weight": (32,),
              "lm_head.weight": (99, 32)}
    for n in ("q", "k", "v", "o"):
        shapes[f"model.layers.0.self_attn.{n}_proj.weight"] = (32, 32)
    for n, s in (("gate", (64, 32)), ("up", (64, 32)), ("down", (32, 64))):
        shapes[f"model.layers.0.mlp.{n}_proj.weight"] = s
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _bert_tensors() -> dict[str, torch.Tensor]:
    g = seeded(605)
    shapes = {"bert.embeddings.word_embeddings.weight": (99, 32),
              "bert.embeddings.position_embeddings.weight": (24, 32),
              "bert.encoder.layer.0.attention.self.query.weight": (32, 32),
              "bert.encoder.layer.0.attention.self.key.weight": (32, 32)}
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _gpt2_names(shape: ck.HFShape) -> list[str]:
    return [n.removeprefix("transformer.") for n, _ in ck.hf_shapes(shape)]


def _not_gpt2_cases(ctx: Context) -> list[tuple[str, dict, dict, Any, list[str], list[str], str]]:
    """(label, source, tensors, config, names the message may name (any one of them is what
    the stub's contract allows: the model_type found, or a weight that is missing, unexpected
    or of the wrong shape), names it must not (weights that are there and fine), need)."""
    llama_path, _ = share(ctx, "llama", lambda folder: ck.write_checkpoint(
        folder, TINY, 0, tensors=_llama_tensors(), config=_LLAMA_CONFIG))
    weights = ck.relayout(tiny_weights(ctx), TINY, prefix=True)
    gpt2 = _gpt2_names(TINY)
    # One weight, drawn from the run's secret seed, is left out: naming it takes finding it.
    drop = ctx.inputs("not_gpt2/drop", lambda g: {
        "index": torch.randint(len(gpt2), (1,), generator=g)})
    dropped = gpt2[int(drop["index"])]
    partial = {k: v for k, v in weights.items() if k.removeprefix("transformer.") != dropped}
    bert = _bert_tensors()
    return [
        ("a folder whose config.json says model_type 'llama'", {"path": llama_path}, {}, None,
         ["llama"] + gpt2 + list(_llama_tensors()), [], "quote the model_type found"),
        ("a BERT state dict", {"state_dict": "sd."}, {f"sd.{k}": v for k, v in bert.items()},
         model_config(TINY_CONFIG), gpt2 + ["lm_head.weight"] + list(bert), [],
         "name a GPT-2 weight that is missing or a weight that is unexpected"),
        (f"a GPT-2 state dict without `{dropped}`", {"state_dict": "sd."},
         {f"sd.{k}": v for k, v in partial.items()}, model_config(TINY_CONFIG),
         # lm_head.weight is wte's: a loader that ties first finds it missing with wte
         [dropped] + (["lm_head.weight"] if dropped == "wte.weight" else []),
         [n for n in gpt2 if n != dropped], "name the missing weight"),
    ]


def _names(message: str, names: list[str]) -> list[str]:
    """The weight names ``message`` mentions (a name counts with or without ``transformer.``,
    and not when it is only part of a longer name)."""
    import re

    found = []
    for n in names:
        if re.search(r"(?<![\w.])(?:transformer\.)?" + re.escape(n) + r"(?![\w.])",
                     message, flags=re.IGNORECASE):
            found.append(n)
    return found


@check("not_gpt2", "A checkpoint that is not GPT-2 raises a clear ValueError", 2, needs=NEEDS)
def not_gpt2(ctx: Context):
    """``load_gpt2`` raises ``ValueError`` (never returns a half-random model) with a message
    containing "GPT-2" that names the problem as the stub's contract allows (the model_type
    found, or a weight that is missing, unexpected or of the wrong shape, whichever the loader
    checks first), for: a folder whose ``config.json`` says ``"model_type": "llama"``; a state
    dict of another model (BERT names) with a config; a GPT-2 state dict with one weight left
    out (a different one every grading: the message names it, and no weight that is there)."""
    for label, source, tensors, config, allowed, present, need in _not_gpt2_cases(ctx):
        args: dict[str, Any] = {"module": MODULE, "function": "load_gpt2", "source": source,
                                "expect_error": True}
        if config is not None:
            args["config"] = config
        res = ctx.request("load_checkpoint", args, tensors).result
        if not res["raised"]:
            raise CheckFailed(f"load_gpt2 returned a model for {label}; it must raise ValueError",
                              hint="Check config.json's model_type and that every expected "
                                   "weight is present (a strict load), before building the "
                                   "model.")
        message = res["message"]
        if not res["is_value_error"]:
            raise CheckFailed(f"for {label}, load_gpt2 raised {res['type']}: {message[:200]!r}; "
                              "the contract asks for a ValueError with a clear message",
                              hint="Catch the problem yourself and raise ValueError(...) that "
                                   "says what is wrong.")
        low = message.lower()
        if "gpt-2" not in low and "gpt2" not in low:
            raise CheckFailed(f"for {label}, the ValueError's message {message[:200]!r} does not "
                              "say that a GPT-2 checkpoint was expected (it must contain 'GPT-2')")
        named = [n for n in allowed if n == "llama" and "llama" in low] or _names(message,
                                                                                  allowed)
        if not named:
            raise CheckFailed(f"for {label}, the ValueError's message {message[:200]!r} does not "
                              f"{need}")
        wrong = _names(message, present)
        if wrong:
            raise CheckFailed(f"for {label}, the ValueError's message names `{wrong[0]}`, which "
                              f"is in the checkpoint with the right shape",
                              hint="Name the weight that is missing, unexpected or of the wrong "
                                   "shape.")
    return ok()
