"""The one strict reader of everything the worker sends: bounded, then validated per task.

Whatever the worker says is the student's claim, and the bytes may be hostile: a 10,000-digit
integer (``int()`` refuses more than 4,300 digits with a ``ValueError``), JSON nested 100,000 deep
(a ``RecursionError``), an error reply without its ``type``, a list of ten million numbers that
a judging routine then walks, a 50 MB error message that would end up in the results file. This
module turns each of those into a :class:`ReplyRejected` (a :class:`~grader.shared.protocol.
ProtocolError`), which the client records as that request's failure; it never lets one escape as
a traceback, and what it accepts is small enough that judging it is cheap.

Order of the checks, each linear in the size of the input:

1. the frame's size (``parse_header``: the JSON part at most :attr:`Bounds.json_bytes`, tensors
   at most the client's reply limit);
2. JSON parsing with bounded number literals (digits of an integer, length of a float);
3. one iterative walk bounding depth, container lengths, string lengths and the node count;
4. the envelope (``id``, ``ok``, then ``result`` or ``error``), and the error's fields
   (required ``type`` and ``message``, strings cut to a few KB with a note);
5. the result against the task's schema (:data:`SCHEMAS`; tasks without one get the bounds
   only), including every value description (:func:`check_description`) against the tensors
   actually sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from grader.shared.protocol import ProtocolError


class ReplyRejected(ProtocolError):
    """A reply that breaks the protocol's bounds or its task's schema."""


@dataclass(frozen=True)
class Bounds:
    """Limits of one reply's JSON part (tensors are bounded by the frame size and count)."""

    json_bytes: int = 16 * 2**20
    depth: int = 48
    string_chars: int = 2 * 2**20
    int_digits: int = 40  # int64 needs 19; a float's exponent form covers anything larger
    float_chars: int = 64
    items: int = 1 << 20  # entries of one list or object
    nodes: int = 4 << 20  # values in the whole reply
    tensors: int = 8192


DEFAULT_BOUNDS = Bounds()
# Error fields are cut to these lengths (characters) with a note: they end up in results files.
ERROR_FIELD_CHARS = {"type": 200, "message": 4000, "where": 1000, "traceback": 8000}


def cut(text: str, limit: int) -> str:
    """``text`` cut to at most about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f" [... {len(text) - limit:,} more characters cut by the grader]"


# ------------------------------------------------------------------------------ parsing


def parse_json(body: bytes, bounds: Bounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """The JSON object of a frame, within ``bounds``; :class:`ReplyRejected` otherwise."""
    if len(body) > bounds.json_bytes:
        raise ReplyRejected(f"the reply's JSON part is {len(body):,} bytes; the limit is "
                            f"{bounds.json_bytes:,}")

    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > bounds.int_digits:
            raise ReplyRejected(f"an integer of {len(text):,} digits in the reply (at most "
                                f"{bounds.int_digits})")
        return int(text)

    def parse_float(text: str) -> float:
        if len(text) > bounds.float_chars:
            raise ReplyRejected(f"a number literal of {len(text):,} characters in the reply")
        return float(text)

    try:
        message = json.loads(body.decode("utf-8"), parse_int=parse_int, parse_float=parse_float)
    except ReplyRejected:
        raise
    except RecursionError:
        raise ReplyRejected("the reply's JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ReplyRejected(f"corrupt JSON payload: {str(exc)[:200]}") from None
    if not isinstance(message, dict):
        raise ReplyRejected("a frame's JSON part must be an object")
    check_bounds(message, bounds)
    return message


def check_bounds(value: Any, bounds: Bounds = DEFAULT_BOUNDS) -> None:
    """Depth, lengths and node count of a parsed JSON value, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        v, depth = stack.pop()
        nodes += 1
        if nodes > bounds.nodes:
            raise ReplyRejected(f"the reply holds more than {bounds.nodes:,} values")
        if isinstance(v, str):
            if len(v) > bounds.string_chars:
                raise ReplyRejected(f"a string of {len(v):,} characters in the reply (at most "
                                    f"{bounds.string_chars:,})")
        elif isinstance(v, (list, dict)):
            if depth > bounds.depth:
                raise ReplyRejected(f"the reply is nested more than {bounds.depth} deep")
            if len(v) > bounds.items:
                raise ReplyRejected(f"a list or object of {len(v):,} entries in the reply (at "
                                    f"most {bounds.items:,})")
            if isinstance(v, dict):
                for k, x in v.items():
                    if len(k) > bounds.string_chars:
                        raise ReplyRejected("an object key too long in the reply")
                    stack.append((x, depth + 1))
            else:
                stack.extend((x, depth + 1) for x in v)


