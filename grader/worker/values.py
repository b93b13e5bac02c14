"""How arguments reach the student's code and how its return values come back.

Arguments are JSON in which ``{"$t": key}`` stands for a tensor sent beside the JSON and
``{"$new": {"module", "class", "args", "kwargs"}}`` for an object built from the student's module
(e.g. their ``GPTConfig``). Return values are flattened into a JSON description plus named tensors,
so the trusted side can say "you returned a list, not a tensor" instead of crashing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch


def decode(value: Any, tensors: dict[str, torch.Tensor], new: Callable[[dict], Any]) -> Any:
    """Turn a JSON argument into the Python value the student's function receives."""
    if isinstance(value, dict):
        if set(value) == {"$t"}:
            return tensors[value["$t"]]
        if set(value) == {"$new"}:
            return new(value["$new"])
        return {k: decode(v, tensors, new) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, tensors, new) for v in value]
    return value


def describe(obj: Any, key: str, out: dict[str, torch.Tensor], depth: int = 0) -> dict[str, Any]:
    """Describe a return value as JSON, storing its tensors in ``out`` under names made from
    ``key``."""
    if isinstance(obj, torch.Tensor):
        out[key] = obj  # kept live so a backward pass can start from it; detached when sent
        return {
            "kind": "tensor",
            "key": key,
            "dtype": str(obj.dtype).replace("torch.", ""),
            "shape": list(obj.shape),
            "requires_grad": bool(obj.requires_grad),
        }
    if obj is None:
        return {"kind": "none"}
    if isinstance(obj, bool):
        return {"kind": "bool", "value": obj}
    if isinstance(obj, (int, float)):
        value = float(obj)
        return {"kind": "number", "value": value if math.isfinite(value) else str(value)}
    if depth < 4 and isinstance(obj, (tuple, list)) and len(obj) <= 64:
        return {
            "kind": type(obj).__name__,
            "items": [describe(v, f"{key}.{i}", out, depth + 1) for i, v in enumerate(obj)],
        }
    if depth < 4 and isinstance(obj, dict) and len(obj) <= 64:
        return {
            "kind": "dict",
            "items": {str(k): describe(v, f"{key}.{k}", out, depth + 1) for k, v in obj.items()},
        }
    return {"kind": "other", "type": type(obj).__name__}


def tensor_outputs(description: dict[str, Any]) -> list[str]:
    """The keys of every tensor in a description, in order."""
    if description["kind"] == "tensor":
        return [description["key"]]
    items = description.get("items")
    if isinstance(items, list):
        return [k for item in items for k in tensor_outputs(item)]
    if isinstance(items, dict):
        return [k for item in items.values() for k in tensor_outputs(item)]
    return []
