"""Checks of assignment 6: loading GPT-2 weights in the Hugging Face format.

The grader writes its own Hugging Face-format checkpoints (``grader.checks.checkpoints``: seeded random
weights, a tiny config and the full 124M one, in each layout transformers has used), shares them
with the worker as files, and compares what the student's ``load_gpt2`` builds with what the
reference loader builds from the same files. When the real ``gpt2`` weights are on local disk
(``GRADER_GPT2_WEIGHTS`` or the Hugging Face cache), one more check runs on them.
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
from grader.diagnosis import Diagnosis, likely

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
    diagnosis = Diagnosis(ctx, key, lambda ref: compute(ref, with_params=False),
                          catalogue.GPT2_LOADING)
    return exp, diagnosis


def _student_load(ctx: Context, source: dict[str, Any], tokens: dict[str, torch.Tensor], *,
                  dtype: str = "float64", config: dict[str, Any] | None = None,
                  extra: dict[str, torch.Tensor] | None = None, return_params: bool = True,
                  timeout: float | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {
        "module": MODULE, "function": "load_gpt2", "source": source,
        "expect_class": {"module": "block", "class": "GPT"}, "dtype": dtype,
        "calls": list(tokens), "return_params": return_params,
    }
    if config is not None:
        args["config"] = config
    reply = ctx.request("load_checkpoint", args, {**tokens, **(extra or {})},
                               timeout=timeout)
    res = reply.result
    if not res.get("is_expected", False):
        raise CheckFailed(f"load_gpt2 returned a {res.get('type')}, not your block.GPT",
                          hint="Build your own GPT from block.py and copy the weights into it.")
    logits = {}
    for i, name in enumerate(tokens):
        out = Output(res["calls"][i]["output"], reply.tensors,
                     "the loaded model's forward(idx)")
        logits[name] = (out.item(0).tensor() if out.description["kind"] in ("tuple", "list")
                        else out.tensor())
    params = {k[2:]: v for k, v in reply.tensors.items() if k.startswith("p.")}
    return {"info": res["info"], "logits": logits, "params": params}


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
                failure.hint = cause[1]
                if len(cause) > 2 and "likely_mistake" not in failure.details:
                    failure.details.update(cause[2])
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
        return ("Every parameter equals the checkpoint's, so the difference comes from your "
                "GPT's forward pass (block.py).", "")
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


@check("weight_tying", "lm_head and wte still share storage after loading", 2, needs=NEEDS)
def weight_tying(ctx: Context):
    """After loading, ``lm_head.weight`` and ``transformer.wte.weight`` share storage (ideally
    they are one Parameter, as block.GPT ties them): loading must not untie them."""
    path, _ = _tiny_folder(ctx, "tiny-modern", prefix=True, buffers=False)
    got = _student_load(ctx, {"path": path}, {}, return_params=False)
    pair = {"lm_head.weight", "transformer.wte.weight"}
    info = got["info"]
    if not pair <= set(info["parameters"]):
        raise CheckFailed("the loaded model has no `lm_head.weight` and `transformer.wte.weight`")
    if not any(pair <= set(group) for group in info["same_storage"]):
        raise CheckFailed(
            "after loading, lm_head.weight and transformer.wte.weight are separate tensors: the "
            "tie was broken",
            hint="Copy the checkpoint's wte into the existing parameter (with torch.no_grad(): "
                 "p.copy_(w)), or load_state_dict without assign=True; never give lm_head a "
                 "Parameter of its own.")
    return ok(num_parameters=info["num_parameters"])


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


@check("not_gpt2", "A checkpoint that is not GPT-2 raises a clear ValueError", 2, needs=NEEDS)
def not_gpt2(ctx: Context):
    """``load_gpt2`` raises ``ValueError`` (never returns a half-random model) with a message
    containing "GPT-2" that names the problem, for: a folder whose ``config.json`` says
    ``"model_type": "llama"`` (the message quotes ``llama``); a state dict of another model
    (BERT names) with a config (the message names a missing GPT-2 weight); a GPT-2 state dict
    that lacks its second layer (the message names a missing ``h.1.`` weight)."""
    llama_path, _ = _share(ctx, "llama", lambda folder: ck.write_checkpoint(
        folder, TINY, 0, tensors=_llama_tensors(), config=_LLAMA_CONFIG))
    weights = ck.relayout(_tiny_weights(ctx), TINY, prefix=True)
    truncated = {k: v for k, v in weights.items() if ".h.1." not in k}
    cases = [
        ("a folder whose config.json says model_type 'llama'", {"path": llama_path}, {}, None,
         ["llama"], "quote the model_type found"),
        ("a BERT state dict", {"state_dict": "sd."},
         {f"sd.{k}": v for k, v in _bert_tensors().items()}, _config(TINY_CONFIG),
         _gpt2_names(TINY) + ["lm_head.weight"], "name a GPT-2 weight that is missing"),
        ("a GPT-2 state dict without its layer 1", {"state_dict": "sd."},
         {f"sd.{k}": v for k, v in truncated.items()}, _config(TINY_CONFIG),
         [n for n in _gpt2_names(TINY) if n.startswith("h.1.")],
         "name a missing weight of layer 1"),
    ]
    for label, source, tensors, config, names, need in cases:
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
        if not any(n.lower() in low for n in names):
            raise CheckFailed(f"for {label}, the ValueError's message {message[:200]!r} does not "
                              f"{need}")
    return ok()


# ------------------------------------------------------------------------------ 124M


def _link_folder(ctx: Context, name: str, folder: Path) -> str:
    """Share a big checkpoint folder with the worker without copying it when possible."""
    ck.link_into(folder, ctx.worker.data_dir / name)
    return ctx.worker.share_file(name)


@check("gpt2_124m", "The 124M config: 124,439,808 parameters, tied, same logits", 3,
       hidden=True, needs=NEEDS, timeout=240)
def gpt2_124m(ctx: Context):
    """On a seeded random checkpoint of GPT-2 small's size (0.5 GB, built by the grader once per
    process): the loaded model has 124,439,808 parameters (the tied matrix counted once),
    ``lm_head`` and ``wte`` share storage, and its float32 logits equal the reference loader's
    within 1e-4."""
    folder = ck.cached_checkpoint(ck.GPT2_SMALL, seed=606)
    path = _link_folder(ctx, "gpt2-124m", folder)
    tokens = ctx.inputs("tokens_124m", lambda: {
        "idx": torch.randint(0, ck.GPT2_SMALL.vocab_size, (1, 16), generator=seeded(607))})
    # The student's load (in the worker) and the reference's (here) each take seconds: run them
    # side by side, one process each.
    with ThreadPoolExecutor(1) as pool:
        student = pool.submit(_student_load, ctx, {"path": path}, tokens, dtype="float32",
                              return_params=False, timeout=240)
        exp, _ = _reference_run(ctx, "gpt2_124m", folder, tokens, dtype=torch.float32, params=False)
        got = student.result()
    info = got["info"]
    n = info["num_parameters"]
    if n != GPT2_124M_PARAMETERS:
        extra = n - GPT2_124M_PARAMETERS
        why = (" — exactly the vocab_size x n_embd of an untied lm_head" if extra == 50257 * 768
               else "")
        raise CheckFailed(f"the loaded 124M model has {n:,} parameters, expected "
                          f"{GPT2_124M_PARAMETERS:,} ({extra:+,}){why}", actual=n)
    pair = {"lm_head.weight", "transformer.wte.weight"}
    if not any(pair <= set(group) for group in info["same_storage"]):
        raise CheckFailed("after loading the 124M checkpoint, lm_head.weight and "
                          "transformer.wte.weight do not share storage")
    worst = _compare(got, exp, "the 124M checkpoint", atol=F32_LOGITS_ATOL, rtol=F32_LOGITS_RTOL)
    return ok(num_parameters=n, max_abs_diff=worst)


# ------------------------------------------------------------------------------ real weights


@check("real_gpt2", "The real GPT-2 weights (when available locally): logits and greedy text", 3,
       needs=NEEDS, timeout=300)
def real_gpt2(ctx: Context):
    """Runs only when the real ``gpt2`` checkpoint is on local disk (``GRADER_GPT2_WEIGHTS``,
    or the Hugging Face cache holding ``models--gpt2``; nothing is downloaded), and is skipped
    otherwise. The loaded model has the reference loader's parameter count and tied embeddings;
    on the prompt "Hello, I'm a language model," (fixed GPT-2 token ids) followed by the
    reference's 20 greedy tokens, its float64 logits equal the reference's, and its greedy
    choice at each of those steps is the reference's token."""
    folder, where = ck.find_real_gpt2()
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
    path = _link_folder(ctx, "real-gpt2", folder)
    got = _student_load(ctx, {"path": path}, {"seq": exp["tokens"]}, return_params=False,
                        timeout=300)
    info = got["info"]
    if info["num_parameters"] != int(exp["num_parameters"]):
        raise CheckFailed(f"the loaded model has {info['num_parameters']:,} parameters, expected "
                          f"{int(exp['num_parameters']):,}")
    pair = {"lm_head.weight", "transformer.wte.weight"}
    if not any(pair <= set(group) for group in info["same_storage"]):
        raise CheckFailed("lm_head.weight and transformer.wte.weight do not share storage")
    worst = _compare(got, exp, f"the real GPT-2 ({where})")
    # Teacher forcing: at every generated step, the student's greedy choice given the
    # reference's prefix must be the reference's token — generation, token for token.
    choice = got["logits"]["seq"][0, len(REAL_PROMPT) - 1:-1].argmax(-1)
    want = exp["tokens"][0, len(REAL_PROMPT):]
    if not torch.equal(choice, want):
        step = int((choice != want).nonzero()[0])
        raise CheckFailed(f"greedy generation from the fixed prompt differs at new token {step}: "
                          f"yours {int(choice[step])}, expected {int(want[step])}")
    return ok(weights=where, max_abs_diff=worst, tokens=want.tolist())

