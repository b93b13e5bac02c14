"""Checks of ``train``'s loop, judged by outcomes (:mod:`.replay`).

One loop run per grading (``ctx.once``) and one verdict: which trusted replay of the reference
loop on the same batches the student's FINAL parameters equal. Each check then asks whether
that run has its property: the gradients zeroed, the clipping in place, AdamW with the
schedule's learning rate, evaluation in eval mode; and whether the metrics the loop returned
are the ones that run really computed. What the worker observes (forward calls, flags, types)
only chooses the batches to replay and feeds notes, never points.
"""

from __future__ import annotations

from typing import Any

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.training import ASSIGNMENT
from grader.checks.training import mistakes as catalogue
from grader.checks.training.common import near
from grader.checks.training.replay import (
    LOOP_CONFIG,
    LOOP_EVAL_STEPS,
    METRIC_ATOL,
    METRIC_RTOL,
    Verdict,
    replay,
    run_loop,
    verdict,
)
from grader.diagnosis import mistake

check = ASSIGNMENT.check
NEEDS = ("train", "TrainConfig")
N = LOOP_CONFIG["max_steps"]


def _unexplained(v: Verdict, what: str) -> CheckFailed:
    return CheckFailed(
        f"after {N} steps your model's parameters differ from those of the reference loop run "
        f"on the same batches (same model, initial values and learning rates) and from each of "
        f"{v.compared - 1} runs with a known loop mistake planted, so {what} cannot be "
        f"confirmed",
        hint="Follow the order in train's docstring exactly: zero_grad, forward, backward, "
             "clip_grad_norm_, step, with AdamW(betas=(0.9, 0.95), eps=1e-8, weight_decay) "
             "and the lr from get_lr set on every parameter group.",
        diagnosis=f"matched none of {v.compared} trusted runs", **v.details)


def _named(ctx: Context, v: Verdict, ids: tuple[str, ...], what: str) -> None:
    """Fail when the verdict's run has one of the mistakes ``ids`` (or is unexplained), or when
    the property cannot be seen in it: with the verdict's other mistakes (e.g. no optimizer
    step), planting one of ``ids`` as well would leave the very same parameters."""
    if v.mistakes is None:
        raise _unexplained(v, what)
    found = v.has(*ids)
    if not found:
        if v.mistakes:
            _observable(ctx, v, ids, what)
        return
    m = mistake(found[0])
    details: dict[str, Any] = {"likely_mistake": m.as_details()}
    others = [mistake(x).name for x in v.mistakes if x != found[0]]
    also = f" (and {'; '.join(others)})" if others else ""
    same = [mistake(x) for x in v.alternatives]
    if same:  # the outcome cannot tell these apart: "one of"
        details["likely_mistake"]["alternatives"] = [x.name for x in same]
        details["likely_mistake"]["alternative_ids"] = [x.id for x in same]
        also += " — or, leaving the same parameters, in which " + "; or ".join(
            x.name for x in same)
    raise CheckFailed(f"after {N} steps your model's parameters are exactly those of the "
                      f"reference loop in which {m.name}{also}", hint=m.hint, **details)


def _observable(ctx: Context, v: Verdict, ids: tuple[str, ...], what: str) -> None:
    from grader.checks.training.replay import _safe_replay, initial_state, state_matches

    run, initial = run_loop(ctx), initial_state()
    for m in ids:
        for variant in mistake(m).variants():
            r = _safe_replay(ctx, run, v.mistakes + (variant,))
            if r is not None and state_matches(run.state, r, initial):
                names = "; ".join(mistake(x).name for x in v.mistakes)
                first = mistake(v.mistakes[0])
                raise CheckFailed(
                    f"your model's parameters are those of the reference loop in which {names}; "
                    f"there, {mistake(m).name} would leave the same parameters, so {what} "
                    f"cannot be confirmed", hint=first.hint,
                    likely_mistake=first.as_details())


