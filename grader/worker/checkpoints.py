"""Worker task for the GPT-2 loading assignment: call the student's loader on a checkpoint and
run the model it returns.

Checkpoints arrive either as a folder the grader shared (a path) or as tensors (a state dict).
The task reports what the student's code built and computed; judging it happens on the
trusted side.
"""

from __future__ import annotations

from typing import Any

import torch

from grader.worker import values
from grader.worker.tasks import DTYPES, ContractError, Session, Tensors, model_info, reset_state


def load_checkpoint(session: Session, args: dict[str, Any], tensors: Tensors):
    """Call ``module.function(source, config)`` and run the model it returns.

    Arguments: ``module``, ``function``; ``source``: ``{"path": str}`` (a shared folder) or
    ``{"state_dict": prefix}`` (the tensors whose names start with ``prefix``, the prefix
    removed); ``config``: optional JSON argument (e.g. a ``$new`` spec of ``GPTConfig``), passed
    as the keyword ``config`` when given; ``expect_class``: ``{"module", "class"}`` the result
    should be an instance of; ``dtype``: cast the returned model before running it; ``calls``:
    names of ``(B, T)`` token tensors to run the model on (under ``torch.no_grad()``);
    ``return_params``: send the model's parameters back as ``p.<name>``; ``expect_error``:
    report an exception from the loader as data instead of failing.

    Replies ``info`` (from :func:`~.tasks.model_info`, taken before any cast), ``is_expected``
    (the result is an instance of ``expect_class``), ``type``, ``dtypes`` (of the parameters as
    loaded) and, per call, the output's description (tensors ``c<i>.out...``).
    """
    reset_state(args.get("seed", 0))
    fn = session.attribute(args["module"], args["function"])
    src = args["source"]
    if "path" in src:
        source: Any = src["path"]
    else:
        prefix = src["state_dict"]
        source = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    kwargs = {}
    if "config" in args:
        kwargs["config"] = values.decode(args["config"], tensors, lambda s: session.new(s, tensors))
    if args.get("expect_error"):
        try:
            fn(source, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the error is what is being examined
            return {"raised": True, "type": type(exc).__name__,
                    "is_value_error": isinstance(exc, ValueError),
                    "message": str(exc)[:2000]}, {}
        return {"raised": False}, {}
    model = fn(source, **kwargs)
    reply: dict[str, Any] = {"type": type(model).__name__}
    if not isinstance(model, torch.nn.Module):
        raise ContractError(f"`{args['function']}` returned a {type(model).__name__}, expected "
                            f"your GPT (a torch.nn.Module)")
    expect = args.get("expect_class")
    reply["is_expected"] = (isinstance(model, session.attribute(expect["module"], expect["class"]))
                            if expect else True)
    reply["info"] = model_info(model)
    reply["dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()})
    if "dtype" in args:
        model = model.to(DTYPES[args["dtype"]])
    model.eval()
    sent: Tensors = {}
    reply["calls"] = []
    with torch.no_grad():
        for i, name in enumerate(args.get("calls", [])):
            out: Tensors = {}
            description = values.describe(model(tensors[name]), f"c{i}.out", out)
            sent.update(out)
            reply["calls"].append({"output": description})
    if args.get("return_params"):
        for name, p in model.named_parameters():
            sent[f"p.{name}"] = p
    return reply, sent


TASKS = {"load_checkpoint": load_checkpoint}
