"""Attention written with einsum and separate q/k/v slices of c_attn (a correct submission in
another style than the reference: the grader must give it full marks)."""

import math

import torch
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, -math.inf))
    scores = scores - scores.amax(dim=-1, keepdim=True)
    e = scores.exp()
    weights = e / e.sum(dim=-1, keepdim=True)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights


class MultiHeadAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_embd, self.n_head = n_embd, n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def _project(self, x, which):
        c = self.n_embd
        w = self.c_attn.weight[which * c:(which + 1) * c]
        b = self.c_attn.bias[which * c:(which + 1) * c]
        out = torch.einsum("btc,oc->bto", x, w) + b
        batch, t, _ = x.shape
        return out.reshape(batch, t, self.n_head, c // self.n_head).permute(0, 2, 1, 3)

    def forward(self, x, mask=None):
        q, k, v = (self._project(x, i) for i in range(3))
        y, _ = scaled_dot_product_attention(q, k, v, mask)
        batch, _, t, _ = y.shape
        y = y.permute(0, 2, 1, 3).reshape(batch, t, self.n_embd)
        return self.c_proj(y)
