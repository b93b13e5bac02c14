"""Checks of assignment 5: the KV cache and generation.

The student's ``CachedGPT`` is loaded with the reference's weights and fed tokens step by step
through one ``KVCache`` in the worker; its logits are compared with the reference's logits
computed WITHOUT a cache on the whole sequence, so a cache that merely agrees with itself cannot
pass. The prefill tests put keys and values the grader made up into the cache through its own
``update`` (no token behind them is ever sent), so only a model that really reads its cache gets
the reference's logits: a "cache" that keeps token ids and recomputes everything fails them.
Verdicts rest on logits, tokens and returned tensors; what the worker merely describes (the
number of model calls, ``len(cache)``, the positions given to ``wpe``) feeds hints and a check
worth no points.

One module per job: :mod:`.task` (the small GPT, its weights and tokens, the reference's
uncached logits, a worker run through one cache), :mod:`.cache` (the cache's checks),
:mod:`.generation` (``generate``'s checks); :mod:`.mistakes` holds the known mistakes.
"""

from __future__ import annotations

from grader.checks.base import Assignment

ASSIGNMENT = Assignment(
    "kv_cache", "The KV cache and generation",
    course="day30-capstone-and-checkpoint.md Q4; series4 summary Module 4.3 (scaling and "
           "efficiency)",
)
MODULE = "kv_cache"

# The checks register in this order (the report's order): not sorted.
# isort: off
from grader.checks.kv_cache import cache  # noqa: E402
from grader.checks.kv_cache import generation  # noqa: E402
# isort: on
from grader.checks.kv_cache.task import (  # noqa: E402
    BATCH,
    CHUNKS,
    GEN_NEW,
    GEN_PROMPT,
    HEAD_DIM,
    KV,
    PROMPT,
    STEPS,
)

__all__ = ["ASSIGNMENT", "BATCH", "CHUNKS", "GEN_NEW", "GEN_PROMPT", "HEAD_DIM", "KV", "MODULE",
           "PROMPT", "STEPS", "cache", "generation"]
