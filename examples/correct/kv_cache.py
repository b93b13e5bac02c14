"""A KV cache and autoregressive generation (an example of a correct submission).

When a GPT generates, every step used to recompute the keys and values of the whole sequence;
the keys and values of earlier positions never change, so a cache keeps them and each step only
computes those of the newest token. ``CachedGPT`` is ``block.GPT`` with a forward that can use a
cache: same constructor, same parameters and parameter names, so a state dict of one loads into
the other.
"""

import torch
import torch.nn.functional as F
from attention import scaled_dot_product_attention
from block import GPT
from causal_mask import causal_mask


class KVCache:
    """The keys and values of every layer for the positions seen so far.

    ``KVCache(n_layer)`` starts empty. Attributes (graded):
        k: a list of ``n_layer`` entries, each ``None`` until that layer's first update, then
            the layer's cached keys, shape ``(B, n_head, L, head_dim)``: exactly the L cached
            positions (not a larger preallocated buffer), with the dtype and device of the keys
            that were appended.
        v: the same for the values.

    ``len(cache)`` is L, the number of cached positions (0 when empty). Once a forward pass has
    finished, every layer holds the same L positions.
    """

    def __init__(self, n_layer: int):
        self.k = [None] * n_layer
        self.v = [None] * n_layer

    def __len__(self) -> int:
        """The number of cached positions L (0 for an empty cache)."""
        # Layer 0 is updated first in a forward pass, so read the length BEFORE running the
        # blocks (CachedGPT.forward does) to get the number of positions cached before it.
        return 0 if self.k[0] is None else self.k[0].size(2)

    def update(self, layer: int, k, v):
        """Append the new keys and values of ``layer`` and return all of them.

        Args:
            layer: index of the block (0 .. n_layer-1).
            k: new keys ``(B, n_head, T, head_dim)``.
            v: new values ``(B, n_head, T, head_dim)``.

        Returns:
            ``(k_all, v_all)``, each ``(B, n_head, L + T, head_dim)``: the cached positions
            followed by the new ones (concatenated along dim 2, the length axis).
        """
        if self.k[layer] is None:
            self.k[layer], self.v[layer] = k, v
        else:
            # A new tensor per step is O(L) copying; a preallocated buffer would avoid it, but at
            # course sizes the saved matmuls dominate and this keeps `k[layer]` exact.
            self.k[layer] = torch.cat([self.k[layer], k], dim=2)
            self.v[layer] = torch.cat([self.v[layer], v], dim=2)
        return self.k[layer], self.v[layer]


def cached_attention(attn, x, kv_cache, layer):
    """Causal self-attention of T new positions over the cached positions and themselves.

    Args:
        attn: a ``CausalSelfAttention`` of your ``causal_mask.py`` (its ``c_attn``, ``c_proj``,
            ``n_embd`` and ``n_head`` are used; GPT-2's q/k/v layout as in ``MultiHeadAttention``).
        x: ``(B, T, C)``, the inputs (already through ``ln_1``) of the T NEW positions.
        kv_cache: a ``KVCache`` holding L positions; the new keys and values are appended to its
            layer ``layer``.
        layer: the index of the block this attention belongs to.

    Returns:
        ``(B, T, C)``: the last T rows of what ``attn`` computes on all ``L + T`` positions. The
        new queries are the LAST T of the ``L + T`` keys, so the mask is
        ``causal_mask(T, L + T)``.
    """
    B, T, C = x.size()
    hd = C // attn.n_head
    q, k, v = attn.c_attn(x).split(attn.n_embd, dim=-1)
    q = q.view(B, T, attn.n_head, hd).transpose(1, 2)
    k = k.view(B, T, attn.n_head, hd).transpose(1, 2)
    v = v.view(B, T, attn.n_head, hd).transpose(1, 2)
    k, v = kv_cache.update(layer, k, v)
    # Queries are the last T of the L + T keys: the shifted band lets each new token see every
    # cached position and the new ones up to itself (all True when T == 1).
    mask = causal_mask(T, k.size(2), device=x.device)
    y, _ = scaled_dot_product_attention(q, k, v, mask)
    y = y.transpose(1, 2).contiguous().view(B, T, C)
    return attn.c_proj(y)


