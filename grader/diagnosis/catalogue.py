"""The catalogue of known mistakes: what each is called, a hint in the course's words, where the
course explains it, and how to plant it in the reference (so its output can be computed).

A mistake is planted by editing the reference's source: ``plant`` maps a module of the reference
package (``"attention"``, ``"block"``, ...) to ``(old, new)`` replacements, each ``old`` occurring
exactly once (see :mod:`.variants`). ``flavours`` are other ways of writing the same mistake; a
variant's id is the mistake's id, or ``"<id>/<flavour>"``. A mistake without a plant is named by
a check's own rule (e.g. two parameter objects where one tied one is expected).

A new assignment adds its mistakes with :func:`register` (from its checks module) and lists their
ids in the checks' :class:`~grader.diagnosis.Diagnosis`; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# module of the reference package -> (old, new) source replacements
Edits = dict[str, list[tuple[str, str]]]

Q1 = "day30-capstone-and-checkpoint.md Q1 (the attention equation)"
Q2 = "day30-capstone-and-checkpoint.md Q2 (why scale by sqrt(d_k))"
Q3 = "day30-capstone-and-checkpoint.md Q3 (the causal mask, applied before softmax)"
Q8 = "day30-capstone-and-checkpoint.md Q8 (multi-head attention: split into heads, transpose)"
S41 = "series4-llms-and-transformers-summary.md Module 4.1"
S42 = "series4-llms-and-transformers-summary.md Module 4.2"
S43 = "series4-llms-and-transformers-summary.md Module 4.3"


@dataclass(frozen=True)
class Mistake:
    """One known mistake. ``name`` completes "Likely mistake: ..."; ``hint`` says what to look
    at, in the course's words; ``course`` points to the course text that explains it."""

    id: str
    name: str
    hint: str
    course: str
    plant: Edits = field(default_factory=dict)
    flavours: dict[str, Edits] = field(default_factory=dict)

    def variants(self) -> dict[str, Edits]:
        """Variant id -> the edits that plant this mistake in the reference."""
        out = {self.id: self.plant} if self.plant else {}
        out.update({f"{self.id}/{name}": edits for name, edits in self.flavours.items()})
        return out

    def as_details(self) -> dict[str, str]:
        """What a check stores as ``details["likely_mistake"]`` (the reports' keys)."""
        return {"id": self.id, "name": self.name, "hint": self.hint, "course": self.course}


CATALOGUE: dict[str, Mistake] = {}


def register(*mistakes: Mistake) -> None:
    """Add mistakes to the catalogue (ids are unique across assignments)."""
    for m in mistakes:
        if m.id in CATALOGUE and CATALOGUE[m.id] != m:
            raise ValueError(f"duplicate mistake id {m.id!r}")
        if "/" in m.id:
            raise ValueError(f"mistake id {m.id!r} may not contain '/'")
        CATALOGUE[m.id] = m


def mistake(id_or_variant: str) -> Mistake:
    """The mistake a mistake id or a variant id (``"<id>/<flavour>"``) stands for."""
    key = id_or_variant.split("/", 1)[0]
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown mistake {key!r}; known: {', '.join(CATALOGUE)}") from None


def likely(mistake_id: str, **extra: Any) -> dict[str, Any]:
    """``likely_mistake`` details for a mistake a check recognises by its own rule."""
    return {"likely_mistake": {**mistake(mistake_id).as_details(), **extra}}


# --- scaled dot-product and multi-head attention (reference/attention.py) ----------------------

SCALE = "scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)"
FILL = 'scores = scores.masked_fill(~mask, float("-inf"))'
SOFTMAX = "weights = F.softmax(scores, dim=-1)"
SPLIT = "q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)"
HEADS = [f"{n} = {n}.view(B, T, self.n_head, hd).transpose(1, 2)" for n in "qkv"]
MERGE = "y = y.transpose(1, 2).contiguous().view(B, T, C)"
SDPA_CALL = "y, _ = scaled_dot_product_attention(q, k, v, mask)"


