"""Loading GPT-2 weights in the Hugging Face format into the course's GPT (a correct example).

The course's ``GPT`` uses GPT-2's parameter names, so a Hugging Face checkpoint maps onto it with
two differences: the names may lack the leading ``transformer.``, and four weights are stored by
HF's ``Conv1D`` as ``(in, out)``, the transpose of ``nn.Linear``'s ``(out, in)``.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from block import GPT, GPTConfig

# HF's Conv1D stores these (in, out). attn.c_proj is square, so only its values (the logits),
# never its shape, reveal a missing transpose.
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Causal-mask buffers that older transformers versions saved with the weights.
_BUFFERS = (".attn.bias", ".attn.masked_bias")


def config_from_hf(hf_config: dict) -> GPTConfig:
    """The ``GPTConfig`` of a Hugging Face GPT-2 ``config.json`` (already parsed into a dict).

    ``n_positions`` becomes ``block_size``; ``vocab_size``, ``n_layer``, ``n_head`` and
    ``n_embd`` keep their names.

    Raises:
        ValueError: if ``hf_config["model_type"]`` is not ``"gpt2"``; the message contains
            "GPT-2" and quotes the model_type found.
    """
    model_type = hf_config.get("model_type")
    if model_type != "gpt2":
        raise ValueError(f"not a GPT-2 checkpoint: config.json has model_type {model_type!r}, "
                         f"expected 'gpt2'")
    return GPTConfig(block_size=hf_config["n_positions"], vocab_size=hf_config["vocab_size"],
                     n_layer=hf_config["n_layer"], n_head=hf_config["n_head"],
                     n_embd=hf_config["n_embd"])


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
    from safetensors.torch import load_file

    if isinstance(source, (str, os.PathLike)):
        import json

        folder = Path(source)
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise ValueError(f"not a GPT-2 checkpoint folder: {folder} has no {name}")
        hf_config = json.loads((folder / "config.json").read_text())
        checked = config_from_hf(hf_config)  # raises for another model_type
        config = config or checked
        state = load_file(str(folder / "model.safetensors"))
    elif isinstance(source, Mapping):
        if config is None:
            raise ValueError("loading a GPT-2 state dict needs its GPTConfig: the shapes do not "
                             "tell n_head")
        state = dict(source)
    else:
        raise TypeError(f"source must be a state dict or a folder, not {type(source).__name__}")

    weights = {}
    for name, tensor in state.items():
        key = name.removeprefix("transformer.")
        if key == "lm_head.weight" or key.endswith(_BUFFERS):
            continue  # tied to wte / not parameters
        weights[key] = tensor

    model = GPT(config)
    ours = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    wanted = {k.removeprefix("transformer."): k for k in ours}
    missing = [k for k in wanted if k not in weights]
    if missing:
        raise ValueError(f"not a GPT-2 checkpoint for this config: {len(missing)} weight(s) "
                         f"missing, the first is {missing[0]!r}")
    unexpected = sorted(set(weights) - set(wanted))
    if unexpected:
        raise ValueError(f"not a GPT-2 checkpoint for this config: unexpected weight "
                         f"{unexpected[0]!r} (and {len(unexpected) - 1} more)")
    with torch.no_grad():
        for key, ours_name in wanted.items():
            w = weights[key]
            if key.endswith(_CONV1D):
                w = w.t()
            target = ours[ours_name]
            if w.shape != target.shape:
                raise ValueError(f"GPT-2 weight {key!r} has shape {tuple(weights[key].shape)}, "
                                 f"which does not fit {tuple(target.shape)} of this config")
            # state_dict() tensors share storage with the parameters: copying into them loads
            # the model in place and leaves lm_head.weight tied to wte.
            target.copy_(w)
    model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.clone())
    return model.eval()
