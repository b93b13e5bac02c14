"""Generators for scaling: Chinchilla's 20 tokens per parameter, power laws L = a·N^(−α) and
L ∝ C^(−0.05), fitting α on log-log axes, and arithmetic intensity against a GPU's ridge point."""

from __future__ import annotations

import math
import random

from ..answers import format_number
from ..model import Mistake, Tolerance
from .helpers import human
from .registry import Generated, generator


@generator("chinchilla_tokens", kind="numeric", variables=("params",))
def chinchilla_tokens(rng: random.Random, opts: dict) -> Generated:
    """Compute-optimal tokens D ≈ 20 N."""
    mant = rng.choice([1, 1.3, 2.7, 3, 6.7, 7, 8, 13, 30, 65, 70, 124, 175, 350])
    scale = rng.choice([1e6, 1e9])
    n = mant * scale
    value = 20 * n
    return Generated(
        vars={"params": human(n)},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{format_number(value)} tokens ({human(value)})",
        mistakes=[Mistake(n / 20, "The rule is 20 tokens per parameter: multiply by 20.")],
        hint="Chinchilla's rule of thumb: D_opt ≈ 20 N.",
        steps=[f"D ≈ 20 × N = 20 × {human(n)} = {human(value)} tokens"],
    )


@generator("chinchilla_params", kind="numeric", variables=("tokens",))
def chinchilla_params(rng: random.Random, opts: dict) -> Generated:
    """Compute-optimal parameters N ≈ D / 20 for a token budget."""
    mant = rng.choice([2, 4, 10, 20, 60, 140, 300, 400, 1000, 1400, 2000])
    scale = rng.choice([1e6, 1e9])
    d = mant * scale
    value = d / 20
    return Generated(
        vars={"tokens": human(d)},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{format_number(value)} parameters ({human(value)})",
        mistakes=[Mistake(d * 20, "The rule is D ≈ 20 N, so N ≈ D / 20.")],
        hint="Invert D_opt ≈ 20 N.",
        steps=[f"N ≈ D / 20 = {human(d)} / 20 = {human(value)} parameters"],
    )


@generator("power_law_ratio", kind="numeric", variables=("law", "factor", "alpha", "quantity"),
           options={"alpha": 0.0, "quantity": "parameters"})
def power_law_ratio(rng: random.Random, opts: dict) -> Generated:
    """By what factor a power law L = a·X^(−α) lowers the loss when X grows by a factor k
    (``alpha`` option: a fixed exponent such as Kaplan's 0.076, or 0 to draw one)."""
    alpha = float(opts["alpha"]) or rng.choice([0.05, 0.07, 0.076, 0.095, 0.1, 0.2, 0.3, 0.5])
    factor = rng.choice([2, 3, 4, 5, 8, 10, 16, 20, 32, 50, 100, 1000])
    quantity = str(opts["quantity"])
    symbol = "C" if quantity == "compute" else "N"
    value = factor ** (-alpha)
    return Generated(
        vars={"law": f"L = a·{symbol}^(−{alpha:g})", "factor": factor, "alpha": f"{alpha:g}",
              "quantity": quantity},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.002),
        display=f"{value:.4f}",
        mistakes=[Mistake(factor**alpha, "That is k^(+α): a larger model has a lower loss, the "
                          "exponent is negative."),
                  Mistake(1 - alpha * factor, "A power law multiplies: L₂/L₁ = k^(−α), not "
                          "1 − α k."),
                  Mistake(1 / factor, "That is α = 1; the loss falls far more slowly, as "
                          f"k^(−{alpha:g}).")],
        hint="The constant a cancels in the ratio L₂ / L₁ = (k·X)^(−α) / X^(−α).",
        steps=[f"L₂ / L₁ = ({factor} {symbol})^(−{alpha:g}) / {symbol}^(−{alpha:g}) = "
               f"{factor}^(−{alpha:g})",
               f"= exp(−{alpha:g} × ln {factor}) = exp({-alpha * math.log(factor):.4f}) = "
               f"{value:.4f}: the loss falls by {100 * (1 - value):.2f} %"],
    )


