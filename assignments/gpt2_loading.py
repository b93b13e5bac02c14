"""Assignment: loading GPT-2 weights.

Load the weights of a GPT-2 checkpoint in the Hugging Face format into your own ``GPT`` from
``block.py`` (keep ``attention.py``, ``causal_mask.py`` and ``block.py`` next to this file). The
course's parameter names are GPT-2's, so the mapping is short, but the details matter: the
Conv1D weights, the optional ``transformer.`` prefix, buffers to ignore, the weight tying. Replace
every ``raise NotImplementedError`` with your code; the docstrings are the specification.

The grader imports this exact name from this module: ``load_gpt2`` (``config_from_hf`` is a
suggested helper, not graded by itself). Do not rename it or change its signature.
"""

import os  # noqa: F401  (you will need it)
from collections.abc import Mapping  # noqa: F401  (you will need it)
from pathlib import Path  # noqa: F401  (you will need it)

import torch  # noqa: F401  (you will need it)
from block import GPT, GPTConfig


def config_from_hf(hf_config: dict) -> GPTConfig:
    """The ``GPTConfig`` of a Hugging Face GPT-2 ``config.json`` (already parsed into a dict).

    ``n_positions`` becomes ``block_size``; ``vocab_size``, ``n_layer``, ``n_head`` and
    ``n_embd`` keep their names.

    Raises:
        ValueError: if ``hf_config["model_type"]`` is not ``"gpt2"``; the message contains
            "GPT-2" and quotes the model_type found.
    """
    raise NotImplementedError(
        "Check that model_type is 'gpt2' (else raise ValueError quoting it) and build the "
        "GPTConfig."
    )


def load_gpt2(source, config=None) -> GPT:
    """Build your ``GPT`` (from ``block.py``) with GPT-2 weights in the Hugging Face format.

    Args:
        source: either a state dict ``{name: tensor}`` with Hugging Face GPT-2 names, or a
            folder (``str`` or ``os.PathLike``) holding ``model.safetensors`` (read it with
            ``safetensors.torch.load_file``) and ``config.json`` (what ``save_pretrained``
            writes).
        config: the ``GPTConfig`` to build. ``None``: read it from the folder's ``config.json``
            with ``config_from_hf``. Required when ``source`` is a state dict (its shapes do not
            tell ``n_head``).

    The Hugging Face format, which the loader must accept in all its variants:
        - names are the course's, with or without the leading ``transformer.``
          (``transformer.h.0.attn.c_attn.weight`` or ``h.0.attn.c_attn.weight``);
        - ``attn.c_attn.weight``, ``attn.c_proj.weight``, ``mlp.c_fc.weight`` and
          ``mlp.c_proj.weight`` are stored ``(in, out)`` (HF's ``Conv1D``): transpose them;
        - ``lm_head.weight`` is usually absent (GPT-2 ties it to ``wte``); when present, ignore it;
        - the buffers ``h.<i>.attn.bias`` and ``h.<i>.attn.masked_bias`` (causal masks that
          older versions of transformers saved) may or may not be present: ignore them.

    Returns:
        Your ``block.GPT``, float32, on the CPU, every parameter taken from the checkpoint, with
        ``lm_head.weight`` still the very Parameter ``transformer.wte.weight`` (tied).

    Raises:
        ValueError: if ``source`` is not a GPT-2 checkpoint that fits the config: a
            ``config.json`` whose ``model_type`` is not ``"gpt2"``, a missing weight, a weight the
            model does not have, or a weight of the wrong shape. The message contains "GPT-2"
            and names the problem: the ``model_type`` found, or the name of (the first) weight
            that is missing, unexpected or of the wrong shape. Never return a model with weights
            left at their random initialisation.
    """
    raise NotImplementedError(
        "Read the folder (config.json, model.safetensors) or take the state dict, drop the "
        "buffers and lm_head.weight, strip 'transformer.', check every weight is there with the "
        "right shape (ValueError otherwise), transpose the four Conv1D weights and copy them into "
        "a new GPT."
    )
