"""Installed packages that submissions may not use, and why: each is an oracle a check compares
the student's code against, so code that calls it would be graded as its own.

The sandbox masks their files (:mod:`grader.isolation.bwrap`), which is what holds: a
submission shares the worker's interpreter and could remove any import hook. The worker's
import hook (:func:`grader.worker.loop.refuse_withheld`) only turns the import into a clear
message instead of an empty module. ``transformers`` is not here: the course uses it as a
source of GPT-2 weights, which a loader may read (its model is then the student's own).
"""

from __future__ import annotations

WITHHELD = {
    "tiktoken": "GPT2Tokenizer is compared token for token against tiktoken, so the tokenizer "
                "must be your own code",
    "tiktoken_ext": "it is part of tiktoken, which GPT2Tokenizer is compared against",
}
