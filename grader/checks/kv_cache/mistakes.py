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
)

KV_CACHE = ("kv_position_offset",)  # the cached path has its own attention and blocks
