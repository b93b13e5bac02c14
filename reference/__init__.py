"""Reference solutions for the course's assignments (never shipped to students)."""

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .block import GPT, MLP, Block, GPTConfig
from .causal_mask import CausalSelfAttention, causal_mask

__all__ = [
    "GPT",
    "MLP",
    "Block",
    "CausalSelfAttention",
    "GPTConfig",
    "MultiHeadAttention",
    "causal_mask",
    "scaled_dot_product_attention",
]
