"""How arguments reach the student's code and how its return values come back.

Arguments are JSON in which ``{"$t": key}`` stands for a tensor sent beside the JSON,
``{"$new": {"module", "class", "args", "kwargs"}}`` for an object built from the student's module
(e.g. their ``GPTConfig``), ``{"$tuple": [...]}`` for a tuple (JSON has only lists; a merge
table's pairs must be hashable), ``{"$bytes": "<base64>"}`` for a ``bytes`` value and
``{"$text": key}`` for the ``str`` whose UTF-8 bytes are the uint8 tensor sent under ``key`` (a
large text, e.g. a tokenizer's files, costs no JSON escaping that way).
``{"$kept": {"key": k, "value": v}}`` is ``v`` decoded the first time the worker process meets
``k`` and the same object afterwards (an object that is costly to build, built once).

Return values are flattened into a JSON description plus named tensors, so the trusted side can
say "you returned a list, not a tensor" instead of crashing. The kinds (every field, every
bound; ``/tmp/team/new_kinds.md`` and the trusted side's strict reader follow this list):

- ``tensor``: ``key``, ``dtype``, ``shape``, ``requires_grad``; the tensor is sent under ``key``;
- ``none``; ``bool``: ``value``; ``number``: ``value`` (a float, or the string ``"inf"``,
  ``"-inf"`` or ``"nan"``); ints travel as floats, exact up to 2**53;
- ``str``: ``value`` (at most :data:`MAX_STR` characters) and ``length`` (of the whole string:
  ``length > len(value)`` means it was cut);
- ``bytes`` (also for ``bytearray``): ``b64`` (base64 of at most :data:`MAX_BYTES` bytes) and
  ``length`` (of the whole value);
- ``ints``: a list or tuple of MORE than :data:`MAX_ITEMS` Python ints (``bool`` is not an int
  here), or of more than :data:`MAX_ITEMS` lists/tuples that all hold the same number (1 to
  :data:`MAX_ITEMS`) of ints, e.g. token ids or a merge table. Fields ``key``, ``container``
  (``"list"``/``"tuple"``), ``shape`` (``[n]`` or ``[n, k]``, ``n * k <= MAX_INTS``) and, for
  ``[n, k]``, ``inner`` (``"list"``/``"tuple"``); an int64 tensor of that shape is sent under
  ``key``. Shorter ones stay ``list``/``tuple`` of ``number`` items, as before;
- ``tuple``/``list``: ``items`` (descriptions); ``dict``: ``items`` (``str(key)`` ->
  description). At most :data:`MAX_ITEMS` entries, nested at most :data:`MAX_DEPTH` deep, or
  at most :data:`MAX_FLAT` entries when every entry is a scalar (``none``, ``bool``,
  ``number``, or a ``str``/``bytes`` of at most :data:`MAX_FLAT_ITEM` characters/bytes), e.g. a
  tokenizer's vocabulary ``{id: bytes}``;
- ``other``: ``type`` (the type's name) and, for a sized value too long to describe,
  ``length``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

import torch

MAX_ITEMS = 64          # entries of a nested list/tuple/dict
MAX_DEPTH = 4           # nesting of lists/tuples/dicts
MAX_STR = 1 << 20       # characters of a str value
MAX_BYTES = 1 << 20     # bytes of a bytes value
MAX_INTS = 1 << 22      # ints in one "ints" value (32 MiB as int64)
MAX_FLAT = 1 << 16      # entries of a list/tuple/dict of scalars
MAX_FLAT_ITEM = 1024    # characters/bytes of a str/bytes entry of such a container
_INT64 = (-(2**63), 2**63 - 1)
# Arguments marked {"$kept": {"key", "value"}}: decoded (built) once per worker process.
_KEPT: dict[str, Any] = {}


def decode(value: Any, tensors: dict[str, torch.Tensor], new: Callable[[dict], Any]) -> Any:
    """Turn a JSON argument into the Python value the student's function receives."""
    if isinstance(value, dict):
        if len(value) == 1:
            (marker, inner), = value.items()
            if marker == "$t":
                return tensors[inner]
            if marker == "$new":
                return new(inner)
            if marker == "$tuple":
                return tuple(decode(v, tensors, new) for v in inner)
            if marker == "$bytes":
                return base64.b64decode(inner)
            if marker == "$kept":
                # Built once per worker process and reused (e.g. a tokenizer from 1.5 MB of
                # files); the full argument is always sent, so a fresh worker rebuilds it.
                if inner["key"] not in _KEPT:
                    _KEPT[inner["key"]] = decode(inner["value"], tensors, new)
                return _KEPT[inner["key"]]
            if marker == "$text":
                return tensors[inner].to(torch.uint8).numpy().tobytes().decode("utf-8")
        return {k: decode(v, tensors, new) for k, v in value.items()}
    if isinstance(value, list):
        # A long list of plain values (token ids, a merge table's strings) is taken as it is.
        if value and all(type(v) in (int, str, float) for v in value):
            return list(value)
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
    scalar = _scalar(obj, MAX_STR, MAX_BYTES)
    if scalar is not None:
        return scalar
    if depth < MAX_DEPTH and isinstance(obj, (tuple, list)):
        if len(obj) > MAX_ITEMS:
            ints = _ints(obj, key, out)
            if ints is not None:
                return ints
        if len(obj) <= MAX_ITEMS or _flat(obj):
            return {
                "kind": _container(obj),  # a namedtuple is a tuple
                "items": [describe(v, f"{key}.{i}", out, depth + 1) for i, v in enumerate(obj)],
            }
    if depth < MAX_DEPTH and isinstance(obj, dict) and (len(obj) <= MAX_ITEMS
                                                        or _flat(obj.values())):
        return {
            "kind": "dict",
            "items": {str(k): describe(v, f"{key}.{k}", out, depth + 1) for k, v in obj.items()},
        }
    other: dict[str, Any] = {"kind": "other", "type": type(obj).__name__}
    if isinstance(obj, (str, bytes, bytearray, list, tuple, dict)):
        other["length"] = len(obj)
    return other


