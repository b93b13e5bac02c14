"""Checks of assignment 6: loading GPT-2 weights in the Hugging Face format.

The grader writes its own Hugging Face-format checkpoints (``grader.checks.checkpoints``: seeded
random weights, a tiny config and the full 124M one, in each layout transformers has used),
shares them with the worker as files, and compares what the student's ``load_gpt2`` builds with
what the reference loader builds from the same files. When the real ``gpt2`` weights are on
local disk (``CheckSettings.gpt2_weights``, i.e. ``grader run --gpt2-weights``, or the Hugging
Face cache), one more check runs on them; otherwise it is skipped for every submission alike.

Every verdict rests on outcomes: logits of the loaded model (computed in the worker, compared
here with the reference loader's), and tying judged by its effect (the shared matrix changed
once after loading must move the output projection too). What the worker merely describes
(parameter counts, storage sharing) is reported, never scored.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from grader.checks import checkpoints as ck
from grader.checks.base import Assignment, CheckFailed, CheckSkipped, Context, ok
from grader.checks.common import F64_ATOL, F64_RTOL
from grader.checks.compare import assert_close, difference
from grader.checks.gpt2_loading import mistakes as catalogue
from grader.checks.harness import Output, new, seeded
from grader.diagnosis import Diagnosis, affecting, likely, mistake

ASSIGNMENT = Assignment(
    "gpt2_loading", "Loading GPT-2 weights",
    course="series4-llms-and-transformers-summary.md Module 4.3 (loading real weights)",
)
check = ASSIGNMENT.check
MODULE = "gpt2_loading"
NEEDS = ("load_gpt2",)

# Not GPT-2 small's sizes anywhere, so a loader that ignores config.json cannot pass.
TINY = ck.HFShape(n_positions=24, vocab_size=99, n_layer=2, n_head=4, n_embd=32)
TINY_CONFIG = {"block_size": 24, "vocab_size": 99, "n_layer": 2, "n_head": 4, "n_embd": 32}
GPT2_124M_PARAMETERS = 124_439_808
# GPT-2's tokens for "Hello, I'm a language model," (the nanoGPT demo prompt).
REAL_PROMPT = [15496, 11, 314, 1101, 257, 3303, 2746, 11]
REAL_NEW_TOKENS = 20
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# Tolerances. Student and reference load the same float32 file, so their weights are identical
# and only the order of the sums in the forward pass differs. In float64 (the tiny and the real
# checkpoints) that is ~1e-14, and F64_ATOL = 1e-6 is the bound (common.py). The random 124M
# checkpoint is run in float32 to keep its check fast: two correct float32 GPT-2s differ by up
# to ~2e-6 on logits of size ~1 (DESIGN, measured); 1e-4 absolute leaves room, and a missing
# transpose or a dropped layer moves these logits by > 1e-2.
F32_LOGITS_ATOL = 1e-4
F32_LOGITS_RTOL = 1e-5


# Every known mistake that can move the loaded model's logits: the loader's own, and those of
# the student's GPT (block.py and below), which the loaded model is.
LOGIT_MISTAKES = tuple(dict.fromkeys(
    catalogue.GPT2_LOADING + affecting("attention", "causal_mask", "block")))


class WeightsUnavailable(CheckSkipped):
    """The real GPT-2 weights are not on this machine: the check is skipped, not failed."""


def _ref_loader(ref):
    return importlib.import_module(f"{ref.__name__}.gpt2_loading")


# ------------------------------------------------------------------------------ checkpoints


def _tiny_weights(ctx: Context) -> dict[str, torch.Tensor]:
    # std 0.2, ten times GPT-2's init, so that every weight visibly moves the logits.
    return ctx.inputs("tiny_weights", lambda: ck.random_state_dict(TINY, seed=601, std=0.2,
                                                                   prefix=False))


def _share(ctx: Context, name: str, write) -> tuple[str, Path]:
    """Write a checkpoint folder into the worker's shared folder (``write(folder)``) once per
    worker; returns the path the worker sees and the host path."""
    host = ctx.worker.data_dir / name
    if not (host / ck.CONFIG).is_file():
        write(host)
    return ctx.worker.share_file(name), host


def _tiny_folder(ctx: Context, name: str, **layout: bool) -> tuple[str, Path]:
    weights = _tiny_weights(ctx)
    return _share(ctx, name, lambda folder: ck.write_checkpoint(
        folder, TINY, 0, tensors=ck.relayout(weights, TINY, **layout)))


def _tiny_tokens(ctx: Context) -> dict[str, torch.Tensor]:
    def make():
        g = seeded(603)
        return {"idx": torch.randint(0, TINY.vocab_size, (2, 11), generator=g),
                "full": torch.randint(0, TINY.vocab_size, (1, TINY.n_positions), generator=g)}

    return ctx.inputs("tiny_tokens", make)


def _reference_run(ctx: Context, key: str, host: Path, tokens: dict[str, torch.Tensor],
                   dtype=torch.float64, params: bool = True
                   ) -> tuple[dict[str, torch.Tensor], Diagnosis | None]:
    """What the reference loader builds from the folder ``host``: logits of each token tensor
    (in ``dtype``), its parameter count and (``params``) its parameters; and, with ``params``,
    the known loading mistakes (their logits only) to diagnose a failure with."""

    def compute(ref, with_params: bool = params):
        model = _ref_loader(ref).load_gpt2(host)
        out = {"num_parameters": torch.tensor(model.num_parameters())}
        model = model.to(dtype)
        with torch.no_grad():
            for name, idx in tokens.items():
                out[f"logits.{name}"] = model(idx)[0]
        if with_params:
            out.update({f"p.{n}": p.detach() for n, p in model.named_parameters()})
        return out

    exp = ctx.expected(key, compute)
    if not params:  # the 124M checkpoint: too big to rerun for each mistake
        return exp, None
    diagnosis = Diagnosis(ctx, key, lambda ref: compute(ref, with_params=False), LOGIT_MISTAKES)
    return exp, diagnosis


def _student_load(ctx: Context, source: dict[str, Any], tokens: dict[str, torch.Tensor], *,
                  dtype: str = "float64", config: dict[str, Any] | None = None,
                  extra: dict[str, torch.Tensor] | None = None, return_params: bool = True,
                  timeout: float | None = None, perturb: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    args: dict[str, Any] = {
        "module": MODULE, "function": "load_gpt2", "source": source,
        "expect_class": {"module": "block", "class": "GPT"}, "dtype": dtype,
        "calls": list(tokens), "return_params": return_params,
    }
    if config is not None:
        args["config"] = config
    if perturb is not None:
        args["perturb"] = perturb
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


def _compare(got: dict[str, Any], exp: dict[str, torch.Tensor], label: str, *,
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


def _config(cfg: dict[str, int]):
    return new("block", "GPTConfig", **cfg)


# ------------------------------------------------------------------------------ tiny checks


@check("logits", "A save_pretrained checkpoint: logits equal the reference loader's", 4,
       needs=NEEDS)
def logits(ctx: Context):
    """``load_gpt2(folder)`` on a folder as transformers 5 writes it (``model.safetensors``
    with ``transformer.``-prefixed names, Conv1D weights ``(in, out)``, no ``lm_head.weight``;
    ``config.json`` of a non-default size) returns your ``block.GPT`` whose logits equal those
    of the reference loader's model, for T < block_size and T = block_size (float64)."""
    path, host = _tiny_folder(ctx, "tiny-modern", prefix=True, buffers=False)
    tokens = _tiny_tokens(ctx)
    exp, diagnosis = _reference_run(ctx, "tiny/modern", host, tokens)
    got = _student_load(ctx, {"path": path}, tokens)
    worst = _compare(got, exp, "a save_pretrained folder", diagnosis=diagnosis)
    return ok(max_abs_diff=worst)


