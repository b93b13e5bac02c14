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
5. the result against the task's schema (:data:`SCHEMAS`, one for every task the trusted side
   requests): the keys the checks read and their types, list lengths capped (and pinned to
   what the request asked for, given its arguments), every value description
   (:func:`check_description`) and the tensors the checks read by name against the tensors
   actually sent. A check then meets only replies of the shape it reads.
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

Schema = Any  # a type, NUMBER/FINITE, a list, a dict, one of the classes below, or a callable

# The longest list, and the most keys of an object, that any task's schema accepts unless it
# says otherwise: far above what a correct reply holds (the longest are a module's names and a
# model's parameters, a few thousand), far below the bounds' million, so that the judging that
# walks an accepted list stays cheap.
MANY = 100_000


class Map:
    """An object with any string keys (at most ``most``), each value of ``schema``."""

    def __init__(self, schema: Schema, most: int = MANY):
        self.schema, self.most = schema, most


class Seq:
    """A list of ``schema`` items: at most ``most`` of them, exactly ``exactly`` when given (a
    count the request decides). A plain ``[schema]`` is ``Seq(schema)``."""

    def __init__(self, schema: Schema, most: int = MANY, exactly: int | None = None):
        self.schema, self.most, self.exactly = schema, most, exactly


class Items:
    """A list of exactly ``len(schemas)`` items, the i-th following ``schemas[i]`` (per-item
    rules that depend on the request, e.g. the gradients each call asked for)."""

    def __init__(self, schemas: list[Schema]):
        self.schemas = schemas


class Text:
    """A string of at most ``most`` characters (a type name, a dtype, a short message)."""

    def __init__(self, most: int):
        self.most = most


class Opt:
    """An optional key's schema (in a dict schema): absent, or present and valid."""

    def __init__(self, schema: Schema):
        self.schema = schema


class Nullable:
    """``None`` (JSON null) or a value of ``schema``."""

    def __init__(self, schema: Schema):
        self.schema = schema


class OneOf:
    """A value of one of ``forms`` (tried in order)."""

    def __init__(self, *forms: Schema):
        self.forms = forms


class Both:
    """A value that follows every one of ``schemas`` (e.g. a dict schema and rules on the
    tensors sent with it)."""

    def __init__(self, *schemas: Schema):
        self.schemas = schemas


class ForRequest:
    """A schema that depends on the request: ``make(args)`` builds it from the request's
    arguments (trusted: the grader wrote them), or from ``None`` when they are not known, in
    which case counts are only capped, not pinned."""

    def __init__(self, make: Callable[[Mapping[str, Any] | None], Schema]):
        self.make = make

    def resolve(self, args: Mapping[str, Any] | None) -> Schema:
        """The schema for a request with arguments ``args`` (None: unknown)."""
        return self.make(args)


class AnyValue:
    """Any JSON value (already bounded)."""


NUMBER = "number"  # an int or a float (NaN and infinities included), never a bool
FINITE = "finite"  # an int or a finite float, never a bool


_PREFIX = "the worker's reply does not follow the protocol: "


def _fail(path: str, what: str) -> ReplyRejected:
    return ReplyRejected(f"{_PREFIX}{path or 'result'} {what}")


def validate(value: Any, schema: Schema, path: str = "", tensors: Mapping[str, Any] | None = None
             ) -> None:
    """Check ``value`` against ``schema``; :class:`ReplyRejected` names the first mismatch."""
    tensors = tensors if tensors is not None else {}
    if schema is AnyValue:
        return
    if callable(schema) and not isinstance(schema, type):
        schema(value, path, tensors)
        return
    if schema in (NUMBER, FINITE):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, "must be a number")
        if schema == FINITE and isinstance(value, float) and not math.isfinite(value):
            raise _fail(path, "must be a finite number")
        return
    if schema in (str, bool):
        if type(value) is not schema:
            raise _fail(path, f"must be a {schema.__name__}")
        return
    if schema is int:
        if type(value) is not int:
            raise _fail(path, "must be an integer")
        return
    if isinstance(schema, Text):
        if type(value) is not str:
            raise _fail(path, "must be a str")
        if len(value) > schema.most:
            raise _fail(path, f"is a str of {len(value):,} characters (at most {schema.most:,})")
        return
    if isinstance(schema, list):
        schema = Seq(schema[0])
    if isinstance(schema, Seq):
        if not isinstance(value, list):
            raise _fail(path, "must be a list")
        if schema.exactly is not None and len(value) != schema.exactly:
            raise _fail(path, f"has {len(value):,} items; the request asked for "
                              f"{schema.exactly:,}")
        if len(value) > schema.most:
            raise _fail(path, f"has {len(value):,} items (at most {schema.most:,})")
        for i, v in enumerate(value):
            validate(v, schema.schema, f"{path}[{i}]", tensors)
        return
    if isinstance(schema, Items):
        if not isinstance(value, list):
            raise _fail(path, "must be a list")
        if len(value) != len(schema.schemas):
            raise _fail(path, f"has {len(value):,} items; the request asked for "
                              f"{len(schema.schemas):,}")
        for i, (v, sub) in enumerate(zip(value, schema.schemas, strict=True)):
            validate(v, sub, f"{path}[{i}]", tensors)
        return
    if isinstance(schema, Nullable):
        if value is not None:
            validate(value, schema.schema, path, tensors)
        return
    if isinstance(schema, OneOf):
        reasons = []
        for form in schema.forms:
            try:
                validate(value, form, path, tensors)
                return
            except ReplyRejected as exc:
                reasons.append(str(exc).removeprefix(_PREFIX))
        raise _fail(path, "is none of the forms the protocol allows here (" + "; or ".join(
            reasons) + ")")
    if isinstance(schema, Both):
        for sub in schema.schemas:
            validate(value, sub, path, tensors)
        return
    if isinstance(schema, Map):
        if not isinstance(value, dict):
            raise _fail(path, "must be an object")
        if len(value) > schema.most:
            raise _fail(path, f"has {len(value):,} keys (at most {schema.most:,})")
        for k, v in value.items():
            validate(v, schema.schema, f"{path}.{k[:80]}".lstrip("."), tensors)
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


