"""The GPT-2 loading assignment's task: the tiny checkpoint, shared with the worker as files,
what the reference loader builds from a folder, what the student's loader builds (in the worker),
and the comparison of their logits, which names the parameter or known mistake behind a
difference. Shared by every check module of the package."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from grader.checks import checkpoints as ck
from grader.checks.base import CheckFailed, Context
from grader.checks.common import F64_ATOL, F64_RTOL
from grader.checks.compare import assert_close, difference
from grader.checks.gpt2_loading import MODULE
from grader.checks.gpt2_loading import mistakes as catalogue
from grader.checks.harness import Output, new
from grader.diagnosis import Diagnosis, affecting, likely

# Not GPT-2 small's sizes anywhere, so a loader that ignores config.json cannot pass.
TINY = ck.HFShape(n_positions=24, vocab_size=99, n_layer=2, n_head=4, n_embd=32)
TINY_CONFIG = {"block_size": 24, "vocab_size": 99, "n_layer": 2, "n_head": 4, "n_embd": 32}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


# Every known mistake that can move the loaded model's logits: the loader's own, and those of
# the student's GPT (block.py and below), which the loaded model is.
LOGIT_MISTAKES = tuple(dict.fromkeys(
    catalogue.GPT2_LOADING + affecting("attention", "causal_mask", "block")))


def ref_loader(ref):
    """The reference's ``gpt2_loading`` module, beside the reference package ``ref``."""
    return importlib.import_module(f"{ref.__name__}.gpt2_loading")


def tiny_weights(ctx: Context) -> dict[str, torch.Tensor]:
    """The tiny checkpoint's seeded random weights (Hugging Face names and layout)."""
    # std 0.2, ten times GPT-2's init, so that every weight visibly moves the logits.
    return ctx.inputs("tiny_weights", lambda g: ck.random_state_dict(
        TINY, seed=int(torch.randint(2**62, (), generator=g)), std=0.2, prefix=False))


def share(ctx: Context, name: str, write) -> tuple[str, Path]:
    """Write a checkpoint folder into the worker's shared folder (``write(folder)``) once per
    worker; returns the path the worker sees and the host path."""
    host = ctx.worker.data_dir / name
    if not (host / ck.CONFIG).is_file():
        write(host)
    return ctx.worker.share_file(name), host


def tiny_folder(ctx: Context, name: str, **layout: bool) -> tuple[str, Path]:
    """The tiny weights written as a checkpoint folder in one of the layouts of
    :func:`~grader.checks.checkpoints.relayout`, shared with the worker (see :func:`share`)."""
    weights = tiny_weights(ctx)
    return share(ctx, name, lambda folder: ck.write_checkpoint(
        folder, TINY, 0, tensors=ck.relayout(weights, TINY, **layout)))


def tiny_tokens(ctx: Context) -> dict[str, torch.Tensor]:
    """The token batches the loaded models run on: ``idx`` (T < block_size) and ``full``."""
    def make(g: torch.Generator):
        return {"idx": torch.randint(0, TINY.vocab_size, (2, 11), generator=g),
                "full": torch.randint(0, TINY.vocab_size, (1, TINY.n_positions), generator=g)}

    return ctx.inputs("tiny_tokens", make)


def reference_run(ctx: Context, key: str, host: Path, tokens: dict[str, torch.Tensor]
                  ) -> tuple[dict[str, torch.Tensor], Diagnosis]:
    """What the reference loader builds from the folder ``host``: float64 logits of each token
    tensor, its parameter count and its parameters; and the known loading mistakes (their
    logits only) to diagnose a failure with."""

    def compute(ref, with_params: bool = True):
        model = ref_loader(ref).load_gpt2(host)
        out = {"num_parameters": torch.tensor(model.num_parameters())}
        model = model.to(torch.float64)
        with torch.no_grad():
            for name, idx in tokens.items():
                out[f"logits.{name}"] = model(idx)[0]
        if with_params:
            out.update({f"p.{n}": p.detach() for n, p in model.named_parameters()})
        return out

    exp = ctx.expected(key, compute)
    diagnosis = Diagnosis(ctx, key, lambda ref: compute(ref, with_params=False), LOGIT_MISTAKES)
    return exp, diagnosis


