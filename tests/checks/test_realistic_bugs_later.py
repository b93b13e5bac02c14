"""A corpus of realistic student bugs for the training, KV-cache and GPT-2 loading assignments,
written the way students write them (not the catalogue's own plants), and the share the
diagnosis names correctly and wrongly (issue 16). Each bug must lose points; the test prints
the shares and requires at least 80 % named correctly and none named wrongly."""

from __future__ import annotations

import pytest
from conftest import SHARED_REFERENCE, grade_folder, plant, worker_client

from grader.checks import ASSIGNMENTS
from grader.checks.base import Context
from grader.grading import run_check
from grader.model.results import Status

CLIP = "        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)\n"
STEP = "        optimizer.step()\n"
# name -> (assignment, edits of the example's modules, the catalogue id it must be named by)
CORPUS: dict[str, tuple[str, dict[str, list[tuple[str, str]]], str]] = {
    "cosine to 0": ("training", {"training": [(
        "    return min_lr + coeff * (max_lr - min_lr)", "    return max_lr * coeff")]},
        "cosine_decays_to_zero"),
    "warmup starts at 0": ("training", {"training": [(
        "return max_lr * (step + 1) / warmup_steps", "return max_lr * step / warmup_steps")]},
        "warmup_off_by_one"),
    "warmup one step long": ("training", {"training": [(
        "    if step < warmup_steps:", "    if step <= warmup_steps:")]}, "warmup_off_by_one"),
    "no floor past max_steps": ("training", {"training": [(
        "    if step > max_steps:\n        return min_lr\n", "")]},
        "lr_not_floored_after_max_steps"),
    "decay progress ignores warmup": ("training", {"training": [(
        "\n    ratio = (step - warmup_steps) / (max_steps - warmup_steps)\n",
        "\n    ratio = step / max_steps\n")]}, "cosine_ratio_from_zero"),
    "zero_grad once, before the loop": ("training", {"training": [
        ("        optimizer.zero_grad(set_to_none=True)\n", ""),
        ("    model.train()\n    for step", "    optimizer.zero_grad()\n    model.train()\n"
                                           "    for step")]}, "zero_grad_missing"),
    "clip after the step": ("training", {"training": [(CLIP + STEP, STEP + CLIP)]},
                            "clip_after_step"),
    "clip to 1.0": ("training", {"training": [(
        CLIP, "        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n")]},
        "clip_value_hardcoded"),
    "default betas": ("training", {"training": [(
        "lr=config.max_lr, betas=(0.9, 0.95),\n                                  eps=1e-8, ",
        "lr=config.max_lr,\n                                  ")]}, "adam_default_betas"),
    "no weight decay": ("training", {"training": [(
        "                                  eps=1e-8, weight_decay=config.weight_decay)",
        "                                  eps=1e-8)")]}, "weight_decay_missing"),
    "Adam, not AdamW": ("training", {"training": [(
        "optimizer = torch.optim.AdamW(", "optimizer = torch.optim.Adam(")]},
        "adam_instead_of_adamw"),
    "train mode not restored": ("training", {"training": [(
        "    model.train()\n    return sum", "    return sum")]}, "train_mode_not_restored"),
    "labels not shifted": ("training", {"training": [(
        "y = torch.stack([data[i + 1:i + 1 + block_size] for i in",
        "y = torch.stack([data[i:i + block_size] for i in")]}, "labels_not_shifted"),
    "positions restart at 0": ("kv_cache", {"kv_cache": [(
        "pos = torch.arange(L, L + T, dtype=torch.long, device=idx.device)",
        "pos = torch.arange(0, T, dtype=torch.long, device=idx.device)")]},
        "kv_position_offset"),
    "len counts the layers": ("kv_cache", {"kv_cache": [(
        "return 0 if self.k[0] is None else self.k[0].size(2)", "return len(self.k)")]},
        "kv_len_counts_layers"),
    "cache updated twice": ("kv_cache", {"kv_cache": [(
        "    k, v = kv_cache.update(layer, k, v)\n",
        "    kv_cache.update(layer, k, v)  # store the new keys\n"
        "    k, v = kv_cache.update(layer, k, v)\n")]}, "kv_cache_appended_twice"),
    "cached mask ignores the offset": ("kv_cache", {"causal_mask": [(
        ".tril(diagonal=offset)", ".tril(diagonal=0)")]}, "mask_ignores_offset"),
    "no mask in the cached path": ("kv_cache", {"kv_cache": [(
        "    mask = causal_mask(T, k.size(2), device=x.device)", "    mask = None")]},
        "kv_no_mask"),
    "temperature ignored": ("kv_cache", {"kv_cache": [(
        "            logits = logits / temperature\n", "")]}, "temperature_ignored"),
    "top_k keeps one more": ("kv_cache", {"kv_cache": [(
        "min(top_k, logits.size(-1))", "min(top_k + 1, logits.size(-1))")]},
        "top_k_plus_one"),
    "c_proj not transposed": ("gpt2_loading", {"gpt2_loading": [(
        '_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", '
        '"mlp.c_proj.weight")',
        '_CONV1D = ("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")')]},
        "conv1d_not_transposed"),
    "loader sets a BERT eps": ("gpt2_loading", {"gpt2_loading": [(
        "    return model.eval()\n",
        "    for m in model.modules():\n        if isinstance(m, torch.nn.LayerNorm):\n"
        "            m.eps = 1e-12\n    return model.eval()\n")]}, "loader_changes_ln_eps"),
    "lm_head copied": ("gpt2_loading", {"gpt2_loading": [(
        "    return model.eval()\n",
        "    model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.clone())\n"
        "    return model.eval()\n")]}, "tie_broken_by_loader"),
}
# Both tests read one module fixture that grades the whole corpus: one process runs them.
pytestmark = pytest.mark.xdist_group("realistic_bugs_later")
FAST_TRAINING = [c for c in ASSIGNMENTS["training"].checks if c.id != "convergence_probe"]


