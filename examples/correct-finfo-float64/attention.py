"""Attention computed in float64 whatever the input dtype, blocked scores filled with the dtype's
most negative finite number (torch.finfo(...).min) through an additive mask, and q, k, v taken by
slicing c_attn's output (a correct submission in another style: full marks)."""

import math

import torch
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    dtype = q.dtype
    q64, k64, v64 = q.to(torch.float64), k.to(torch.float64), v.to(torch.float64)
    scores = torch.matmul(q64, k64.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        blocked = torch.zeros_like(scores).masked_fill(~mask, torch.finfo(scores.dtype).min)
        scores = scores + blocked
    scores = scores - scores.amax(dim=-1, keepdim=True)
    e = scores.exp()
    weights = e / e.sum(dim=-1, keepdim=True)
    return (weights @ v64).to(dtype), weights.to(dtype)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        if n_embd % n_head:
            raise ValueError("n_embd must be divisible by n_head")
        self.n_embd, self.n_head = n_embd, n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x, mask=None):
        B, T, C = x.shape
        qkv = self.c_attn(x)
        heads = []
        for i in range(3):
            part = qkv[..., i * C:(i + 1) * C]
            heads.append(part.reshape(B, T, self.n_head, C // self.n_head).permute(0, 2, 1, 3))
        y, _ = scaled_dot_product_attention(*heads, mask)
        return self.c_proj(y.permute(0, 2, 1, 3).reshape(B, T, C))