def student_load(ctx: Context, source: dict[str, Any], tokens: dict[str, torch.Tensor], *,
                 dtype: str = "float64", config: dict[str, Any] | None = None,
                 extra: dict[str, torch.Tensor] | None = None, return_params: bool = True,
                 timeout: float | None = None, perturb: dict[str, Any] | None = None,
                 skip_init: bool = False) -> dict[str, Any]:
    """Run the student's ``load_gpt2`` on ``source`` in the worker: the loaded model's logits
    on each of ``tokens`` (and, with ``perturb``, after changing a parameter once), its
    parameters (``return_params``) and what the worker describes of it. ``CheckFailed`` when
    it is not the student's ``block.GPT``. ``skip_init``: the loader runs with random
    initialisation off (the worker's ``load_checkpoint``: for the 124M checkpoint only)."""
    args: dict[str, Any] = {
        "module": MODULE, "function": "load_gpt2", "source": source,
        "expect_class": {"module": "block", "class": "GPT"}, "dtype": dtype,
        "calls": list(tokens), "return_params": return_params,
    }
    if config is not None:
        args["config"] = config
    if perturb is not None:
        args["perturb"] = perturb
    if skip_init:
        args["skip_init"] = True
    reply = ctx.request("load_checkpoint", args, {**tokens, **(extra or {})},
                               timeout=timeout)
    res = reply.result
    if not res.get("is_expected", False):
        raise CheckFailed(f"load_gpt2 returned a {res.get('type')}, not your block.GPT",
                          hint="Build your own GPT from block.py and copy the weights into it.")
    def read(calls: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        logits = {}
        for i, name in enumerate(tokens):
            out = Output(calls[i]["output"], reply.tensors, "the loaded model's forward(idx)")
            logits[name] = (out.item(0).tensor() if out.description["kind"] in ("tuple", "list")
                            else out.tensor())
        return logits

    params = {k[2:]: v for k, v in reply.tensors.items() if k.startswith("p.")}
    return {"info": res["info"], "logits": read(res["calls"]), "params": params,
            "perturbed": read(res["perturbed_calls"]) if perturb is not None else {}}


def compare_logits(got: dict[str, Any], exp: dict[str, torch.Tensor], label: str, *,
                   atol: float = F64_ATOL, rtol: float = F64_RTOL,
                   diagnosis: Diagnosis | None = None) -> float:
    """Compare the logits; when they differ, name the parameter that explains it (and, with
    ``diagnosis``, the known mistake the logits match)."""
    # Walking the dict reads every expected value, so a release records the parameters that
    # a failure's diagnosis needs, even though a correct run never looks at them.
    exp = {k: v for k, v in exp.items()}
    worst = 0.0
    for name, logits in got["logits"].items():
        expected = exp[f"logits.{name}"]
        try:
            assert_close(logits, expected, f"the logits of the model loaded from {label} "
                         f"(idx {tuple(expected.shape[:2])})", atol=atol, rtol=rtol,
                         diagnose=diagnosis.on(f"logits.{name}") if diagnosis else None)
        except CheckFailed as failure:
            cause = _parameter_diagnosis(got["params"], exp)
            if cause:
                failure.message = f"{failure.message}. {cause[0]}"
                if len(cause) > 2 and "likely_mistake" not in failure.details:
                    failure.details.update(cause[2])
                failure.hint = cause[1]
            named = failure.details.get("likely_mistake")
            if named:  # the diagnosis's words, not a cause the evidence does not support
                failure.hint = named["hint"]
            raise
        worst = max(worst, difference(logits, expected).max_abs)
    return worst


def _parameter_diagnosis(params: dict[str, torch.Tensor], exp: dict[str, torch.Tensor]
                         ) -> tuple[str, str] | tuple[str, str, dict[str, Any]] | None:
    """The first loaded parameter that differs from the reference's, and why if we can tell
    (message, hint and, for a known mistake, its ``likely_mistake`` details)."""
    for key, want in exp.items():
        if not key.startswith("p."):
            continue
        name = key[2:]
        got = params.get(name)
        if got is None:
            return (f"Your model has no parameter `{name}`.", "")
        if got.shape != want.shape:
            return (f"`{name}` has shape {tuple(got.shape)}, expected {tuple(want.shape)}.", "")
        if torch.allclose(got.double(), want.double(), atol=1e-7, rtol=0):
            continue
        if (got.dim() == 2 and got.shape[0] == got.shape[1]
                and torch.allclose(got.double(), want.double().t(), atol=1e-7, rtol=0)):
            return (f"`{name}` holds the checkpoint's matrix without the transpose.",
                    "Hugging Face's GPT-2 stores attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj "
                    "weights as Conv1D (in, out); nn.Linear wants (out, in): transpose all four. "
                    "attn.c_proj is square, so a missing transpose does not show in the shapes.",
                    likely("conv1d_not_transposed", parameter=name))
        return (f"`{name}` differs from the checkpoint's value (by up to "
                f"{float((got.double() - want.double()).abs().max()):.3g}).", "")
    if params:
        return ("Every parameter equals the checkpoint's, so the difference is in how the loaded "
                "model computes.", "Check that the loader does not change or replace modules "
                "of your GPT (a LayerNorm's eps, dropout, the attention); if the block "
                "assignment's checks all pass, the loader is the place to look.")
    return None


def model_config(cfg: dict[str, int]):
    """The worker-side ``GPTConfig(**cfg)``."""
    return new("block", "GPTConfig", **cfg)
