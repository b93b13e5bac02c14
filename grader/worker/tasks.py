"""The operations a worker performs on the student's code.

Each task takes JSON arguments and named tensors and returns the same. Tasks are generic (call a
function, build a module and run it, count parameters): what to send and how to judge the
answer is decided by the checks, on the trusted side.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from grader.worker import values

Tensors = dict[str, torch.Tensor]
TaskFn = Callable[["Session", dict[str, Any], Tensors], tuple[dict[str, Any], Tensors]]

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


class ContractError(Exception):
    """The student's code does not have the shape the assignment asks for (a name is missing,
    a parameter has another name or shape). Reported as such, not as a crash of their code."""


@dataclass
class Session:
    """What a worker keeps between tasks: where the submission is and the modules imported."""

    submission: Path
    modules: dict[str, ModuleType] = field(default_factory=dict)
    # Modules the grader made from the submission's notebooks (searched before the submission).
    modules_dir: Path | None = None

    def module(self, name: str) -> ModuleType:
        if name not in self.modules:
            folders = [d for d in (self.modules_dir, self.submission) if d is not None]
            if not any((d / f"{name}.py").is_file() for d in folders):
                raise ContractError(f"there is no {name}.py in the submission")
            importlib.invalidate_caches()  # the grader may have written modules since we started
            self.modules[name] = importlib.import_module(name)
        return self.modules[name]

    def attribute(self, module: str, name: str) -> Any:
        mod = self.module(module)
        if not hasattr(mod, name):
            raise ContractError(f"{module}.py defines no `{name}`")
        return getattr(mod, name)

    def new(self, spec: dict[str, Any], tensors: Tensors) -> Any:
        cls = self.attribute(spec["module"], spec["class"])
        args = values.decode(spec.get("args", []), tensors, lambda s: self.new(s, tensors))
        kwargs = values.decode(spec.get("kwargs", {}), tensors, lambda s: self.new(s, tensors))
        return cls(*args, **kwargs)


def reset_state(seed: int) -> None:
    """Undo global changes a student's code may have made, and seed every generator."""
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    torch.manual_seed(seed)


def ping(session: Session, args: dict[str, Any], tensors: Tensors):
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }, {}


def import_modules(session: Session, args: dict[str, Any], tensors: Tensors):
    """Import each named student module; report for each whether it worked and what it defines."""
    report = {}
    for name in args["modules"]:
        try:
            mod = session.module(name)
            names = sorted(n for n in vars(mod) if not n.startswith("_"))
            report[name] = {"ok": True, "names": names}
        except BaseException as exc:  # noqa: BLE001 - a student's import may raise anything
            if isinstance(exc, KeyboardInterrupt):
                raise
            report[name] = {"ok": False, "error": describe_exception(exc, session.submission)}
    return {"modules": report}, {}


def call(session: Session, args: dict[str, Any], tensors: Tensors):
    """Call ``module.function(*args, **kwargs)`` (or, given ``self``, an object built from the
    student's module, its method ``function``); optionally backpropagate given output gradients.

    ``requires_grad`` names input tensors whose gradients are returned as ``grad.<name>``;
    ``grad_outputs`` maps output keys (``out``, ``out.0``, ...) to tensors named in ``tensors``.
    With ``each``, the first argument is a list and the result is the list of the calls on its
    items (many small calls in one request).
    """
    reset_state(args.get("seed", 0))
    for name in args.get("requires_grad", []):
        tensors[name] = tensors[name].detach().requires_grad_(True)

    def new(spec):
        return session.new(spec, tensors)

    if "self" in args:  # a method of an object built from the student's module (a "$new")
        target = values.decode(args["self"], tensors, new)
        fn = getattr(target, args["function"], None)
        if not callable(fn):
            raise ContractError(f"{type(target).__name__} has no method `{args['function']}`")
    else:
        fn = session.attribute(args["module"], args["function"])
    call_args = values.decode(args.get("args", []), tensors, new)
    call_kwargs = values.decode(args.get("kwargs", {}), tensors, new)
    if args.get("each"):  # one call per item of the first argument, in one request
        result = [fn(item, *call_args[1:], **call_kwargs) for item in call_args[0]]
    else:
        result = fn(*call_args, **call_kwargs)
    out: Tensors = {}
    description = values.describe(result, "out", out)
    grads = _backward(out, tensors, args.get("grad_outputs", {}), args.get("requires_grad", []))
    return {"output": description, "grads": sorted(grads)}, {**out, **grads}


