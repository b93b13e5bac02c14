"""Worker tasks for the KV-cache assignment: run a model step by step with one cache object,
and run the student's ``generate`` while recording what reaches the model.

Both only drive and observe the student's code (which objects are built, which tensors are fed,
what comes back); they compute nothing the trusted side judges by, and hold no solution.
"""

from __future__ import annotations

from typing import Any

import torch

from grader.worker import values
from grader.worker.tasks import (
    DTYPES,
    ContractError,
    Session,
    Tensors,
    load_parameters,
    reset_state,
)


def _build_model(session: Session, args: dict[str, Any], tensors: Tensors) -> torch.nn.Module:
    """The student's model from ``args["model"]`` (a ``$new`` spec), seeded, optionally cast to
    ``args["dtype"]`` and loaded with the tensors named ``p.<parameter name>``."""
    reset_state(args.get("seed", 0))
    model = session.new(args["model"], tensors)
    if not isinstance(model, torch.nn.Module):
        raise ContractError(f"{args['model']['class']} is not a torch.nn.Module")
    if "dtype" in args:
        model = model.to(DTYPES[args["dtype"]])
    model.eval()
    if args.get("load"):
        load_parameters(model, tensors)
    return model


def _cache_state(cache: Any) -> dict[str, Any]:
    """What a cache looks like: ``len(cache)`` and the shape/dtype of each layer's k and v."""
    state: dict[str, Any] = {}
    try:
        state["length"] = int(len(cache))
    except Exception as exc:  # noqa: BLE001 - a student's __len__ may raise anything
        state["length"] = None
        state["length_error"] = f"{type(exc).__name__}: {exc}"[:300]
    for name in ("k", "v"):
        layers = getattr(cache, name, None)
        if layers is None or not hasattr(layers, "__len__"):
            raise ContractError(f"the cache has no attribute `{name}` holding one entry per layer")
        state[name] = [None if t is None else
                       {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
                       if isinstance(t, torch.Tensor) else {"type": type(t).__name__}
                       for t in list(layers)]
    return state


def _record_positions(model: torch.nn.Module) -> tuple[list[list[int]], Any]:
    """Record the indices given to ``model.transformer.wpe`` (the positions used), if the model
    calls that module; returns the record and the hook handle."""
    seen: list[list[int]] = []
    try:
        wpe = model.transformer.wpe
    except (AttributeError, KeyError):
        return seen, None
    if not isinstance(wpe, torch.nn.Module):
        return seen, None

    def hook(module, inputs):
        if inputs and isinstance(inputs[0], torch.Tensor):
            pos = inputs[0].detach()
            # (T,), (1, T) or (B, T) with equal rows: the positions of one sequence.
            rows = pos.reshape(-1, pos.shape[-1]) if pos.dim() else pos.reshape(1, 1)
            if bool((rows == rows[:1]).all()):
                rows = rows[:1]
            seen.append([int(i) for i in rows.reshape(-1)[:4096]])

    return seen, wpe.register_forward_pre_hook(hook)


def cached_steps(session: Session, args: dict[str, Any], tensors: Tensors):
    """Feed token chunks to one model, in order, sharing one cache object.

    Arguments: ``model`` (a ``$new`` spec), ``seed``, ``dtype``, ``load``; ``cache`` (a ``$new``
    spec of the cache, e.g. ``KVCache(n_layer)``); ``steps``: a list of ``{"idx": tensor name,
    "cache": bool}`` (``cache`` False calls ``model(idx)``, True ``model(idx, kv_cache=cache)``);
    ``return_cache``: send the final cache's tensors as ``cache.k.<layer>``/``cache.v.<layer>``;
    ``prefill_layers``: first call ``cache.update(layer, pre.k.<layer>, pre.v.<layer>)`` for
    each layer (a prefix whose tokens are never sent).

    Replies, per step: the output's description (tensors ``s<i>.out...``), the cache's state
    after the step, and the positions given to ``transformer.wpe`` during the step (if any):
    the latter two are descriptions (hints), the logits and returned tensors are what is judged.
    """
    model = _build_model(session, args, tensors)
    cache = values.decode(args["cache"], tensors, lambda s: session.new(s, tensors))
    for layer in range(int(args.get("prefill_layers", 0))):
        # Keys and values the grader made up, put in through the cache's own API: no token
        # behind them is ever sent, so only a model that reads its cache can use them.
        cache.update(layer, tensors[f"pre.k.{layer}"], tensors[f"pre.v.{layer}"])
    positions, handle = _record_positions(model)
    reply: dict[str, Any] = {"steps": []}
    sent: Tensors = {}
    try:
        with torch.no_grad():
            for i, step in enumerate(args["steps"]):
                del positions[:]
                idx = tensors[step["idx"]]
                result = model(idx, kv_cache=cache) if step.get("cache", True) else model(idx)
                out: Tensors = {}
                description = values.describe(result, f"s{i}.out", out)
                sent.update(out)
                reply["steps"].append({"output": description, "cache": _cache_state(cache),
                                       "positions": [list(p) for p in positions]})
    finally:
        if handle is not None:
            handle.remove()
    if args.get("return_cache"):
        for name in ("k", "v"):
            for layer, t in enumerate(getattr(cache, name)):
                if isinstance(t, torch.Tensor):
                    sent[f"cache.{name}.{layer}"] = t
    return reply, sent


def generate_runs(session: Session, args: dict[str, Any], tensors: Tensors):
    """Call the student's generation function on one model several times, recording every call
    that reaches the model.

    Arguments: ``model``, ``seed``, ``dtype``, ``load`` (as in :func:`cached_steps`);
    ``function``: ``{"module", "function"}``; ``runs``: a list of ``{"idx": tensor name,
    "kwargs": {...}, "generator_seed": int or None, "seed": int}``. Each run resets the global
    state with ``seed``, passes ``generator=torch.Generator().manual_seed(generator_seed)`` when
    one is given, and calls ``function(model, idx, **kwargs)``.

    Replies, per run: the output's description (tensors ``r<i>.out...``) and ``calls``: for each
    call of the model's forward, the shape of the token tensor it got and whether a cache was
    passed (``kv_cache`` not None).
    """
    model = _build_model(session, args, tensors)
    fn = session.attribute(args["function"]["module"], args["function"]["function"])
    calls: list[dict[str, Any]] = []
    original = model.forward

    def recording_forward(*a, **kw):
        idx = a[0] if a else kw.get("idx")
        cache = kw.get("kv_cache", a[2] if len(a) > 2 else None)
        calls.append({"shape": list(idx.shape) if isinstance(idx, torch.Tensor) else None,
                      "cache": cache is not None})
        return original(*a, **kw)

    # An instance attribute shadows the class's forward for model(...) and model.forward(...)
    # alike, so every call is seen whichever way the student makes it.
    model.forward = recording_forward
    reply: dict[str, Any] = {"runs": []}
    sent: Tensors = {}
    try:
        for i, run in enumerate(args["runs"]):
            reset_state(run.get("seed", 0))
            del calls[:]
            kwargs = dict(run.get("kwargs", {}))
            if run.get("generator_seed") is not None:
                kwargs["generator"] = torch.Generator().manual_seed(int(run["generator_seed"]))
            result = fn(model, tensors[run["idx"]], **kwargs)
            out: Tensors = {}
            description = values.describe(result, f"r{i}.out", out)
            sent.update({k: v.detach() for k, v in out.items()})
            reply["runs"].append({"output": description, "calls": [dict(c) for c in calls]})
    finally:
        del model.forward
    return reply, sent


TASKS = {
    "cached_steps": cached_steps,
    "generate_runs": generate_runs,
}
