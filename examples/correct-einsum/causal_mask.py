"""Causal mask by comparing positions; attention as a subclass (another correct style)."""

import torch

from attention import MultiHeadAttention


def causal_mask(t_q, t_k, device=None):
    if t_q < 1 or t_q > t_k:
        raise ValueError("need 1 <= t_q <= t_k")
    query_pos = torch.arange(t_k - t_q, t_k, device=device)[:, None]
    key_pos = torch.arange(t_k, device=device)[None, :]
    return key_pos <= query_pos


class CausalSelfAttention(MultiHeadAttention):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__(n_embd, n_head)
        self.block_size = block_size
        self.register_buffer("mask", causal_mask(block_size, block_size), persistent=False)

    def forward(self, x):
        t = x.shape[1]
        return super().forward(x, self.mask[:t, :t])