@check("buffers_ignored", "The attn.bias / attn.masked_bias buffers of older files are ignored",
       2, needs=NEEDS)
def buffers_ignored(ctx: Context):
    """A checkpoint that also holds each layer's ``attn.bias`` (the causal mask,
    ``(1, 1, n_positions, n_positions)``) and ``attn.masked_bias``, as older transformers
    versions saved them, loads into the same model as one without them (float64 logits)."""
    path, host = _tiny_folder(ctx, "tiny-buffers", prefix=True, buffers=True)
    tokens = _tiny_tokens(ctx)
    exp, diagnosis = _reference_run(ctx, "tiny/buffers", host, tokens)
    got = _student_load(ctx, {"path": path}, tokens)
    _compare(got, exp, "a folder with attn.bias buffers", diagnosis=diagnosis)
    return ok()


@check("unprefixed_names", "Names without the leading `transformer.` (GPT2Model, the hub file)",
       1, needs=NEEDS)
def unprefixed_names(ctx: Context):
    """A checkpoint whose names lack the leading ``transformer.`` (``h.0.attn.c_attn.weight``,
    ``wte.weight``: what ``GPT2Model`` saves, and how the real ``gpt2`` file names them) loads
    into the same model (float64 logits)."""
    path, host = _tiny_folder(ctx, "tiny-bare", prefix=False, buffers=False)
    tokens = _tiny_tokens(ctx)
    exp, diagnosis = _reference_run(ctx, "tiny/bare", host, tokens)
    got = _student_load(ctx, {"path": path}, tokens)
    _compare(got, exp, "a folder with names without `transformer.`", diagnosis=diagnosis)
    return ok()