@check("loop_zero_grad", "train: gradients are zeroed every step (no accumulation)", 2,
       needs=NEEDS)
def loop_zero_grad(ctx: Context):
    """Judged by the final parameters: they equal a replay of the reference loop on the same
    batches in which the gradients are zeroed every step (and not the replay without
    ``zero_grad``). A loop whose parameters match no trusted run fails: accumulation cannot be
    ruled out."""
    _named(ctx, verdict(ctx), catalogue.ZERO_GRAD, "the zeroing of the gradients")
    return ok()


@check("loop_clipping", "train: gradients clipped after backward, before the optimizer step", 3,
       needs=NEEDS)
def loop_clipping(ctx: Context):
    """Judged by the final parameters (grad_clip here is far below the gradient norms, so
    every step clips): they equal a replay that clips this step's gradients to
    ``config.grad_clip`` after ``backward`` and before ``optimizer.step()``, not one that clips
    before backward, after the step, never, or to another value."""
    _named(ctx, verdict(ctx), catalogue.CLIPPING, "the clipping")
    return ok()


@check("loop_optimizer", "train: AdamW over every parameter, lr from get_lr at every step", 2,
       needs=NEEDS + ("get_lr",))
def loop_optimizer(ctx: Context):
    """Judged by the final parameters: they equal a replay with one
    ``AdamW(betas=(0.9, 0.95), eps=1e-8, weight_decay=config.weight_decay)`` step per training
    step, whose learning rate is YOUR ``get_lr`` at that step (so a schedule mistake is counted
    once, by the schedule's checks); nanoGPT's groups without decay on biases and gains are
    accepted."""
    _named(ctx, verdict(ctx), catalogue.OPTIMIZER, "the optimizer and its learning rate")
    return ok()


def _explained(ctx: Context, what: str):
    v = verdict(ctx)
    if v.mistakes is None or v.replay is None:
        raise _unexplained(v, what)
    return v, run_loop(ctx)


def _compare_list(name: str, got: list[float], want: list[float], per: str,
                  hint: str, **details: Any) -> None:
    if len(got) != len(want):
        raise CheckFailed(f"`{name}` has {len(got)} values, expected {len(want)} (one per "
                          f"{per}; max_steps={N}, eval_interval={LOOP_CONFIG['eval_interval']})",
                          hint=hint)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if not near(g, w, METRIC_RTOL, METRIC_ATOL):
            raise CheckFailed(f"{name}[{i}] is {g:.6g}, but your loop computed {w:.6g} there "
                              f"(the replay of your loop on the same batches)", hint=hint,
                              **{name: {"student": got, "expected": want}}, **details)


@check("loop_grad_norms", "train: grad_norms records the norm before clipping", 2, needs=NEEDS)
def loop_grad_norms(ctx: Context):
    """``grad_norms[i]`` equals, within 1e-4 relative, the value ``clip_grad_norm_`` returns
    at step i in the trusted replay that your final parameters match (the total norm BEFORE
    clipping), so a loop is judged on recording what it computed."""
    v, run = _explained(ctx, "the recorded gradient norms")
    recorded, want = run.metric("grad_norms"), v.replay.metrics["grad_norms"]
    clip = LOOP_CONFIG["grad_clip"]
    hint = "Record the value that clip_grad_norm_ returns (the total norm before clipping)."
    if recorded and len(recorded) == len(want) and all(near(g, clip, 1e-3) for g in recorded):
        hint = ("Your values are grad_clip: the norm AFTER clipping. " + hint)
    _compare_list("grad_norms", recorded, want, "step", hint)
    return ok()


NUMBER_TYPES = {"float", "int", "float64", "float32"}


