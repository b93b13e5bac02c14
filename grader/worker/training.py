"""Worker tasks of the training-loop assignment, and the fixed model its probes train.

Everything here runs beside the student's code and is visible to it, so it holds no solution of
any assignment: the probe model is a small MLP language model (no assignment asks for one), the
instrumentation only observes (hooks on parameters and on optimizer steps, a pass-through wrapper
around ``clip_grad_norm_``), and the loop that trains the student's GPT is plain AdamW at a fixed
learning rate without schedule or clipping. Tasks return data only; judging happens in the
grader's process, which also runs the reference (never here).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from grader.shared.probe import MAX_EVENTS, minimal_train, probe_model

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


class _Instruments:
    """Observes a training run: gradients before accumulation (were they zeroed?), every call
    of ``clip_grad_norm_`` (norms before and after), every optimizer step (its type, learning
    rates, parameters, and the gradient norm it is about to apply)."""

    def __init__(self, model: nn.Module, events: list[dict[str, Any]], student_module):
        self.model, self.events, self.student_module = model, events, student_module
        self.params = [p for p in model.parameters()]
        self.handles: list[Any] = []
        self.patched: list[tuple[Any, str, Any]] = []

    def add(self, event: dict[str, Any]) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)

    def _grad_hook(self, param: torch.Tensor):
        def hook(grad):
            last = self.events[-1] if self.events else None
            if last is None or last["kind"] != "backward":
                self.add({"kind": "backward", "stale": False, "sq": 0.0, "norm": 0.0,
                          "held": [0.0] * len(self.params), "held_norm": 0.0})
                last = self.events[-1]
            if param.grad is not None and bool((param.grad != 0).any()):
                last["stale"] = True  # the gradient still holds an earlier step's values
            # This step's own gradient (before accumulation): its total norm is the pre-clip
            # norm whatever the loop does with .grad afterwards.
            last["sq"] += float(grad.detach().double().pow(2).sum())
            last["norm"] = math.sqrt(last["sq"])
            return None

        return hook

    def _held_hook(self, index: int):
        def hook(param):
            # After accumulation: what .grad now holds (this step's gradient if the loop zeroes,
            # a sum of several steps' if it does not), i.e. what clipping will see.
            last = self.events[-1] if self.events else None
            if last is not None and last["kind"] == "backward":
                last["held"][index] = float(param.grad.detach().double().pow(2).sum())
                last["held_norm"] = math.sqrt(sum(last["held"]))

        return hook

    def _grad_norm(self) -> float | None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return None
        return float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g.detach().double()) for g in grads])))

    def _step_hook(self, optimizer, args, kwargs):
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.add({
            "kind": "step",
            "optimizer": type(optimizer).__name__,
            "adamw": isinstance(optimizer, torch.optim.AdamW),
            "lrs": [float(g["lr"]) for g in optimizer.param_groups],
            "weight_decay": [float(g.get("weight_decay", 0.0)) for g in optimizer.param_groups],
            "covers_model": all(id(p) in ids for p in self.params),
            "norm": self._grad_norm(),
        })

    def _clip_wrapper(self, original):
        def clip_grad_norm_(parameters, max_norm, *args, **kwargs):
            if isinstance(parameters, torch.Tensor):
                parameters = [parameters]
            parameters = list(parameters)  # a generator can be read only once
            before = self._grad_norm()
            result = original(parameters, max_norm, *args, **kwargs)
            self.add({"kind": "clip", "max_norm": _as_number(max_norm), "pre_norm": before,
                      "returned": _as_number(result), "post_norm": self._grad_norm(),
                      "all_params": {id(p) for p in parameters} >= {id(p) for p in self.params}})
            return result

        return clip_grad_norm_

    def __enter__(self):
        import torch.nn.utils as nn_utils
        import torch.nn.utils.clip_grad as clip_module
        import torch.optim.optimizer as optim_module

        for i, p in enumerate(self.params):
            self.handles.append(p.register_hook(self._grad_hook(p)))
            self.handles.append(p.register_post_accumulate_grad_hook(self._held_hook(i)))
        self.handles.append(optim_module.register_optimizer_step_pre_hook(self._step_hook))
        original = clip_module.clip_grad_norm_
        wrapper = self._clip_wrapper(original)
        targets = [(nn_utils, "clip_grad_norm_"), (clip_module, "clip_grad_norm_")]
        # `from torch.nn.utils import clip_grad_norm_` bound the original in the student's module.
        targets += [(self.student_module, name) for name, value in
                    list(vars(self.student_module).items()) if value is original]
        for owner, name in targets:
            self.patched.append((owner, name, getattr(owner, name)))
            setattr(owner, name, wrapper)
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        for owner, name, value in reversed(self.patched):
            setattr(owner, name, value)
        return False


def _run_train(session, args: dict[str, Any], tensors: Tensors, instrument: bool):
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
    started = time.perf_counter()
    with at_most_threads(args.get("threads")):
        if instrument:
            model.events = events
            with _Instruments(model, events, session.module("training")):
                result = train(model, tensors["train_data"], tensors["val_data"], config)
            model.events = None
        else:
            result = train(model, tensors["train_data"], tensors["val_data"], config)
    seconds = time.perf_counter() - started
    reply, out = describe_metrics(result)
    reply["seconds"] = seconds
    reply["device"] = device
    if instrument:
        reply["events"] = events
        reply["events_truncated"] = len(events) >= MAX_EVENTS
        out["schedule"] = _schedule(session, args["config"])
    else:
        for name, p in model.state_dict().items():
            out[f"p.{name}"] = p.detach().cpu().float()
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


def instrumented_task(session, args: dict[str, Any], tensors: Tensors):
    """Run the student's ``train`` on the probe model for a few steps with every instrument
    attached; returns the event sequence and the metrics."""
    return _run_train(session, args, tensors, instrument=True)


def probe_task(session, args: dict[str, Any], tensors: Tensors):
    """Run the student's ``train`` on the probe model (seeded init) and return the metrics,
    the wall-clock time, and the trained parameters (``p.<name>``), which the grader evaluates
    on held-out data itself."""
    return _run_train(session, args, tensors, instrument=False)


def gpt_probe_task(session, args: dict[str, Any], tensors: Tensors):
    """Train the student's ``GPT`` (built from ``args["model"]``, a ``$new`` spec, after seeding
    ``args["seed"]``) with :func:`minimal_train` on the batches ``xs``/``ys``, then return the
    loss of every step and its logits on the held-out windows ``heldout``."""
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
    "training.instrumented": instrumented_task,
    "training.probe": probe_task,
    "training.gpt_probe": gpt_probe_task,
}
