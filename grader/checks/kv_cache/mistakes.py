"""The known mistakes of the KV cache (reference/kv_cache.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import S43, Mistake, register

register(
    Mistake(
        "kv_position_offset", "the position embeddings restart at 0 for the tokens after the "
                              "cache",
        "The new tokens continue the sequence: with L positions in the cache they sit at "
        "L .. L+T-1, so pos = torch.arange(L, L + T), with L = len(kv_cache) read before the "
        "blocks run.",
        "day30-capstone-and-checkpoint.md Q4 (KV cache); " + S43 + " (KV caching)",
        plant={"kv_cache": [("pos = torch.arange(L, L + T, dtype=torch.long, device=idx.device)",
                             "pos = torch.arange(T, dtype=torch.long, device=idx.device)")]},
    ),
    Mistake(
        "kv_len_counts_layers", "len(cache) counts the layers (or the entries of k) instead of "
                                "the cached positions",
        "len(cache) is L, the number of cached POSITIONS: the length axis of a layer's keys, "
        "0 if self.k[0] is None else self.k[0].size(2). len(self.k) is n_layer whatever is "
        "cached, so every forward places its tokens at n_layer, n_layer + 1, ... instead of "
        "L, L + 1, ...",
        "day30-capstone-and-checkpoint.md Q4 (KV cache); " + S43 + " (KV caching)",
        plant={"kv_cache": [("return 0 if self.k[0] is None else self.k[0].size(2)",
                             "return len(self.k)")]},
        flavours={"non_empty": {"kv_cache": [(
            "return 0 if self.k[0] is None else self.k[0].size(2)",
            "return sum(t is not None for t in self.k)")]}},
    ),
)

KV_COURSE = "day30-capstone-and-checkpoint.md Q4 (KV cache); " + S43 + " (KV caching)"
UPDATE = "    k, v = kv_cache.update(layer, k, v)\n"
MASK = "    mask = causal_mask(T, k.size(2), device=x.device)\n"
SAMPLING = S43 + " (sampling: temperature, top-k)"

register(
    Mistake(
        "kv_cache_appended_twice", "the new keys and values are appended to the cache twice",
        "Each layer appends its new keys and values ONCE per forward (cache.update in the "
        "attention only): a second update doubles the new positions and shifts every later one.",
        KV_COURSE, plant={"kv_cache": [(UPDATE, "    kv_cache.update(layer, k, v)\n" + UPDATE)]},
    ),
    Mistake(
        "kv_no_mask", "the cached attention applies no causal mask",
        "A chunk of T new tokens over L cached ones needs causal_mask(T, L + T): new token i "
        "may see every cached position and the new ones up to itself, not the later new ones. "
        "(For T = 1 every key is allowed, which is why single-token steps hide this.)",
        KV_COURSE, plant={"kv_cache": [(MASK, "    mask = None\n")]},
    ),
    Mistake(
        "kv_mask_not_shifted", "the cached attention's mask is causal_mask(T, T) padded with "
                               "the cached keys blocked",
        "The new queries are the LAST T of the L + T keys: causal_mask(T, L + T) lets each of "
        "them see every cached position; blocking the cache throws the context away.",
        KV_COURSE,
        plant={"kv_cache": [(MASK, "    mask = torch.cat([torch.zeros(T, k.size(2) - T, "
                                   "dtype=torch.bool), causal_mask(T, T)], dim=1)\n")]},
    ),
    Mistake("temperature_multiplies", "the logits are multiplied by the temperature instead "
            "of divided", "Divide the last logits by the temperature before the softmax: "
            "logits / temperature (a low temperature sharpens, a high one flattens).", SAMPLING),
    Mistake("temperature_ignored", "the temperature is ignored",
            "Divide the last logits by the temperature before the softmax.", SAMPLING),
    Mistake("top_k_ignored", "top_k is ignored",
            "Keep only the top_k largest logits: the others become -inf before the softmax.",
            SAMPLING),
    Mistake("top_k_plus_one", "top_k keeps one token too many",
            "Keep exactly top_k logits: kth = torch.topk(logits, top_k).values[:, [-1]]; "
            "logits[logits < kth] = -inf.", SAMPLING),
    Mistake("top_k_minus_one", "top_k keeps one token too few",
            "Keep exactly top_k logits: kth = torch.topk(logits, top_k).values[:, [-1]]; "
            "logits[logits < kth] = -inf.", SAMPLING),
)

KV_CACHE = ("kv_position_offset", "kv_cache_appended_twice", "kv_no_mask",
            "kv_mask_not_shifted")