@check("state_dict", "A state dict (with lm_head.weight) and a config", 2, needs=NEEDS)
def state_dict(ctx: Context):
    """``load_gpt2(state_dict, config)`` on an in-memory state dict as
    ``GPT2LMHeadModel.state_dict()`` returns it (prefixed names and ``lm_head.weight``) with a
    ``GPTConfig`` loads the same model (float64 logits)."""
    _, host = _tiny_folder(ctx, "tiny-modern", prefix=True, buffers=False)
    tokens = _tiny_tokens(ctx)
    exp, diagnosis = _reference_run(ctx, "tiny/modern", host, tokens)
    sd = ck.relayout(_tiny_weights(ctx), TINY, prefix=True, lm_head=True)
    got = _student_load(ctx, {"state_dict": "sd."}, tokens, config=_config(TINY_CONFIG),
                        extra={f"sd.{k}": v for k, v in sd.items()})
    _compare(got, exp, "a state dict", diagnosis=diagnosis)
    return ok()


def _tie_probe(ctx: Context, key: str, vocab: int, n_embd: int, idx: torch.Tensor
               ) -> dict[str, Any]:
    """A change of the shared matrix made once after loading: random rows of ``wte`` that no
    token of ``idx`` uses get a random delta. Tied, the logits of those vocabulary entries move
    (lm_head is wte); untied, nothing moves at all."""
    def make(g: torch.Generator):
        unused = torch.tensor([v for v in range(vocab) if v not in set(idx.flatten().tolist())])
        rows = unused[torch.randperm(len(unused), generator=g)[:8]].sort().values
        return {"rows": rows, "delta": 0.5 * torch.randn(len(rows), n_embd, generator=g)}

    return ctx.inputs(key, make)


