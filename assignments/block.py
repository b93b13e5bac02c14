"""Assignment: transformer block and GPT.

Implement the MLP, the pre-norm transformer ``Block`` and the full ``GPT`` model, using your
``CausalSelfAttention`` from ``causal_mask.py`` (keep ``attention.py`` and ``causal_mask.py``
next to this file). ``GPTConfig`` is given. Replace every ``raise NotImplementedError`` with
your code; the docstrings are the specification (parameter names, weight tying, the init rule,
logits always the full ``(B, T, V)``).

The grader imports these exact names from this module: ``MLP``, ``Block``, ``GPTConfig`` and
``GPT``. Do not rename them or change their signatures.
"""

import math  # noqa: F401  (you will need it)
from dataclasses import dataclass

import torch  # noqa: F401  (you will need it)
import torch.nn.functional as F  # noqa: F401  (you will need it)
from causal_mask import CausalSelfAttention  # noqa: F401  (you will need it)
from torch import nn


class MLP(nn.Module):
    """Position-wise feed-forward network: ``c_proj(gelu(c_fc(x)))``.

    Attributes (names are graded):
        c_fc: ``nn.Linear(n_embd, 4 * n_embd)`` (with bias).
        gelu: ``nn.GELU(approximate="tanh")`` (GPT-2's GELU, HF's ``gelu_new``).
        c_proj: ``nn.Linear(4 * n_embd, n_embd)`` (with bias).

    ``forward(x)`` maps ``(B, T, C)`` to ``(B, T, C)``. No dropout.
    """

    def __init__(self, n_embd: int):
        super().__init__()
        raise NotImplementedError(
            'Create c_fc = nn.Linear(n_embd, 4 * n_embd), gelu = nn.GELU(approximate="tanh") and '
            "c_proj = nn.Linear(4 * n_embd, n_embd)."
        )

    def forward(self, x):
        """``(B, T, C) -> (B, T, C)``: ``c_proj(gelu(c_fc(x)))``."""
        raise NotImplementedError("Return c_proj(gelu(c_fc(x))).")


class Block(nn.Module):
    """One pre-norm transformer block.

    Attributes (names are graded):
        ln_1: ``nn.LayerNorm(n_embd)``.
        attn: ``CausalSelfAttention(n_embd, n_head, block_size)``.
        ln_2: ``nn.LayerNorm(n_embd)``.
        mlp: ``MLP(n_embd)``.

    ``forward(x)`` maps ``(B, T, C)`` to ``(B, T, C)`` with PRE-norm residuals::

        x = x + attn(ln_1(x))
        x = x + mlp(ln_2(x))
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        raise NotImplementedError(
            "Create ln_1, attn (a CausalSelfAttention), ln_2 and mlp (an MLP)."
        )

    def forward(self, x):
        """``(B, T, C) -> (B, T, C)``, pre-norm: normalise the input of each sublayer only."""
        raise NotImplementedError(
            "Apply the two pre-norm residual steps: x = x + attn(ln_1(x)), then x = x + "
            "mlp(ln_2(x))."
        )


@dataclass
class GPTConfig:
    """Model hyper-parameters; the defaults are GPT-2 small (124M)."""

    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768


class GPT(nn.Module):
    """A GPT-2 style decoder-only language model.

    Attributes (names are graded), with ``C = config.n_embd`` and ``V = config.vocab_size``:
        config: the ``GPTConfig`` passed in.
        transformer: ``nn.ModuleDict`` with
            ``wte = nn.Embedding(V, C)`` (token embeddings),
            ``wpe = nn.Embedding(config.block_size, C)`` (learned position embeddings),
            ``h = nn.ModuleList`` of ``config.n_layer`` ``Block(C, config.n_head,
            config.block_size)``,
            ``ln_f = nn.LayerNorm(C)`` (final LayerNorm).
        lm_head: ``nn.Linear(C, V, bias=False)`` whose weight IS ``transformer.wte.weight`` (the
            same Parameter object: weight tying, not a copy).

    Initialisation (done in ``__init__``):
        - every ``nn.Linear`` and ``nn.Embedding`` weight ~ N(0, 0.02);
        - every ``nn.Linear`` bias = 0;
        - LayerNorm weight 1, bias 0 (PyTorch's default);
        - then every parameter whose name ends with ``c_proj.weight`` (attention and MLP output
          projections) ~ N(0, 0.02 / sqrt(2 * n_layer)).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        raise NotImplementedError(
            "Store config, build transformer (wte, wpe, h, ln_f) and lm_head, tie lm_head.weight "
            "to transformer.wte.weight, and initialise the weights as the docstring describes."
        )

    def forward(self, idx, targets=None):
        """Compute next-token logits, and the loss if targets are given.

        Args:
            idx: ``torch.long`` tensor ``(B, T)`` of token ids, ``T <= config.block_size``
                (a longer ``T`` raises ``ValueError``). Positions are ``0 .. T-1``.
            targets: optional ``torch.long`` tensor ``(B, T)`` of next-token ids.

        Returns:
            ``(logits, loss)``: ``logits`` is ALWAYS the full ``(B, T, V)`` (every position, also
            without targets); ``loss`` is ``F.cross_entropy(logits.view(-1, V),
            targets.view(-1))`` (a scalar) when ``targets`` is given, else ``None``.
        """
        raise NotImplementedError(
            "Check T <= block_size, add token and position embeddings, run the blocks and ln_f, "
            "compute the full (B, T, V) logits and the cross-entropy loss when targets are given."
        )

    def num_parameters(self) -> int:
        """Number of parameters, counting the tied embedding / lm_head matrix once."""
        raise NotImplementedError(
            "Count the parameters, counting the tied embedding / lm_head matrix only once."
        )