def _order(names: str) -> Edits:
    return {"attention": [(SPLIT, f"{', '.join(names)} = self.c_attn(x).split(self.n_embd, "
                                  "dim=-1)")]}


register(
    Mistake(
        "no_scale", "the scores are not divided by sqrt(d_k)",
        "Scale the scores: softmax(QK^T / sqrt(d_k)) V. Without it the dot products grow with "
        "d_k, the softmax saturates and gradients vanish; dividing by sqrt(d_k) brings their "
        "variance back to 1.",
        Q2,
        plant={"attention": [(SCALE, "scores = q @ k.transpose(-2, -1)")]},
    ),
    Mistake(
        "scale_d_model", "the scores are divided by sqrt(d_model) instead of sqrt(d_k)",
        "Each head's queries and keys have d_k = d_model / n_head dimensions (the dimension is "
        "split, not multiplied), so each head divides its scores by sqrt(d_k), the head size, "
        "not by sqrt(n_embd).",
        f"{Q2}; {S42} (multi-head attention: d_k = d_model/h)",
        plant={"attention": [(SDPA_CALL, "\n        ".join([
            "scores = (q @ k.transpose(-2, -1)) / math.sqrt(C)",
            "if mask is not None:",
            '    scores = scores.masked_fill(~mask, float("-inf"))',
            "y = F.softmax(scores, dim=-1) @ v"]))]},
    ),
    Mistake(
        "softmax_wrong_axis", "the softmax is taken over the wrong axis",
        "Softmax converts each query's scores into probabilities over the keys: take it over "
        "the last axis (dim=-1), so that each row of the weights sums to 1.",
        Q1,
        plant={"attention": [(SOFTMAX, "weights = F.softmax(scores, dim=-2)")]},
    ),
    Mistake(
        "mask_after_softmax", "the mask is applied after the softmax",
        "Set the blocked scores to -infinity BEFORE the softmax. Zeroing weights after it leaves "
        "rows that no longer sum to 1 (the blocked keys still took their share).",
        Q3,
        plant={"attention": [
            (FILL, "pass"),
            (f"    {SOFTMAX}\n", f"    {SOFTMAX}\n    if mask is not None:\n"
                                  "        weights = weights.masked_fill(~mask, 0.0)\n")]},
    ),
    Mistake(
        "mask_fill_zero", "blocked scores are filled with 0 (or another finite number) "
                          "instead of -inf",
        "A score of 0 is an ordinary score: exp(0) = 1 still gives the blocked key weight. "
        "Fill blocked scores with -inf (float(\"-inf\")) so that their weights are exactly 0.",
        Q3,
        plant={"attention": [(FILL, "scores = scores.masked_fill(~mask, 0.0)")]},
    ),
    Mistake(
        "heads_merged_without_transpose", "the heads are merged without transposing back",
        "After attention y is (B, n_head, T, hd): transpose(1, 2) to (B, T, n_head, hd) before "
        "view(B, T, C), or the merge mixes positions and heads instead of concatenating each "
        "position's heads.",
        Q8,
        plant={"attention": [(MERGE, "y = y.contiguous().view(B, T, C)")]},
    ),
    Mistake(
        "heads_split_without_transpose", "q, k and v are split into heads without a transpose",
        "Split into heads with view(B, T, n_head, hd) and THEN transpose(1, 2) to "
        "(B, n_head, T, hd). reshape(B, n_head, T, hd) directly has the right shape but cuts the "
        "sequence, not the channels, into heads.",
        Q8,
        plant={"attention": [(h, f"{h[0]} = {h[0]}.reshape(B, self.n_head, T, hd)")
                             for h in HEADS]},
        flavours={"and_merged": {"attention": [
            *[(h, f"{h[0]} = {h[0]}.reshape(B, self.n_head, T, hd)") for h in HEADS],
            (MERGE, "y = y.contiguous().view(B, T, C)")]}},
    ),
    Mistake(
        "qkv_order", "q, k and v are taken from c_attn in the wrong order",
        "c_attn's output splits into q, k, v IN THAT ORDER (GPT-2's layout): "
        "q, k, v = self.c_attn(x).split(n_embd, dim=-1). Q seeks, K is matched, V is delivered: "
        "swapping them changes what attends to what.",
        f"{S42} (Q, K and V: three lenses)",
        plant=_order("kqv"),
        flavours={o: _order(o) for o in ("kvq", "qvk", "vkq", "vqk")},
    ),
)