def _check_tied(got: dict[str, Any], tie: dict[str, Any], label: str) -> None:
    """Tying judged by its effect, on the student's own model: after the change of rows R of
    ``wte`` (tokens the input never uses), the logits of the vocabulary entries R must move
    (lm_head IS wte) and no other logit may (nothing else reads those rows). A model with an
    lm_head of its own shows no change at all. Independent of any other mistake of the model,
    which changes both runs alike."""
    before, after = got["logits"]["idx"], got["perturbed"]["idx"]
    rows = tie["rows"]
    if before.shape != after.shape or before.shape[-1] <= int(rows.max()):
        raise CheckFailed(f"{label}: the logits have shape {tuple(before.shape)}, expected one "
                          f"column per vocabulary entry")
    if not (torch.isfinite(before).all() and torch.isfinite(after).all()):
        raise CheckFailed(f"{label}: the logits hold NaN or inf, so the tie cannot be judged")
    change = (after.double() - before.double()).abs()
    scale = max(float(before.double().abs().max()), 1e-6)
    others = torch.ones(change.shape[-1], dtype=torch.bool)
    others[rows] = False
    moved = float(change[..., rows].max())
    stray = float(change[..., others].max()) if bool(others.any()) else 0.0
    details = {"tie_effect": {"rows": rows.tolist(), "max_change_tied_rows": moved,
                              "max_change_other_rows": stray}}
    if moved <= 1e-6 * scale:
        raise CheckFailed(
            f"{label}: after changing rows {rows.tolist()[:4]}... of transformer.wte.weight "
            f"once, the logits of those tokens did not change, as they must when lm_head IS "
            f"wte: the tie was broken", hint=mistake("tie_broken_by_loader").hint,
            **likely("tie_broken_by_loader"), **details)
    if stray > 1e-6 * scale:
        raise CheckFailed(f"{label}: changing rows of transformer.wte.weight that the input "
                          f"never uses also moved other logits (by up to {stray:.3g}): the "
                          f"model reads wte somewhere other than the embedding and lm_head",
                          **details)


@check("weight_tying", "lm_head is still wte after loading (judged by its effect)", 2,
       needs=NEEDS)
def weight_tying(ctx: Context):
    """After loading, rows of ``transformer.wte.weight`` that the input never uses are changed
    once (in place, in the worker): the logits of exactly those tokens must move, since
    ``lm_head.weight`` is the very same matrix. Judged by the logits of the student's own model
    before and after, never by object identity (which the worker can only describe), and
    whatever else the model computes (a forward mistake changes both runs alike)."""
    path, _ = _tiny_folder(ctx, "tiny-modern", prefix=True, buffers=False)
    idx = _tiny_tokens(ctx)["idx"]
    tie = _tie_probe(ctx, "tie/tiny", TINY.vocab_size, TINY.n_embd, idx)
    got = _student_load(ctx, {"path": path}, {"idx": idx}, return_params=False,
                        perturb={"param": "transformer.wte.weight",
                                 "rows": tie["rows"].tolist(), "tensor": "tie.delta"},
                        extra={"tie.delta": tie["delta"]})
    _check_tied(got, tie, "the tiny checkpoint")
    return ok()


# ------------------------------------------------------------------------------ not GPT-2

_LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                 "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                 "num_hidden_layers": 1, "vocab_size": 99, "max_position_embeddings": 24}


def _llama_tensors() -> dict[str, torch.Tensor]:
    g = seeded(604)
    shapes = {"model.embed_tokens.weight": (99, 32), "model.norm.weight": (32,),
              "lm_head.weight": (99, 32)}
    for n in ("q", "k", "v", "o"):
        shapes[f"model.layers.0.self_attn.{n}_proj.weight"] = (32, 32)
    for n, s in (("gate", (64, 32)), ("up", (64, 32)), ("down", (32, 64))):
        shapes[f"model.layers.0.mlp.{n}_proj.weight"] = s
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _bert_tensors() -> dict[str, torch.Tensor]:
    g = seeded(605)
    shapes = {"bert.embeddings.word_embeddings.weight": (99, 32),
              "bert.embeddings.position_embeddings.weight": (24, 32),
              "bert.encoder.layer.0.attention.self.query.weight": (32, 32),
              "bert.encoder.layer.0.attention.self.key.weight": (32, 32)}
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _gpt2_names(shape: ck.HFShape) -> list[str]:
    return [n.removeprefix("transformer.") for n, _ in ck.hf_shapes(shape)]


