"""Parameterised questions: numbers drawn per learner and attempt, answers computed by code.

:mod:`.registry` holds the registry (:data:`GENERATORS`, :func:`generator`, :class:`Generated`);
the generators live one module per topic: :mod:`.attention`, :mod:`.counting`,
:mod:`.tokenization`, :mod:`.training`, :mod:`.scaling`; :mod:`.helpers` are their shared pure
functions. Importing this package registers every generator.
"""

from . import attention, counting, scaling, tokenization, training  # noqa: F401  (registers)
from .helpers import (  # noqa: F401
    DTYPES,
    entropy_bits,
    fmt,
    gpt_params,
    human,
    human_bytes,
    softmax,
)
from .registry import GENERATORS, Generated, Generator, generator, render  # noqa: F401
from .tokenization import bpe_merge_word, bpe_pair_counts  # noqa: F401
