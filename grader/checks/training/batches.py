"""Checks of ``get_batch``: shapes, windows and shifted targets, uniform starts, and the given
generator. Judged by the tensors the student's function returns (their shapes and values);
what only the worker can see (dtype and device as described there) is reported as a note."""

from __future__ import annotations

import math
from typing import Any

import torch

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.harness import seeded
from grader.checks.training import ASSIGNMENT
from grader.diagnosis import likely

check = ASSIGNMENT.check


def _batches(ctx: Context, data: dict[str, torch.Tensor], calls: list[dict[str, Any]]):
    reply = ctx.request("training.get_batch", {"calls": calls}, data)
    out = []
    for i, desc in enumerate(reply.result["calls"]):
        out.append((reply.tensors[f"x{i}"], reply.tensors[f"y{i}"], desc))
    return out


def _call(data: str, block: int, batch: int, gen: int | None = 0, global_seed: int = 0,
          device: str | None = None) -> dict[str, Any]:
    return {"data": data, "block_size": block, "batch_size": batch, "generator_seed": gen,
            "global_seed": global_seed, "device": device}


@check("batch_shapes", "get_batch: shapes, dtype and device of (x, y)", 2, needs=("get_batch",))
def batch_shapes(ctx: Context):
    """``get_batch(data, block_size, batch_size, generator=g, device="cpu")`` returns two
    tensors of shape ``(batch_size, block_size)``, for several sizes (one window of one token
    included). Their dtype (``torch.long``) and device are reported by the worker, which the
    student's code can rewrite: a note, no points."""
    data = ctx.inputs("batch_shapes", lambda: {
        "data": torch.randint(0, 50, (300,), generator=seeded(121))})
    cases = [(8, 4), (1, 1), (16, 3), (32, 7)]
    notes: list[str] = []
    results = _batches(ctx, data, [_call("data", t, b, device="cpu") for t, b in cases])
    for (block, batch), (x, y, desc) in zip(cases, results, strict=True):
        what = f"get_batch(data, block_size={block}, batch_size={batch})"
        for name, t, d in (("x", x, desc["x"]), ("y", y, desc["y"])):
            if tuple(t.shape) != (batch, block):
                raise CheckFailed(f"{what}: {name} has shape {tuple(t.shape)}, expected "
                                  f"({batch}, {block}) = (batch_size, block_size)",
                                  actual_shape=list(t.shape), expected_shape=[batch, block])
            # dtype and device are what the worker describes (rewritable by the student's
            # code): notes for the student, no points.
            if d.get("dtype") != "int64" and not any(name in n for n in notes):
                notes.append(f"{name} is {d.get('dtype')}, the contract asks for int64 "
                             f"(torch.long: cross_entropy needs long targets)")
            if d.get("device") != "cpu" and not any("device" in n for n in notes):
                notes.append(f"{name} is on {d.get('device')}, asked for cpu")
    return ok("; ".join(notes), cases=len(cases))


@check("batch_targets", "get_batch: windows of the data, targets shifted by one", 2,
       needs=("get_batch",))
def batch_targets(ctx: Context):
    """With ``data = 0, 1, ..., N-1`` every row of ``x`` is a window ``data[s : s + T]`` of
    consecutive tokens with a start ``0 <= s <= N - T - 1``, and ``y = data[s + 1 : s + T + 1]``:
    the inputs shifted by one."""
    n, block, batch = 500, 12, 64
    data = ctx.inputs("batch_targets", lambda: {"data": torch.arange(n)})
    (x, y, _), = _batches(ctx, data, [_call("data", block, batch, gen=3)])
    if tuple(x.shape) != (batch, block) or tuple(y.shape) != (batch, block):
        raise CheckFailed(f"x and y have shapes {tuple(x.shape)} and {tuple(y.shape)}, expected "
                          f"({batch}, {block}) each")
    starts = x[:, 0]
    window = starts[:, None] + torch.arange(block)
    bad = (x != window).any(1).nonzero().flatten().tolist()
    if bad:
        b = bad[0]
        raise CheckFailed(f"row {b} of x is not a window of consecutive tokens of the data: "
                          f"{x[b, :8].tolist()}... (data = 0, 1, 2, ...)",
                          hint="x[b] = data[s : s + block_size] for a random start s.")
    if bool((y == x).all()):
        raise CheckFailed("y equals x: the targets must be the tokens that FOLLOW each input "
                          "position (not shifted)", hint="y[b] = data[s + 1 : s + 1 + "
                          "block_size].", **likely("labels_not_shifted"))
    bad = (y != x + 1).any(1).nonzero().flatten().tolist()
    if bad:
        b = bad[0]
        raise CheckFailed(f"y is not x shifted by one: for x[{b}] = {x[b, :6].tolist()}... y[{b}]"
                          f" = {y[b, :6].tolist()}..., expected {(x[b, :6] + 1).tolist()}...",
                          hint="y[b] = data[s + 1 : s + 1 + block_size], the next tokens.")
    low, high = int(starts.min()), int(starts.max())
    if low < 0 or high > n - block - 1:
        raise CheckFailed(f"a start {high if high > n - block - 1 else low} is outside 0 .. "
                          f"len(data) - block_size - 1 = {n - block - 1}")
    return ok()


