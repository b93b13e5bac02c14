"""Weight tying judged by its effect: rows of ``wte`` that the input never uses are changed
once after loading, and exactly those tokens' logits must move (``lm_head`` is ``wte``). The
probe and its verdict serve the tiny, the 124M and the real checkpoints alike."""

from __future__ import annotations

from typing import Any

import torch

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.gpt2_loading import ASSIGNMENT, NEEDS
from grader.checks.gpt2_loading.task import TINY, student_load, tiny_folder, tiny_tokens
from grader.diagnosis import likely, mistake

check = ASSIGNMENT.check


def tie_probe(ctx: Context, key: str, vocab: int, n_embd: int, idx: torch.Tensor
              ) -> dict[str, Any]:
    """A change of the shared matrix made once after loading: random rows of ``wte`` that no
    token of ``idx`` uses get a random delta. Tied, the logits of those vocabulary entries move
    (lm_head is wte); untied, nothing moves at all."""
    def make(g: torch.Generator):
        unused = torch.tensor([v for v in range(vocab) if v not in set(idx.flatten().tolist())])
        rows = unused[torch.randperm(len(unused), generator=g)[:8]].sort().values
        return {"rows": rows, "delta": 0.5 * torch.randn(len(rows), n_embd, generator=g)}

    return ctx.inputs(key, make)


def check_tied(got: dict[str, Any], tie: dict[str, Any], label: str) -> None:
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
    path, _ = tiny_folder(ctx, "tiny-modern", prefix=True, buffers=False)
    idx = tiny_tokens(ctx)["idx"]
    tie = tie_probe(ctx, "tie/tiny", TINY.vocab_size, TINY.n_embd, idx)
    got = student_load(ctx, {"path": path}, {"idx": idx}, return_params=False,
                       perturb={"param": "transformer.wte.weight",
                                 "rows": tie["rows"].tolist(), "tensor": "tie.delta"},
                       extra={"tie.delta": tie["delta"]})
    check_tied(got, tie, "the tiny checkpoint")
    return ok()