def _not_gpt2_cases(ctx: Context) -> list[tuple[str, dict, dict, Any, list[str], list[str], str]]:
    """(label, source, tensors, config, names the message may name (any one of them is what
    the stub's contract allows: the model_type found, or a weight that is missing, unexpected
    or of the wrong shape), names it must not (weights that are there and fine), need)."""
    llama_path, _ = _share(ctx, "llama", lambda folder: ck.write_checkpoint(
        folder, TINY, 0, tensors=_llama_tensors(), config=_LLAMA_CONFIG))
    weights = ck.relayout(_tiny_weights(ctx), TINY, prefix=True)
    gpt2 = _gpt2_names(TINY)
    # One weight, drawn from the run's secret seed, is left out: naming it takes finding it.
    drop = ctx.inputs("not_gpt2/drop", lambda g: {
        "index": torch.randint(len(gpt2), (1,), generator=g)})
    dropped = gpt2[int(drop["index"])]
    partial = {k: v for k, v in weights.items() if k.removeprefix("transformer.") != dropped}
    bert = _bert_tensors()
    return [
        ("a folder whose config.json says model_type 'llama'", {"path": llama_path}, {}, None,
         ["llama"] + gpt2 + list(_llama_tensors()), [], "quote the model_type found"),
        ("a BERT state dict", {"state_dict": "sd."}, {f"sd.{k}": v for k, v in bert.items()},
         _config(TINY_CONFIG), gpt2 + ["lm_head.weight"] + list(bert), [],
         "name a GPT-2 weight that is missing or a weight that is unexpected"),
        (f"a GPT-2 state dict without `{dropped}`", {"state_dict": "sd."},
         {f"sd.{k}": v for k, v in partial.items()}, _config(TINY_CONFIG),
         # lm_head.weight is wte's: a loader that ties first finds it missing with wte
         [dropped] + (["lm_head.weight"] if dropped == "wte.weight" else []),
         [n for n in gpt2 if n != dropped], "name the missing weight"),
    ]


def _names(message: str, names: list[str]) -> list[str]:
    """The weight names ``message`` mentions (a name counts with or without ``transformer.``,
    and not when it is only part of a longer name)."""
    import re

    found = []
    for n in names:
        if re.search(r"(?<![\w.])(?:transformer\.)?" + re.escape(n) + r"(?![\w.])",
                     message, flags=re.IGNORECASE):
            found.append(n)
    return found


@check("not_gpt2", "A checkpoint that is not GPT-2 raises a clear ValueError", 2, needs=NEEDS)
def not_gpt2(ctx: Context):
    """``load_gpt2`` raises ``ValueError`` (never returns a half-random model) with a message
    containing "GPT-2" that names the problem as the stub's contract allows (the model_type
    found, or a weight that is missing, unexpected or of the wrong shape, whichever the loader
    checks first), for: a folder whose ``config.json`` says ``"model_type": "llama"``; a state
    dict of another model (BERT names) with a config; a GPT-2 state dict with one weight left
    out (a different one every grading: the message names it, and no weight that is there)."""
    for label, source, tensors, config, allowed, present, need in _not_gpt2_cases(ctx):
        args: dict[str, Any] = {"module": MODULE, "function": "load_gpt2", "source": source,
                                "expect_error": True}
        if config is not None:
            args["config"] = config
        res = ctx.request("load_checkpoint", args, tensors).result
        if not res["raised"]:
            raise CheckFailed(f"load_gpt2 returned a model for {label}; it must raise ValueError",
                              hint="Check config.json's model_type and that every expected "
                                   "weight is present (a strict load), before building the "
                                   "model.")
        message = res["message"]
        if not res["is_value_error"]:
            raise CheckFailed(f"for {label}, load_gpt2 raised {res['type']}: {message[:200]!r}; "
                              "the contract asks for a ValueError with a clear message",
                              hint="Catch the problem yourself and raise ValueError(...) that "
                                   "says what is wrong.")
        low = message.lower()
        if "gpt-2" not in low and "gpt2" not in low:
            raise CheckFailed(f"for {label}, the ValueError's message {message[:200]!r} does not "
                              "say that a GPT-2 checkpoint was expected (it must contain 'GPT-2')")
        named = [n for n in allowed if n == "llama" and "llama" in low] or _names(message,
                                                                                  allowed)
        if not named:
            raise CheckFailed(f"for {label}, the ValueError's message {message[:200]!r} does not "
                              f"{need}")
        wrong = _names(message, present)
        if wrong:
            raise CheckFailed(f"for {label}, the ValueError's message names `{wrong[0]}`, which "
                              f"is in the checkpoint with the right shape",
                              hint="Name the weight that is missing, unexpected or of the wrong "
                                   "shape.")
    return ok()