# ------------------------------------------------------------------------------ schemas

Schema = Any  # str | float | int | bool | Any | list | dict | Map | Optional | a callable


class Map:
    """An object with any string keys, each value of ``schema``."""

    def __init__(self, schema: Schema):
        self.schema = schema


class Opt:
    """An optional key's schema (in a dict schema)."""

    def __init__(self, schema: Schema):
        self.schema = schema


class AnyValue:
    """Any JSON value (already bounded)."""


NUMBER = "number"  # an int or a float, never a bool


def _fail(path: str, what: str) -> ReplyRejected:
    return ReplyRejected(f"the worker's reply does not follow the protocol: {path or 'result'} "
                         f"{what}")


def validate(value: Any, schema: Schema, path: str = "", tensors: Mapping[str, Any] | None = None
             ) -> None:
    """Check ``value`` against ``schema``; :class:`ReplyRejected` names the first mismatch."""
    if schema is AnyValue:
        return
    if callable(schema) and not isinstance(schema, type):
        schema(value, path, tensors or {})
        return
    if schema is NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, "must be a number")
        return
    if schema in (str, bool):
        if type(value) is not schema:
            raise _fail(path, f"must be a {schema.__name__}")
        return
    if schema is int:
        if type(value) is not int:
            raise _fail(path, "must be an integer")
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _fail(path, "must be a list")
        for i, v in enumerate(value):
            validate(v, schema[0], f"{path}[{i}]", tensors)
        return
    if isinstance(schema, Map):
        if not isinstance(value, dict):
            raise _fail(path, "must be an object")
        for k, v in value.items():
            validate(v, schema.schema, f"{path}.{k}", tensors)
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _fail(path, "must be an object")
        for k, sub in schema.items():
            optional = isinstance(sub, Opt)
            if k not in value:
                if optional:
                    continue
                raise _fail(f"{path}.{k}".lstrip("."), "is missing")
            validate(value[k], sub.schema if optional else sub, f"{path}.{k}".lstrip("."),
                     tensors)
        return
    raise TypeError(f"bad schema {schema!r}")


_DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16", "int32",
           "int64", "bool", "complex64", "complex128"}


