"""Helpers that checks use to run the student's code in the worker and read what came back."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from grader.checks.base import CheckFailed, Context

S = TypeVar("S")
R = TypeVar("R")


def T(name: str) -> dict[str, str]:
    """An argument that refers to the tensor sent under ``name``."""
    return {"$t": name}


def new(module: str, cls: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """An argument built in the worker from the student's module, e.g. their ``GPTConfig``."""
    return {"$new": {"module": module, "class": cls, "args": list(args), "kwargs": kwargs}}


def tup(*items: Any) -> dict[str, list[Any]]:
    """An argument the worker passes as a tuple (JSON has only lists), e.g. a merge's pair."""
    return {"$tuple": list(items)}


def text_arg(name: str) -> dict[str, str]:
    """A ``str`` argument whose UTF-8 bytes are the uint8 tensor sent under ``name`` (a large
    text costs no JSON escaping that way)."""
    return {"$text": name}


def kept(key: str, value: Any) -> dict[str, Any]:
    """An argument the worker decodes (e.g. builds with :func:`new`) once per process and then
    reuses; ``key`` must name exactly this value (include a digest of its inputs)."""
    return {"$kept": {"key": key, "value": value}}


def raw(data: bytes) -> dict[str, str]:
    """A ``bytes`` argument."""
    import base64

    return {"$bytes": base64.b64encode(data).decode()}


_KIND_NAMES = {"tuple": "a tuple", "list": "a list", "dict": "a dict", "none": "None",
               "number": "a number", "bool": "a bool", "tensor": "a tensor", "str": "a str",
               "bytes": "bytes"}


def _kind(description: dict[str, Any]) -> str:
    if description["kind"] == "other":
        return f"a {description.get('type', 'value')}"
    if description["kind"] == "ints":
        shape = description["shape"]
        rows = f" of {shape[1]}-int {description.get('inner', 'row')}s" if len(shape) == 2 else \
            " ints"
        return f"a {description['container']} of {shape[0]}{rows}"
    if description["kind"] in ("tuple", "list"):
        return f"{_KIND_NAMES[description['kind']]} of {len(description['items'])}"
    return _KIND_NAMES.get(description["kind"], description["kind"])


