"""Multi-head attention through torch.nn.functional.scaled_dot_product_attention, with q, k, v
as three separate Linear computations on slices of c_attn (a correct submission in another
style: the grader must give it full marks)."""

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    # PyTorch's fused kernel gives the output; the weights are computed for the caller.
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    weights = scores.softmax(dim=-1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out, weights


class MultiHeadAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_embd = n_embd
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x, mask=None):
        b, t, c = x.shape
        w_q, w_k, w_v = self.c_attn.weight.chunk(3, dim=0)
        b_q, b_k, b_v = self.c_attn.bias.chunk(3, dim=0)

        def heads(w, bias):
            return F.linear(x, w, bias).view(b, t, self.n_head, -1).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(w_q, b_q), heads(w_k, b_k), heads(w_v, b_v),
                                           attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))
