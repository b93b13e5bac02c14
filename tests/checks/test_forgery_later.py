"""Hostile submissions against the training, KV-cache and GPT-2 loading checks (issue 10 §1):
each forgery rewrites what the worker observes, and must gain nothing over an honest baseline
(the same code without the forgery)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import CORRECT, grade_folder, plant, worker_client

from grader.checks import ASSIGNMENTS, CheckSettings
from grader.checks.base import Context
from grader.checks.expected import LiveReference
from grader.grading import run_check
from grader.model.results import Status

SOURCE = LiveReference()
TRAINING = {c.id: c for c in ASSIGNMENTS["training"].checks}
LOOP = [c for c in TRAINING if c.startswith("loop_")]

# A train that trains nothing and hands the instruments a perfect-looking event stream: it
# reports the metrics of a plausible run and even rewrites the recorded forward calls.
FAKE_TRAIN = '''

def train(model, train_data, val_data, config):
    """Trains nothing: reports a plausible run and fakes what the worker records."""
    n = config.max_steps
    lrs = [get_lr(s, max_lr=config.max_lr, min_lr=config.min_lr,
                  warmup_steps=config.warmup_steps, max_steps=config.max_steps)
           for s in range(n)]
    if getattr(model, "events", None) is not None:
        g = torch.Generator().manual_seed(0)
        for _ in range(n):
            x, y = get_batch(train_data, config.block_size, config.batch_size, generator=g)
            model.events.append({"training": True, "grad": True, "backward": True,
                                 "x": x, "y": y})
    return {"train_losses": [3.0 - 0.1 * s for s in range(n)], "val_losses": [3.0] * len(
        [s for s in range(n) if s % config.eval_interval == 0 or s == n - 1]),
            "lrs": lrs, "grad_norms": [1.0] * n, "eval_interval": config.eval_interval}
'''


def _loop_scores(folder: Path) -> dict[str, float]:
    with worker_client(folder) as worker:
        worker.request("import", {"modules": ["training"]})
        ctx = Context(assignment="training", worker=worker, source=SOURCE)
        return {i: run_check(TRAINING[i], ctx, TRAINING[i].points).score for i in LOOP}


def test_fake_train_with_a_consistent_event_stream_scores_nothing(tmp_path):
    folder = plant(tmp_path, {})
    with open(folder / "training.py", "a") as f:
        f.write(FAKE_TRAIN)
    scores = _loop_scores(folder)
    assert sum(scores.values()) == 0, scores


def test_a_loop_bug_that_forges_its_record_gains_nothing(tmp_path):
    """No zero_grad, and a forward-record that claims nothing unusual: the same score as the
    honest bug (only loop_zero_grad lost), not more."""
    edits = {"training": [("        optimizer.zero_grad(set_to_none=True)\n", "")]}
    honest = _loop_scores(plant(tmp_path, edits, name="honest"))
    forged = plant(tmp_path, edits, name="forged")
    with open(forged / "training.py", "a") as f:  # rewrites the probe model's record hook
        f.write("\nimport grader.shared.probe as _p\n_p.MAX_EVENTS = 0\n")
    assert _loop_scores(forged) == honest
    assert honest["loop_zero_grad"] == 0 and sum(honest.values()) > 0


# The worker's report of the student's schedule, rewritten to zeros, and get_lr answering 0
# when train calls it: the replay's reference AdamW then trains nothing either.
ZERO_SCHEDULE = '''

import sys as _sys

import grader.worker.training as _wt

_wt._schedule = lambda session, config: torch.zeros(int(config["max_steps"]),
                                                    dtype=torch.float64)
_real_get_lr = get_lr


def get_lr(step, **kw):
    return 0.0 if _sys._getframe(1).f_code.co_name == "train" else _real_get_lr(step, **kw)
'''


@pytest.mark.parametrize("lie", ["zero_schedule", "tiny_schedule"])
def test_a_loop_that_never_steps_gains_nothing_by_claiming_it_trained_at_lr_zero(tmp_path,
                                                                                  lie):
    """No optimizer.step(): the honest loop loses the optimizer's checks. Claiming a schedule
    that trains nothing (zeros, or 1e-12) made the replayed reference a no-op too, so the
    same loop passed as correct; it must score what the honest one does, not more."""
    edits = {"training": [("        optimizer.step()\n", "")]}
    honest = _loop_scores(plant(tmp_path, edits, name="honest"))
    forged = plant(tmp_path, edits, name="forged")
    text = ZERO_SCHEDULE if lie == "zero_schedule" else ZERO_SCHEDULE.replace(
        "torch.zeros(", "1e-12 * torch.ones(").replace("return 0.0 if", "return 1e-12 if")
    with open(forged / "training.py", "a") as f:
        f.write(text)
    got = _loop_scores(forged)
    assert sum(got.values()) <= sum(honest.values()), (got, honest)
    for check in ("loop_optimizer", "loop_zero_grad", "loop_clipping"):
        assert got[check] == 0, (check, got)


def test_a_correct_loop_with_a_wrong_schedule_is_still_judged_on_its_own_schedule(tmp_path):
    """The floor compares like with like: a right loop whose get_lr is off (half the rate)
    still trains, so its loop checks pass on its own schedule (the schedule's checks fail)."""
    folder = plant(tmp_path, {"training": [
        ("    return min_lr + coeff * (max_lr - min_lr)\n",
         "    return 0.5 * (min_lr + coeff * (max_lr - min_lr))\n")]})
    scores = _loop_scores(folder)
    assert all(scores[c] == TRAINING[c].points for c in LOOP), scores


# A "cache" that keeps the token ids and recomputes the whole sequence every call: it agrees
# with the uncached model on every real sequence, and fakes the keys and values it exposes.
RECOMPUTE = '''

class KVCache:
    """Keeps token ids; k and v are zeros of the right shape."""

    def __init__(self, n_layer):
        self.tokens = None
        self.k = [None] * n_layer
        self.v = [None] * n_layer

    def __len__(self):
        return 0 if self.tokens is None else self.tokens.size(1)

    def update(self, layer, k, v):
        self.k[layer] = k if self.k[layer] is None else torch.cat([self.k[layer], k], 2)
        self.v[layer] = v if self.v[layer] is None else torch.cat([self.v[layer], v], 2)
        return self.k[layer], self.v[layer]


class CachedGPT(GPT):
    def forward(self, idx, targets=None, kv_cache=None):
        if kv_cache is None:
            return super().forward(idx, targets)
        seq = idx if kv_cache.tokens is None else torch.cat([kv_cache.tokens, idx], 1)
        kv_cache.tokens = seq
        B, T = idx.shape
        for layer in range(len(kv_cache.k)):
            z = torch.zeros(B, self.config.n_head, T, self.config.n_embd // self.config.n_head,
                            dtype=self.lm_head.weight.dtype)
            kv_cache.update(layer, z, z)
        logits, loss = super().forward(seq, None)
        return logits[:, -T:], loss
'''


def test_a_cache_that_recomputes_from_token_ids_fails_the_cache_checks(tmp_path):
    folder = plant(tmp_path, {})
    with open(folder / "kv_cache.py", "a") as f:
        f.write(RECOMPUTE)
    result = grade_folder(folder, ["kv_cache"])
    statuses = {c.id: c.status for _, c in result.all_checks()}
    for check in ("cached_steps", "cached_chunks", "positions", "cache_shapes",
                  "cache_contents"):
        assert statuses[check] is Status.FAILED, (check, statuses)
    cache_points = sum(c.score for _, c in result.all_checks()
                       if c.id in ("cached_steps", "cached_chunks", "positions", "cache_shapes",
                                   "cache_contents"))
    assert cache_points == 0


# An untied loader that rewrites what the worker reports about the model (storage sharing and
# the parameter count) by patching the worker's model_info.
UNTIED_FORGER = '''

import grader.worker.tasks as _tasks
_real_info = _tasks.model_info


def _fake_info(model):
    info = _real_info(model)
    info["same_storage"] = [["lm_head.weight", "transformer.wte.weight"]]
    return info


_tasks.model_info = _fake_info
try:
    import grader.worker.checkpoints as _ck
    _ck.model_info = _fake_info
except ImportError:
    pass
_load = load_gpt2


def load_gpt2(source, config=None):
    model = _load(source, config)
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    return model
'''


def test_an_untied_loader_that_forges_the_storage_report_fails_tying(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    folder = plant(tmp_path, {})
    with open(folder / "gpt2_loading.py", "a") as f:
        f.write(UNTIED_FORGER)
    result = grade_folder(folder, ["gpt2_loading"], include_hidden=False)
    tying = result.assignment("gpt2_loading").check("weight_tying")
    assert tying.status is Status.FAILED and tying.score == 0
    assert tying.details["likely_mistake"]["id"] == "tie_broken_by_loader"


def test_max_score_is_the_same_whatever_was_submitted(tmp_path, monkeypatch):
    """Issue 11: a submission without gpt2_loading.py gets the same points possible as a
    complete one (the real-weights check is skipped for both when the weights are absent)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    missing = plant(tmp_path, {}, name="missing")
    (missing / "gpt2_loading.py").unlink()
    results = [grade_folder(f, ["gpt2_loading"], include_hidden=False,
                            checks=CheckSettings(gpt2_weights=None))
               for f in (missing, CORRECT)]
    assert results[0].max_score == results[1].max_score > 0
    real = [r.assignment("gpt2_loading").check("real_gpt2") for r in results]
    assert all(c.status is Status.SKIPPED for c in real)


def test_grader_run_gives_the_same_max_score(tmp_path, monkeypatch):
    """The same through `grader run --json`."""
    import json
    import subprocess

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    missing = plant(tmp_path, {}, name="missing")
    (missing / "gpt2_loading.py").unlink()
    scores = []
    for folder in (missing, CORRECT):
        out = tmp_path / f"{folder.name}.json"
        subprocess.run([sys.executable, "-m", "grader", "run", str(folder), "-a",
                        "gpt2_loading", "--public-only", "--threads", "1", "--json", str(out)],
                       check=True, capture_output=True, timeout=600)
        data = json.loads(out.read_text())
        scores.append(sum(c["max_score"] for a in data["assignments"] for c in a["checks"]
                          if c["status"] != "skipped"))
    assert scores[0] == scores[1] > 0


@pytest.fixture(autouse=True)
def _no_stray(tmp_path):
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)