# ------------------------------------------------------------------------------ 124M


def _link_folder(ctx: Context, name: str, folder: Path) -> str:
    """Share a big checkpoint folder with the worker without copying it when possible."""
    ck.link_into(folder, ctx.worker.data_dir / name)
    return ctx.worker.share_file(name)


def _store(ctx: Context) -> ck.CheckpointStore:
    """The grading's checkpoint store (``CheckSettings.checkpoints``, shared by a batch), or one
    of this grading's own, removed with it."""
    return ctx.settings.checkpoints or ctx.once("gpt2_loading/store", ck.CheckpointStore)


@check("gpt2_124m", "The 124M config: tied, same logits", 3,
       hidden=True, needs=NEEDS, timeout=240)
def gpt2_124m(ctx: Context):
    """On a seeded random checkpoint of GPT-2 small's size (0.5 GB, built by the grader once per
    checkpoint store): the loaded model's float32 logits equal the reference loader's within
    1e-4, and changing rows of ``wte`` that the input never uses moves exactly those tokens'
    logits (``lm_head`` is ``wte``: 124,439,808 parameters, the tied matrix counted once). The
    parameter count the worker describes is reported, not scored (the student's code can
    rewrite it)."""
    folder = _store(ctx).checkpoint(ck.GPT2_SMALL, seed=606)
    path = _link_folder(ctx, "gpt2-124m", folder)
    tokens = ctx.inputs("tokens_124m", lambda g: {
        "idx": torch.randint(0, ck.GPT2_SMALL.vocab_size, (1, 16), generator=g)})
    tie = _tie_probe(ctx, "tie/124m", ck.GPT2_SMALL.vocab_size, ck.GPT2_SMALL.n_embd,
                     tokens["idx"])
    # The student's load (in the worker) and the reference's (here) each take seconds: run them
    # side by side, one process each.
    with ThreadPoolExecutor(1) as pool:
        student = pool.submit(_student_load, ctx, {"path": path}, tokens, dtype="float32",
                              return_params=False, timeout=240,
                              perturb={"param": "transformer.wte.weight",
                                       "rows": tie["rows"].tolist(), "tensor": "tie.delta"},
                              extra={"tie.delta": tie["delta"]})
        exp, _ = _reference_run(ctx, "gpt2_124m", folder, tokens, dtype=torch.float32,
                                params=False)
        got = student.result()
    worst = _compare(got, exp, "the 124M checkpoint", atol=F32_LOGITS_ATOL, rtol=F32_LOGITS_RTOL)
    _check_tied(got, tie, "the 124M checkpoint")
    n = got["info"].get("num_parameters")
    return ok(reported_num_parameters=n, max_abs_diff=worst)


# ------------------------------------------------------------------------------ real weights


