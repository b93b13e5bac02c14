"""Checks at GPT-2 small's full size: a seeded random 124M checkpoint (built once per checkpoint
store), and the real ``gpt2`` weights when they are on local disk (skipped for every submission
otherwise): logits, tying and, on the real weights, greedy generation token for token."""

from __future__ import annotations

import hashlib
import importlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from grader.checks import checkpoints as ck
from grader.checks.base import CheckFailed, CheckSkipped, Context, ok
from grader.checks.gpt2_loading import ASSIGNMENT, NEEDS
from grader.checks.gpt2_loading.task import (
    CONV1D,
    compare_logits,
    ref_loader,
    student_load,
)
from grader.checks.gpt2_loading.tying import check_tied, tie_probe

check = ASSIGNMENT.check

GPT2_124M_PARAMETERS = 124_439_808
# GPT-2's tokens for "Hello, I'm a language model," (the nanoGPT demo prompt).
REAL_PROMPT = [15496, 11, 314, 1101, 257, 3303, 2746, 11]
REAL_NEW_TOKENS = 20

# Tolerances. Student and reference load the same float32 file, so their weights are identical
# and only the order of the sums in the forward pass differs. In float64 (the tiny and the real
# checkpoints) that is ~1e-14, and F64_ATOL = 1e-6 is the bound (common.py). The random 124M
# checkpoint is run in float32 to keep its check fast: two correct float32 GPT-2s differ by up
# to ~2e-6 on logits of size ~1 (DESIGN, measured); 1e-4 absolute leaves room, and a missing
# transpose or a dropped layer moves these logits by > 1e-2.
F32_LOGITS_ATOL = 1e-4
F32_LOGITS_RTOL = 1e-5


# The 124M checkpoint's seed: the same weights for every grading (the grading's secret seed draws
# the inputs), so the file is built once per store, and once per machine in the user's cache.
FULL_SIZE_SEED = 606


def build_user_cache() -> Path:
    """Build GPT-2 small's seeded checkpoint in the user's cache (:func:`~grader.checks.
    checkpoints.user_cache_dir`) if it is not there whole, and return its folder. ``grader run``
    as root calls it in a process of its own after a judged run that found the cache without it:
    the unprivileged judge reads that cache but never writes it, so what later runs load is
    only ever built here, by the trusted side."""
    return ck.CheckpointStore(ck.user_cache_dir()).checkpoint(ck.GPT2_SMALL, seed=FULL_SIZE_SEED)


class WeightsUnavailable(CheckSkipped):
    """The real GPT-2 weights are not on this machine: the check is skipped, not failed."""


def _link_folder(ctx: Context, name: str, folder: Path) -> str:
    """Share a big checkpoint folder with the worker without copying it when possible: where
    the worker reads it in place (a cache lent to its sandbox), else linked or copied."""
    seen = ctx.worker.seen_as(folder)
    if seen is not None:
        return seen
    ck.link_into(folder, ctx.worker.data_dir / name)
    return ctx.worker.share_file(name)


def _store(ctx: Context) -> ck.CheckpointStore:
    """The grading's checkpoint store (``CheckSettings.checkpoints``, shared by a batch), else
    the user's cache (:func:`~grader.checks.checkpoints.user_cache_dir`, so that one
    ``grader run`` after another reuses the 124M checkpoint), else, where that cannot be
    written, one of this grading's own, removed with it."""
    return ctx.settings.checkpoints or ctx.once(
        "gpt2_loading/store", lambda: ck.CheckpointStore(ck.user_cache_dir(), fallback=True))


@check("gpt2_124m", "The 124M config: tied, same logits", 3,
       hidden=True, needs=NEEDS, timeout=240)