# ------------------------------------------------------------------------------ tensors sent


def _dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def tensor(name: str, dtype: str | None = None, dim: int | None = None,
           optional: bool = False) -> Callable[[Any, str, Mapping[str, Any]], None]:
    """A rule on the tensors sent with a result: the tensor ``name`` is there (unless
    ``optional``), of ``dtype`` and with ``dim`` dimensions when given. For tensors the worker
    itself makes (a float64 list of numbers), not for the student's returned values, whose
    dtype and shape the checks judge."""

    def rule(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
        _check_tensor(name, tensors.get(name), dtype, dim, optional)

    return rule


def tensors_named(prefix: str, dtype: str | None = None, dim: int | None = None
                  ) -> Callable[[Any, str, Mapping[str, Any]], None]:
    """A rule on every tensor sent whose name starts with ``prefix``, as in :func:`tensor`."""

    def rule(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
        for name, t in tensors.items():
            if name.startswith(prefix):
                _check_tensor(name, t, dtype, dim, False)

    return rule


def _check_tensor(name: str, t: Any, dtype: str | None, dim: int | None, optional: bool
                  ) -> None:
    where = f"the tensor {name[:80]!r}"
    if t is None:
        if optional:
            return
        raise _fail(where, "was not sent")
    if dtype is not None and _dtype_name(t) != dtype:
        raise _fail(where, f"is {_dtype_name(t)}, not {dtype}")
    if dim is not None and t.dim() != dim:
        raise _fail(where, f"has {t.dim()} dimensions, not {dim}")


def sent_names(expected: set[str] | None = None) -> Callable[[Any, str, Mapping[str, Any]], None]:
    """A list of names of tensors sent with the result (e.g. the gradients of a call), each
    present; exactly ``expected`` (in any order) when the request decides them."""

    def rule(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
        validate(value, [str], path)
        for i, name in enumerate(value):
            if name not in tensors:
                raise _fail(f"{path}[{i}]", f"names the tensor {name[:80]!r}, which was not sent")
        if expected is not None and set(value) != expected:
            raise _fail(path, f"names {sorted(value)[:8]}; the request asked for "
                              f"{sorted(expected)[:8]}")

    return rule


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

# ------------------------------------------------------------------------------ task schemas
#
# One entry per task the trusted side requests (tests/isolation/test_reply_schemas.py checks
# that none is missing). A key that a correct worker always sends is required (every key the
# checks read unconditionally is one of them); a key it sends only in some cases is optional,
# and typed all the same. Counts the
# request decides (one step per step asked for, one run per run) are pinned when the client
# passes the request's arguments, and capped otherwise: a check that indexes them then never
# meets a list shorter or longer than it asked for.

SHAPE = Seq(int, most=64)  # torch allows at most 64 dimensions
TYPE_NAME = Text(1000)  # a type name as the worker writes it (``tensor[2, 3]`` included)
DTYPE = Text(40)
DEVICE = Text(100)


def _count(args: Mapping[str, Any] | None, key: str) -> int | None:
    """How many items the request's ``key`` holds (None: not known)."""
    if args is None or not isinstance(args.get(key), list):
        return None
    return len(args[key])


def _grad_names(spec: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The gradient tensors a call's spec asks for (``grad.<input>``, prefixed), as the
    worker's ``_backward`` names them: none without output gradients."""
    if not spec.get("grad_outputs"):
        return set()
    return {f"{prefix}grad.{name}" for name in spec.get("requires_grad", [])}


# What model_info (grader/worker/tasks.py) says about a model (the checks read the parameter
# shapes, the count and the state dict's keys); ``load`` only when parameters were loaded.
INFO = {"parameters": Map(SHAPE), "num_parameters": int, "same_object": [[str]],
        "same_storage": [[str]], "buffers": [str], "state_dict": [str],
        "load": Opt({"loaded": int})}


def _import_entry(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    validate(value, {"ok": bool}, path)
    validate(value, {"names": [str]} if value["ok"] else {"error": ERROR}, path)


def _import(args: Mapping[str, Any] | None) -> Schema:
    wanted = [m for m in (args or {}).get("modules", []) if isinstance(m, str)]
    return {"modules": Both(Map(_import_entry), {m: _import_entry for m in wanted})}


def _call(args: Mapping[str, Any] | None) -> Schema:
    return {"output": DESC, "grads": sent_names(None if args is None else _grad_names(args))}


def _module(args: Mapping[str, Any] | None) -> Schema:
    if args is None or not isinstance(args.get("calls", []), list):
        calls: Schema = [{"output": DESC, "grads": sent_names(),
                          "params_without_grad": Opt([str])}]
    else:
        calls = Items([{"output": DESC, "grads": sent_names(_grad_names(spec, f"c{i}.")),
                        "params_without_grad": [str] if spec.get("param_grads") else Opt([str])}
                       for i, spec in enumerate(args.get("calls", []))])
    return {"info": INFO, "calls": calls}


def _notebook(args: Mapping[str, Any] | None) -> Schema:
    cell = {"index": int, "status": str, "type": Opt(str), "message": Opt(str),
            "line": Opt(Nullable(int)), "seconds": Opt(FINITE), "timeout": Opt(FINITE),
            "reason": Opt(str), "out_of_time": Opt(bool)}
    return {"cells": Seq(cell, exactly=_count(args, "cells")), "kernel": str,
            "kernel_starts": int, "seconds": FINITE}


# -- the KV-cache assignment (grader/worker/generation.py)

# One layer's entry of a cache's k or v as the worker describes it: None, a tensor's shape and
# dtype, or the type of whatever else it holds.
_CACHE_LAYER = Nullable(OneOf({"shape": SHAPE, "dtype": DTYPE}, {"type": TYPE_NAME}))
_STEP = {"output": DESC,
         "cache": {"length": Nullable(int), "length_error": Opt(Text(1000)),
                   "k": Seq(_CACHE_LAYER, most=4096), "v": Seq(_CACHE_LAYER, most=4096)},
         # the positions given to transformer.wpe, per call of it (the worker keeps 4096 each)
         "positions": Seq(Seq(int, most=4096), most=1024)}


def _cached_steps(args: Mapping[str, Any] | None) -> Schema:
    return {"steps": Seq(_STEP, exactly=_count(args, "steps"))}


_RUN = {"output": DESC,
        # one entry per call of the model's forward: the token tensor's shape, a cache or not
        "calls": Seq({"shape": Nullable(SHAPE), "cache": bool})}


def _generate_runs(args: Mapping[str, Any] | None) -> Schema:
    return {"runs": Seq(_RUN, exactly=_count(args, "runs"))}


# -- the GPT-2 loading assignment (grader/worker/checkpoints.py)

def _raised(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    """The reply to ``expect_error``: whether the loader raised, and what."""
    validate(value, {"raised": bool}, path)
    if value["raised"]:
        validate(value, {"type": TYPE_NAME, "is_value_error": bool, "message": Text(4000)},
                 path)


def _loaded(calls: int | None, perturbed: bool | None) -> Schema:
    """The reply of a load that returned a model: ``calls`` outputs, and as many again after
    the perturbation when one was asked for (None: not known)."""
    outputs = Seq({"output": DESC}, exactly=calls)
    return {"type": TYPE_NAME, "is_expected": bool, "info": INFO, "dtypes": Seq(DTYPE),
            "calls": outputs, "perturbed_calls": outputs if perturbed else Opt(outputs)}


def _load_either(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    if isinstance(value, dict) and "raised" in value:
        _raised(value, path, tensors)
    else:
        validate(value, _loaded(None, None), path, tensors)


def _load_checkpoint(args: Mapping[str, Any] | None) -> Schema:
    if args is None:
        return _load_either
    if args.get("expect_error"):
        return _raised
    return _loaded(_count(args, "calls"), bool(args.get("perturb")))


# -- the training assignment (grader/worker/training.py)

def _same_length(tensor_name: str, key: str) -> Callable[[Any, str, Mapping[str, Any]], None]:
    """The 1-D tensor ``tensor_name`` holds one value per item of the result's list ``key``."""

    def rule(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
        if int(tensors[tensor_name].shape[0]) != len(value[key]):
            raise _fail(f"the tensor {tensor_name!r}", f"holds {tensors[tensor_name].shape[0]:,} "
                        f"values for {len(value[key]):,} items of {key}")

    return rule


def _get_lr(args: Mapping[str, Any] | None) -> Schema:
    return Both({"types": Seq(TYPE_NAME, exactly=_count(args, "calls"))},
                tensor("lrs", "float64", 1), _same_length("lrs", "types"))


_BATCH = {"dtype": DTYPE, "device": DEVICE, "shape": SHAPE}


def _batches_sent(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    for i in range(len(value["calls"])):
        for name in (f"x{i}", f"y{i}"):
            if name not in tensors:
                raise _fail(f"calls[{i}]", f"has no tensor {name!r} (the batch itself)")


def _get_batch(args: Mapping[str, Any] | None) -> Schema:
    return Both({"calls": Seq({"x": _BATCH, "y": _BATCH}, exactly=_count(args, "calls"))},
                _batches_sent)


# describe_metrics: per metric key, its container and, for a list, its length and value types.
_METRIC = {"container": TYPE_NAME, "length": Opt(int), "types": Opt(Seq(TYPE_NAME, most=1000))}


def _metrics(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    """``train``'s return value as described: None and the type returned, or the metrics."""
    validate(value, {"metrics": Nullable(Map(_METRIC, most=16))}, path)
    if value["metrics"] is None:
        validate(value, {"returned": TYPE_NAME}, path)
    else:
        validate(value, {"keys": Seq(Text(10_000), most=64)}, path)


# eval_interval as a number (NaN when it is not one) and its type, when train's dict has one.
_TRAINED = {"seconds": FINITE, "device": DEVICE, "eval_interval": Opt(NUMBER),
            "eval_interval_type": Opt(TYPE_NAME)}
_FORWARD = {"training": bool, "grad": bool, "backward": bool, "targets": bool}

TRAINING_LOOP = Both(_metrics, _TRAINED, {"forwards": Seq(_FORWARD)},
                     tensors_named("m.", "float64", 1), tensor("schedule", "float64", 1))
TRAINING_PROBE = Both(_metrics, _TRAINED, tensors_named("m.", "float64", 1))


def _steps_done(value: Any, path: str, tensors: Mapping[str, Any]) -> None:
    if value["steps_done"] != int(tensors["losses"].shape[0]):
        raise _fail("steps_done", f"is {value['steps_done']:,} for "
                                  f"{tensors['losses'].shape[0]:,} losses sent")


TRAINING_GPT_PROBE = Both({"steps_done": int, "seconds": FINITE, "device": DEVICE},
                          tensor("losses", "float64", 1), tensor("logits", "float32"),
                          _steps_done)

SCHEMAS: dict[str, Schema] = {
    "ping": {"python": str, "torch": str, "threads": int, "cuda": bool},
    "preload": {"started": bool},
    "import": ForRequest(_import),
    "call": ForRequest(_call),
    "module": ForRequest(_module),
    "notebook": ForRequest(_notebook),
    "forbid_processes": {"forbidden": bool},
    "cached_steps": ForRequest(_cached_steps),
    "generate_runs": ForRequest(_generate_runs),
    "load_checkpoint": ForRequest(_load_checkpoint),
    "training.get_lr": ForRequest(_get_lr),
    "training.get_batch": ForRequest(_get_batch),
    "training.loop": TRAINING_LOOP,
    "training.probe": TRAINING_PROBE,
    "training.gpt_probe": TRAINING_GPT_PROBE,
}


@dataclass
class Decoded:
    """An accepted reply: ``ok`` with ``result``, or not ``ok`` with a bounded ``error``."""

    ok: bool
    result: dict[str, Any]
    error: dict[str, Any]


def read_reply(message: dict[str, Any], task: str, expected_id: int,
               tensors: Mapping[str, Any], bounds: Bounds = DEFAULT_BOUNDS,
               schemas: Mapping[str, Schema] | None = None,
               args: Mapping[str, Any] | None = None) -> Decoded:
    """Validate the envelope of a parsed reply and its result against ``task``'s schema (for a
    request with arguments ``args``: the counts it asked for are then pinned)."""
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
    schema = schema_of(task, args, schemas)
    if schema is not None:
        validate(result, schema, "", tensors)
    return Decoded(True, result, {})


def schema_of(task: str, args: Mapping[str, Any] | None = None,
              schemas: Mapping[str, Schema] | None = None) -> Schema | None:
    """The schema a task's result is validated against, for a request with arguments ``args``
    (None: not known); None for a task without one (bounds only)."""
    schema = (schemas if schemas is not None else SCHEMAS).get(task)
    return schema.resolve(args) if isinstance(schema, ForRequest) else schema