def _real_unavailable(ctx: Context) -> str | None:
    folder, where = ck.find_real_gpt2(ctx.settings.gpt2_weights)
    if folder is not None:
        return None
    return f"the real GPT-2 weights are not on this machine: {where}"


@check("real_gpt2", "The real GPT-2 weights (when available locally): logits and greedy text", 3,
       needs=NEEDS, timeout=300, unavailable=_real_unavailable)
def real_gpt2(ctx: Context):
    """Runs only when the real ``gpt2`` checkpoint is on local disk (``--gpt2-weights``, or the
    Hugging Face cache holding ``models--gpt2``; nothing is downloaded), and is skipped for
    every submission otherwise (so the points possible never depend on what was submitted).
    On the prompt "Hello, I'm a language model," (fixed GPT-2 token ids) followed by the
    reference's 20 greedy tokens, the loaded model's float64 logits equal the reference's,
    its greedy choice at each of those steps is the reference's token, and changing rows of
    ``wte`` that the sequence never uses moves exactly those tokens' logits (tied)."""
    folder, where = ck.find_real_gpt2(ctx.settings.gpt2_weights)
    if folder is None:
        raise WeightsUnavailable(f"the real GPT-2 weights are not on this machine: {where}")
    stat = (folder / ck.SAFETENSORS).resolve().stat()
    ident = hashlib.sha256(json.dumps([stat.st_size, (folder / ck.CONFIG).read_text()])
                           .encode()).hexdigest()[:12]
    prompt = torch.tensor([REAL_PROMPT])

    def compute(ref):
        loaded = _ref_loader(ref).load_gpt2(folder)
        # Greedy generation with the reference's KV cache (same parameter names), in float64.
        kv = importlib.import_module(f"{ref.__name__}.kv_cache")
        model = kv.CachedGPT(loaded.config)
        model.load_state_dict(loaded.state_dict())
        model = model.double().eval()
        idx = kv.generate(model, prompt, REAL_NEW_TOKENS, temperature=0)
        with torch.no_grad():
            logits = model(idx)[0]
        return {"tokens": idx, "logits.seq": logits,
                "num_parameters": torch.tensor(loaded.num_parameters())}

    # The reference's expected values need the generated tokens, so they come first; the
    # student's model then runs on the reference's sequence (teacher forcing).
    exp = ctx.expected(f"real_gpt2/{ident}", compute)
    seq = exp["tokens"]
    vocab = int(exp["logits.seq"].shape[-1])
    tie = _tie_probe(ctx, f"tie/real/{ident}", vocab, int(json.loads(
        (folder / ck.CONFIG).read_text()).get("n_embd", 768)), seq)
    path = _link_folder(ctx, "real-gpt2", folder)
    got = _student_load(ctx, {"path": path}, {"seq": seq}, return_params=False, timeout=300,
                        perturb={"param": "transformer.wte.weight",
                                 "rows": tie["rows"].tolist(), "tensor": "tie.delta"},
                        extra={"tie.delta": tie["delta"]})
    worst = _compare(got, exp, f"the real GPT-2 ({where})")
    _check_tied({"logits": {"idx": got["logits"]["seq"]},
                 "perturbed": {"idx": got["perturbed"]["seq"]}}, tie, f"the real GPT-2 ({where})")
    # Teacher forcing: at every generated step, the student's greedy choice given the
    # reference's prefix must be the reference's token — generation, token for token.
    choice = got["logits"]["seq"][0, len(REAL_PROMPT) - 1:-1].argmax(-1)
    want = seq[0, len(REAL_PROMPT):]
    if not torch.equal(choice, want):
        step = int((choice != want).nonzero()[0])
        raise CheckFailed(f"greedy generation from the fixed prompt differs at new token {step}: "
                          f"yours {int(choice[step])}, expected {int(want[step])}")
    return ok(weights=where, max_abs_diff=worst, tokens=want.tolist(),
              reported_num_parameters=got["info"].get("num_parameters"))