@dataclass
class Output:
    """A return value of the student's code: its JSON description and the tensors in it."""

    description: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    what: str

    def tensor(self) -> torch.Tensor:
        """The output as one tensor, or a failure saying what was returned instead."""
        if self.description["kind"] != "tensor":
            raise CheckFailed(f"{self.what} returned {_kind(self.description)}, expected a tensor")
        return self.tensors[self.description["key"]]

    def tensor_tuple(self, n: int, names: str) -> list[torch.Tensor]:
        """The output as a tuple of ``n`` tensors (``names`` describes them for the message)."""
        d = self.description
        if d["kind"] not in ("tuple", "list") or len(d["items"]) != n or any(
                item["kind"] != "tensor" for item in d["items"]):
            raise CheckFailed(f"{self.what} returned {_kind(d)}, expected a tuple {names}")
        return [self.tensors[item["key"]] for item in d["items"]]

    def item(self, index: int) -> Output:
        """One element of a tuple/list output."""
        d = self.description
        if d["kind"] not in ("tuple", "list") or len(d["items"]) <= index:
            raise CheckFailed(f"{self.what} returned {_kind(d)}, expected a tuple")
        return Output(d["items"][index], self.tensors, self.what)

    def text(self) -> str:
        """The output as a whole ``str`` (a cut-off one fails, saying its length)."""
        d = self.description
        if d["kind"] != "str":
            raise CheckFailed(f"{self.what} returned {_kind(d)}, expected a str")
        if d["length"] != len(d["value"]):
            raise CheckFailed(f"{self.what} returned a str of {d['length']:,} characters, "
                              f"longer than the grader reads")
        return d["value"]

    def raw(self) -> bytes:
        """The output as ``bytes`` (a ``bytearray`` counts; a cut-off one fails)."""
        import base64

        d = self.description
        if d["kind"] != "bytes":
            raise CheckFailed(f"{self.what} returned {_kind(d)}, expected bytes")
        data = base64.b64decode(d["b64"])
        if d["length"] != len(data):
            raise CheckFailed(f"{self.what} returned {d['length']:,} bytes, more than the "
                              f"grader reads")
        return data

    def ints(self) -> list[int]:
        """The output as a list (or tuple) of ints, e.g. token ids, whatever its length."""
        d = self.description
        if d["kind"] == "ints" and len(d["shape"]) == 1:
            return [int(v) for v in self.tensors[d["key"]].tolist()]
        if d["kind"] in ("tuple", "list") and all(_is_int(item) for item in d["items"]):
            return [int(item["value"]) for item in d["items"]]
        raise CheckFailed(f"{self.what} returned {_kind(d)}, expected a list of ints")

    def int_rows(self, width: int) -> list[tuple[int, ...]]:
        """The output as a list of ``width``-int rows (tuples or lists), e.g. a merge table of
        pairs; returned as tuples."""
        d = self.description
        if d["kind"] == "ints" and d["shape"][1:] == [width]:
            return [tuple(int(v) for v in row) for row in self.tensors[d["key"]].tolist()]
        if d["kind"] in ("tuple", "list") and all(
                row["kind"] in ("tuple", "list") and len(row["items"]) == width
                and all(_is_int(v) for v in row["items"]) for row in d["items"]):
            return [tuple(int(v["value"]) for v in row["items"]) for row in d["items"]]
        raise CheckFailed(f"{self.what} returned {_kind(d)}, expected a list of "
                          f"{width}-int tuples")

    def value(self) -> Any:
        """The output as a plain Python value (None, bool, float, str, bytes, lists, tuples,
        dicts with str keys, ``ints`` as lists of ints or of int tuples/lists; tensors as
        tensors); anything the worker could not describe fails, saying what it was."""
        return _plain(self.description, self.tensors, self.what)


def _is_int(d: dict[str, Any]) -> bool:
    return d["kind"] == "number" and isinstance(d["value"], float) and d["value"].is_integer()


