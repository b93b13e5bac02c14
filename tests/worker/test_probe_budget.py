"""The GPT probe's step budget counts the work done, not the wall-clock: a busy machine (time
spent waiting for a core) must not change the verdict, a slow implementation must."""

from __future__ import annotations

import time

import torch
from torch import nn

from grader.shared.probe import minimal_train


class Timed(nn.Module):
    """A tiny LM whose forward either waits (sleeps: no CPU) or works (spins: CPU)."""

    def __init__(self, seconds: float, busy: bool):
        super().__init__()
        self.emb = nn.Embedding(5, 5)
        self.seconds, self.busy = seconds, busy

    def forward(self, idx, targets=None):
        end = time.perf_counter() + self.seconds
        if self.busy:
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(self.seconds)
        logits = self.emb(idx)
        loss = nn.functional.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1))
        return logits, loss


def _batches(steps: int):
    g = torch.Generator().manual_seed(0)
    xs = torch.randint(0, 5, (steps, 2, 3), generator=g)
    return xs, xs.roll(1, dims=-1)


def test_waiting_for_the_machine_does_not_use_the_budget():
    xs, ys = _batches(6)
    _, done = minimal_train(Timed(0.05, busy=False), xs, ys, 0.01, max_seconds=0.1)
    assert done == 6  # 0.3 s of wall-clock, almost no CPU


def test_work_uses_the_budget():
    xs, ys = _batches(6)
    _, done = minimal_train(Timed(0.05, busy=True), xs, ys, 0.01, max_seconds=0.1)
    assert done < 6
