"""The known mistakes of the causal mask and causal self-attention (reference/causal_mask.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import Q3, Mistake, register

TRIL = ".tril(diagonal=offset)"
MASK_HINT = ("Query i sits at position t_k - t_q + i and may attend keys 0..that position, "
             "itself included: torch.ones(t_q, t_k).tril(diagonal=t_k - t_q), True = may attend.")

register(
    Mistake(
        "mask_excludes_diagonal", "the causal mask blocks each position from itself",
        "Position i sees positions <= i, ITSELF INCLUDED (the diagonal is allowed); without it "
        "the first position sees nothing and its softmax is NaN. " + MASK_HINT,
        Q3,
        plant={"causal_mask": [(TRIL, ".tril(diagonal=offset - 1)")]},
    ),
    Mistake(
        "mask_includes_future", "the causal mask lets each position see the next one",
        "The mask must hide every future position j > i; one diagonal too many lets the model "
        "cheat by reading the token it should predict. " + MASK_HINT,
        Q3,
        plant={"causal_mask": [(TRIL, ".tril(diagonal=offset + 1)")]},
    ),
    Mistake(
        "mask_ignores_offset", "the causal mask ignores the earlier (cached) keys when "
                               "t_q < t_k",
        "With t_q queries and t_k keys the queries are the LAST t_q positions: shift the "
        "diagonal by t_k - t_q, or the new queries cannot see the cached keys. " + MASK_HINT,
        f"{Q3}; day30-capstone-and-checkpoint.md Q4 (KV cache)",
        plant={"causal_mask": [(TRIL, ".tril(diagonal=0)")]},
    ),
    Mistake(
        "mask_inverted", "the causal mask is inverted (True where attention is blocked)",
        "In this course True means 'may attend'; masked_fill fills where its mask is True, so "
        "fill where the mask is False: scores.masked_fill(~mask, float('-inf')). " + MASK_HINT,
        Q3,
        plant={"causal_mask": [("return torch.ones(t_q, t_k", "return ~torch.ones(t_q, t_k")]},
    ),
    Mistake(
        "mask_upper_triangle", "the causal mask is upper-triangular (each position sees the "
                               "future, not the past)",
        "Allowed entries form the LOWER triangle (torch.tril): row i may attend columns 0..i. "
        "An upper triangle (torch.triu) lets every position see the future. " + MASK_HINT,
        Q3,
        plant={"causal_mask": [(TRIL, ".triu(diagonal=offset)")]},
    ),
    Mistake(
        "mask_not_applied", "CausalSelfAttention does not apply the causal mask",
        "Pass causal_mask(T, T) to the attention in every forward: without it every position "
        "reads the future (the 'cheating problem').",
        Q3,
        plant={"causal_mask": [("return super().forward(x, mask)", "return super().forward(x)")]},
    ),
)

register(
    Mistake(
        "mask_offset_wrong_sign", "the causal mask shifts the diagonal the wrong way when "
                                  "t_q < t_k",
        "The queries are the LAST t_q of t_k positions, so the diagonal moves RIGHT by "
        "t_k - t_q (tril(diagonal=t_k - t_q)), letting the new queries see the cached keys. "
        + MASK_HINT,
        f"{Q3}; day30-capstone-and-checkpoint.md Q4 (KV cache)",
        plant={"causal_mask": [(TRIL, ".tril(diagonal=-offset)")]},
    ),
    Mistake(
        "mask_not_bool", "the causal mask is not a bool tensor",
        "Return a torch.bool mask (True = may attend): masked_fill(~mask, ...) needs bools, and "
        "a float 0/1 mask is easily added or multiplied where it should select. "
        "torch.ones(t_q, t_k, dtype=torch.bool).tril(...) or a comparison of positions gives one.",
        Q3,
    ),
)
