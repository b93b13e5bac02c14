"""Generators for training dynamics: perplexity and loss, the loss at initialisation, updates per
epoch, exponential fits (gradient decay, the loss curve's time constant), update sizes and the
learning-rate schedule (warmup, cosine decay)."""

from __future__ import annotations

import math
import random

from ..answers import format_number
from ..model import Mistake, Tolerance
from .helpers import fmt, sci
from .registry import Generated, generator


@generator("perplexity_from_loss", kind="numeric", variables=("loss",))
def perplexity_from_loss(rng: random.Random, opts: dict) -> Generated:
    """Perplexity exp(loss) of a cross-entropy loss in nats."""
    loss = round(rng.uniform(0.03, 5.0), 2)
    value = math.exp(loss)
    return Generated(
        vars={"loss": f"{loss:.2f}"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=fmt(value),
        mistakes=[
            Mistake(2**loss, "That is 2^loss; cross-entropy in nats gives perplexity e^loss."),
            Mistake(10**loss, "That is 10^loss; perplexity is e^loss."),
        ],
        hint="The loss is in nats (natural log): undo the log.",
        steps=[f"perplexity = e^loss = e^{loss:.2f} = {fmt(value)}: as uncertain as a uniform "
               f"choice among {fmt(value, 3)} tokens"],
    )


@generator("loss_from_perplexity", kind="numeric", variables=("ppl",))
def loss_from_perplexity(rng: random.Random, opts: dict) -> Generated:
    """Cross-entropy loss ln(perplexity)."""
    ppl = round(rng.uniform(1.2, 120.0), 1)
    value = math.log(ppl)
    return Generated(
        vars={"ppl": f"{ppl:.1f}"},
        value=value,
        tolerance=Tolerance(abs=0.005, rel=0.005),
        display=f"{value:.3f} nats",
        unit="nats",
        mistakes=[Mistake(math.log2(ppl), "That is log₂: the loss in nats is ln(perplexity)."),
                  Mistake(math.log10(ppl), "That is log₁₀: the loss is ln(perplexity).")],
        hint="Perplexity is e^loss, so the loss is its natural logarithm.",
        steps=[f"loss = ln(perplexity) = ln({ppl:.1f}) = {value:.3f} nats"],
    )


@generator("loss_at_init", kind="numeric", variables=("vocab",))
def loss_at_init(rng: random.Random, opts: dict) -> Generated:
    """Expected cross-entropy at initialisation: ln V for a uniform prediction."""
    vocab = rng.choice([2, 10, 20, 26, 65, 100, 256, 1000, 4096, 32000, 50257, 50304, 100277])
    value = math.log(vocab)
    mistakes = [Mistake(1 / vocab, "1/V is the probability of each token; the loss is −ln(1/V).")]
    if vocab > 2:
        mistakes += [Mistake(math.log2(vocab), "That is log₂ V (bits); PyTorch's cross-entropy "
                             "uses the natural log.")]
    mistakes.append(Mistake(math.log10(vocab), "That is log₁₀ V; the loss uses the natural log."))
    return Generated(
        vars={"vocab": f"{vocab:,}"},
        value=value,
        tolerance=Tolerance(abs=0.01, rel=0.002),
        display=f"{value:.3f}",
        mistakes=mistakes,
        hint="At initialisation every token is about equally likely: p = 1/V for the right one.",
        steps=[f"p(correct) = 1/{vocab:,}", f"loss = −ln(1/{vocab:,}) = ln {vocab:,} = "
               f"{value:.3f} nats"],
    )


@generator("updates_per_epoch", kind="numeric", variables=("examples", "batch"))
def updates_per_epoch(rng: random.Random, opts: dict) -> Generated:
    """Optimizer updates per epoch, the last incomplete batch dropped."""
    batch = rng.choice([8, 16, 32, 64, 128, 256, 512])
    examples = rng.randrange(1000, 100001, 10)
    value = examples // batch
    mistakes = [Mistake(examples * batch, "Divide the examples by the batch size.")]
    if examples % batch:
        mistakes.append(Mistake(value + 1, "That counts the incomplete last batch, which is "
                                "dropped here: round down."))
    return Generated(
        vars={"examples": f"{examples:,}", "batch": batch},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
        hint="One update per full batch; a last partial batch is dropped.",
        steps=[f"{examples:,} / {batch} = {examples / batch:.2f}", f"full batches only: "
               f"{format_number(value)} updates"],
    )


@generator("total_updates", kind="numeric", variables=("examples", "batch", "epochs", "per_epoch"))
def total_updates(rng: random.Random, opts: dict) -> Generated:
    """Total optimizer updates over several epochs."""
    batch = rng.choice([16, 32, 64, 128])
    examples = rng.randrange(2000, 50001, 100)
    epochs = rng.choice([3, 5, 10, 20, 50, 100])
    per = examples // batch
    value = epochs * per
    mistakes = [Mistake(epochs * examples, "That is the number of examples seen; an update uses "
                        "a whole batch.")]
    if examples % batch:
        mistakes.append(Mistake(epochs * (per + 1), "The incomplete last batch is dropped."))
    return Generated(
        vars={"examples": f"{examples:,}", "batch": batch, "epochs": epochs, "per_epoch": per},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
        hint="Updates per epoch (full batches) times the number of epochs.",
        steps=[f"per epoch: ⌊{examples:,} / {batch}⌋ = {per}",
               f"total: {epochs} × {per} = {format_number(value)} updates"],
    )


@generator("grad_decay_fit", kind="numeric", variables=("t1", "g1", "t2", "g2", "a"))
def grad_decay_fit(rng: random.Random, opts: dict) -> Generated:
    """The factor b of an exponential fit |∇| = a·b^epoch through two measurements."""
    a = round(rng.uniform(0.5, 3.0), 2)
    b = round(rng.uniform(0.8, 0.97), 3)
    t1 = rng.randint(1, 5)
    t2 = rng.randint(t1 + 10, 50)
    g1 = float(f"{a * b**t1:.4g}")
    g2 = float(f"{a * b**t2:.4g}")
    value = (g2 / g1) ** (1 / (t2 - t1))
    a_fit = g1 / value**t1
    return Generated(
        vars={"t1": t1, "g1": fmt(g1), "t2": t2, "g2": fmt(g2), "a": fmt(a_fit)},
        value=value,
        tolerance=Tolerance(abs=0.002, rel=0),
        display=f"{value:.4f}",
        mistakes=[
            Mistake(g2 / g1, "That is b^(t2 − t1): take the (t2 − t1)-th root."),
            Mistake(1 - (1 - g2 / g1) / (t2 - t1), "The decay is multiplicative, not linear: "
                    "b = (g2/g1)^(1/(t2 − t1))."),
        ],
        hint="Divide the two measurements: a cancels and b^(t2 − t1) is left.",
        steps=[f"g2 / g1 = {fmt(g2)} / {fmt(g1)} = {fmt(g2 / g1)} = b^({t2} − {t1}) = b^{t2 - t1}",
               f"b = {fmt(g2 / g1)}^(1/{t2 - t1}) = {value:.4f}",
               f"(then a = g1 / b^{t1} = {fmt(a_fit)})"],
    )


@generator("lr_cosine", kind="numeric",
           variables=("max_lr", "min_lr", "warmup", "max_steps", "step"))
def lr_cosine(rng: random.Random, opts: dict) -> Generated:
    """Learning rate in the cosine-decay phase after linear warmup."""
    max_lr = rng.choice([1e-4, 3e-4, 6e-4, 1e-3])
    min_lr = max_lr / 10
    warmup = rng.choice([100, 200, 500, 1000])
    max_steps = rng.choice([5000, 10000, 20000])
    step = rng.randrange(warmup + 1, max_steps, 50)
    ratio = (step - warmup) / (max_steps - warmup)
    coeff = 0.5 * (1 + math.cos(math.pi * ratio))
    value = min_lr + coeff * (max_lr - min_lr)
    return Generated(
        vars={"max_lr": f"{max_lr:g}", "min_lr": f"{min_lr:g}", "warmup": warmup,
              "max_steps": max_steps, "step": step},
        value=value,
        # 3 significant figures: 1 % let "forgot min_lr" pass in about a third of the variants.
        tolerance=Tolerance(abs=0, rel=0.002),
        display=f"{value:.4g}",
        mistakes=[
            Mistake(coeff * max_lr, "The cosine decays to min_lr, not to 0: lr = min_lr + "
                    "coeff × (max_lr − min_lr)."),
            Mistake(min_lr + 0.5 * (1 + math.cos(math.pi * step / max_steps)) * (max_lr - min_lr),
                    "The decay starts after the warmup: ratio = (step − warmup) / "
                    "(max_steps − warmup)."),
        ],
        hint="Find how far through the decay phase the step is (after the warmup), then apply "
             "the half-cosine between max_lr and min_lr.",
        steps=[f"progress ratio = (step − warmup) / (max_steps − warmup) = ({step} − {warmup}) / "
               f"({max_steps} − {warmup}) = {ratio:.4f}",
               f"cosine factor = 0.5 × (1 + cos(π × {ratio:.4f})) = {coeff:.4f}",
               f"lr = min_lr + factor × (max_lr − min_lr) = {min_lr:g} + {coeff:.4f} × "
               f"{sci(max_lr - min_lr)} = {value:.4g}"],
    )


@generator("warmup_steps", kind="numeric", variables=("max_steps", "phase"))
def warmup_steps(rng: random.Random, opts: dict) -> Generated:
    """Warmup as the first 5 % of the steps: the warmup length, or the cosine phase after it."""
    max_steps = rng.choice([2000, 4000, 5000, 6000, 8000, 10000, 12000, 20000, 30000, 60000])
    phase = rng.choice(["warmup", "decay"])
    warm = max_steps * 5 // 100
    value = warm if phase == "warmup" else max_steps - warm
    other = max_steps - warm if phase == "warmup" else warm
    return Generated(
        vars={"max_steps": f"{max_steps:,}",
              "phase": "the linear warmup" if phase == "warmup" else "the cosine decay after "
              "the warmup"},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=[Mistake(other, "That is the other phase: warmup is the first 5 %, the cosine "
                          "decay the remaining 95 %."),
                  Mistake(max_steps // 2, "5 % is 0.05 of the steps, not 0.5.")],
        hint="The course's schedule warms up over the first 5 % of the steps.",
        steps=[f"warmup = 5 % × {max_steps:,} = {format_number(warm)} steps",
               f"cosine decay = {max_steps:,} − {format_number(warm)} = "
               f"{format_number(max_steps - warm)} steps"],
    )


@generator("update_size", kind="numeric", variables=("lr", "grad"))
def update_size(rng: random.Random, opts: dict) -> Generated:
    """The size of one SGD update of a parameter, lr × gradient."""
    lr = rng.choice([1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 1e-2])
    grad = rng.choice([0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.2, 0.3, 0.5, 1.5])
    value = lr * grad
    return Generated(
        vars={"lr": f"{lr:g}", "grad": f"{grad:g}"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=sci(value, 3),
        mistakes=[Mistake(grad, "That is the gradient itself: SGD moves by lr × gradient."),
                  Mistake(lr, "That is the learning rate alone: multiply by the gradient."),
                  Mistake(lr / grad, "Multiply the learning rate by the gradient, not divide.")],
        hint="Plain SGD: θ ← θ − lr × ∇L.",
        steps=[f"|Δθ| = lr × |∇| = {lr:g} × {grad:g} = {sci(value, 3)}"],
    )


@generator("loss_time_constant", kind="numeric", variables=("l0", "lf", "t", "lt", "ask"))
def loss_time_constant(rng: random.Random, opts: dict) -> Generated:
    """Fit loss(t) = L_final + (L_initial − L_final)·exp(−t/τ) through one more point: τ, or the
    epoch by which the loss has gone 99 % of the way."""
    while True:
        l0 = round(rng.uniform(2.5, 3.5), 2)
        lf = round(rng.uniform(0.02, 0.3), 2)
        tau_true = rng.uniform(3, 15)
        t = rng.randint(4, 20)
        lt = round(lf + (l0 - lf) * math.exp(-t / tau_true), 3)
        if lt - lf > 0.02 and l0 - lt > 0.2:
            break
    ask = rng.choice(["tau", "t99"])
    frac = (lt - lf) / (l0 - lf)
    tau = -t / math.log(frac)
    value = tau if ask == "tau" else tau * math.log(100)
    no_final = -t / math.log(lt / l0)
    mistakes = [Mistake(no_final if ask == "tau" else no_final * math.log(100),
                        "Subtract L_final first: it is the gap to L_final that decays "
                        "exponentially.")]
    if ask == "t99":
        mistakes.append(Mistake(tau, "That is τ itself: 99 % of the way takes τ × ln 100 ≈ "
                                "4.6 τ."))
        mistakes.append(Mistake(tau * math.log(10), "That is 90 % of the way (τ ln 10); 99 % "
                                "needs τ ln 100."))
    return Generated(
        vars={"l0": f"{l0:.2f}", "lf": f"{lf:.2f}", "t": t, "lt": f"{lt:.3f}",
              "ask": "the time constant τ (in epochs)" if ask == "tau"
              else "the epoch t at which the loss has covered 99 % of the way from L_initial to "
              "L_final"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{value:.3g} epochs",
        mistakes=mistakes,
        hint="Rearrange: (loss(t) − L_final) / (L_initial − L_final) = exp(−t/τ), then take the "
             "natural log.",
        steps=[f"(loss − L_final) / (L_initial − L_final) = ({lt:.3f} − {lf:.2f}) / ({l0:.2f} − "
               f"{lf:.2f}) = {frac:.4f}",
               f"τ = −t / ln({frac:.4f}) = −{t} / {math.log(frac):.4f} = {tau:.3g} epochs"]
        + ([] if ask == "tau" else [f"99 % of the way: exp(−t/τ) = 0.01, t = τ × ln 100 = "
                                    f"{tau:.3g} × 4.605 = {value:.3g} epochs"]),
    )


@generator("loss_change", kind="numeric", variables=("start", "end", "e1", "e2", "ask"))
def loss_change(rng: random.Random, opts: dict) -> Generated:
    """The total change of a measured value between two epochs, or its average per epoch."""
    e1 = rng.choice([1, 1, 5, 10])
    e2 = rng.choice([20, 25, 30, 40, 50])
    start = round(rng.uniform(1.5, 3.0), 3)
    end = round(rng.uniform(0.03, 1.0), 3)
    ask = rng.choice(["total", "average"])
    total = end - start
    value = total if ask == "total" else total / (e2 - e1)
    mistakes = [Mistake(-value, "Change is final minus initial: the loss went down, so the "
                        "change is negative.")]
    if ask == "average":
        mistakes.append(Mistake(total / e2, f"From epoch {e1} to {e2} there are {e2 - e1} "
                                "epoch-to-epoch steps, not " + str(e2) + "."))
    return Generated(
        vars={"start": f"{start:.3f}", "end": f"{end:.3f}", "e1": e1, "e2": e2,
              "ask": "the total change" if ask == "total" else "the average change per epoch"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=fmt(value),
        mistakes=mistakes,
        hint="Change = final − initial (negative when the loss falls); per epoch, divide by the "
             "number of epochs between the two measurements.",
        steps=[f"total change = {end:.3f} − {start:.3f} = {fmt(total)}"]
        + ([] if ask == "total" else [f"per epoch: {fmt(total)} / ({e2} − {e1}) = {fmt(value)}"]),
    )
