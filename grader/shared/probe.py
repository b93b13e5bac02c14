"""The fixed models and the plain loop of the training probes, run on both sides.

The worker trains these around the student's code and the grader runs the reference with the
same code, so the two runs differ only by the student's code. Everything here is visible to the
student's code, so it holds no solution of any assignment and no expected value.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MAX_EVENTS = 2_000  # forward calls recorded in a loop run of a few steps (~2 per step)


class ProbeLM(nn.Module):
    """A fixed MLP language model (Bengio et al. 2003 style) for the convergence probe.

    Position ``t`` sees the ``context`` tokens ending at ``t`` (padded with an extra token id
    ``vocab_size`` before the start of the window): their embeddings are concatenated and fed
    to one tanh hidden layer. It follows the course's model contract,
    ``model(idx, targets=None) -> (logits (B, T, V), loss or None)``, and is small enough to
    train hundreds of steps per second on one CPU thread.

    ``events`` (a list, or None) receives one record per forward call when the model is
    instrumented: its mode, grad mode, inputs and targets, and whether a backward pass reached
    its loss. (Student code can rewrite all of this: the trusted side uses it only to know
    which batches to replay, never as evidence.)
    """

    def __init__(self, vocab_size: int, context: int = 10, n_embd: int = 16, n_hidden: int = 128,
                 norm: bool = False):
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.wte = nn.Embedding(vocab_size + 1, n_embd)
        # ``norm``: a BatchNorm on the hidden layer, so that train and eval mode compute
        # different (deterministic) values: a loop that evaluates in training mode, or trains in
        # eval mode, shows in its losses and in the final running statistics. Then fc has no
        # bias: BatchNorm subtracts the batch mean, so that bias's gradient is zero up to
        # rounding (~5e-9, below AdamW's eps), and AdamW would turn the rounding noise into
        # updates: two correct loops that round differently (fused AdamW, a clip written out)
        # would end far apart in that bias alone.
        self.fc = nn.Linear(context * n_embd, n_hidden, bias=not norm)
        self.norm = nn.BatchNorm1d(n_hidden) if norm else None
        self.head = nn.Linear(n_hidden, vocab_size)
        self.events: list[dict[str, Any]] | None = None

    def forward(self, idx, targets=None):
        padded = F.pad(idx, (self.context - 1, 0), value=self.vocab_size)
        windows = padded.unfold(1, self.context, 1)  # (B, T, context), the last one is t itself
        hidden = self.fc(self.wte(windows).flatten(2))
        if self.norm is not None:
            hidden = self.norm(hidden.reshape(-1, hidden.size(-1))).view(hidden.shape)
        logits = self.head(torch.tanh(hidden))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        if self.events is not None and len(self.events) < MAX_EVENTS:
            # What was fed (the trusted side replays the reference loop on these batches) and
            # whether a backward pass reached this loss (a training step) or not (evaluation).
            record: dict[str, Any] = {"training": self.training, "grad": torch.is_grad_enabled(),
                                      "backward": False, "x": idx.detach().cpu().clone(),
                                      "y": None if targets is None else
                                      targets.detach().cpu().clone()}
            if loss is not None and loss.requires_grad:
                loss.register_hook(lambda g, r=record: r.__setitem__("backward", True))
            self.events.append(record)
        return logits, loss


def minimal_train(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, lr: float,
                  max_seconds: float = math.inf) -> tuple[list[float], int]:
    """The trusted loop that trains a GPT for the second probe, the same in the worker (the
    student's GPT) and in the grader (the reference GPT): for each pre-drawn batch
    ``xs[i], ys[i]``, plain ``AdamW(weight_decay=0)`` at ``lr`` decayed to 0 along a half cosine,
    zero the gradients, loss from ``model(x, y)[1]``, backward, step. Stops early after
    ``max_seconds`` of this process's CPU time: a budget of work, not of wall-clock time, so the
    verdict on a slow implementation does not depend on how busy the machine is (the caller's
    request timeout still bounds the wall). Returns the loss of every step done and the number
    of steps done."""
    # The decay is what makes the verdict about the model rather than about rounding: at a
    # constant 1e-2 a late loss spike came and went with the last bits of the sums, so correct
    # GPTs written another way (attention in float64, PyTorch's fused attention) ended up to
    # 0.31 nats above the reference under some seeds; decayed, 40 seeds stay within 0.01.
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses: list[float] = []
    started = time.process_time()
    steps = xs.shape[0]
    for i in range(steps):
        if time.process_time() - started > max_seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * i / steps))
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(xs[i], ys[i])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, len(losses)


def probe_model(spec: dict[str, Any], seed: int, device: str) -> ProbeLM:
    """The probe model, freshly initialised from ``seed`` (same numbers on both sides)."""
    torch.manual_seed(seed)
    return ProbeLM(**spec).to(device)