def _named(name: str, tmp_path) -> tuple[float, set[str]]:
    """Points lost and the catalogue ids named by the failing checks."""
    assignment, edits, _ = CORPUS[name]
    folder = plant(tmp_path, edits, name="sub")
    if assignment == "training":  # the probe adds nothing to the naming and costs seconds
        with worker_client(folder) as worker:
            worker.request("import", {"modules": ["training"]})
            ctx = Context(assignment="training", worker=worker, source=SHARED_REFERENCE)
            results = [run_check(c, ctx, c.points) for c in FAST_TRAINING]
    else:
        results = [c for _, c in grade_folder(folder, [assignment],
                                              include_hidden=True).all_checks()]
    lost = sum(r.max_score - r.score for r in results if r.status is not Status.SKIPPED)
    ids: set[str] = set()
    for r in results:
        named = r.details.get("likely_mistake") or {}
        if r.status is Status.PASSED or not named.get("id"):
            continue
        # "one of" the mistakes the evidence cannot tell apart counts as naming each
        found = named["id"].removeprefix("one_of:").split("+")
        found += named.get("alternative_ids", [])
        ids |= {i.split("/")[0] for i in found}
    return lost, ids


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    out = {}
    for name in CORPUS:
        out[name] = _named(name, tmp_path_factory.mktemp("bug"))
    return out


def test_every_realistic_bug_loses_points(verdicts):
    assert not [n for n, (lost, _) in verdicts.items() if lost <= 0]


def test_the_diagnosis_names_the_realistic_bugs(verdicts):
    right = [n for n, (_, ids) in verdicts.items() if CORPUS[n][2] in ids]
    wrong = {n: sorted(ids) for n, (_, ids) in verdicts.items()
             if ids and CORPUS[n][2] not in ids}
    unnamed = [n for n, (_, ids) in verdicts.items() if not ids]
    share = len(right) / len(CORPUS)
    print(f"\nrealistic bugs (training, kv_cache, gpt2_loading): {len(CORPUS)}; named "
          f"correctly {len(right)} ({share:.0%}), wrongly {len(wrong)} "
          f"({len(wrong) / len(CORPUS):.0%}), unnamed {unnamed}; wrong: {wrong}")
    assert not wrong
    assert share >= 0.8