class CachedGPT(GPT):
    """``block.GPT`` whose forward can use a ``KVCache``.

    Same constructor (``CachedGPT(config)``), parameters, parameter names and initialisation as
    ``GPT``: a state dict of one loads into the other.
    """

    def forward(self, idx, targets=None, kv_cache=None):
        """Next-token logits, with or without a cache.

        Args:
            idx: ``torch.long`` ``(B, T)``. Without a cache: the whole sequence, exactly as
                ``GPT.forward``. With a cache holding L positions: only the T NEW tokens, which
                sit at positions ``L .. L+T-1`` (the position embeddings are offset by L).
            targets: optional ``(B, T)`` next-token ids for the T given tokens.
            kv_cache: ``None``, or a ``KVCache`` (possibly empty) that this call extends IN
                PLACE with the keys and values of the T new positions in every layer.

        Returns:
            ``(logits, loss)``: logits ``(B, T, V)`` for the T given positions, equal (up to
            rounding) to the last T rows of ``GPT.forward`` on the whole sequence; ``loss`` as in
            ``GPT.forward`` (``None`` without targets).

        Raises:
            ValueError: if ``L + T > config.block_size`` (there are no position embeddings
                beyond it).
        """
        if kv_cache is None:
            return super().forward(idx, targets)
        T = idx.size(1)
        L = len(kv_cache)  # before the blocks append to it
        if L + T > self.config.block_size:
            raise ValueError(f"cache of {L} positions plus {T} new tokens exceeds block_size "
                             f"{self.config.block_size}")
        # The new tokens continue the sequence: their positions start after the cached ones.
        pos = torch.arange(L, L + T, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for layer, block in enumerate(self.transformer.h):
            # Block.forward with its attention replaced by the cached one (pre-norm residuals).
            x = x + cached_attention(block.attn, block.ln_1(x), kv_cache, layer)
            x = x + block.mlp(block.ln_2(x))
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


@torch.no_grad()
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True,
             generator=None):
    """Append ``max_new_tokens`` tokens to ``idx``, one at a time.

    Args:
        model: a ``CachedGPT`` (``model.config`` gives ``n_layer`` and ``block_size``).
        idx: ``torch.long`` ``(B, T0)``, the prompt (``T0 >= 1``).
        max_new_tokens: how many tokens to append (``>= 0``).
        temperature: ``> 0``: the last position's logits are divided by it before the softmax.
            ``0``: greedy decoding, ``torch.argmax`` of the logits, no randomness at all.
        top_k: ``None``, or keep only the ``top_k`` largest (temperature-scaled) logits of each
            row and set the others to ``-inf`` before the softmax (``top_k`` larger than the
            vocabulary keeps all). ``top_k=1`` is greedy whatever the temperature.
        use_cache: ``True``: create one ``KVCache(model.config.n_layer)``; the first call is
            ``model(idx, kv_cache=cache)`` on the whole prompt and every later call gets ONLY the
            newest token ``(B, 1)``. ``False``: every step calls ``model(seq)`` on the whole
            sequence so far, without a cache.
        generator: a ``torch.Generator`` (or ``None`` for the global one). Each step samples
            all rows with ONE call ``torch.multinomial(probs, num_samples=1,
            generator=generator)``, so equally seeded generators give the same tokens.

    Returns:
        ``torch.long`` ``(B, T0 + max_new_tokens)``: the prompt followed by the new tokens.

    The model is called exactly ``max_new_tokens`` times (not after the last token), under
    ``torch.no_grad()``. The longest sequence it sees has ``T0 + max_new_tokens - 1`` tokens;
    when that exceeds ``block_size``, raise ``ValueError`` before generating (no cropping: a
    cache cannot slide without recomputing).
    """
    if max_new_tokens <= 0:
        return idx
    if idx.size(1) + max_new_tokens - 1 > model.config.block_size:
        raise ValueError(f"a prompt of {idx.size(1)} tokens plus {max_new_tokens} new ones does "
                         f"not fit in block_size {model.config.block_size}")
    cache = KVCache(model.config.n_layer) if use_cache else None
    for _ in range(max_new_tokens):
        # The cache holds len(cache) positions: feed only the others (the whole prompt first,
        # then just the newest token). Without a cache, feed the whole sequence every time.
        feed = idx if cache is None else idx[:, len(cache):]
        logits, _ = model(feed, kv_cache=cache)
        logits = logits[:, -1, :]  # only the last position predicts the next token
        if temperature == 0:
            next_token = torch.argmax(logits, dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            next_token = torch.multinomial(probs, num_samples=1, generator=generator)
        idx = torch.cat([idx, next_token], dim=1)
    return idx
