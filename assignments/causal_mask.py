"""Assignment: causal mask.

Implement the causal mask (queries are the LAST positions of the keys, as with a KV cache) and
causal self-attention built on your ``MultiHeadAttention`` from ``attention.py`` (keep that file
next to this one). Replace every ``raise NotImplementedError`` with your code; the docstrings
are the specification.

The grader imports these exact names from this module: ``causal_mask`` and
``CausalSelfAttention``. Do not rename them or change their signatures.
"""

import torch
from attention import MultiHeadAttention


def causal_mask(t_q: int, t_k: int, device=None) -> torch.Tensor:
    """Boolean causal mask of shape ``(t_q, t_k)``; ``True`` = may attend.

    The ``t_q`` queries are the LAST ``t_q`` positions of the ``t_k`` keys (with a KV cache the
    keys include the earlier, cached positions), so query ``i`` sits at absolute position
    ``t_k - t_q + i``. Entry ``[i, j]`` is ``True`` iff ``j <= t_k - t_q + i``: a query sees
    itself and everything before it, never the future. Every row has at least one ``True``.

    Args:
        t_q: number of queries (>= 1).
        t_k: number of keys (>= t_q).
        device: where to create the mask (default: PyTorch's default device).

    Returns:
        A ``torch.bool`` tensor of shape ``(t_q, t_k)``.

    Raises:
        ValueError: if ``t_q < 1``, ``t_k < 1`` or ``t_q > t_k``.
    """
    raise NotImplementedError(
        "Build a (t_q, t_k) bool mask where query i (absolute position t_k - t_q + i) may attend "
        "key j iff j <= t_k - t_q + i; raise ValueError for t_q > t_k or sizes below 1."
    )


class CausalSelfAttention(MultiHeadAttention):
    """Multi-head self-attention where position ``t`` attends only to positions ``<= t``.

    Same parameters as ``MultiHeadAttention`` (``c_attn``, ``c_proj``, attributes ``n_embd``,
    ``n_head``) plus the attribute ``block_size`` (the longest sequence the model will see).
    The state dict holds ONLY ``c_attn.weight``, ``c_attn.bias``, ``c_proj.weight`` and
    ``c_proj.bias``: if you cache a mask as a buffer, register it with ``persistent=False``.
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__(n_embd, n_head)
        raise NotImplementedError(
            "Store block_size (the parent class already made c_attn and c_proj)."
        )

    def forward(self, x):
        """Causal self-attention.

        Args:
            x: ``(B, T, C)``.

        Returns:
            y: ``(B, T, C)``, computed with ``causal_mask(T, T)``.
        """
        raise NotImplementedError(
            "Build causal_mask(T, T) on x's device and run the parent's multi-head attention with "
            "it."
        )