@generator("power_law_fit", kind="numeric", variables=("n1", "l1", "n2", "l2"))
def power_law_fit(rng: random.Random, opts: dict) -> Generated:
    """The exponent α of L = a·N^(−α) through two (parameters, loss) points: the slope on
    log-log axes, as ``np.polyfit(np.log(N), np.log(L), 1)`` finds it."""
    while True:
        n1 = rng.choice([1e5, 2e5, 5e5, 1e6, 2e6])
        n2 = n1 * rng.choice([4, 8, 10, 16, 20, 50, 100])
        l1 = round(rng.uniform(2.0, 4.5), 3)
        true_alpha = rng.uniform(0.03, 0.3)
        l2 = round(l1 * (n2 / n1) ** (-true_alpha), 3)
        if l1 - l2 > 0.05:
            break
    value = math.log(l1 / l2) / math.log(n2 / n1)
    return Generated(
        vars={"n1": human(n1), "l1": f"{l1:.3f}", "n2": human(n2), "l2": f"{l2:.3f}"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{value:.4f}",
        mistakes=[
            Mistake(math.log10(l1 / l2) / math.log(n2 / n1), "Use the same logarithm on both "
                    "axes: log₁₀ of the loss ratio over ln of the size ratio mixes bases."),
            Mistake(math.log(l1 / l2) / math.log10(n2 / n1), "Use the same logarithm on both "
                    "axes: ln of the loss ratio over log₁₀ of the size ratio mixes bases."),
            Mistake((l1 - l2) / math.log(n2 / n1), "On log-log axes the loss is logged too: "
                    "α = ln(L₁/L₂) / ln(N₂/N₁)."),
        ],
        hint="On log-log axes the power law is a straight line: ln L = ln a − α ln N. α is "
             "minus its slope.",
        steps=[f"ln(L₁/L₂) = ln({l1:.3f} / {l2:.3f}) = {math.log(l1 / l2):.4f}",
               f"ln(N₂/N₁) = ln({human(n2)} / {human(n1)}) = {math.log(n2 / n1):.4f}",
               f"α = {math.log(l1 / l2):.4f} / {math.log(n2 / n1):.4f} = {value:.4f} "
               f"(Kaplan et al.: α ≈ 0.076; ratio {value / 0.076:.1f}×)"],
    )


PEAK_FLOPS = 312e12  # A100 bf16 dense, as in the course
BANDWIDTH = 2e12  # bytes per second


@generator("arithmetic_intensity", kind="numeric", variables=("m", "k", "n", "shape"))
def arithmetic_intensity(rng: random.Random, opts: dict) -> Generated:
    """Arithmetic intensity (FLOPs per byte) of a bf16 matrix multiply (m × k)·(k × n), to
    compare with the ridge point 312 TFLOPS / 2 TB/s = 156 FLOPs per byte."""
    k = rng.choice([768, 1024, 2048, 4096])
    n = rng.choice([768, 1024, 3072, 4096])
    m = rng.choice([1, 1, 4, 16, 64, 256, 1024, 4096])
    flops = 2 * m * k * n
    nbytes = 2 * (m * k + k * n + m * n)
    value = flops / nbytes
    ridge = PEAK_FLOPS / BANDWIDTH
    verdict = "compute-bound" if value > ridge else "memory-bound"
    return Generated(
        vars={"m": m, "k": k, "n": n,
              "shape": "a matrix-vector product (one token at a time)" if m == 1
              else f"a batch of {m} token vectors through a weight matrix"},
        value=value,
        tolerance=Tolerance(abs=0, rel=0.01),
        display=f"{value:.4g} FLOPs per byte",
        mistakes=[Mistake(m * k * n / nbytes, "A multiply-add is 2 FLOPs: 2·m·k·n."),
                  Mistake(flops / (nbytes / 2), "bf16 takes 2 bytes per number: count bytes, "
                          "not numbers.")],
        hint="FLOPs = 2·m·k·n; bytes = 2 × (every number read or written: both inputs and the "
             "output).",
        steps=[f"FLOPs = 2 × {m} × {k} × {n} = {format_number(flops)}",
               f"bytes = 2 × ({m}×{k} + {k}×{n} + {m}×{n}) = {format_number(nbytes)}",
               f"intensity = {format_number(flops)} / {format_number(nbytes)} = {value:.4g} "
               "FLOPs per byte",
               f"ridge point = 312 TFLOPS / 2 TB/s = {ridge:g} FLOPs per byte: this product is "
               f"{verdict}"],
    )