def _plain(d: dict[str, Any], tensors: dict[str, torch.Tensor], what: str) -> Any:
    kind = d["kind"]
    if kind == "none":
        return None
    if kind in ("bool", "number"):
        return float(d["value"]) if kind == "number" else d["value"]
    if kind in ("str", "bytes"):
        return Output(d, tensors, what).text() if kind == "str" else Output(d, tensors, what).raw()
    if kind == "tensor":
        return tensors[d["key"]]
    if kind == "ints":
        rows = tensors[d["key"]].tolist()
        if len(d["shape"]) == 2:
            inner = tuple if d.get("inner") == "tuple" else list
            rows = [inner(r) for r in rows]
        return tuple(rows) if d["container"] == "tuple" else rows
    if kind in ("tuple", "list"):
        items = [_plain(v, tensors, what) for v in d["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _plain(v, tensors, what) for k, v in d["items"].items()}
    raise CheckFailed(f"{what} returned {_kind(d)}, which the grader cannot read")


@dataclass
class CallResult:
    output: Output
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    param_grads: dict[str, torch.Tensor] = field(default_factory=dict)
    params_without_grad: list[str] = field(default_factory=list)


@dataclass
class ModuleRun:
    info: dict[str, Any]
    calls: list[CallResult]
    params: dict[str, torch.Tensor]


def call_function(ctx: Context, module: str, function: str, *, args: list[Any],
                  kwargs: dict[str, Any] | None = None, tensors: dict[str, torch.Tensor],
                  requires_grad: tuple[str, ...] = (), grad_outputs: dict[str, str] | None = None,
                  seed: int = 0, what: str | None = None, timeout: float | None = None,
                  on: dict[str, Any] | None = None, each: bool = False) -> CallResult:
    """Call ``module.function`` in the worker (with ``on``, an object built by :func:`new`, its
    method ``function``; with ``each``, once per item of the first argument, the output being
    the list of results); ``grad_outputs`` maps output keys (``out``, ``out.0``) to tensor names
    to backpropagate, returning the gradients of ``requires_grad``."""
    request = {
        "module": module, "function": function, "args": args, "kwargs": kwargs or {},
        "requires_grad": list(requires_grad), "grad_outputs": grad_outputs or {}, "seed": seed,
    }
    if on is not None:
        request["self"] = on
    if each:
        request["each"] = True
    reply = ctx.request("call", request, tensors, timeout=timeout)
    out = reply.result["output"]
    grads = {k[len("grad."):]: reply.tensors[k] for k in reply.result["grads"]}
    return CallResult(Output(out, reply.tensors, what or f"`{function}`"), grads)


def run_module(ctx: Context, module: str, cls: str, *, args: list[Any] | None = None,
               kwargs: dict[str, Any] | None = None, tensors: dict[str, torch.Tensor] | None = None,
               params: dict[str, torch.Tensor] | None = None, seed: int = 0,
               dtype: str | None = None, calls: list[dict[str, Any]] | None = None,
               return_params: bool = False, what: str | None = None,
               timeout: float | None = None) -> ModuleRun:
    """Build the student's ``module.cls(*args, **kwargs)`` in the worker (seeded), optionally
    load ``params`` into it, run ``calls`` on the same instance, and read the results."""
    sent = dict(tensors or {})
    if params is not None:
        sent.update({f"p.{k}": v for k, v in params.items()})
    request: dict[str, Any] = {
        "module": module, "class": cls, "args": args or [], "kwargs": kwargs or {},
        "seed": seed, "load": params is not None, "calls": calls or [],
        "return_params": return_params,
    }
    if dtype:
        request["dtype"] = dtype
    reply = ctx.request("module", request, sent, timeout=timeout)
    results = []
    for i, call in enumerate(reply.result["calls"]):
        prefix = f"c{i}."
        grads = {k[len(prefix) + len("grad."):]: reply.tensors[k] for k in call["grads"]}
        pgrads = {k[len(prefix) + len("pgrad."):]: v for k, v in reply.tensors.items()
                  if k.startswith(prefix + "pgrad.")}
        results.append(CallResult(Output(call["output"], reply.tensors, what or f"`{cls}`"),
                                  grads, pgrads, call.get("params_without_grad", [])))
    got_params = {k[2:]: v for k, v in reply.tensors.items() if k.startswith("p.")}
    return ModuleRun(reply.result["info"], results, got_params)


def call_spec(*args: Any, method: str = "__call__", requires_grad: tuple[str, ...] = (),
              grad_outputs: dict[str, str] | None = None, param_grads: bool = False,
              seed: int = 0, **kwargs: Any) -> dict[str, Any]:
    """One call on a module built by :func:`run_module`."""
    return {"method": method, "args": list(args), "kwargs": kwargs,
            "requires_grad": list(requires_grad), "grad_outputs": grad_outputs or {},
            "param_grads": param_grads, "seed": seed}


def seeded(seed: int) -> torch.Generator:
    """A CPU generator with a FIXED seed: the same numbers on every run and machine. Not for
    graded inputs (those are predictable from the bundle's fixtures): take the generator that
    :meth:`~grader.checks.base.Context.inputs` passes to ``make``, or ``ctx.rng(key)``."""
    return torch.Generator().manual_seed(seed)


def side_by_side(student: Callable[[], S], reference: Callable[[], R]) -> tuple[S, R]:
    """``(student(), reference())`` with the two running at once: ``student`` (a request to
    the worker, which waits on another process) in a thread, ``reference`` (the trusted side's
    computation) here. A probe's two training runs then take the time of one on a machine
    with two cores. Whatever either raises is raised here, after both have ended."""
    with ThreadPoolExecutor(1, thread_name_prefix="grader-student") as pool:
        pending = pool.submit(student)
        try:
            expected = reference()
        finally:
            mine = pending.exception()  # waits: a request in flight cannot be abandoned
        if mine is not None:
            raise mine
        return pending.result(), expected
