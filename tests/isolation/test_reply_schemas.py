"""Every task the trusted side requests has a reply schema, garbage for each is rejected cleanly,
and the replies of a correct submission are accepted.

Replies go through the client's own decoding steps (``protocol.pack`` by the worker, then
``parse_header``, ``replies.parse_json``, ``protocol.decode_tensors`` and ``replies.read_reply``),
so a rejection here is exactly the ``ReplyRejected`` that the client turns into
``WorkerCrashed`` and a check records as an error.

The samples below are written after the worker's handlers (grader/worker/*.py), with the
arguments a check sends; ``test_the_samples_have_the_shape_of_real_replies`` ties them to the
replies the worker actually sends for the correct example, so that they cannot drift.
"""

from __future__ import annotations

import ast
import copy
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from grader.isolation import replies
from grader.shared import protocol

GRADER = Path(replies.__file__).resolve().parent.parent
# How a forwarding wrapper passes a task name on (base.Context.request, WorkerClient.request).
FORWARDERS = {"request"}


# ------------------------------------------------------------------------------ decoding


def decode(task: str, result: Any, tensors: dict[str, torch.Tensor] | None = None,
           args: dict[str, Any] | None = None) -> replies.Decoded:
    """The reply ``result`` (with ``tensors``) to a ``task`` request, framed as the worker frames
    it and read back as the client reads it."""
    frame = protocol.pack({"id": 7, "ok": True, "result": result}, tensors or {})
    n_json, n_blob = protocol.parse_header(frame[:protocol.HEADER_SIZE], 2**31)
    body = frame[protocol.HEADER_SIZE:protocol.HEADER_SIZE + n_json]
    message = replies.parse_json(body)
    out = protocol.decode_tensors(frame[protocol.HEADER_SIZE + n_json:])
    return replies.read_reply(message, task, 7, out, args=args)


def rejected(task: str, result: Any, tensors: dict[str, torch.Tensor] | None = None,
             args: dict[str, Any] | None = None) -> str:
    """The message of the rejection of this reply (the test fails if it is accepted)."""
    with pytest.raises(replies.ReplyRejected) as info:
        decode(task, result, tensors, args)
    return str(info.value)


# ------------------------------------------------------------------------------ task names


def trusted_requests() -> dict[str, list[str]]:
    """Every task name the trusted side requests (``.request("task", ...)`` or the client's
    ``._exchange("task", ...)``), found in the source of every grader module outside the
    worker, with where; a call whose task is not a string literal fails unless it is a
    forwarding wrapper itself (a function named ``request`` passing its argument on)."""
    found: dict[str, list[str]] = {}
    for path in sorted(GRADER.rglob("*.py")):
        if "worker" in path.relative_to(GRADER).parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("request", "_exchange") and node.args):
                continue
            where = f"{path.relative_to(GRADER.parent)}:{node.lineno}"
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(first.value, []).append(where)
                continue
            scope = parents.get(node)
            while scope is not None and not isinstance(scope, (ast.FunctionDef,
                                                               ast.AsyncFunctionDef)):
                scope = parents.get(scope)
            assert scope is not None and scope.name in FORWARDERS, (
                f"{where}: a request whose task is not a string literal; name the task there "
                f"so that this test can see it has a reply schema")
    return found


def test_every_requested_task_has_a_schema_and_a_worker_handler():
    from grader.worker import registry

    requested = trusted_requests()
    # The scan is not vacuous: the tasks of every assignment are among those it finds.
    assert {"ping", "preload", "import", "call", "module", "notebook", "forbid_processes",
            "cached_steps", "generate_runs", "load_checkpoint", "training.get_lr",
            "training.get_batch", "training.loop", "training.probe",
            "training.gpt_probe"} <= set(requested)
    missing = {t: w for t, w in requested.items() if replies.schema_of(t) is None}
    assert not missing, f"tasks requested without a reply schema in replies.SCHEMAS: {missing}"
    unknown = {t: w for t, w in requested.items() if t not in registry.TASKS}
    assert not unknown, f"tasks requested that the worker does not serve: {unknown}"
    # A task the worker serves that nothing requests yet still gets a schema before use.
    assert set(registry.TASKS) <= set(replies.SCHEMAS), set(registry.TASKS) - set(
        replies.SCHEMAS)
    assert set(SAMPLES) == set(replies.SCHEMAS)


