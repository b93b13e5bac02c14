"""Worker task for the GPT-2 loading assignment: call the student's loader on a checkpoint and
run the model it returns.

Checkpoints arrive either as a folder the grader shared (a path) or as tensors (a state dict).
The task reports what the student's code built and computed; judging it happens on the
trusted side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
    report an exception from the loader as data instead of failing; ``perturb``: ``{"param",
    "rows", "tensor"}``, a change made once to the loaded model after the calls, which then run
    again (``perturbed_calls``, tensors ``q<i>.out...``; :func:`_perturb`); ``skip_init``: run
    the loader with random initialisation turned off (:func:`_random_init_off`).

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
    with _random_init_off() if args.get("skip_init") else contextlib.nullcontext():
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
    reply["calls"] = _run_calls(model, args.get("calls", []), tensors, "c", sent)
    if args.get("perturb"):
        # The same calls again after one change of a parameter: what the change does.
        _perturb(model, args["perturb"], tensors)
        reply["perturbed_calls"] = _run_calls(model, args.get("calls", []), tensors, "q", sent)
    if args.get("return_params"):
        for name, p in model.named_parameters():
            sent[f"p.{name}"] = p
    return reply, sent


def _run_calls(model: torch.nn.Module, names: list[str], tensors: Tensors, prefix: str,
               sent: Tensors) -> list[dict[str, Any]]:
    calls = []
    with torch.no_grad():
        for i, name in enumerate(names):
            out: Tensors = {}
            description = values.describe(model(tensors[name]), f"{prefix}{i}.out", out)
            sent.update(out)
            calls.append({"output": description})
    return calls


def _perturb(model: torch.nn.Module, spec: dict[str, Any], tensors: Tensors) -> None:
    """Add the tensor ``spec["tensor"]`` to rows ``spec["rows"]`` of the parameter named
    ``spec["param"]``, in place and once: with a tied ``lm_head`` the change reaches the
    output projection too, which the trusted side sees in the logits (tying judged by its
    effect, not by object identity)."""
    try:
        param = model.get_parameter(spec["param"])
    except AttributeError:
        raise ContractError(f"the loaded model has no parameter `{spec['param']}`") from None
    with torch.no_grad():
        rows = torch.tensor(spec["rows"], dtype=torch.long)
        param[rows] += tensors[spec["tensor"]].to(param.dtype)


@contextlib.contextmanager
def _random_init_off() -> Iterator[None]:
    """Random fills (``Tensor.normal_``/``uniform_``, which every ``torch.nn.init`` function
    and the default ``reset_parameters`` use, and ``trunc_normal_``) leave the tensor as it is
    while the loader runs.

    Why: at GPT-2 small's size, the random initialisation the loader then overwrites costs ~2 s
    of the check (Hugging Face's ``no_init_weights`` does the same). A loader that copies every
    weight computes exactly the same; one that leaves a weight behind leaves it empty instead
    of random, and the logits still differ from the reference's. The tiny checkpoints' checks,
    which diagnose which weight was left, run with the initialisation on."""
    saved = (torch.Tensor.normal_, torch.Tensor.uniform_, torch.nn.init.trunc_normal_)

    def keep(tensor, *args, **kwargs):
        return tensor

    torch.Tensor.normal_ = keep  # type: ignore[method-assign]
    torch.Tensor.uniform_ = keep  # type: ignore[method-assign]
    torch.nn.init.trunc_normal_ = keep
    try:
        yield
    finally:
        torch.Tensor.normal_, torch.Tensor.uniform_, torch.nn.init.trunc_normal_ = saved


TASKS = {"load_checkpoint": load_checkpoint}
