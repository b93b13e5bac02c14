"""A KV cache and generation, written in another style than the reference (a correct example).

A preallocated cache that grows by doubling and exposes views of the filled part, PyTorch's fused
attention, positions read from the cache's keys, and a differently organised ``generate``.
"""

import torch
import torch.nn.functional as F
from block import GPT


class KVCache:
    """Keys and values of every layer, in buffers that grow by doubling."""

    def __init__(self, n_layer: int):
        self._k = [None] * n_layer
        self._v = [None] * n_layer
        self._filled = [0] * n_layer

    @property
    def k(self):
        return [None if b is None else b[:, :, :n] for b, n in zip(self._k, self._filled)]

    @property
    def v(self):
        return [None if b is None else b[:, :, :n] for b, n in zip(self._v, self._filled)]

    def __len__(self) -> int:
        return self._filled[0]

    def update(self, layer: int, k, v):
        B, H, T, D = k.shape
        n = self._filled[layer]
        buf = self._k[layer]
        if buf is None or n + T > buf.size(2):
            cap = max(16, 2 * (n + T))
            new_k = k.new_empty(B, H, cap, D)
            new_v = v.new_empty(B, H, cap, D)
            if buf is not None:
                new_k[:, :, :n] = self._k[layer][:, :, :n]
                new_v[:, :, :n] = self._v[layer][:, :, :n]
            self._k[layer], self._v[layer] = new_k, new_v
        self._k[layer][:, :, n:n + T] = k
        self._v[layer][:, :, n:n + T] = v
        self._filled[layer] = n + T
        return self._k[layer][:, :, :n + T], self._v[layer][:, :, :n + T]


def cached_attention(attn, x, kv_cache, layer):
    B, T, C = x.shape
    qkv = attn.c_attn(x).view(B, T, 3, attn.n_head, C // attn.n_head)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
    k, v = kv_cache.update(layer, k, v)
    total = k.size(2)
    rows = torch.arange(total - T, total, device=x.device)[:, None]
    allowed = torch.arange(total, device=x.device)[None, :] <= rows
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return attn.c_proj(y.transpose(1, 2).reshape(B, T, C))


class CachedGPT(GPT):
    def forward(self, idx, targets=None, kv_cache=None):
        if kv_cache is None:
            return super().forward(idx, targets)
        first = kv_cache.k[0]
        start = 0 if first is None else first.size(2)
        if start + idx.size(1) > self.config.block_size:
            raise ValueError("too long for block_size")
        x = self.transformer.wte(idx) + self.transformer.wpe.weight[start:start + idx.size(1)]
        for i, block in enumerate(self.transformer.h):
            x = x + cached_attention(block.attn, block.ln_1(x), kv_cache, i)
            x = x + block.mlp(block.ln_2(x))
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None if targets is None else F.cross_entropy(
            logits.flatten(0, 1), targets.flatten())
        return logits, loss


def _next(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    scaled = logits / temperature
    if top_k is not None and top_k < scaled.size(-1):
        values, indices = torch.topk(scaled, top_k, dim=-1)
        scaled = torch.full_like(scaled, float("-inf")).scatter(-1, indices, values)
    return torch.multinomial(scaled.softmax(dim=-1), num_samples=1, generator=generator)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True,
             generator=None):
    if idx.size(1) + max_new_tokens - 1 > model.config.block_size:
        raise ValueError("prompt plus new tokens do not fit in block_size")
    out = [idx]
    cache = KVCache(model.config.n_layer) if use_cache else None
    with torch.no_grad():
        for step in range(max_new_tokens):
            if cache is None:
                logits = model(torch.cat(out, dim=1))[0]
            else:
                logits = model(idx if step == 0 else out[-1], kv_cache=cache)[0]
            out.append(_next(logits[:, -1], temperature, top_k, generator))
    return torch.cat(out, dim=1)
