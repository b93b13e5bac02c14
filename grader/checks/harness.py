"""Helpers that checks use to run the student's code in the worker and read what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from grader.checks.base import CheckFailed, Context


def T(name: str) -> dict[str, str]:
    """An argument that refers to the tensor sent under ``name``."""
    return {"$t": name}


def new(module: str, cls: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """An argument built in the worker from the student's module, e.g. their ``GPTConfig``."""
    return {"$new": {"module": module, "class": cls, "args": list(args), "kwargs": kwargs}}


_KIND_NAMES = {"tuple": "a tuple", "list": "a list", "dict": "a dict", "none": "None",
               "number": "a number", "bool": "a bool", "tensor": "a tensor"}


def _kind(description: dict[str, Any]) -> str:
    if description["kind"] == "other":
        return f"a {description.get('type', 'value')}"
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
                  seed: int = 0, what: str | None = None, timeout: float | None = None
                  ) -> CallResult:
    """Call ``module.function`` in the worker; ``grad_outputs`` maps output keys (``out``,
    ``out.0``) to tensor names to backpropagate, returning the gradients of ``requires_grad``."""
    reply = ctx.request("call", {
        "module": module, "function": function, "args": args, "kwargs": kwargs or {},
        "requires_grad": list(requires_grad), "grad_outputs": grad_outputs or {}, "seed": seed,
    }, tensors, timeout=timeout)
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
    """A CPU generator for a check's inputs: the same numbers on every run and machine."""
    return torch.Generator().manual_seed(seed)