def gpt2_124m(ctx: Context):
    """On a seeded random checkpoint of GPT-2 small's size (0.5 GB, built by the grader once per
    checkpoint store): the loaded model's float32 logits equal the reference loader's within
    1e-4, and changing rows of ``wte`` that the input never uses moves exactly those tokens'
    logits (``lm_head`` is ``wte``: 124,439,808 parameters, the tied matrix counted once). The
    parameter count the worker describes is reported, not scored (the student's code can
    rewrite it)."""
    folder = _store(ctx).checkpoint(ck.GPT2_SMALL, seed=FULL_SIZE_SEED)
    path = _link_folder(ctx, "gpt2-124m", folder)
    tokens = ctx.inputs("tokens_124m", lambda g: {
        "idx": torch.randint(0, ck.GPT2_SMALL.vocab_size, (1, 16), generator=g)})
    tie = tie_probe(ctx, "tie/124m", ck.GPT2_SMALL.vocab_size, ck.GPT2_SMALL.n_embd,
                    tokens["idx"])
    # The student's load (in the worker) and the reference's (here) each take seconds: run them
    # side by side, one process each.
    with ThreadPoolExecutor(1) as pool:
        student = pool.submit(student_load, ctx, {"path": path}, tokens, dtype="float32",
                              return_params=False, timeout=240, skip_init=True,
                              perturb={"param": "transformer.wte.weight",
                                       "rows": tie["rows"].tolist(), "tensor": "tie.delta"},
                              extra={"tie.delta": tie["delta"]})
        exp = ctx.expected("gpt2_124m", lambda ref: _reference_124m(ref, folder, tokens))
        got = student.result()
    worst = compare_logits(got, exp, "the 124M checkpoint", atol=F32_LOGITS_ATOL,
                           rtol=F32_LOGITS_RTOL)
    check_tied(got, tie, "the 124M checkpoint")
    n = got["info"].get("num_parameters")
    return ok(reported_num_parameters=n, max_abs_diff=worst)


def _reference_124m(ref, folder: Path, tokens: dict[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """The reference GPT's float32 logits with the checkpoint's weights, built without the
    random initialisation the reference loader pays and then overwrites (~2 s at this size):
    the reference ``GPT`` is made on the ``meta`` device and the file's tensors (memory-mapped,
    Conv1D weights transposed) become its parameters, ``lm_head`` tied to ``wte`` as the
    reference loader leaves it. The same model as ``load_gpt2(folder)``, which the tiny
    checkpoints' checks compare against; where the reference holds buffers (that ``meta`` would
    leave empty) it is that loader."""
    from safetensors.torch import load_file

    block = importlib.import_module(f"{ref.__name__}.block")
    config = ref_loader(ref).config_from_hf(json.loads((folder / ck.CONFIG).read_text()))
    with torch.device("meta"):
        model = block.GPT(config)
    if any(True for _ in model.buffers()):
        model = ref_loader(ref).load_gpt2(folder)
    else:
        state = {}
        for name, tensor in load_file(str(folder / ck.SAFETENSORS)).items():
            key = name.removeprefix("transformer.")
            if key == "lm_head.weight" or key.endswith((".attn.bias", ".attn.masked_bias")):
                continue
            state[f"transformer.{key}"] = tensor.t() if key.endswith(CONV1D) else tensor
        state["lm_head.weight"] = state["transformer.wte.weight"]
        model.load_state_dict(state, strict=True, assign=True)
        model.lm_head.weight = model.transformer.wte.weight
    out = {"num_parameters": torch.tensor(model.num_parameters())}
    model = model.float().eval()
    with torch.no_grad():
        for name, idx in tokens.items():
            out[f"logits.{name}"] = model(idx)[0]
    return out


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
        loaded = ref_loader(ref).load_gpt2(folder)
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
    tie = tie_probe(ctx, f"tie/real/{ident}", vocab, int(json.loads(
        (folder / ck.CONFIG).read_text()).get("n_embd", 768)), seq)
    path = _link_folder(ctx, "real-gpt2", folder)
    got = student_load(ctx, {"path": path}, {"seq": seq}, return_params=False, timeout=300,
                       perturb={"param": "transformer.wte.weight",
                                 "rows": tie["rows"].tolist(), "tensor": "tie.delta"},
                       extra={"tie.delta": tie["delta"]})
    worst = compare_logits(got, exp, f"the real GPT-2 ({where})")
    check_tied({"logits": {"idx": got["logits"]["seq"]},
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
