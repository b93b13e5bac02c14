"""The training loop: learning-rate schedule, batches, and a loop that records its metrics
(an example of a correct submission).

The conventions are nanoGPT's. ``train`` works with any model that follows the course's model
contract, ``model(idx, targets) -> (logits, loss)``.
"""

import math
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
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step > max_steps:
        return min_lr
    ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 at the end of warmup, 0 at max_steps
    return min_lr + coeff * (max_lr - min_lr)


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
    # randint's upper bound is exclusive: starts 0 .. len(data) - block_size - 1.
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[i:i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix.tolist()])
    return x.to(device), y.to(device)


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
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 1)
    losses = []
    for _ in range(config.eval_iters):
        x, y = get_batch(data, config.block_size, config.batch_size, generator=generator,
                         device=config.device)
        _, loss = model(x, y)
        losses.append(loss.item())
    model.train()
    return sum(losses) / len(losses)


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
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.max_lr, betas=(0.9, 0.95),
                                  eps=1e-8, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    metrics = {"train_losses": [], "val_losses": [], "lrs": [], "grad_norms": [],
               "eval_interval": config.eval_interval}
    model.train()
    for step in range(config.max_steps):
        if step % config.eval_interval == 0 or step == config.max_steps - 1:
            metrics["val_losses"].append(estimate_loss(model, val_data, config))
        lr = get_lr(step, max_lr=config.max_lr, min_lr=config.min_lr,
                    warmup_steps=config.warmup_steps, max_steps=config.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, config.block_size, config.batch_size, generator=generator,
                         device=config.device)
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        # Clip the freshly computed gradients, then step: clipping before backward would clip
        # nothing (or last step's gradients), and after step would be too late.
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        metrics["train_losses"].append(loss.item())
        metrics["lrs"].append(lr)
        metrics["grad_norms"].append(float(norm))
    return metrics
