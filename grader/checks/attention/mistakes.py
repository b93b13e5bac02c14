"""The known mistakes of scaled dot-product and multi-head attention (reference/attention.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import Q1, Q2, Q3, Q8, S42, Mistake, register

SCALE = "scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)"
FILL = 'scores = scores.masked_fill(~mask, float("-inf"))'
SOFTMAX = "weights = F.softmax(scores, dim=-1)"
SPLIT = "q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)"
HEADS = [f"{n} = {n}.view(B, T, self.n_head, hd).transpose(1, 2)" for n in "qkv"]
MERGE = "y = y.transpose(1, 2).contiguous().view(B, T, C)"
SDPA_CALL = "y, _ = scaled_dot_product_attention(q, k, v, mask)"


def _order(names: str) -> list[tuple[str, str]]:
    # Plants are written as dict literals keyed by module: a student bundle keeps the keys (and
    # so which module each mistake is compared for) while their edits are stripped.
    return [(SPLIT, f"{', '.join(names)} = self.c_attn(x).split(self.n_embd, dim=-1)")]


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
        flavours={"dim1": {"attention": [(SOFTMAX, "weights = F.softmax(scores, dim=1)")]}},
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
        plant={"attention": _order("kqv")},
        flavours={"kvq": {"attention": _order("kvq")}, "qvk": {"attention": _order("qvk")},
                  "vkq": {"attention": _order("vkq")}, "vqk": {"attention": _order("vqk")}},
    ),
)

register(
    Mistake(
        "scale_d_k", "the scores are divided by d_k instead of sqrt(d_k)",
        "The scale is 1/sqrt(d_k), the square root of the head size: softmax(QK^T / sqrt(d_k)) V. "
        "Dividing by d_k itself shrinks the scores too much and flattens the attention.",
        Q2,
        plant={"attention": [(SCALE, "scores = (q @ k.transpose(-2, -1)) / d_k")]},
    ),
    Mistake(
        "scale_multiplied", "the scores are multiplied by sqrt(d_k) instead of divided",
        "Divide the scores by sqrt(d_k) (or multiply by 1/sqrt(d_k)): scores = q @ k^T / "
        "sqrt(d_k). Multiplying makes the softmax even more saturated.",
        Q2,
        plant={"attention": [(SCALE, "scores = (q @ k.transpose(-2, -1)) * math.sqrt(d_k)")]},
    ),
    Mistake(
        "scale_d_v", "the scores are scaled by the values' size d_v instead of d_k",
        "The scale comes from the dimension of the dot product, the queries' and keys' size: "
        "d_k = q.size(-1). The values may have another size d_v.",
        Q2,
        plant={"attention": [(SCALE, "scores = (q @ k.transpose(-2, -1)) / "
                                     "math.sqrt(v.size(-1))")]},
    ),
    Mistake(
        "mask_fill_large_negative", "blocked scores are filled with a large finite negative "
                                    "number (like -1e4) instead of -inf",
        "A finite fill value is only 'large' relative to the other scores: when the scores "
        "themselves are of that size, blocked keys get weight. Fill with float(\"-inf\") (or "
        "torch.finfo(scores.dtype).min) so that blocked weights are exactly 0.",
        Q3,
        plant={"attention": [(FILL, "scores = scores.masked_fill(~mask, -1e4)")]},
    ),
    Mistake(
        "mask_fill_inverted", "the mask's meaning is inverted in the attention (the allowed "
                              "scores are filled)",
        "True means 'may attend', and masked_fill fills where its mask is True: fill where the "
        "mask is False, scores.masked_fill(~mask, float('-inf')) (or mask == 0).",
        Q3,
        plant={"attention": [(FILL, 'scores = scores.masked_fill(mask, float("-inf"))')]},
    ),
    Mistake(
        "c_proj_not_applied", "the output projection c_proj is not applied",
        "After the heads are merged back to (B, T, C), multi-head attention ends with the output "
        "projection: return self.c_proj(y). It mixes the heads' results.",
        Q8,
        plant={"attention": [("return self.c_proj(y)", "return y")]},
    ),
    Mistake(
        "heads_not_split", "the attention is computed as one head over all n_embd channels",
        "Split q, k and v into n_head heads of size hd = n_embd // n_head: "
        "view(B, T, n_head, hd).transpose(1, 2); each head attends on its own and scales by "
        "sqrt(hd).",
        Q8,
        plant={"attention": [(h, f"{h[0]} = {h[0]}.view(B, T, 1, C).transpose(1, 2)")
                             for h in HEADS]},
    ),
    Mistake(
        "qkv_interleaved_per_head", "q, k and v are cut from c_attn head by head (each head's "
                                    "q, k, v side by side) instead of as three n_embd blocks",
        "c_attn's output is [q | k | v], three blocks of n_embd channels, and only then is each "
        "block split into heads: q, k, v = self.c_attn(x).split(n_embd, dim=-1), then "
        "q.view(B, T, n_head, hd). Viewing it as (B, T, n_head, 3 * hd) (or (..., n_head, 3, "
        "hd)) first takes each head's q, k and v from the wrong channels (GPT-2's weights are "
        "laid out [q | k | v]).",
        f"{Q8}; {S42} (Q, K and V: three lenses)",
        plant={"attention": [(SPLIT, "q, k, v = self.c_attn(x).view(B, T, self.n_head, 3 * hd)"
                                     ".split(hd, dim=-1)")]},
        flavours={"three_axis": {"attention": [(SPLIT, "q, k, v = self.c_attn(x).view("
                                                       "B, T, self.n_head, 3, hd).unbind(3)")]},
                  "last_axis": {"attention": [(SPLIT, "q, k, v = self.c_attn(x).view("
                                                      "B, T, self.n_head, hd, 3).unbind(-1)")]}},
    ),
)