def check_description(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    """A value description (``grader/worker/values.py``) with every field of its kind, and each
    tensor it names present among the tensors sent, of the shape it claims. Iterative."""
    stack = [(value, path)]
    while stack:
        d, p = stack.pop()
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise _fail(p, "is not a value description")
        kind = d["kind"]
        if kind == "tensor":
            validate(d, {"key": str, "dtype": str, "shape": [int], "requires_grad": bool}, p)
            t = tensors.get(d["key"])
            if t is None:
                raise _fail(p, f"names the tensor {d['key'][:80]!r}, which was not sent")
            if list(t.shape) != d["shape"]:
                raise _fail(p, "claims a shape its tensor does not have")
        elif kind == "ints":
            validate(d, {"key": str, "container": str, "shape": [int]}, p)
            t = tensors.get(d["key"])
            if t is None or list(t.shape) != d["shape"] or not 1 <= len(d["shape"]) <= 2:
                raise _fail(p, "names an int tensor that was not sent as described")
        elif kind == "none":
            pass
        elif kind == "bool":
            validate(d, {"value": bool}, p)
        elif kind == "number":
            v = d.get("value")
            if not ((isinstance(v, (int, float)) and not isinstance(v, bool))
                    or v in ("inf", "-inf", "nan")):
                raise _fail(p, "is a number description without a number")
            if isinstance(v, float) and not math.isfinite(v):
                raise _fail(p, "is a number description with a non-finite literal")
        elif kind == "str":
            validate(d, {"value": str, "length": int}, p)
        elif kind == "bytes":
            validate(d, {"b64": str, "length": int}, p)
        elif kind in ("list", "tuple"):
            if not isinstance(d.get("items"), list):
                raise _fail(p, f"is a {kind} description without items")
            stack.extend((x, f"{p}.{i}") for i, x in enumerate(d["items"]))
        elif kind == "dict":
            if not isinstance(d.get("items"), dict):
                raise _fail(p, "is a dict description without items")
            stack.extend((x, f"{p}.{k}") for k, x in d["items"].items())
        elif kind == "other":
            validate(d, {"type": str, "length": Opt(int)}, p)
        else:
            raise _fail(p, f"has an unknown kind {kind[:40]!r}")


DESC = check_description
ERROR = {"type": str, "message": str, "where": Opt(str), "traceback": Opt(str),
         "contract": Opt(bool)}

# Result schemas of the generic tasks (the trusted side reads exactly these fields). A task
# without an entry is held to the bounds only; its owner should add its schema here.
SCHEMAS: dict[str, Schema] = {
    "ping": {"python": str, "torch": str, "threads": int, "cuda": bool},
    "import": {"modules": Map({"ok": bool, "names": Opt([str]), "error": Opt(ERROR)})},
    "call": {"output": DESC, "grads": [str]},
    "module": {"info": Map(AnyValue), "calls": [{"output": DESC, "grads": [str],
                                                 "params_without_grad": Opt([str])}]},
    "notebook": {"cells": [{"index": int, "status": str, "type": Opt(str),
                            "message": Opt(str), "line": Opt(AnyValue), "seconds": Opt(NUMBER),
                            "timeout": Opt(NUMBER), "reason": Opt(str)}],
                 "kernel": str, "kernel_starts": int, "seconds": NUMBER},
    "forbid_processes": {"forbidden": bool},
}


@dataclass
class Decoded:
    """An accepted reply: ``ok`` with ``result``, or not ``ok`` with a bounded ``error``."""

    ok: bool
    result: dict[str, Any]
    error: dict[str, Any]


def read_reply(message: dict[str, Any], task: str, expected_id: int,
               tensors: Mapping[str, Any], bounds: Bounds = DEFAULT_BOUNDS,
               schemas: Mapping[str, Schema] | None = None) -> Decoded:
    """Validate the envelope of a parsed reply and its result against ``task``'s schema."""
    if len(tensors) > bounds.tensors:
        raise ReplyRejected(f"the reply holds {len(tensors):,} tensors (at most "
                            f"{bounds.tensors:,})")
    if message.get("id") != expected_id or type(message.get("id")) is not int:
        raise ReplyRejected("the worker answered out of turn")
    ok = message.get("ok")
    if type(ok) is not bool:
        raise _fail("ok", "must be true or false")
    if not ok:
        error = message.get("error")
        validate(error, ERROR, "error")
        bounded = {k: cut(v, ERROR_FIELD_CHARS[k]) if k in ERROR_FIELD_CHARS else v
                   for k, v in error.items() if k in ERROR}
        bounded.setdefault("where", "")
        bounded.setdefault("traceback", "")
        bounded["contract"] = bool(bounded.get("contract", False))
        return Decoded(False, {}, bounded)
    result = message.get("result", {})
    if not isinstance(result, dict):
        raise _fail("result", "must be an object")
    schema = (schemas if schemas is not None else SCHEMAS).get(task)
    if schema is not None:
        validate(result, schema, "", tensors)
    return Decoded(True, result, {})


def schema_of(task: str) -> Callable[..., None] | Schema | None:
    """The schema a task's result is validated against (None: bounds only)."""
    return SCHEMAS.get(task)
