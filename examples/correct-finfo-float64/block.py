"""A GPT written with its own LayerNorm (eps 1e-5, parameters `weight` and `bias`) and GPT-2's
tanh GELU as a formula (a correct submission in another style: full marks)."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from causal_mask import CausalSelfAttention



class LayerNorm(nn.Module):
    """LayerNorm over the last axis, as nn.LayerNorm(n, eps=1e-5) computes it."""

    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class TanhGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


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
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = TanhGELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        """``(B, T, C) -> (B, T, C)``: ``c_proj(gelu(c_fc(x)))``."""
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """One pre-norm transformer block.

    Attributes (names are graded):
        ln_1: ``LayerNorm(n_embd)``.
        attn: ``CausalSelfAttention(n_embd, n_head, block_size)``.
        ln_2: ``LayerNorm(n_embd)``.
        mlp: ``MLP(n_embd)``.

    ``forward(x)`` maps ``(B, T, C)`` to ``(B, T, C)`` with PRE-norm residuals::

        x = x + attn(ln_1(x))
        x = x + mlp(ln_2(x))
    """

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        """``(B, T, C) -> (B, T, C)``, pre-norm: normalise the input of each sublayer only."""
        # Pre-norm keeps an un-normalised residual path from input to output, which is what
        # lets deep stacks train without warm-up tricks (GPT-2 moved LayerNorm here).
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


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
            ``ln_f = LayerNorm(C)`` (final LayerNorm).
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
        self.config = config
        C, V = config.n_embd, config.vocab_size
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(V, C),
                "wpe": nn.Embedding(config.block_size, C),
                "h": nn.ModuleList(
                    [Block(C, config.n_head, config.block_size) for _ in range(config.n_layer)]
                ),
                "ln_f": LayerNorm(C),
            }
        )
        self.lm_head = nn.Linear(C, V, bias=False)
        # Tie input and output embeddings: one matrix, fewer parameters, and the same token
        # geometry on both ends (as in GPT-2).
        self.lm_head.weight = self.transformer.wte.weight

        def init_weights(module):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

        # LayerNorms keep PyTorch's default (weight 1, bias 0). wte and lm_head are one tensor,
        # so it is drawn twice from the same N(0, 0.02); the second draw is the one kept.
        self.apply(init_weights)
        # Each block adds two residual contributions; scaling their output projections by
        # 1/sqrt(2 * n_layer) keeps the residual stream's variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

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
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        # (B, T, C) + (T, C): the position embeddings broadcast over the batch.
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def num_parameters(self) -> int:
        """Number of parameters, counting the tied embedding / lm_head matrix once."""
        # parameters() yields each Parameter object once, so the tied matrix counts once.
        return sum(p.numel() for p in self.parameters())
