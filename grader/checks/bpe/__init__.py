"""Checks of assignment 1: the BPE tokenizer (``bpe.py``).

- :mod:`.byte_level`: ``train_bpe`` (the merge table, order and ties included), ``build_vocab``,
  ``encode`` (merges by rank, not by frequency) and ``decode`` (round trips, invalid UTF-8);
- :mod:`.gpt2`: ``GPT2Tokenizer`` on GPT-2's real files against tiktoken's ``gpt2`` encoding,
  offline (:mod:`.oracle`), the Day 30 examples' token counts, and a speed note;
- :mod:`.texts`: the seeded texts; :mod:`.mistakes`: the diagnosis's known mistakes.
"""

from __future__ import annotations

from grader.checks.base import Assignment

ASSIGNMENT = Assignment(
    "bpe", "The BPE tokenizer",
    course="day30-capstone-and-checkpoint.md Q6; series4 summary Module 4.1 (subword "
           "tokenization: the merge table IS the tokenizer)",
)
MODULE = "bpe"

# The checks register on ASSIGNMENT when their modules are imported, in this order.
from grader.checks.bpe import byte_level, gpt2  # noqa: E402, F401