def run_module(session: Session, args: dict[str, Any], tensors: Tensors):
    """Build a student's ``nn.Module``, optionally load given parameters, and run calls on it.

    Arguments: ``module``, ``class``, ``args``/``kwargs`` for the constructor, ``seed`` (set
    before construction, so a fresh init is reproducible), ``dtype``, ``load`` (load tensors named
    ``p.<param name>`` into the parameters), ``calls`` (a list of ``{method, args, kwargs,
    requires_grad, grad_outputs, param_grads}``), ``return_params`` (send the parameters back as
    ``p.<name>``).
    """
    reset_state(args.get("seed", 0))
    model = session.new({"module": args["module"], "class": args["class"],
                         "args": args.get("args", []), "kwargs": args.get("kwargs", {})}, tensors)
    if not isinstance(model, torch.nn.Module):
        raise ContractError(f"{args['class']} is not a torch.nn.Module")
    if "dtype" in args:
        model = model.to(DTYPES[args["dtype"]])
    model.eval()
    info = model_info(model)
    if args.get("load"):
        info["load"] = load_parameters(model, tensors)
    reply: dict[str, Any] = {"info": info, "calls": []}
    sent: Tensors = {}
    for i, spec in enumerate(args.get("calls", [])):
        reset_state(spec.get("seed", 0))
        model.zero_grad(set_to_none=True)
        local = dict(tensors)
        for name in spec.get("requires_grad", []):
            local[name] = local[name].detach().requires_grad_(True)

        def new(s, local=local):
            return session.new(s, local)

        method = getattr(model, spec.get("method", "__call__"))
        result = method(*values.decode(spec.get("args", []), local, new),
                        **values.decode(spec.get("kwargs", {}), local, new))
        out: Tensors = {}
        description = values.describe(result, f"c{i}.out", out)
        gout = {f"c{i}.{k}": v for k, v in spec.get("grad_outputs", {}).items()}
        grads = _backward(out, local, gout, spec.get("requires_grad", []), prefix=f"c{i}.")
        call_reply: dict[str, Any] = {"output": description, "grads": sorted(grads)}
        if spec.get("param_grads"):
            missing = []
            for name, p in model.named_parameters():
                if p.grad is None:
                    missing.append(name)
                else:
                    sent[f"c{i}.pgrad.{name}"] = p.grad
            call_reply["params_without_grad"] = missing
        sent.update(out)
        sent.update(grads)
        reply["calls"].append(call_reply)
    if args.get("return_params"):
        for name, p in model.named_parameters():
            sent[f"p.{name}"] = p
    return reply, sent


def model_info(model: torch.nn.Module) -> dict[str, Any]:
    """Parameter names and shapes, the unique parameter count, and which names share storage."""
    params = list(model.named_parameters(remove_duplicate=False))
    by_object: dict[int, list[str]] = {}
    by_storage: dict[int, list[str]] = {}
    for name, p in params:
        by_object.setdefault(id(p), []).append(name)
        by_storage.setdefault(p.untyped_storage().data_ptr(), []).append(name)
    unique = {id(p): p for _, p in params}
    return {
        "parameters": {name: list(p.shape) for name, p in params},
        "num_parameters": int(sum(p.numel() for p in unique.values())),
        "same_object": [names for names in by_object.values() if len(names) > 1],
        "same_storage": [names for names in by_storage.values() if len(names) > 1],
        "buffers": [name for name, _ in model.named_buffers()],
        "state_dict": list(model.state_dict().keys())[:10_000],
    }


