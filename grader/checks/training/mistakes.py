"""The known mistakes of the training loop and its schedule (reference/training.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
The loop's mistakes are planted in the reference's ``train`` and replayed on the student's
batches (:mod:`grader.checks.training.replay`); :data:`STYLES` are other CORRECT ways to write
the loop, replayed the same way and accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.diagnosis.catalogue import S43, Edits, Mistake, mistake, register

LOOP_COURSE = S43 + " (complete GPT training loop)"
CLIP_COURSE = S43 + " (gradient clipping: after backward(), before step())"
LR_COURSE = S43 + " (learning rate scheduling: linear warmup + cosine decay)"

ZERO = "        optimizer.zero_grad(set_to_none=True)\n"
CLIP = "        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)\n"
STEP = "        optimizer.step()\n"
ADAMW = "optimizer = torch.optim.AdamW(model.parameters(), lr=config.max_lr, betas=(0.9, 0.95),"
DECAY = "\n                                  eps=1e-8, weight_decay=config.weight_decay)"
SET_LR = '            group["lr"] = lr\n'
EVAL = ("        if step % config.eval_interval == 0 or step == config.max_steps - 1:\n"
        "            metrics[\"val_losses\"].append(estimate_loss(model, val_data, config))\n")


register(
    # ------------------------------------------------------------------ the loop's order
    Mistake(
        "zero_grad_missing", "the gradients are not zeroed every step (they accumulate)",
        "The training heartbeat is zero_grad, forward, loss, backward, (clip,) step: "
        "loss.backward() ADDS to .grad, so call optimizer.zero_grad() every step.",
        LOOP_COURSE, plant={"training": [(ZERO, "")]},
    ),
    Mistake(
        "clip_before_backward", "the gradients are clipped before backward (clipping nothing)",
        "Clip the global gradient norm after backward() and before step(): "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) between the two.",
        CLIP_COURSE,
        plant={"training": [(ZERO, ZERO + CLIP), (CLIP + STEP, STEP)]},
        flavours={"before_zero_grad": {"training": [(ZERO, CLIP + ZERO), (CLIP + STEP, STEP)]}},
    ),
    Mistake(
        "clip_after_step", "the gradients are clipped after optimizer.step() (the update used "
                           "unclipped gradients)",
        "Order: zero_grad, forward, backward, clip, step. Clipping after step() is too late: "
        "the update has already used the unclipped gradients.",
        CLIP_COURSE, plant={"training": [(CLIP + STEP, STEP + CLIP)]},
    ),
    Mistake(
        "clip_missing", "the gradients are never clipped",
        "Call torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip) after "
        "loss.backward() and before optimizer.step(); it returns the norm before clipping.",
        CLIP_COURSE,
        plant={"training": [(CLIP, CLIP.replace("config.grad_clip", 'float("inf")'))]},
    ),
    Mistake(
        "clip_value_hardcoded", "the gradients are clipped to 1.0 instead of config.grad_clip",
        "Clip to the configured value: clip_grad_norm_(model.parameters(), config.grad_clip).",
        CLIP_COURSE,
        plant={"training": [(CLIP, CLIP.replace("config.grad_clip", "1.0"))]},
    ),
    Mistake(
        "optimizer_step_missing", "optimizer.step() is never called (nothing is learned)",
        "Every step ends with optimizer.step(): without it the gradients are computed and "
        "thrown away, and the parameters never change.",
        LOOP_COURSE, plant={"training": [(STEP, "")]},
    ),
    Mistake(
        "lr_not_applied", "the schedule's learning rate never reaches the optimizer",
        "Before optimizer.step(), set group['lr'] = get_lr(step, ...) for every group in "
        "optimizer.param_groups: the optimizer keeps the lr it was built with otherwise.",
        LR_COURSE, plant={"training": [(SET_LR, '            group["lr"] = group["lr"]\n')]},
    ),
    Mistake(
        "adam_default_betas", "AdamW keeps its default betas (0.9, 0.999) instead of "
                              "(0.9, 0.95)",
        "Build torch.optim.AdamW(model.parameters(), lr=config.max_lr, betas=(0.9, 0.95), "
        "eps=1e-8, weight_decay=config.weight_decay), as the docstring says.",
        LOOP_COURSE, plant={"training": [(ADAMW, ADAMW.replace("0.95", "0.999"))]},
    ),
    Mistake(
        "weight_decay_missing", "the optimizer has no weight decay (config.weight_decay is "
                                "not passed)",
        "Pass weight_decay=config.weight_decay to AdamW.",
        LOOP_COURSE, plant={"training": [(DECAY, DECAY.replace("config.weight_decay", "0.0"))]},
        # AdamW's own default (0.01) when the argument is left out
        flavours={"default": {"training": [
            (DECAY, DECAY.replace(", weight_decay=config.weight_decay", ""))]}},
    ),
    Mistake(
        "adam_instead_of_adamw", "torch.optim.Adam (L2 penalty in the gradient) is used "
                                 "instead of AdamW (decoupled weight decay)",
        "Use torch.optim.AdamW: Adam's weight_decay adds an L2 term to the gradient, which "
        "the adaptive scaling then distorts; AdamW decays the weights directly.",
        LOOP_COURSE, plant={"training": [("optimizer = torch.optim.AdamW(",
                               "optimizer = torch.optim.Adam(")]},
    ),
    Mistake(
        "sgd_instead_of_adamw", "SGD is used instead of AdamW",
        "The loop's optimizer is torch.optim.AdamW(model.parameters(), lr=config.max_lr, "
        "betas=(0.9, 0.95), eps=1e-8, weight_decay=config.weight_decay).",
        LOOP_COURSE,
        plant={"training": [(ADAMW + DECAY,
                  "optimizer = torch.optim.SGD(model.parameters(), lr=config.max_lr, "
                  "weight_decay=config.weight_decay)")]},
        flavours={"momentum": {"training": [(ADAMW + DECAY,
                                  "optimizer = torch.optim.SGD(model.parameters(), "
                                  "lr=config.max_lr, momentum=0.9, "
                                  "weight_decay=config.weight_decay)")]}},
    ),
    Mistake(
        "eval_in_train_mode", "the validation loss is measured in training mode",
        "Call model.eval() before evaluating (dropout off, normalisation statistics frozen) "
        "and model.train() after.",
        LOOP_COURSE, plant={"training": [("    model.eval()\n    generator", "    generator")]},
    ),
    Mistake(
        "train_mode_not_restored", "after an evaluation, training continues in eval mode",
        "estimate_loss puts the model in eval mode: call model.train() before returning, or "
        "every later step trains in eval mode.",
        LOOP_COURSE, plant={"training": [("    model.train()\n    return sum", "    return sum")]},
    ),
    # ------------------------------------------------------------------ the schedule
    Mistake(
        "warmup_off_by_one", "the warmup is off by one step",
        "Linear warmup is max_lr * (step + 1) / warmup_steps for step < warmup_steps: step 0 "
        "already learns, the last warmup step reaches max_lr, and the cosine decay starts at "
        "step warmup_steps.",
        LR_COURSE,
        plant={"training": [("return max_lr * (step + 1) / warmup_steps",
                  "return max_lr * step / warmup_steps")]},
        flavours={"late": {"training": [("if step < warmup_steps:", "if step <= warmup_steps:")]}},
    ),
    Mistake(
        "cosine_decays_to_zero", "the cosine decays to 0 instead of min_lr",
        "The cosine decays from max_lr to min_lr, not to 0: lr = min_lr + coeff * "
        "(max_lr - min_lr), with coeff = 0.5 * (1 + cos(pi * ratio)).",
        LR_COURSE,
        plant={"training": [("return min_lr + coeff * (max_lr - min_lr)",
                             "return coeff * max_lr")]},
    ),
    Mistake(
        "lr_not_floored_after_max_steps", "after max_steps the cosine keeps going instead of "
                                          "staying at min_lr",
        "Past max_steps the learning rate stays at min_lr: if step > max_steps: return min_lr.",
        LR_COURSE, plant={"training": [("    if step > max_steps:\n        return min_lr\n", "")]},
    ),
    Mistake(
        "cosine_ratio_from_zero", "the cosine's progress ignores the warmup (ratio = step / "
                                  "max_steps)",
        "The decay starts when the warmup ends: ratio = (step - warmup_steps) / (max_steps - "
        "warmup_steps) goes from 0 at the end of warmup to 1 at max_steps.",
        LR_COURSE,
        plant={"training": [("\n    ratio = (step - warmup_steps) / (max_steps - warmup_steps)\n",
                  "\n    ratio = step / max_steps\n")]},
    ),
    Mistake(
        "warmup_to_min_lr", "the warmup does not reach max_lr (it is scaled by min_lr)",
        "Linear warmup goes from max_lr / warmup_steps at step 0 to max_lr at step "
        "warmup_steps - 1: max_lr * (step + 1) / warmup_steps.",
        LR_COURSE,
        plant={"training": [("return max_lr * (step + 1) / warmup_steps",
                  "return min_lr + (max_lr - min_lr) * step / warmup_steps")]},
    ),
    # ------------------------------------------------------------------ batches (by rule)
    Mistake(
        "labels_not_shifted", "the targets are the inputs themselves, not the next tokens",
        "y is x shifted by one: y[b] = data[s + 1 : s + 1 + block_size], the token that follows "
        "each input position.",
        S43 + " (next-token prediction targets)",
    ),
)

# The mistakes a check compares, in the order it compares them.
LR_SCHEDULE = ("warmup_off_by_one", "cosine_decays_to_zero", "lr_not_floored_after_max_steps",
               "cosine_ratio_from_zero", "warmup_to_min_lr")
# The loop's mistakes replayed (each alone, then any two together), and which check each fails.
LOOP = ("zero_grad_missing", "clip_before_backward", "clip_after_step", "clip_missing",
        "clip_value_hardcoded", "optimizer_step_missing", "lr_not_applied", "adam_default_betas",
        "weight_decay_missing", "adam_instead_of_adamw", "sgd_instead_of_adamw",
        "eval_in_train_mode", "train_mode_not_restored")
ZERO_GRAD = ("zero_grad_missing",)
CLIPPING = ("clip_before_backward", "clip_after_step", "clip_missing", "clip_value_hardcoded")
OPTIMIZER = ("optimizer_step_missing", "lr_not_applied", "adam_default_betas",
             "weight_decay_missing", "adam_instead_of_adamw", "sgd_instead_of_adamw")
EVALUATION = ("eval_in_train_mode", "train_mode_not_restored")

@dataclass(frozen=True)
class Style:
    """A CORRECT way to write the loop that the reference does not take, planted like a
    mistake (``plant``: the edits; stripped from a student bundle like the mistakes' plants)."""

    id: str
    plant: Edits


# Correct loops written otherwise: replayed like the mistakes, accepted like the reference.
STYLES: dict[str, Edits] = {s.id: s.plant for s in (
    # nanoGPT's optimizer groups: no weight decay on biases and LayerNorm/BatchNorm gains.
    Style("no_decay_on_gains_and_biases", plant={"training": [(
        "optimizer = torch.optim.AdamW(model.parameters(), lr=config.max_lr,",
        "optimizer = torch.optim.AdamW([{'params': [p for p in model.parameters() if p.dim() "
        ">= 2]}, {'params': [p for p in model.parameters() if p.dim() < 2], 'weight_decay': "
        "0.0}], lr=config.max_lr,")]}),
    # The evaluation after the step's update instead of before it (the same final model).
    Style("eval_after_step", plant={"training": [(EVAL, ""), (STEP, STEP + EVAL)]}),
)}


def loop_edits(variant: str) -> Edits:
    """The edits of a loop variant: an accepted style, or a catalogue variant id."""
    if variant in STYLES:
        return STYLES[variant]
    edits = mistake(variant).variants().get(variant)
    if edits is None:
        raise KeyError(f"mistake {variant!r} has no planted variant")
    return edits
