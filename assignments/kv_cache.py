"""Assignment: a KV cache and generation.

When a GPT generates, each step used to recompute the keys and values of the whole sequence,
although those of earlier positions never change. Implement a cache that keeps them, a GPT whose
forward uses it (so each step only computes the newest token), and ``generate``, with and
without the cache, greedy or sampled with a temperature and top-k. Keep ``attention.py``,
``causal_mask.py`` and ``block.py`` next to this file: ``CachedGPT`` reuses your ``GPT``. Replace
every ``raise NotImplementedError`` with your code; the docstrings are the specification.

The grader imports these exact names from this module: ``KVCache``, ``CachedGPT`` and
``generate`` (``cached_attention`` is a suggested helper, not graded by itself). Do not rename
them or change their signatures.
"""

import torch
import torch.nn.functional as F  # noqa: F401  (you will need it)
from attention import scaled_dot_product_attention  # noqa: F401  (you will need it)
from block import GPT
from causal_mask import causal_mask  # noqa: F401  (you will need it)


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
        raise NotImplementedError("Start with k = [None] * n_layer and v = [None] * n_layer.")

    def __len__(self) -> int:
        """The number of cached positions L (0 for an empty cache)."""
        raise NotImplementedError(
            "Return the number of cached positions: 0 when empty, else the length axis (dim 2) of "
            "k[0]."
        )

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
        raise NotImplementedError(
            "Store k and v for this layer the first time; afterwards concatenate the new ones "
            "along dim 2. Return the layer's full (k, v)."
        )


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
    raise NotImplementedError(
        "Compute q, k, v with attn.c_attn and split them into heads as MultiHeadAttention does, "
        "append k and v to the cache, attend with causal_mask(T, L + T) and project with "
        "attn.c_proj."
    )


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
        raise NotImplementedError(
            "Without a cache return GPT.forward. With one: L = len(kv_cache), positions L .. "
            "L+T-1, then each block with cached_attention in place of its attention, ln_f, "
            "lm_head and the loss."
        )


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
    raise NotImplementedError(
        "Loop max_new_tokens times: call the model (the prompt first, then only the newest token "
        "with the cache; the whole sequence without it), take the last logits, pick greedily "
        "(temperature 0) or sample with temperature, top_k and generator, and append."
    )