# --- the causal mask (reference/causal_mask.py) -------------------------------------------------

TRIL = ".tril(diagonal=offset)"
MASK_HINT = ("Query i sits at position t_k - t_q + i and may attend keys 0..that position, "
             "itself included: torch.ones(t_q, t_k).tril(diagonal=t_k - t_q), True = may attend.")

register(
    Mistake(
        "mask_excludes_diagonal", "the causal mask blocks each position from itself",
        "Position i sees positions <= i, ITSELF INCLUDED (the diagonal is allowed); without it "
        "the first position sees nothing and its softmax is NaN. " + MASK_HINT,
        Q3,
        plant={"causal_mask": [(TRIL, ".tril(diagonal=offset - 1)")]},
    ),
    Mistake(
        "mask_includes_future", "the causal mask lets each position see the next one",
        "The mask must hide every future position j > i; one diagonal too many lets the model "
        "cheat by reading the token it should predict. " + MASK_HINT,
        Q3,
        plant={"causal_mask": [(TRIL, ".tril(diagonal=offset + 1)")]},
    ),
    Mistake(
        "mask_ignores_offset", "the causal mask ignores the earlier (cached) keys when "
                               "t_q < t_k",
        "With t_q queries and t_k keys the queries are the LAST t_q positions: shift the "
        "diagonal by t_k - t_q, or the new queries cannot see the cached keys. " + MASK_HINT,
        f"{Q3}; day30-capstone-and-checkpoint.md Q4 (KV cache)",
        plant={"causal_mask": [(TRIL, ".tril(diagonal=0)")]},
    ),
    Mistake(
        "mask_inverted", "the causal mask is inverted (True where attention is blocked)",
        "In this course True means 'may attend'; masked_fill fills where its mask is True, so "
        "fill where the mask is False: scores.masked_fill(~mask, float('-inf')). " + MASK_HINT,
        Q3,
        plant={"causal_mask": [("return torch.ones(t_q, t_k", "return ~torch.ones(t_q, t_k")]},
    ),
    Mistake(
        "mask_upper_triangle", "the causal mask is upper-triangular (each position sees the "
                               "future, not the past)",
        "Allowed entries form the LOWER triangle (torch.tril): row i may attend columns 0..i. "
        "An upper triangle (torch.triu) lets every position see the future. " + MASK_HINT,
        Q3,
        plant={"causal_mask": [(TRIL, ".triu(diagonal=offset)")]},
    ),
    Mistake(
        "mask_not_applied", "CausalSelfAttention does not apply the causal mask",
        "Pass causal_mask(T, T) to the attention in every forward: without it every position "
        "reads the future (the 'cheating problem').",
        Q3,
        plant={"causal_mask": [("return super().forward(x, mask)", "return super().forward(x)")]},
    ),
)

# --- the block and the GPT model (reference/block.py) -------------------------------------------

GELU = 'self.gelu = nn.GELU(approximate="tanh")'
ATTN_BRANCH = "x = x + self.attn(self.ln_1(x))"
MLP_BRANCH = "x = x + self.mlp(self.ln_2(x))"

