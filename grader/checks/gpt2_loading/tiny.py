"""Checks of loading the tiny checkpoint in each layout transformers has used (a
save_pretrained folder, old files with the attention buffers, names without ``transformer.``,
an in-memory state dict): the loaded model's logits equal the reference loader's."""

from __future__ import annotations

from grader.checks import checkpoints as ck
from grader.checks.base import Context, ok
from grader.checks.gpt2_loading import ASSIGNMENT, NEEDS
from grader.checks.gpt2_loading.task import (
    TINY,
    TINY_CONFIG,
    compare_logits,
    model_config,
    reference_run,
    student_load,
    tiny_folder,
    tiny_tokens,
    tiny_weights,
)

check = ASSIGNMENT.check


def _folder_loads_like_reference(ctx: Context, name: str, run: str, what: str,
                                 **layout: bool) -> float:
    """Write the tiny checkpoint as folder ``name`` in ``layout``, load it with the student's
    loader and the reference's, and compare the logits; returns the largest difference."""
    path, host = tiny_folder(ctx, name, **layout)
    tokens = tiny_tokens(ctx)
    exp, diagnosis = reference_run(ctx, run, host, tokens)
    got = student_load(ctx, {"path": path}, tokens)
    return compare_logits(got, exp, what, diagnosis=diagnosis)


@check("logits", "A save_pretrained checkpoint: logits equal the reference loader's", 4,
       needs=NEEDS)
def logits(ctx: Context):
    """``load_gpt2(folder)`` on a folder as transformers 5 writes it (``model.safetensors``
    with ``transformer.``-prefixed names, Conv1D weights ``(in, out)``, no ``lm_head.weight``;
    ``config.json`` of a non-default size) returns your ``block.GPT`` whose logits equal those
    of the reference loader's model, for T < block_size and T = block_size (float64)."""
    worst = _folder_loads_like_reference(ctx, "tiny-modern", "tiny/modern",
                                         "a save_pretrained folder", prefix=True, buffers=False)
    return ok(max_abs_diff=worst)


@check("buffers_ignored", "The attn.bias / attn.masked_bias buffers of older files are ignored",
       2, needs=NEEDS)
def buffers_ignored(ctx: Context):
    """A checkpoint that also holds each layer's ``attn.bias`` (the causal mask,
    ``(1, 1, n_positions, n_positions)``) and ``attn.masked_bias``, as older transformers
    versions saved them, loads into the same model as one without them (float64 logits)."""
    _folder_loads_like_reference(ctx, "tiny-buffers", "tiny/buffers",
                                 "a folder with attn.bias buffers", prefix=True, buffers=True)
    return ok()


@check("unprefixed_names", "Names without the leading `transformer.` (GPT2Model, the hub file)",
       1, needs=NEEDS)
def unprefixed_names(ctx: Context):
    """A checkpoint whose names lack the leading ``transformer.`` (``h.0.attn.c_attn.weight``,
    ``wte.weight``: what ``GPT2Model`` saves, and how the real ``gpt2`` file names them) loads
    into the same model (float64 logits)."""
    _folder_loads_like_reference(ctx, "tiny-bare", "tiny/bare",
                                 "a folder with names without `transformer.`", prefix=False,
                                 buffers=False)
    return ok()


@check("state_dict", "A state dict (with lm_head.weight) and a config", 2, needs=NEEDS)
def state_dict(ctx: Context):
    """``load_gpt2(state_dict, config)`` on an in-memory state dict as
    ``GPT2LMHeadModel.state_dict()`` returns it (prefixed names and ``lm_head.weight``) with a
    ``GPTConfig`` loads the same model (float64 logits)."""
    _, host = tiny_folder(ctx, "tiny-modern", prefix=True, buffers=False)
    tokens = tiny_tokens(ctx)
    exp, diagnosis = reference_run(ctx, "tiny/modern", host, tokens)
    sd = ck.relayout(tiny_weights(ctx), TINY, prefix=True, lm_head=True)
    got = student_load(ctx, {"state_dict": "sd."}, tokens, config=model_config(TINY_CONFIG),
                       extra={f"sd.{k}": v for k, v in sd.items()})
    compare_logits(got, exp, "a state dict", diagnosis=diagnosis)
    return ok()