@check("loop_metrics", "train: the metrics dict (keys, lengths, values)", 2, needs=NEEDS)
def loop_metrics(ctx: Context):
    """``train`` returns ``{"train_losses", "val_losses", "lrs", "grad_norms",
    "eval_interval"}``: ``train_losses[i]`` and ``lrs[i]`` equal the loss and the lr of step i
    in the trusted replay that your final parameters match, and ``eval_interval`` is the
    configured one. (That the values are Python floats is reported by the worker, which the
    student's code can rewrite: a note, no points.)"""
    run = run_loop(ctx)
    metrics = run.reply["metrics"]
    for key in ("train_losses", "val_losses", "lrs", "grad_norms"):
        if key not in metrics:
            raise CheckFailed(f"the metrics have no `{key}` (keys: {run.reply['keys']})")
        if metrics[key].get("length") is None:
            raise CheckFailed(f"`{key}` is {metrics[key]['container']}, expected a list of "
                              f"floats")
    v, _ = _explained(ctx, "the recorded losses and learning rates")
    _compare_list("train_losses", run.metric("train_losses"), v.replay.metrics["train_losses"],
                  "step", "Record loss.item() of the step's forward pass.")
    _compare_list("lrs", run.metric("lrs"), v.replay.metrics["lrs"], "step",
                  "Record the lr that the step actually uses.")
    if run.reply.get("eval_interval") != LOOP_CONFIG["eval_interval"]:
        raise CheckFailed(f"metrics['eval_interval'] is {run.reply.get('eval_interval')}, "
                          f"expected config.eval_interval = {LOOP_CONFIG['eval_interval']}"
                          + ("" if "eval_interval" in run.reply else " (missing)"))
    notes = [f"`{k}` holds {', '.join(sorted(set(i['types']) - NUMBER_TYPES))} values; the "
             f"contract asks for Python floats (loss.item(), float(norm))"
             for k, i in metrics.items() if set(i.get("types", [])) - NUMBER_TYPES]
    return ok("; ".join(notes))


@check("loop_evaluation", "train: periodic validation in eval mode, losses of val_data", 2,
       needs=NEEDS)
def loop_evaluation(ctx: Context):
    """The final parameters (with the probe model's BatchNorm statistics) equal a replay that
    evaluates in eval mode and trains in train mode, and ``val_losses`` equals that replay's:
    the mean loss of ``eval_iters`` batches of ``val_data`` at every step where
    ``step % eval_interval == 0`` and at the last step (before or after the step's update,
    which give the same model). Whether the evaluation runs under ``torch.no_grad()`` changes
    no value, so it cannot be observed from outside the student's process: not graded."""
    v = verdict(ctx)
    _named(ctx, v, catalogue.EVALUATION, "the evaluation")
    v, run = _explained(ctx, "the validation losses")
    got = run.metric("val_losses")
    want = v.replay.metrics["val_losses"]
    hint = ("Evaluate when step % eval_interval == 0 or step == max_steps - 1: the mean loss "
            "of eval_iters batches of val_data (estimate_loss).")
    if len(got) == len(want) and all(near(g, w, METRIC_RTOL, METRIC_ATOL)
                                     for g, w in zip(got, want, strict=True)):
        return ok(evaluations=len(want))
    if not v.mistakes:  # also accepted: the evaluation after the step's update
        after = replay(ctx, run, v.styles + ("eval_after_step",)).metrics["val_losses"]
        if len(got) == len(after) and all(near(g, w, METRIC_RTOL, METRIC_ATOL)
                                          for g, w in zip(got, after, strict=True)):
            return ok(evaluations=len(after))
    if len(got) != len(want):
        raise CheckFailed(f"`val_losses` has {len(got)} values; with max_steps={N} and "
                          f"eval_interval={LOOP_CONFIG['eval_interval']} expected "
                          f"{len(want)}: steps {LOOP_EVAL_STEPS}", hint=hint)
    _compare_list("val_losses", got, want, "evaluation",
                  hint + " Evaluate on val_data, not train_data.")
    return ok(evaluations=len(want))
