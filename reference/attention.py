"""Scaled dot-product attention and multi-head attention (reference solution).

Parameter names follow GPT-2 / nanoGPT (`c_attn`, `c_proj`) so that a GPT-2 state dict maps onto
these modules with only the Conv1D transposes.
"""

import math

import torch.nn.functional as F
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
    # BEGIN SOLUTION: Implement scaled dot-product attention: scale q @ k^T by 1/sqrt(d_k), fill
    #: blocked scores (mask False) with -inf, softmax over the keys, and return (weights @ v,
    #: weights).
    d_k = q.size(-1)
    # Dividing by sqrt(d_k) keeps the scores' variance ~1 so the softmax does not saturate.
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        # -inf (not a large negative number) makes the blocked weights exactly zero.
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    out = weights @ v
    return out, weights
    # END SOLUTION


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
        # BEGIN SOLUTION: Store n_embd and n_head (assert n_embd % n_head == 0) and create c_attn =
        #: nn.Linear(n_embd, 3 * n_embd) and c_proj = nn.Linear(n_embd, n_embd).
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"
        self.n_embd = n_embd
        self.n_head = n_head
        # One fused projection for q, k and v: one matmul instead of three, as in GPT-2.
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        # END SOLUTION

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
        # BEGIN SOLUTION: Project x with c_attn, split into q, k, v, reshape each to (B, n_head, T,
        #: hd), call scaled_dot_product_attention, merge the heads back to (B, T, C) and apply
        #: c_proj.
        B, T, C = x.size()
        hd = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)
        # (B, T, C) -> (B, T, nh, hd) -> (B, nh, T, hd): heads become a batch dimension.
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        y, _ = scaled_dot_product_attention(q, k, v, mask)
        # transpose makes the tensor non-contiguous; view needs contiguous memory.
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)
        # END SOLUTION
