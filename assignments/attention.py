"""Assignment: attention.

Implement scaled dot-product attention and multi-head self-attention with GPT-2's parameter
names. Replace every ``raise NotImplementedError`` with your code; the docstrings are the
specification (shapes, mask meaning, parameter names and the order of q, k, v in ``c_attn``).

The grader imports these exact names from this module: ``scaled_dot_product_attention`` and
``MultiHeadAttention``. Do not rename them or change their signatures.
"""

import math  # noqa: F401  (you will need it)

import torch.nn.functional as F  # noqa: F401  (you will need it)
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    """Attend from queries to keys and mix the values.

    Args:
        q: queries, shape ``(..., T_q, d_k)``.
        k: keys, shape ``(..., T_k, d_k)``.
        v: values, shape ``(..., T_k, d_v)``.
        mask: optional bool tensor broadcastable to ``(..., T_q, T_k)``. ``True`` means
            "this query MAY attend to this key"; ``False`` entries are blocked.

    Returns:
        ``(out, weights)`` where ``out`` has shape ``(..., T_q, d_v)`` and ``weights`` has shape
        ``(..., T_q, T_k)``.

    Conventions:
        - scores are ``q @ k^T / sqrt(d_k)`` with ``d_k = q.size(-1)``;
        - blocked scores are set to ``-inf`` *before* the softmax, so their weights are exactly 0;
        - the softmax is over the last axis (the keys), so each row of ``weights`` sums to 1;
        - works for any number of leading dimensions and in float32 and float64 (no dtype
          casts).
        - A query row whose keys are ALL blocked has no defined softmax (every score is -inf) and
          yields NaN; avoiding such rows is the caller's responsibility.
    """
    raise NotImplementedError(
        "Implement scaled dot-product attention: scale q @ k^T by 1/sqrt(d_k), fill blocked "
        "scores (mask False) with -inf, softmax over the keys, and return (weights @ v, weights)."
    )


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with GPT-2's parameter layout.

    Attributes (names are graded):
        n_embd: model width C.
        n_head: number of heads; ``n_embd % n_head == 0`` is asserted. Head size is
            ``hd = n_embd // n_head``.
        c_attn: ``nn.Linear(n_embd, 3 * n_embd)`` (with bias). Its output splits along the last
            dim into q, k, v IN THAT ORDER, each ``n_embd`` wide; head ``h`` uses columns
            ``h*hd:(h+1)*hd`` of each of q, k and v (exactly GPT-2's layout).
        c_proj: ``nn.Linear(n_embd, n_embd)`` (with bias), applied after the heads are merged.

    No dropout.
    """

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        raise NotImplementedError(
            "Store n_embd and n_head (assert n_embd % n_head == 0) and create c_attn = "
            "nn.Linear(n_embd, 3 * n_embd) and c_proj = nn.Linear(n_embd, n_embd)."
        )

    def forward(self, x, mask=None):
        """Self-attention over the sequence.

        Args:
            x: ``(B, T, C)`` with ``C == n_embd``.
            mask: optional bool tensor broadcastable to ``(B, n_head, T, T)``; ``True`` = may
                attend (same meaning as in ``scaled_dot_product_attention``).

        Returns:
            y: ``(B, T, C)``.

        Steps: ``c_attn`` -> split into q, k, v -> reshape each to ``(B, n_head, T, hd)`` ->
        ``scaled_dot_product_attention`` -> merge heads back to ``(B, T, C)`` -> ``c_proj``.
        """
        raise NotImplementedError(
            "Project x with c_attn, split into q, k, v, reshape each to (B, n_head, T, hd), call "
            "scaled_dot_product_attention, merge the heads back to (B, T, C) and apply c_proj."
        )
