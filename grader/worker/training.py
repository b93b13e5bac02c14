"""Worker tasks of the training-loop assignment, and the fixed model its probes train.

Everything here runs beside the student's code and is visible to it, so it holds no solution of
any assignment: the probe model is a small MLP language model (no assignment asks for one), the
loop run only records what was fed to the model and returns the final parameters (the trusted
side replays the reference loop on the same batches and compares outcomes), and the loop that
trains the student's GPT is plain AdamW with a cosine-decayed learning rate, no clipping.
Tasks return data only; judging happens in the grader's process, which also runs the reference
(never here).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from grader.shared.probe import minimal_train, probe_model

Tensors = dict[str, torch.Tensor]

MAX_METRIC_LENGTH = 1_000_000


# ----------------------------------------------------------------------------------- tasks


def _tasks():
    from grader.worker.tasks import ContractError, Session, reset_state

    return ContractError, Session, reset_state


@contextmanager
def at_most_threads(n: int | None):
    """Cap torch's intra-op threads for a probe (restored afterwards). The probe models are tiny:
    a second thread gains little, and when other processes share the cores, oversubscribed
    threads make a step many times slower (DESIGN.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, n or before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device(args: dict[str, Any]) -> str:
    device = str(args.get("device", "cpu"))
    return device if device == "cpu" or torch.cuda.is_available() else "cpu"


def get_lr_task(session, args: dict[str, Any], tensors: Tensors):
    """Call ``training.get_lr(step, **kwargs)`` for every ``(step, kwargs)`` of ``calls``;
    returns each value as float64 (NaN when not a number) and the type of each result."""
    _, _, reset_state = _tasks()
    reset_state(args.get("seed", 0))
    fn = session.attribute("training", "get_lr")
    values, types = [], []
    for step, kwargs in args["calls"]:
        result = fn(step, **kwargs)
        types.append(_type_name(result))
        values.append(_as_number(result))
    return {"types": types}, {"lrs": torch.tensor(values, dtype=torch.float64)}


def get_batch_task(session, args: dict[str, Any], tensors: Tensors):
    """Call ``training.get_batch`` once per entry of ``calls``: ``{"data", "block_size",
    "batch_size", "generator_seed" (or None: no generator passed), "global_seed",
    "device"}``. Returns ``x<i>``/``y<i>`` and a description of each result."""
    ContractError, _, reset_state = _tasks()
    fn = session.attribute("training", "get_batch")
    out: Tensors = {}
    described = []
    for i, spec in enumerate(args["calls"]):
        reset_state(spec.get("global_seed", 0))
        kwargs: dict[str, Any] = {}
        if spec.get("generator_seed") is not None:
            kwargs["generator"] = torch.Generator().manual_seed(int(spec["generator_seed"]))
        if spec.get("device"):
            kwargs["device"] = spec["device"]
        result = fn(tensors[spec["data"]], spec["block_size"], spec["batch_size"], **kwargs)
        if not (isinstance(result, (tuple, list)) and len(result) == 2
                and all(isinstance(t, torch.Tensor) for t in result)):
            raise ContractError(f"get_batch returned {_type_name(result)}, expected a tuple "
                                f"(x, y) of two tensors")
        x, y = result
        described.append({"x": {"dtype": str(x.dtype).replace("torch.", ""),
                                "device": x.device.type, "shape": list(x.shape)},
                          "y": {"dtype": str(y.dtype).replace("torch.", ""),
                                "device": y.device.type, "shape": list(y.shape)}})
        out[f"x{i}"], out[f"y{i}"] = x.detach().cpu(), y.detach().cpu()
    return {"calls": described}, out


def _stream(module, tensors: Tensors, config: dict[str, Any]):
    """A stand-in for the student's ``get_batch`` during a loop run: the grader's fixed batches
    (``stream.x``/``stream.y`` for ``train_data``, in order; ``val.x``/``val.y`` for
    ``val_data``, cycling every ``eval_iters`` calls), so that a correct loop trains on batches
    the trusted side knows whatever its ``get_batch`` draws. Any other call goes to the
    student's own ``get_batch``."""
    own = getattr(module, "get_batch", None)
    train_data, val_data = tensors["train_data"], tensors["val_data"]
    block, batch = int(config["block_size"]), int(config["batch_size"])
    counts = {"train": 0, "val": 0}

    def get_batch(data, block_size, batch_size, *args, generator=None, device="cpu", **kwargs):
        if block_size == block and batch_size == batch and not args and not kwargs:
            if data is train_data:
                i = counts["train"] % tensors["stream.x"].shape[0]
                counts["train"] += 1
                return tensors["stream.x"][i].to(device), tensors["stream.y"][i].to(device)
            if data is val_data:
                j = counts["val"] % tensors["val.x"].shape[0]
                counts["val"] += 1
                return tensors["val.x"][j].to(device), tensors["val.y"][j].to(device)
        if own is None:
            raise AttributeError("training.py defines no get_batch")
        return own(data, block_size, batch_size, *args, generator=generator, device=device,
                   **kwargs)

    return own, get_batch


def _run_train(session, args: dict[str, Any], tensors: Tensors, record: bool):
    ContractError, _, reset_state = _tasks()
    device = _device(args)
    reset_state(args.get("seed", 0))
    model = probe_model(args["model"], args.get("seed", 0), device)
    config_cls = session.attribute("training", "TrainConfig")
    train = session.attribute("training", "train")
    settings = dict(args["config"], device=device)
    try:
        config = config_cls(**settings)
    except TypeError as exc:
        raise ContractError(f"TrainConfig(...) does not take the assignment's fields "
                            f"({', '.join(settings)}): {exc}") from None
    events: list[dict[str, Any]] = []
    module = session.module("training")
    started = time.perf_counter()
    with at_most_threads(args.get("threads")):
        if record:
            model.events = events
            own, stream = _stream(module, tensors, args["config"])
            module.get_batch = stream
            try:
                result = train(model, tensors["train_data"], tensors["val_data"], config)
            finally:
                module.get_batch = own
                model.events = None
        else:
            result = train(model, tensors["train_data"], tensors["val_data"], config)
    seconds = time.perf_counter() - started
    reply, out = describe_metrics(result)
    reply["seconds"] = seconds
    reply["device"] = device
    if record:
        reply["forwards"] = []
        for i, e in enumerate(events):
            reply["forwards"].append({"training": bool(e["training"]), "grad": bool(e["grad"]),
                                      "backward": bool(e["backward"]),
                                      "targets": e["y"] is not None})
            out[f"f{i}.x"] = e["x"]
            if e["y"] is not None:
                out[f"f{i}.y"] = e["y"]
        out["schedule"] = _schedule(session, args["config"])
    for name, p in model.state_dict().items():
        out[f"p.{name}"] = p.detach().cpu() if record else p.detach().cpu().float()
    return reply, out


def _schedule(session, config: dict[str, Any]) -> torch.Tensor:
    """The student's own ``get_lr`` at every step of the run (NaN where it fails), so that the
    loop is judged on applying the schedule, not on the schedule itself."""
    values = []
    try:
        fn = session.attribute("training", "get_lr")
        for step in range(int(config["max_steps"])):
            values.append(_as_number(fn(step, max_lr=config["max_lr"], min_lr=config["min_lr"],
                                        warmup_steps=config["warmup_steps"],
                                        max_steps=config["max_steps"])))
    except Exception:  # noqa: BLE001 - judged by the schedule's own checks
        values = [math.nan] * int(config["max_steps"])
    return torch.tensor(values, dtype=torch.float64)


def loop_task(session, args: dict[str, Any], tensors: Tensors):
    """Run the student's ``train`` for a few steps on the probe model (seeded init, with its
    BatchNorm), ``get_batch`` standing in for the grader's fixed batches; returns the metrics,
    the final state dict (``p.<name>``), every forward call's inputs and targets
    (``f<i>.x``/``f<i>.y``) and the student's ``get_lr`` at every step (``schedule``). The
    trusted side replays the reference loop on these batches and judges by the outcome."""
    return _run_train(session, args, tensors, record=True)


def probe_task(session, args: dict[str, Any], tensors: Tensors):
    """Run the student's ``train`` on the probe model (seeded init) and return the metrics,
    the wall-clock time, and the trained parameters (``p.<name>``), which the grader evaluates
    on held-out data itself."""
    return _run_train(session, args, tensors, record=False)


def gpt_probe_task(session, args: dict[str, Any], tensors: Tensors):
    """Train the student's ``GPT`` (built from ``args["model"]``, a ``$new`` spec, after seeding
    ``args["seed"]``) with :func:`minimal_train` on the batches ``xs``/``ys``, then return the
    loss of every step and its logits on the held-out windows ``heldout`` (with
    ``last_only``: of their last position only)."""
    ContractError, _, reset_state = _tasks()
    device = _device(args)
    reset_state(args.get("seed", 0))
    model = session.new(args["model"], tensors)
    if not isinstance(model, nn.Module):
        raise ContractError("GPT(config) is not a torch.nn.Module")
    model = model.to(device)
    xs, ys = tensors["xs"].to(device), tensors["ys"].to(device)
    started = time.perf_counter()
    with at_most_threads(args.get("threads")):
        losses, done = minimal_train(model, xs, ys, float(args["lr"]),
                                     float(args.get("max_seconds", math.inf)))
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            output = model(tensors["heldout"].to(device))
    logits = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(logits, torch.Tensor):
        raise ContractError(f"GPT(config)(idx) returned {_type_name(output)}, expected "
                            f"(logits, loss)")
    if args.get("last_only") and logits.dim() == 3:
        logits = logits[:, -1]  # only the position whose target is not in the input
    return ({"steps_done": done, "seconds": seconds, "device": device},
            {"losses": torch.tensor(losses, dtype=torch.float64),
             "logits": logits.detach().float().cpu()})


# -------------------------------------------------------------------------------- helpers


def _type_name(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{list(value.shape)}"
    return type(value).__name__


def _as_number(value: Any) -> float:
    try:
        if isinstance(value, torch.Tensor):
            return float(value.detach().reshape(-1)[0]) if value.numel() == 1 else math.nan
        if isinstance(value, bool):
            return math.nan
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return math.nan


METRIC_KEYS = ("train_losses", "val_losses", "lrs", "grad_norms")


def describe_metrics(result: Any) -> tuple[dict[str, Any], Tensors]:
    """The metrics dict returned by ``train`` as JSON (keys, container and element types,
    lengths) plus one float64 tensor ``m.<key>`` per list of numbers."""
    if not isinstance(result, dict):
        return {"metrics": None, "returned": _type_name(result)}, {}
    info: dict[str, Any] = {}
    out: Tensors = {}
    for key in METRIC_KEYS:
        if key not in result:
            continue
        value = result[key]
        if not isinstance(value, (list, tuple)) or len(value) > MAX_METRIC_LENGTH:
            info[key] = {"container": _type_name(value)}
            continue
        info[key] = {"container": type(value).__name__, "length": len(value),
                     "types": sorted({_type_name(v).split("[")[0] for v in value})}
        out[f"m.{key}"] = torch.tensor([_as_number(v) for v in value], dtype=torch.float64)
    reply: dict[str, Any] = {"metrics": info, "keys": sorted(str(k) for k in result)[:64]}
    if "eval_interval" in result:
        reply["eval_interval"] = _as_number(result["eval_interval"])
        reply["eval_interval_type"] = _type_name(result["eval_interval"])
    return reply, out


TASKS = {
    "training.get_lr": get_lr_task,
    "training.get_batch": get_batch_task,
    "training.loop": loop_task,
    "training.probe": probe_task,
    "training.gpt_probe": gpt_probe_task,
}
