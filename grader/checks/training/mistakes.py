"""The known mistakes of the training loop and its schedule (reference/training.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import S43, Mistake, register

register(
    Mistake(
        "zero_grad_missing", "the gradients are not zeroed every step (they accumulate)",
        "The training heartbeat is zero_grad, forward, loss, backward, (clip,) step: "
        "loss.backward() ADDS to .grad, so call optimizer.zero_grad() every step.",
        S43 + " (complete GPT training loop)",
    ),
    Mistake(
        "clip_before_backward", "the gradients are clipped before backward (clipping nothing)",
        "Clip the global gradient norm after backward() and before step(): "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) between the two.",
        S43 + " (gradient clipping: after backward(), before step())",
    ),
    Mistake(
        "warmup_off_by_one", "the warmup is off by one step",
        "Linear warmup is max_lr * (step + 1) / warmup_steps for step < warmup_steps: step 0 "
        "already learns, the last warmup step reaches max_lr, and the cosine decay starts at "
        "step warmup_steps.",
        S43 + " (learning rate scheduling: linear warmup + cosine decay)",
        plant={"training": [("return max_lr * (step + 1) / warmup_steps",
                             "return max_lr * step / warmup_steps")]},
        flavours={"late": {"training": [("if step < warmup_steps:",
                                         "if step <= warmup_steps:")]}},
    ),
)

LR_SCHEDULE = ("warmup_off_by_one",)