register(
    Mistake(
        "exact_gelu", "the MLP uses the exact GELU where GPT-2's tanh approximation is expected",
        "GPT-2's GELU is the tanh approximation: nn.GELU(approximate=\"tanh\"). The exact "
        "nn.GELU() differs by up to ~1e-3, enough to change GPT-2's logits.",
        f"{S42} (FFN structure: 4x expansion, GELU)",
        plant={"block": [(GELU, "self.gelu = nn.GELU()")]},
    ),
    Mistake(
        "relu_instead_of_gelu", "the MLP uses ReLU instead of GELU",
        "The FFN's activation is GELU (tanh approximation): nn.GELU(approximate=\"tanh\"), "
        "not ReLU.",
        f"{S42} (FFN structure: 4x expansion, GELU)",
        plant={"block": [(GELU, "self.gelu = nn.ReLU()")]},
    ),
    Mistake(
        "post_norm", "the block normalises after the residual addition (post-norm)",
        "GPT-2 is pre-norm: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)). The LayerNorm goes "
        "inside each branch and keeps the residual stream clean.",
        f"{S42} (pre-norm vs post-norm)",
        plant={"block": [(ATTN_BRANCH, "x = self.ln_1(x + self.attn(x))"),
                         (MLP_BRANCH, "x = self.ln_2(x + self.mlp(x))")]},
    ),
    Mistake(
        "missing_residual_attn", "the attention branch is not added back to its input "
                                 "(missing residual)",
        "The residual stream is a shared document: each sub-layer's output is ADDED to it, not "
        "substituted: x = x + attn(ln_1(x)).",
        f"{S42} (residual stream)",
        plant={"block": [(ATTN_BRANCH, "x = self.attn(self.ln_1(x))")]},
    ),
    Mistake(
        "missing_residual_mlp", "the MLP branch is not added back to its input "
                                "(missing residual)",
        "The residual stream is a shared document: each sub-layer's output is ADDED to it, not "
        "substituted: x = x + mlp(ln_2(x)).",
        f"{S42} (residual stream)",
        plant={"block": [(MLP_BRANCH, "x = self.mlp(self.ln_2(x))")]},
    ),
    Mistake(
        "missing_final_layernorm", "the final LayerNorm (ln_f) is not applied",
        "The full GPT: embeddings -> N blocks -> final layer norm (transformer.ln_f) -> output "
        "projection. Apply ln_f to the last block's output before lm_head.",
        f"{S42} (full GPT architecture end-to-end)",
        plant={"block": [("x = self.transformer.ln_f(x)", "x = x")]},
    ),
    Mistake(
        "missing_position_embeddings", "the position embeddings are not added",
        "Without position, embeddings are a bag of words: the model's input is token embedding "
        "+ position embedding, wte(idx) + wpe(arange(T)).",
        f"{S41} (token embedding + positional encoding = model input)",
        plant={"block": [("x = self.transformer.wte(idx) + self.transformer.wpe(pos)",
                          "x = self.transformer.wte(idx)")]},
    ),
    Mistake(
        "untied_embeddings", "lm_head holds a copy of the token embedding instead of the same "
                             "(tied) weight",
        "Weight tying means ONE Parameter used twice: self.lm_head.weight = "
        "self.transformer.wte.weight. A copy has its own storage and gradients (check with "
        "data_ptr()) and adds vocab_size x n_embd parameters.",
        f"{S43} (weight tying)",
        plant={"block": [("self.lm_head.weight = self.transformer.wte.weight",
                          "self.lm_head.weight.data.copy_(self.transformer.wte.weight.data)")]},
    ),
    Mistake(
        "unscaled_residual_init", "the residual projections (c_proj) are not initialised with "
                                  "the scaled std 0.02/sqrt(2 n_layer)",
        "Initialise weights with normal sigma = 0.02, then every c_proj.weight with "
        "0.02/sqrt(2 * n_layer): each block adds two contributions to the residual stream, and "
        "the scaling keeps its variance from growing with depth.",
        f"{S43} (weight initialization: scaled residual projections)",
        plant={"block": [("std=0.02 / math.sqrt(2 * config.n_layer)", "std=0.02")]},
    ),
    Mistake(
        "default_init", "the weights keep PyTorch's default initialisation",
        "Initialise every nn.Linear and nn.Embedding weight with normal sigma = 0.02 (biases 0), "
        "e.g. with self.apply(init_fn); PyTorch's defaults (N(0, 1) embeddings, uniform "
        "linears) make activations grow layer after layer.",
        f"{S43} (weight initialization)",
        plant={"block": [("self.apply(init_weights)", "pass")]},
        flavours={"no_init_at_all": {"block": [
            ("self.apply(init_weights)", "pass"),
            ("nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))",
             "pass")]}},
    ),
)