def _scalar(obj: Any, max_str: int, max_bytes: int) -> dict[str, Any] | None:
    """The description of ``None``, a bool, a number, a str or bytes; None for anything else."""
    if obj is None:
        return {"kind": "none"}
    if isinstance(obj, bool):
        return {"kind": "bool", "value": obj}
    if isinstance(obj, (int, float)):
        try:
            value = float(obj)
        except OverflowError:  # an int beyond float's range
            value = math.inf if obj > 0 else -math.inf
        return {"kind": "number", "value": value if math.isfinite(value) else str(value)}
    if isinstance(obj, str):
        return {"kind": "str", "value": str(obj[:max_str]), "length": len(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return {"kind": "bytes", "b64": base64.b64encode(bytes(obj[:max_bytes])).decode(),
                "length": len(obj)}
    return None


def _flat(items: Any) -> bool:
    """Whether a container may be described whole at up to MAX_FLAT entries: every entry is a
    scalar, and its strings and bytes are short."""
    items = list(items)
    if len(items) > MAX_FLAT:
        return False
    for v in items:
        if isinstance(v, (str, bytes, bytearray)):
            if len(v) > MAX_FLAT_ITEM:
                return False
        elif not (v is None or isinstance(v, (bool, int, float))):
            return False
    return True


def _ints(obj: list | tuple, key: str, out: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """The ``ints`` description of a long list of ints (or of equal-length int rows), its int64
    tensor stored in ``out``; None when ``obj`` is not one."""
    lo, hi = _INT64
    if all(type(v) is int for v in obj):
        if len(obj) > MAX_INTS or not all(lo <= v <= hi for v in obj):
            return None
        out[key] = torch.tensor(list(obj), dtype=torch.int64)
        return {"kind": "ints", "key": key, "container": _container(obj), "shape": [len(obj)]}
    first = obj[0]
    if type(first) not in (tuple, list) or not 1 <= len(first) <= MAX_ITEMS:
        return None
    width, inner = len(first), type(first)
    if len(obj) * width > MAX_INTS:
        return None
    for row in obj:
        if type(row) is not inner or len(row) != width or not all(
                type(v) is int and lo <= v <= hi for v in row):
            return None
    out[key] = torch.tensor([list(r) for r in obj], dtype=torch.int64)
    return {"kind": "ints", "key": key, "container": _container(obj),
            "shape": [len(obj), width], "inner": inner.__name__}


def _container(obj: list | tuple) -> str:
    return "tuple" if isinstance(obj, tuple) else "list"


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
