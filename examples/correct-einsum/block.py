"""Block and GPT with a hand-written tanh GELU and init by parameter name (another correct
style)."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from causal_mask import CausalSelfAttention


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        h = x + self.attn(self.ln_1(x))
        return h + self.mlp(self.ln_2(h))


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config.n_embd
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, c),
            "wpe": nn.Embedding(config.block_size, c),
            "h": nn.ModuleList(Block(c, config.n_head, config.block_size)
                               for _ in range(config.n_layer)),
            "ln_f": nn.LayerNorm(c),
        })
        self.lm_head = nn.Linear(c, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * config.n_layer))
                elif name.endswith("bias"):
                    p.zero_()
                elif ".ln_" in name or name.startswith("transformer.ln_f"):
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)

    def forward(self, idx, targets=None):
        _, t = idx.shape
        if t > self.config.block_size:
            raise ValueError("sequence longer than block_size")
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t, device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def num_parameters(self):
        # Unique tensors by their storage: the tied wte/lm_head matrix is counted once.
        seen = {p.data_ptr(): p.numel() for p in self.parameters()}
        return sum(seen.values())