# ------------------------------------------------------------------------------ samples


def _t(*shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.zeros(*shape, dtype=dtype)


def _tensor_desc(key: str, shape: list[int], dtype: str = "float64", grad: bool = False):
    return {"kind": "tensor", "key": key, "dtype": dtype, "shape": shape, "requires_grad": grad}


def _logits_desc(prefix: str, shape: list[int]) -> dict[str, Any]:
    """What GPT.forward's (logits, loss=None) looks like described."""
    return {"kind": "tuple", "items": [_tensor_desc(f"{prefix}.0", shape), {"kind": "none"}]}


_INFO = {"parameters": {"w": [3, 4], "b": [3]}, "num_parameters": 15,
         "same_object": [], "same_storage": [], "buffers": ["mask"], "state_dict": ["w", "b"]}
_ERROR = {"type": "NameError", "message": "name 'x' is not defined",
          "where": "attention.py, line 3, in <module>: x", "traceback": "...", "contract": False}
_METRICS = {"train_losses": {"container": "list", "length": 3, "types": ["float"]},
            "val_losses": {"container": "list", "length": 2, "types": ["float"]},
            "lrs": {"container": "list", "length": 3, "types": ["float"]},
            "grad_norms": {"container": "list", "length": 3, "types": ["float"]}}
_METRIC_TENSORS = {"m.train_losses": _t(3), "m.val_losses": _t(2), "m.lrs": _t(3),
                   "m.grad_norms": _t(3), "p.fc.weight": _t(4, 4, dtype=torch.float32)}


class Sample:
    """One correct reply of a task: the request's arguments, the result and tensors, and which
    of its keys the worker sends only sometimes (paths with ``[]`` for any list index)."""

    def __init__(self, args: dict[str, Any], result: dict[str, Any],
                 tensors: dict[str, torch.Tensor] | None = None, optional: tuple[str, ...] = (),
                 optional_tensors: tuple[str, ...] = (), typed_tensors: tuple[str, ...] = ()):
        self.args, self.result, self.tensors = args, result, tensors or {}
        self.optional = set(optional)
        self.optional_tensors = optional_tensors  # prefixes of tensors a check reads if sent
        self.typed_tensors = typed_tensors  # tensors the worker makes, of a fixed dtype


SAMPLES: dict[str, list[Sample]] = {
    "ping": [Sample({}, {"python": "3.11.9", "torch": "2.5.1", "threads": 1, "cuda": False})],
    "import": [
        Sample({"modules": ["attention"]},
               {"modules": {"attention": {"ok": True, "names": ["F", "torch"]}}}),
        Sample({"modules": ["attention"]}, {"modules": {"attention": {"ok": False,
                                                                      "error": _ERROR}}},
               optional=("modules.*.error.where", "modules.*.error.traceback",
                         "modules.*.error.contract")),
    ],
    "call": [Sample(
        {"module": "attention", "function": "scaled_dot_product_attention", "args": [],
         "kwargs": {}, "requires_grad": ["q"], "grad_outputs": {"out": "g"}, "seed": 0},
        {"output": _tensor_desc("out", [2, 3], grad=True), "grads": ["grad.q"]},
        {"out": _t(2, 3), "grad.q": _t(2, 3)})],
    "module": [Sample(
        {"module": "block", "class": "MLP", "args": [], "kwargs": {}, "seed": 0, "load": True,
         "calls": [{"method": "__call__", "args": [], "kwargs": {}, "requires_grad": ["x"],
                    "grad_outputs": {"out": "g"}, "param_grads": True, "seed": 0},
                   {"method": "__call__", "args": [], "kwargs": {}, "requires_grad": [],
                    "grad_outputs": {}, "param_grads": False, "seed": 0}],
         "return_params": True},
        {"info": dict(_INFO, load={"loaded": 2}),
         "calls": [{"output": _tensor_desc("c0.out", [2, 3], grad=True), "grads": ["c0.grad.x"],
                    "params_without_grad": []},
                   {"output": _tensor_desc("c1.out", [2, 3]), "grads": []}]},
        {"c0.out": _t(2, 3), "c0.grad.x": _t(2, 3), "c0.pgrad.w": _t(3, 4), "c1.out": _t(2, 3),
         "p.w": _t(3, 4), "p.b": _t(3)},
        optional=("info.load",), optional_tensors=("c0.pgrad.", "p."))],
    "notebook": [Sample(
        {"name": "a.ipynb", "cells": [{"index": 0, "source": "x = 1"},
                                      {"index": 1, "source": "1 / 0"}]},
        {"cells": [{"index": 0, "status": "ok", "seconds": 0.01},
                   {"index": 1, "status": "error", "type": "ZeroDivisionError",
                    "message": "division by zero", "line": 1, "seconds": 0.02}],
         "kernel": "fork", "kernel_starts": 1, "seconds": 0.7},
        optional=("cells[].seconds", "cells[].type", "cells[].message", "cells[].line"))],
    "forbid_processes": [Sample({}, {"forbidden": True})],
    "preload": [Sample({}, {"started": True})],
    "cached_steps": [Sample(
        {"model": {}, "dtype": "float64", "load": True, "cache": {},
         "steps": [{"idx": "x0", "cache": True}, {"idx": "full", "cache": False}],
         "return_cache": True, "prefill_layers": 0},
        {"steps": [{"output": _logits_desc("s0.out", [2, 5, 11]),
                    "cache": {"length": 5, "k": [{"shape": [2, 2, 5, 4], "dtype": "float64"}],
                              "v": [{"shape": [2, 2, 5, 4], "dtype": "float64"}]},
                    "positions": [[0, 1, 2, 3, 4]]},
                   {"output": _logits_desc("s1.out", [2, 5, 11]),
                    "cache": {"length": None, "length_error": "TypeError: no len",
                              "k": [None], "v": [{"type": "list"}]},
                    "positions": [[0, 1, 2, 3, 4]]}]},
        {"s0.out.0": _t(2, 5, 11), "s1.out.0": _t(2, 5, 11), "cache.k.0": _t(2, 2, 5, 4),
         "cache.v.0": _t(2, 2, 5, 4)},
        optional=("steps[].cache.length_error",), optional_tensors=("cache.",))],
    "generate_runs": [Sample(
        {"model": {}, "dtype": "float32", "load": True,
         "function": {"module": "kv_cache", "function": "generate"},
         "runs": [{"idx": "prompt", "kwargs": {"max_new_tokens": 2}, "generator_seed": None,
                   "seed": 0}]},
        {"runs": [{"output": _tensor_desc("r0.out", [2, 7], "int64"),
                   "calls": [{"shape": [2, 5], "cache": True}, {"shape": [2, 1], "cache": True},
                             {"shape": None, "cache": False}]}]},
        {"r0.out": _t(2, 7, dtype=torch.int64)})],
    "load_checkpoint": [
        Sample({"module": "gpt2_loading", "function": "load_gpt2", "source": {"path": "/x"},
                "expect_class": {"module": "block", "class": "GPT"}, "dtype": "float64",
                "calls": ["idx"], "return_params": True,
                "perturb": {"param": "transformer.wte.weight", "rows": [1],
                            "tensor": "tie.delta"}},
               {"type": "GPT", "is_expected": True, "info": _INFO, "dtypes": ["float32"],
                "calls": [{"output": _logits_desc("c0.out", [1, 4, 11])}],
                "perturbed_calls": [{"output": _logits_desc("q0.out", [1, 4, 11])}]},
               {"c0.out.0": _t(1, 4, 11), "q0.out.0": _t(1, 4, 11), "p.w": _t(3, 4)},
               optional_tensors=("p.",)),
        Sample({"module": "gpt2_loading", "function": "load_gpt2", "source": {"path": "/x"},
                "expect_error": True},
               {"raised": True, "type": "ValueError", "is_value_error": True,
                "message": "not a GPT-2 checkpoint: model_type llama"}),
    ],
    "training.get_lr": [Sample(
        {"calls": [[0, {"max_lr": 1.0}], [1, {"max_lr": 1.0}]]},
        {"types": ["float", "tensor[]"]}, {"lrs": _t(2)}, typed_tensors=("lrs",))],
    "training.get_batch": [Sample(
        {"calls": [{"data": "data", "block_size": 8, "batch_size": 4, "generator_seed": 0,
                    "global_seed": 0, "device": "cpu"}]},
        {"calls": [{"x": {"dtype": "int64", "device": "cpu", "shape": [4, 8]},
                    "y": {"dtype": "int64", "device": "cpu", "shape": [4, 8]}}]},
        {"x0": _t(4, 8, dtype=torch.int64), "y0": _t(4, 8, dtype=torch.int64)})],
    "training.loop": [
        Sample({"config": {}, "seed": 0, "model": {}, "device": "cpu"},
               {"metrics": _METRICS, "keys": ["eval_interval", "grad_norms", "lrs",
                                              "train_losses", "val_losses"],
                "eval_interval": 2.0, "eval_interval_type": "int", "seconds": 0.5,
                "device": "cpu",
                "forwards": [{"training": True, "grad": True, "backward": True, "targets": True},
                             {"training": False, "grad": False, "backward": False,
                              "targets": False}]},
               {**_METRIC_TENSORS, "f0.x": _t(4, 8, dtype=torch.int64),
                "f0.y": _t(4, 8, dtype=torch.int64), "f1.x": _t(4, 8, dtype=torch.int64),
                "schedule": _t(3)},
               optional=("eval_interval", "eval_interval_type", "metrics.*.length",
                         "metrics.*.types"),
               optional_tensors=("m.", "p.", "f"), typed_tensors=("m.lrs", "schedule")),
        Sample({"config": {}, "seed": 0, "model": {}, "device": "cpu"},
               {"metrics": None, "returned": "NoneType", "seconds": 0.5, "device": "cpu",
                "forwards": []},
               {"schedule": _t(3), "p.fc.weight": _t(4, 4, dtype=torch.float32)},
               optional_tensors=("p.",), typed_tensors=("schedule",)),
    ],
    "training.probe": [Sample(
        {"config": {}, "seed": 0, "model": {}, "device": "cpu", "threads": 1},
        {"metrics": _METRICS, "keys": ["eval_interval", "grad_norms", "lrs", "train_losses",
                                       "val_losses"],
         "eval_interval": 100.0, "eval_interval_type": "int", "seconds": 1.5, "device": "cpu"},
        _METRIC_TENSORS, optional=("eval_interval", "eval_interval_type", "metrics.*.length",
                                   "metrics.*.types"),
        optional_tensors=("m.", "p."), typed_tensors=("m.train_losses",))],
    "training.gpt_probe": [Sample(
        {"model": {}, "seed": 0, "lr": 1e-3, "max_seconds": 30.0, "device": "cpu",
         "last_only": True, "threads": 1},
        {"steps_done": 3, "seconds": 2.5, "device": "cpu"},
        {"losses": _t(3), "logits": _t(4, 11, dtype=torch.float32)},
        typed_tensors=("losses", "logits"))],
}
# Numbers that may be NaN or infinite in a correct reply (the worker's float() of a value of
# the student's that is not a number).
NON_FINITE_OK = {("training.loop", "eval_interval"), ("training.probe", "eval_interval")}
# Values a correct reply may hold as null.
NULLABLE = {"steps[].cache.length", "steps[].cache.k[]", "steps[].cache.v[]",
            "runs[].calls[].shape", "metrics", "cells[].line"}


def cases() -> list[tuple[str, int, Sample]]:
    return [(task, i, s) for task, samples in SAMPLES.items() for i, s in enumerate(samples)]


CASES = pytest.mark.parametrize("task, i, sample", cases(),
                                ids=[f"{t}-{i}" for t, i, _ in cases()])


@CASES
def test_a_correct_reply_is_accepted_with_and_without_its_request(task, i, sample):
    for args in (sample.args, None):
        decoded = decode(task, sample.result, sample.tensors, args)
        assert decoded.ok and decoded.result == sample.result


# ------------------------------------------------------------------------------ garbage


def _nodes(value: Any, path: tuple = ()):
    """Every (path, value) of a result outside value descriptions (judged whole by
    check_description, tested in test_attacks_replies), the result itself excluded."""
    if isinstance(value, dict):
        if "kind" in value:  # a value description
            return
        for k, v in value.items():
            yield path + (k,), v
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path + (i,), v
            yield from _nodes(v, path + (i,))


# Objects whose keys are names (modules, parameters, metrics): a path names any key "*".
MAPS = {"modules", "info.parameters", "metrics"}


def _name(path: tuple) -> str:
    """A path as the samples name it: ``[]`` for any list index, ``*`` for any key of a map."""
    name = ""
    for p in path:
        if isinstance(p, int):
            name += "[]"
        else:
            name += ("." if name else "") + ("*" if name in MAPS else p)
    return name


def _replaced(result: dict[str, Any], path: tuple, value: Any = None, drop: bool = False):
    out = copy.deepcopy(result)
    node = out
    for p in path[:-1]:
        node = node[p]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


NESTED = [[[[{"kind": "spooky"}]]]]
OBJECT = {"kind": "spooky", "junk": [1, "2", None, [{}]]}


def _junk_for(task: str, path: tuple, value: Any) -> list[Any]:
    """Values of another type than ``value`` (or a number of the wrong kind), each of which the
    schema must refuse at ``path``."""
    name = _name(path)
    junk: list[Any] = [NESTED, OBJECT]
    if not isinstance(value, str):
        junk += ["NaN", "inf", "1e309"]
    if not isinstance(value, bool):
        junk.append(True)
    if type(value) is int:
        junk += [1.5, math.nan]
    elif type(value) is float:
        if (task, name) not in NON_FINITE_OK:
            junk += [math.nan, math.inf, -math.inf]
    elif value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        junk.append(7)  # (a null may stand for a number: cache.length)
    if value is not None and name not in NULLABLE:
        junk.append(None)
    return junk


@CASES
def test_every_field_of_another_type_is_rejected(task, i, sample):
    accepted = []
    for args in (sample.args, None):
        for path, value in _nodes(sample.result):
            for junk in _junk_for(task, path, value):
                try:
                    decode(task, _replaced(sample.result, path, junk), sample.tensors, args)
                    accepted.append((_name(path), junk, args is not None))
                except replies.ReplyRejected as exc:
                    assert "does not follow the protocol" in str(exc)
    assert not accepted, accepted


@CASES
def test_every_key_the_worker_always_sends_is_required(task, i, sample):
    for path, _ in _nodes(sample.result):
        if isinstance(path[-1], int) or _name(path[:-1]) in MAPS - {"modules"}:
            continue  # a list's item, or one name of a map: how many the student's code made
        broken = _replaced(sample.result, path, drop=True)
        if _name(path) in sample.optional:
            decode(task, broken, sample.tensors, sample.args)
        else:
            assert "is missing" in rejected(task, broken, sample.tensors, sample.args), path


@CASES
def test_a_result_that_is_not_the_tasks_object_is_rejected(task, i, sample):
    for result in ({}, [], "NaN", None, 3, NESTED, OBJECT, {"kind": "tensor"}):
        message = {"id": 7, "ok": True, "result": result}
        with pytest.raises(replies.ReplyRejected):
            replies.read_reply(replies.parse_json(protocol.pack(message)[
                protocol.HEADER_SIZE:]), task, 7, {}, args=sample.args)


@CASES
def test_lists_longer_than_their_cap_are_rejected(task, i, sample):
    over, done = replies.MANY + 1, set()
    for path, value in _nodes(sample.result):
        if _name(path) in done:
            continue  # the same list in another item: the same schema
        done.add(_name(path))
        # The cap is what refuses it (the message says so), so the extra items may be cheap.
        if isinstance(value, list) and value:
            flood = value + [_cheap(value[0])] * (over - len(value))
            message = rejected(task, _replaced(sample.result, path, flood), sample.tensors)
            assert f"has {over:,} items" in message, message
        if isinstance(value, dict) and "kind" not in value and _name(path) in MAPS:
            extra = _cheap(next(iter(value.values())))
            flood = dict(value, **{f"k{j}": extra for j in range(over - len(value))})
            message = rejected(task, _replaced(sample.result, path, flood), sample.tensors)
            assert f"has {over:,} keys" in message, message


def _cheap(item: Any) -> Any:
    return type(item)() if isinstance(item, (list, dict)) else item


@CASES
def test_counts_the_request_decides_are_pinned(task, i, sample):
    """A list of one item per item asked for, one item short: refused when the request is
    known (a check indexing it never meets a shorter list), accepted when it is not."""
    for key in PINNED.get(task, ()):
        value = sample.result.get(key)
        if not value:
            continue
        short = dict(sample.result, **{key: value[:-1]})
        tensors = dict(sample.tensors)
        if task == "training.get_lr":
            tensors["lrs"] = tensors["lrs"][:-1]
        assert "the request asked for" in rejected(task, short, tensors, sample.args)
        decode(task, short, tensors, None)


# The lists of one item per item of the request.
PINNED = {"cached_steps": ["steps"], "generate_runs": ["runs"], "notebook": ["cells"],
          "module": ["calls"], "load_checkpoint": ["calls", "perturbed_calls"],
          "training.get_lr": ["types"], "training.get_batch": ["calls"]}


@CASES
def test_tensors_the_checks_read_must_be_sent_with_their_dtype(task, i, sample):
    for name in sample.tensors:
        fewer = {k: v for k, v in sample.tensors.items() if k != name}
        if name.startswith(sample.optional_tensors):
            decode(task, sample.result, fewer, sample.args)
        else:
            rejected(task, sample.result, fewer, sample.args)
    for name in sample.typed_tensors:
        t = sample.tensors[name]
        for wrong in [t.to(torch.float16)] + ([t[None]] if t.dim() == 1 else []):
            rejected(task, sample.result, dict(sample.tensors, **{name: wrong}), sample.args)


def test_garbage_aimed_at_what_the_checks_read():
    """Replies crafted against the later tasks' checks: each is a clean rejection."""
    lr = SAMPLES["training.get_lr"][0]
    # An empty answer to a request for two values would let zip() compare nothing.
    assert "asked for" in rejected("training.get_lr", {"types": []}, {"lrs": _t(0)}, lr.args)
    assert "holds 3 values" in rejected("training.get_lr", lr.result, {"lrs": _t(3)})
    batch = SAMPLES["training.get_batch"][0]
    assert "has no tensor 'y0'" in rejected("training.get_batch", batch.result,
                                            {"x0": batch.tensors["x0"]}, batch.args)
    gpt = SAMPLES["training.gpt_probe"][0]
    assert "steps_done" in rejected("training.gpt_probe", dict(gpt.result, steps_done=120),
                                    gpt.tensors)
    steps = SAMPLES["cached_steps"][0]
    flood = copy.deepcopy(steps.result)
    flood["steps"][0]["positions"] = [list(range(5000))]
    assert "at most 4,096" in rejected("cached_steps", flood, steps.tensors)
    long_type = dict(SAMPLES["load_checkpoint"][1].result, type="E" * 5000)
    assert "characters" in rejected("load_checkpoint", long_type)
    loaded = SAMPLES["load_checkpoint"][0]
    # The form of one kind of request answering the other: refused once the request is known.
    rejected("load_checkpoint", SAMPLES["load_checkpoint"][1].result, args=loaded.args)
    rejected("load_checkpoint", loaded.result, loaded.tensors,
             SAMPLES["load_checkpoint"][1].args)
    no_perturbed = {k: v for k, v in loaded.result.items() if k != "perturbed_calls"}
    assert "perturbed_calls is missing" in rejected("load_checkpoint", no_perturbed,
                                                    loaded.tensors, loaded.args)
    call = SAMPLES["call"][0]
    assert "asked for" in rejected("call", dict(call.result, grads=[]), call.tensors, call.args)
    imp = SAMPLES["import"][0]
    assert "modules.block is missing" in rejected("import", imp.result,
                                                  args={"modules": ["attention", "block"]})
    loop = SAMPLES["training.loop"][0]
    nan_seconds = dict(loop.result, seconds=math.nan)
    assert "finite" in rejected("training.loop", nan_seconds, loop.tensors)
    two_d = dict(loop.tensors, **{"m.grad_norms": _t(3, 1)})
    assert "'m.grad_norms' has 2 dimensions" in rejected("training.loop", loop.result, two_d)


# ------------------------------------------------------------------------------ real replies


def _signature(value: Any, name: str = "") -> Any:
    """The shape of a JSON value: keys (``*`` for a map's), the shapes of its list's items, and
    scalar kinds (numbers alike; a value description as one kind)."""
    if isinstance(value, dict):
        if "kind" in value:
            return "description"
        if name in MAPS:
            return {"*": [_signature(v, f"{name}.*") for v in value.values()]}
        return {k: _signature(v, f"{name}.{k}".lstrip(".")) for k, v in value.items()}
    if isinstance(value, list):
        return [_signature(v, f"{name}[]") for v in value]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


def _covers(sample: Any, real: Any) -> bool:
    """Whether everything in the real reply's shape is in the sample's: each key known there
    with the same shape, each list item shaped like one of the sample's items (an empty list
    and null stand for anything)."""
    if isinstance(sample, dict) and isinstance(real, dict):
        if "*" in sample or "*" in real:
            return _covers(sample.get("*", []), real.get("*", []))
        return set(real) <= set(sample) and all(_covers(sample[k], real[k]) for k in real)
    if isinstance(sample, list) and isinstance(real, list):
        return not sample or all(any(_covers(s, r) for s in sample) for r in real)
    return sample == real or "null" in (sample, real)


@pytest.fixture(scope="module")
def real_replies():
    """Every request and reply of a few checks of each assignment run on the correct example
    (the checks pass), of a notebook run, and of forbid_processes: as the worker sends them."""
    from conftest import CORRECT, SHARED_REFERENCE, settings

    from grader.checks import ASSIGNMENTS
    from grader.checks.base import Context
    from grader.grading import run_check
    from grader.isolation.client import WorkerClient
    from grader.model.results import Status

    seen: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]] = []

    class Recording(WorkerClient):
        def _exchange(self, task, args, tensors, timeout):
            reply = super()._exchange(task, args, tensors, timeout)
            seen.append((task, copy.deepcopy(args), reply.result, dict(reply.tensors)))
            return reply

    chosen = {"attention": ["sdpa_gradients"], "block": ["block_gradients", "gpt_probe"],
              "kv_cache": ["positions", "greedy"], "gpt2_loading": ["weight_tying", "not_gpt2"],
              "training": ["lr_schedule", "batch_shapes", "loop_metrics", "convergence_probe"]}
    with Recording(CORRECT, settings(total_timeout=900)) as worker:
        modules = ["attention", "causal_mask", "block", "kv_cache", "gpt2_loading", "training"]
        for module in modules:
            assert worker.request("import", {"modules": [module]}).result["modules"][module]["ok"]
        for name, ids in chosen.items():
            ctx = Context(assignment=name, worker=worker, source=SHARED_REFERENCE)
            for check in ASSIGNMENTS[name].checks:
                if check.id in ids:
                    res = run_check(check, replace(ctx, timeout=check.timeout), check.points)
                    assert res.status is Status.PASSED, (name, check.id, res.message)
        worker.request("notebook", {"name": "a.ipynb", "cells": [
            {"index": 0, "source": "x = 1"}, {"index": 1, "source": "1 / 0"}],
            "cell_timeout": 30, "total_timeout": 60, "kernel": ""}, timeout=120)
        worker.request("forbid_processes")
        worker.request("preload")
    return seen


def test_real_replies_of_every_task_are_accepted_given_their_request(real_replies):
    tasks = {task for task, *_ in real_replies}
    assert tasks == set(replies.SCHEMAS), set(replies.SCHEMAS) - tasks
    for task, args, result, tensors in real_replies:
        decoded = decode(task, result, tensors, args)
        assert decoded.result == result


def test_the_samples_have_the_shape_of_real_replies(real_replies):
    for task, _, result, _ in real_replies:
        shapes = [_signature(s.result) for s in SAMPLES[task]]
        assert any(_covers(s, _signature(result)) for s in shapes), (task, _signature(result))