# chi-square with 9 degrees of freedom exceeds 45 with probability ~1e-6: a uniform sampler
# fails this (seeded, so reproducible) test about once in a million seeds; a sampler that skips
# a region, or favours the start, puts thousands of draws' worth of excess in a bin.
CHI2_LIMIT = 45.0


@check("batch_spread", "get_batch: starts are spread uniformly over the whole data", 2,
       needs=("get_batch",))
def batch_spread(ctx: Context):
    """Starts cover every valid position: with ``len(data) = block_size + 4`` all four valid
    starts 0..3 appear in 400 draws (the last one, whose targets end at the data's last token,
    included) and no other; with 2000 draws over 1000 tokens, the counts in ten equal bins pass
    a chi-square test of uniformity (limit 45, p ~ 1e-6)."""
    block = 8
    data = ctx.inputs("batch_spread", lambda: {"tiny": torch.arange(block + 4),
                                               "big": torch.arange(1000)})
    (x, _, _), (xb, _, _) = _batches(ctx, data, [_call("tiny", block, 400, gen=11),
                                                 _call("big", block, 2000, gen=12)])
    for t, rows in ((x, 400), (xb, 2000)):
        if tuple(t.shape) != (rows, block):  # the starts are read off column 0 below
            raise CheckFailed(f"x has shape {tuple(t.shape)}, expected ({rows}, {block}) = "
                              "(batch_size, block_size)")
    seen = sorted(set(x[:, 0].tolist()))
    if seen != [0, 1, 2, 3]:
        missing = sorted({0, 1, 2, 3} - set(seen))
        extra = sorted(set(seen) - {0, 1, 2, 3})
        why = []
        if missing:
            why.append(f"start(s) {missing} never drawn in 400 draws")
        if extra:
            why.append(f"start(s) {extra} drawn, past the last valid start 3")
        raise CheckFailed(f"with len(data) = block_size + 4 = {block + 4} the valid starts are "
                          f"0..3; " + "; ".join(why),
                          hint="torch.randint(len(data) - block_size, (batch_size,), generator="
                               "generator): the upper bound is exclusive, so the last start is "
                               "len(data) - block_size - 1.", starts_seen=seen)
    starts = xb[:, 0].double()
    n_valid = 1000 - block
    bins = torch.clamp((starts * 10 / n_valid).long(), 0, 9)
    counts = torch.bincount(bins, minlength=10).double()
    edges = torch.tensor([math.ceil(i * n_valid / 10) for i in range(11)], dtype=torch.float64)
    expected = (edges[1:] - edges[:-1]) / n_valid * len(starts)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    if chi2 > CHI2_LIMIT:
        raise CheckFailed(f"the starts are not spread uniformly over the data: counts in ten "
                          f"equal ranges of starts are {counts.long().tolist()} (about "
                          f"{float(expected.mean()):.0f} each expected; chi-square {chi2:.0f}, "
                          f"limit {CHI2_LIMIT:g})",
                          hint="Draw each start uniformly from 0 .. len(data) - block_size - 1.",
                          counts=counts.long().tolist())
    return ok(chi_square=round(chi2, 2))


@check("batch_generator", "get_batch: draws with the given generator", 2, needs=("get_batch",))
def batch_generator(ctx: Context):
    """The same generator seed gives the same batch whatever the global RNG's state; another
    generator seed gives another batch (so a seeded run is reproducible and evaluation can use
    its own generator)."""
    data = ctx.inputs("batch_generator", lambda: {"data": torch.arange(2000)})
    (a, _, _), (b, _, _), (c, _, _) = _batches(ctx, data, [
        _call("data", 8, 16, gen=5, global_seed=0), _call("data", 8, 16, gen=5, global_seed=1),
        _call("data", 8, 16, gen=6, global_seed=0)])
    if not torch.equal(a, b):
        raise CheckFailed("two calls with generators seeded alike gave different batches (the "
                          "global seed differed): the starts are not drawn with `generator`",
                          hint="Pass it on: torch.randint(..., generator=generator).")
    if torch.equal(a, c):
        raise CheckFailed("generators with different seeds gave the same batch: `generator` "
                          "does not drive the draw")
    return ok()


