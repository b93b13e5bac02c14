"""Checks of assignment 6: loading GPT-2 weights in the Hugging Face format.

The grader writes its own Hugging Face-format checkpoints (``grader.checks.checkpoints``: seeded
random weights, a tiny config and the full 124M one, in each layout transformers has used),
shares them with the worker as files, and compares what the student's ``load_gpt2`` builds with
what the reference loader builds from the same files. When the real ``gpt2`` weights are on
local disk (``CheckSettings.gpt2_weights``, i.e. ``grader run --gpt2-weights``, or the Hugging
Face cache), one more check runs on them; otherwise it is skipped for every submission alike.

Every verdict rests on outcomes: logits of the loaded model (computed in the worker, compared
here with the reference loader's), and tying judged by its effect (the shared matrix changed
once after loading must move the output projection too). What the worker merely describes
(parameter counts, storage sharing) is reported, never scored.

One module per job: :mod:`.task` (the tiny checkpoint, both loaders' runs, the comparison of
their logits), :mod:`.tiny` (the tiny checkpoint in each layout), :mod:`.tying` (tying judged by
its effect), :mod:`.not_gpt2` (what is not GPT-2 is refused), :mod:`.full_size` (the 124M and
the real weights); :mod:`.mistakes` holds the known mistakes.
"""

from __future__ import annotations

from grader.checks.base import Assignment

ASSIGNMENT = Assignment(
    "gpt2_loading", "Loading GPT-2 weights",
    course="series4-llms-and-transformers-summary.md Module 4.3 (loading real weights)",
)
MODULE = "gpt2_loading"
NEEDS = ("load_gpt2",)

# The checks register in this order (the report's order): not sorted.
# isort: off
from grader.checks.gpt2_loading import tiny  # noqa: E402
from grader.checks.gpt2_loading import tying  # noqa: E402
from grader.checks.gpt2_loading import not_gpt2  # noqa: E402
from grader.checks.gpt2_loading import full_size  # noqa: E402
# isort: on
from grader.checks.gpt2_loading.full_size import (  # noqa: E402
    F32_LOGITS_ATOL,
    F32_LOGITS_RTOL,
    GPT2_124M_PARAMETERS,
    REAL_NEW_TOKENS,
    REAL_PROMPT,
    WeightsUnavailable,
)
from grader.checks.gpt2_loading.not_gpt2 import _LLAMA_CONFIG, _llama_tensors  # noqa: E402
from grader.checks.gpt2_loading.task import (  # noqa: E402
    CONV1D,
    LOGIT_MISTAKES,
    TINY,
    TINY_CONFIG,
)

# _LLAMA_CONFIG and _llama_tensors: the tests build a Llama folder with them.
__all__ = ["ASSIGNMENT", "CONV1D", "F32_LOGITS_ATOL", "F32_LOGITS_RTOL", "GPT2_124M_PARAMETERS",
           "LOGIT_MISTAKES", "MODULE", "NEEDS", "REAL_NEW_TOKENS", "REAL_PROMPT", "TINY",
           "TINY_CONFIG", "WeightsUnavailable", "_LLAMA_CONFIG", "_llama_tensors", "full_size",
           "not_gpt2", "tiny", "tying"]