# --- the KV cache, GPT-2 loading and training (reference/kv_cache.py, gpt2_loading.py,
# training.py): catalogued here, declared by those assignments' checks --------------------------

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
    Mistake(
        "conv1d_not_transposed", "a Conv1D weight is loaded without its transpose (the square "
                                 "attn.c_proj)",
        "Hugging Face's Conv1D stores weights (in, out); nn.Linear wants (out, in): transpose "
        "ALL four of attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj, by name. attn.c_proj "
        "is square, so its missing transpose never shows in the shapes; only the logits tell.",
        S43 + " (Conv1D vs nn.Linear weight transposition; logit comparison)",
        plant={"gpt2_loading": [("if key.endswith(_CONV1D):",
                                 "if w.shape != ours[ours_name].shape:")]},
    ),
    Mistake(
        "zero_grad_missing", "the gradients are not zeroed every step (they accumulate)",
        "The training heartbeat is zero_grad, forward, loss, backward, (clip,) step: "
        "loss.backward() ADDS to .grad, so call optimizer.zero_grad() every step.",
        S43 + " (complete GPT training loop)",
    ),
    Mistake(
        "clip_before_backward", "the gradients are clipped before backward (clipping nothing)",
        "Clip the global gradient norm after backward() and before step(): "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) between the two.",
        S43 + " (gradient clipping: after backward(), before step())",
    ),
    Mistake(
        "warmup_off_by_one", "the warmup is off by one step",
        "Linear warmup is max_lr * (step + 1) / warmup_steps for step < warmup_steps: step 0 "
        "already learns, the last warmup step reaches max_lr, and the cosine decay starts at "
        "step warmup_steps.",
        S43 + " (learning rate scheduling: linear warmup + cosine decay)",
        plant={"training": [("return max_lr * (step + 1) / warmup_steps",
                             "return max_lr * step / warmup_steps")]},
        flavours={"late": {"training": [("if step < warmup_steps:",
                                         "if step <= warmup_steps:")]}},
    ),
)

# Mistakes of each core assignment, in the order a check compares them. A later assignment's
# checks use the student's earlier modules, so they also compare with the earlier mistakes.
ATTENTION = ("no_scale", "softmax_wrong_axis", "mask_after_softmax", "mask_fill_zero")
MULTI_HEAD = ATTENTION + ("scale_d_model", "heads_merged_without_transpose",
                          "heads_split_without_transpose", "qkv_order")
CAUSAL_MASK = ("mask_excludes_diagonal", "mask_includes_future", "mask_ignores_offset",
               "mask_inverted", "mask_upper_triangle")
CAUSAL_ATTENTION = MULTI_HEAD + CAUSAL_MASK + ("mask_not_applied",)
MLP = ("exact_gelu", "relu_instead_of_gelu")
BLOCK = CAUSAL_ATTENTION + MLP + ("post_norm", "missing_residual_attn", "missing_residual_mlp")
GPT = BLOCK + ("missing_final_layernorm", "missing_position_embeddings", "untied_embeddings")
INIT = ("unscaled_residual_init", "default_init")
KV_CACHE = ("kv_position_offset",)  # the cached path has its own attention and blocks
GPT2_LOADING = ("conv1d_not_transposed",)
LR_SCHEDULE = ("warmup_off_by_one",)
