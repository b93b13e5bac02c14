"""Causal masking and causal self-attention (an example of a correct submission)."""

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
    if t_q < 1 or t_k < 1:
        raise ValueError(f"t_q and t_k must be >= 1, got t_q={t_q}, t_k={t_k}")
    if t_q > t_k:
        raise ValueError(f"t_q ({t_q}) cannot exceed t_k ({t_k}): queries are the last keys")
    # Lower-triangular band shifted right by the number of earlier (cached) keys.
    offset = t_k - t_q
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=offset)


class CausalSelfAttention(MultiHeadAttention):
    """Multi-head self-attention where position ``t`` attends only to positions ``<= t``.

    Same parameters as ``MultiHeadAttention`` (``c_attn``, ``c_proj``, attributes ``n_embd``,
    ``n_head``) plus the attribute ``block_size`` (the longest sequence the model will see).
    The state dict holds ONLY ``c_attn.weight``, ``c_attn.bias``, ``c_proj.weight`` and
    ``c_proj.bias``: if you cache a mask as a buffer, register it with ``persistent=False``.
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__(n_embd, n_head)
        self.block_size = block_size

    def forward(self, x):
        """Causal self-attention.

        Args:
            x: ``(B, T, C)``.

        Returns:
            y: ``(B, T, C)``, computed with ``causal_mask(T, T)``.
        """
        T = x.size(1)
        # (T, T) broadcasts over batch and heads. Building it per call is cheap at course sizes
        # and avoids a buffer that would have to follow the module across devices.
        mask = causal_mask(T, T, device=x.device)
        return super().forward(x, mask)