def load_parameters(model: torch.nn.Module, tensors: Tensors) -> dict[str, Any]:
    """Copy tensors named ``p.<name>`` into the model's parameters of the same name.

    Buffers are ignored (a student may or may not keep a mask buffer); every parameter must be
    given with the right shape, or a :class:`ContractError` names what differs.
    """
    given = {k[2:]: v for k, v in tensors.items() if k.startswith("p.")}
    own = dict(model.named_parameters(remove_duplicate=False))
    missing = sorted(set(given) - set(own))
    unexpected = sorted(set(own) - set(given))
    wrong = {n: [list(own[n].shape), list(given[n].shape)]
             for n in set(own) & set(given) if own[n].shape != given[n].shape}
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append("expected parameters not found: " + ", ".join(missing[:8]))
        if unexpected:
            parts.append("parameters the assignment does not define: " + ", ".join(unexpected[:8]))
        for n, (mine, theirs) in sorted(wrong.items())[:8]:
            parts.append(f"`{n}` has shape {tuple(mine)}, expected {tuple(theirs)}")
        raise ContractError("; ".join(parts))
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(given[name].to(p.dtype))
    return {"loaded": len(own)}


def _backward(out: Tensors, inputs: Tensors, grad_outputs: dict[str, str],
              requires_grad: list[str], prefix: str = "") -> Tensors:
    """Backpropagate ``sum(out_k * g_k)`` and collect the gradients of the named inputs."""
    if not grad_outputs:
        return {}
    terms = []
    for out_key, g_name in grad_outputs.items():
        if out_key not in out:
            raise ContractError(f"the output has no tensor at `{out_key.split('.', 1)[-1]}`")
        o = out[out_key]
        if not o.requires_grad:
            raise ContractError("the output does not depend on the inputs through autograd "
                                "(was it computed under torch.no_grad() or detached?)")
        g = inputs[g_name]
        if o.shape != g.shape:
            raise ContractError(f"output has shape {tuple(o.shape)}, expected {tuple(g.shape)}")
        terms.append((o * g.to(o.dtype)).sum())
    torch.stack(terms).sum().backward()
    grads = {}
    for name in requires_grad:
        g = inputs[name].grad
        grads[f"{prefix}grad.{name}"] = g if g is not None else torch.zeros_like(inputs[name])
    return grads


# Other folders whose frames are the student's own (the modules made from their notebooks).
STUDENT_ROOTS: list[Path] = []


def describe_exception(exc: BaseException, submission: Path) -> dict[str, Any]:
    """The exception as the student should see it: type, message, and their own frames only."""
    frames = traceback.extract_tb(exc.__traceback__)
    roots = [str(Path(r).resolve()) for r in (submission, *STUDENT_ROOTS)]
    own = [f for f in frames if str(Path(f.filename).resolve()).startswith(tuple(roots))]
    where = ""
    if own:
        f = own[-1]
        where = f"{Path(f.filename).name}, line {f.lineno}, in {f.name}"
        if f.line:
            where += f": {f.line.strip()}"
    elif isinstance(exc, SyntaxError) and exc.filename:
        where = f"{Path(exc.filename).name}, line {exc.lineno}"
        if exc.text:
            where += f": {exc.text.strip()}"
    lines = traceback.format_list(own) if own else []
    message = str(exc)
    return {
        "type": type(exc).__name__,
        "message": message[:2000],
        "where": where,
        "traceback": "".join(lines)[-4000:],
        "contract": isinstance(exc, ContractError),
    }


def preload(session: Session, args: dict[str, Any], tensors: Tensors):
    """Start importing torch._dynamo in the background: the grading has training checks, whose
    first ``Optimizer.step`` would otherwise pay ~1 s for it."""
    from grader.shared.preload import import_dynamo_beside

    return {"started": import_dynamo_beside() is not None}, {}


TASKS: dict[str, TaskFn] = {
    "ping": ping,
    "preload": preload,
    "import": import_modules,
    "call": call,
    "module": run_module,
}
