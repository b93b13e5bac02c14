"""Assignment: the training loop.

Implement the learning-rate schedule (``get_lr``: linear warmup, then cosine decay), random
batches of next-token windows (``get_batch``), and a ``train`` loop with AdamW, gradient
clipping and periodic evaluation that returns the metrics the course plots (Day 30:
``train_losses``, ``val_losses``, ``lrs``, ``grad_norms``). ``TrainConfig`` is given. Replace
every ``raise NotImplementedError`` with your code; the docstrings are the specification (the
step-0 convention of the schedule, the order of the loop's operations, what each metric holds).

The grader imports these exact names from this module: ``get_lr``, ``get_batch``,
``TrainConfig`` and ``train``. Do not rename them or change their signatures. ``train`` must
work with any model that follows the course's contract ``model(idx, targets) -> (logits,
loss)``: the grader runs it on a small model of its own as well.
"""

import math  # noqa: F401  (you will need it)
from dataclasses import dataclass

import torch


def get_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
           max_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine decay.

    - ``step < warmup_steps``: linear warmup ``max_lr * (step + 1) / warmup_steps``. Step 0
      already gets ``max_lr / warmup_steps`` (not 0: a step with learning rate 0 is wasted), and
      the last warmup step, ``warmup_steps - 1``, gets exactly ``max_lr``.
    - ``warmup_steps <= step <= max_steps``: cosine decay from ``max_lr`` at
      ``step == warmup_steps`` to ``min_lr`` at ``step == max_steps``::

          ratio = (step - warmup_steps) / (max_steps - warmup_steps)
          lr = min_lr + 0.5 * (1 + cos(pi * ratio)) * (max_lr - min_lr)

    - ``step > max_steps``: ``min_lr``.

    Returns a Python ``float``.
    """
    raise NotImplementedError(
        "Return max_lr * (step + 1) / warmup_steps during warmup, min_lr after max_steps, and the "
        "cosine min_lr + 0.5 * (1 + cos(pi * ratio)) * (max_lr - min_lr) in between."
    )


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, *,
              generator: torch.Generator | None = None, device: str = "cpu"):
    """A random batch of training windows and their next-token targets.

    Args:
        data: 1-D ``torch.long`` tensor of token ids (the whole split).
        block_size: length ``T`` of each window.
        batch_size: number ``B`` of windows.
        generator: the ``torch.Generator`` the random start positions are drawn with (the global
            generator when ``None``). The same generator state gives the same batch.
        device: where the returned tensors live.

    Returns:
        ``(x, y)``, both ``torch.long`` of shape ``(B, T)`` on ``device``: ``B`` starts drawn
        uniformly from ``0 .. len(data) - block_size - 1`` (both ends included, so the last
        target is the last token of ``data``), ``x[b] = data[s_b : s_b + T]`` and
        ``y[b] = data[s_b + 1 : s_b + T + 1]``: ``y`` is ``x`` shifted by one, the token that
        follows each input position.
    """
    raise NotImplementedError(
        "Draw batch_size random starts with the generator, then stack the windows of the data and "
        "the windows one token later, on the device."
    )


@dataclass
class TrainConfig:
    """Settings of :func:`train`. ``device`` is where batches go (the model is already there)."""

    max_steps: int = 1000
    batch_size: int = 32
    block_size: int = 64
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_iters: int = 20
    seed: int = 0
    device: str = "cpu"


@torch.no_grad()
def estimate_loss(model, data: torch.Tensor, config: TrainConfig) -> float:
    """Mean loss of ``model`` over ``config.eval_iters`` batches of ``data``, in eval mode and
    without gradients; every call draws the same batches (a generator seeded
    ``config.seed + 1``). The model is put back in training mode afterwards."""
    raise NotImplementedError(
        "In eval mode and without gradients, average the loss of eval_iters batches of data drawn "
        "with a generator seeded config.seed + 1, then put the model back in training mode."
    )


def train(model, train_data: torch.Tensor, val_data: torch.Tensor, config: TrainConfig) -> dict:
    """Train ``model`` for ``config.max_steps`` optimizer steps and return its metrics.

    The model contract: ``model(idx, targets)`` returns ``(logits, loss)`` with ``loss`` the mean
    next-token cross-entropy (a scalar tensor). The model is already on ``config.device``.

    The loop, exactly in this order:

    - Before the first step: one ``torch.optim.AdamW(model.parameters(), lr=config.max_lr,
      betas=(0.9, 0.95), eps=1e-8, weight_decay=config.weight_decay)`` (one parameter group),
      a ``torch.Generator`` seeded ``config.seed`` for the training batches, and
      ``model.train()``.
    - For each ``step`` in ``0 .. max_steps - 1``:

      1. if ``step % eval_interval == 0`` or ``step == max_steps - 1``: evaluate the validation
         loss (:func:`estimate_loss`: ``eval_iters`` batches of ``val_data``, ``model.eval()``
         and ``torch.no_grad()``, then back to ``model.train()``) and append it to
         ``val_losses``. This happens BEFORE the step's update.
      2. ``lr = get_lr(step, ...)`` with the config's ``max_lr``, ``min_lr``, ``warmup_steps``
         and ``max_steps``; set ``group["lr"] = lr`` for every parameter group.
      3. ``x, y = get_batch(train_data, block_size, batch_size, generator=..., device=...)``.
      4. ``optimizer.zero_grad()`` (every step: gradients must not accumulate across steps),
         ``_, loss = model(x, y)``, ``loss.backward()``.
      5. ``norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)``:
         after ``backward`` and before ``optimizer.step()``; it returns the total norm BEFORE
         clipping, which is what ``grad_norms`` records.
      6. ``optimizer.step()``.

    Returns:
        A dict of Python floats (no tensors)::

            {"train_losses": [...],  # max_steps values: the loss of each step's batch
             "val_losses": [...],    # one per evaluation, in order
             "lrs": [...],           # max_steps values: the lr used at each step
             "grad_norms": [...],    # max_steps values: the pre-clip gradient norm
             "eval_interval": config.eval_interval}
    """
    raise NotImplementedError(
        "Write the loop described in the docstring: AdamW, then per step: evaluate (sometimes), "
        "set the lr, get a batch, zero_grad, forward, backward, clip_grad_norm_, step, record."
    )
