"""The worker's ``load_checkpoint`` can run a loader with random initialisation off (the 124M
check): nothing is drawn while it runs, and everything is as before afterwards."""

from __future__ import annotations

import pytest
import torch

from grader.worker.checkpoints import _random_init_off


def test_random_fills_do_nothing_inside_and_work_again_after():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    with _random_init_off():
        layer = torch.nn.Linear(3, 4)
        weight = torch.zeros(5)
        torch.nn.init.normal_(weight)
        torch.nn.init.trunc_normal_(weight)
        weight.uniform_()
        assert torch.equal(weight, torch.zeros(5))
    assert torch.equal(torch.random.get_rng_state(), before)  # nothing was drawn
    assert layer.weight.shape == (4, 3)
    torch.nn.init.normal_(weight)
    assert not torch.equal(weight, torch.zeros(5))


def test_init_comes_back_when_the_loader_raises():
    with pytest.raises(ValueError), _random_init_off():
        raise ValueError("a loader that fails")
    w = torch.zeros(100)
    w.uniform_()
    assert float(w.abs().sum()) > 0
