"""Loading GPT-2 weights, written in another style than the reference (a correct submission).

Reads the file with ``safe_open``, renames and transposes into a full state dict of our model
(``lm_head.weight`` included, as the same tensor as wte) and lets ``load_state_dict(strict=True)``
check the names and shapes, turning its errors into the ValueError the contract asks for.
"""

import json
import os

from block import GPT, GPTConfig
from safetensors import safe_open

TRANSPOSED = {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}


def config_from_hf(hf_config: dict) -> GPTConfig:
    if hf_config.get("model_type") != "gpt2":
        raise ValueError(f"expected a GPT-2 config.json, found model_type "
                         f"{hf_config.get('model_type')!r}")
    return GPTConfig(hf_config["n_positions"], hf_config["vocab_size"], hf_config["n_layer"],
                     hf_config["n_head"], hf_config["n_embd"])


def load_gpt2(source, config=None) -> GPT:
    if isinstance(source, (str, os.PathLike)):
        with open(os.path.join(source, "config.json")) as f:
            file_config = config_from_hf(json.load(f))
        config = config or file_config
        with safe_open(os.path.join(source, "model.safetensors"), framework="pt") as f:
            hf = {name: f.get_tensor(name) for name in f.keys()}
    else:
        if config is None:
            raise ValueError("a GPT-2 state dict needs a GPTConfig")
        hf = dict(source)
    ours = {}
    for name, tensor in hf.items():
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if short.endswith(("attn.bias", "attn.masked_bias")) and "c_attn" not in short \
                and "c_proj" not in short:
            continue
        if short == "lm_head.weight":
            continue
        if ".".join(short.split(".")[-3:]) in TRANSPOSED:
            tensor = tensor.t()
        ours["transformer." + short] = tensor
    if "transformer.wte.weight" in ours:
        ours["lm_head.weight"] = ours["transformer.wte.weight"]
    model = GPT(config)
    try:
        model.load_state_dict(ours, strict=True)
    except RuntimeError as exc:
        missing = sorted(set(model.state_dict()) - set(ours))
        detail = f"missing {missing[0]}" if missing else str(exc).splitlines()[1].strip()
        raise ValueError(f"this is not a GPT-2 checkpoint for the config: {detail}") from None
    return model
