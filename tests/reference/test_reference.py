"""Tests of the reference solutions and of the student stubs made from them.

The reference is what every student submission is graded against, so it is checked here against
an independent implementation (Hugging Face's GPT-2) and against the conventions its docstrings
promise. The stubs in ``assignments/`` must expose the same names and signatures.
"""

import dataclasses
import importlib.util
import inspect
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reference
from reference import (
    GPT,
    CausalSelfAttention,
    GPTConfig,
    MultiHeadAttention,
    causal_mask,
    scaled_dot_product_attention,
)

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = ROOT / "assignments"
STUB_MODULES = ("attention", "causal_mask", "block")  # in import order: each needs the previous

# The four GPT-2 weights stored as Conv1D (in, out) instead of nn.Linear (out, in).
CONV1D_SUFFIXES = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)


# --------------------------------------------------------------------------- Hugging Face parity


def _hf_model(n_layer, n_head, n_embd, vocab_size, n_positions, seed):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    # HF initialises biases to 0 and LayerNorms to (1, 0); perturb everything so that a swapped
    # bias, a missing LayerNorm affine or a wrong transpose cannot hide behind a zero.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _hf_to_reference(hf_state):
    out = {}
    for name, tensor in hf_state.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers of older transformers versions, not parameters
        out[name] = tensor.t() if name.endswith(CONV1D_SUFFIXES) else tensor
    out["lm_head.weight"] = out["transformer.wte.weight"]  # tied in both models
    return out


@pytest.mark.parametrize(
    ("n_head", "batch", "T"),
    [(2, 2, 17), (2, 1, 31), (1, 2, 9), (4, 2, 12), (4, 1, 1), (2, 2, 1)],
)
def test_matches_hugging_face_gpt2(n_head, batch, T):
    n_layer, n_embd, vocab, n_pos = 2, 64, 99, 32
    hf = _hf_model(n_layer, n_head, n_embd, vocab, n_pos, seed=1000 + n_head * 10 + T)
    ref = GPT(
        GPTConfig(block_size=n_pos, vocab_size=vocab, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    )
    ref.load_state_dict(_hf_to_reference(hf.state_dict()), strict=True)
    ref.eval()
    assert ref.lm_head.weight is ref.transformer.wte.weight  # loading kept the tie

    g = torch.Generator().manual_seed(T)
    idx = torch.randint(0, vocab, (batch, T), generator=g)
    targets = torch.randint(0, vocab, (batch, T), generator=g)
    with torch.no_grad():
        hf_logits = hf(idx).logits
        logits, loss = ref(idx, targets)
    assert logits.shape == (batch, T, vocab)
    assert (logits - hf_logits).abs().max().item() <= 1e-5
    expected_loss = F.cross_entropy(hf_logits.view(-1, vocab), targets.view(-1))
    assert abs(loss.item() - expected_loss.item()) <= 1e-5

    # float64: both sides support it, so the agreement must be far tighter.
    hf.double()
    ref.double()
    with torch.no_grad():
        hf64 = hf(idx).logits
        ref64, _ = ref(idx)
    assert ref64.dtype == torch.float64
    assert (ref64 - hf64).abs().max().item() <= 1e-10


# --------------------------------------------------------------------------- GPT sanity


def _small_gpt(seed=0, n_layer=2, n_head=2, n_embd=32, vocab=50, block_size=16):
    torch.manual_seed(seed)
    return GPT(
        GPTConfig(
            block_size=block_size, vocab_size=vocab, n_layer=n_layer, n_head=n_head, n_embd=n_embd
        )
    )


def test_weights_are_tied():
    model = _small_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.bias is None


def test_parameter_count_of_124m_config():
    with torch.device("meta"):
        model = GPT(GPTConfig())
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.num_parameters() == 124_439_808


def test_num_parameters_counts_tied_matrix_once():
    model = _small_gpt()
    total = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == total
    untied = sum(t.numel() for t in model.state_dict().values())
    assert untied - total == model.transformer.wte.weight.numel()


def test_init_statistics():
    n_layer = 4
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=256, n_layer=n_layer, n_head=4, n_embd=128))
    proj_std = 0.02 / math.sqrt(2 * n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert abs(p.std().item() - proj_std) <= 0.1 * proj_std, name
        elif name.startswith("transformer.w") or name.endswith(("c_attn.weight", "c_fc.weight")):
            assert abs(p.std().item() - 0.02) <= 0.1 * 0.02, name
            assert abs(p.mean().item()) <= 0.002, name
        elif ".ln_" in name or "ln_f" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(p == expected), name
        else:
            assert name.endswith("bias"), name
            assert torch.all(p == 0), name


def test_logits_full_and_loss_near_ln_v_at_init():
    model = _small_gpt(vocab=50)
    idx = torch.randint(0, 50, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, 50) and loss is None
    _, loss = model(idx, torch.randint(0, 50, (3, 10)))
    assert loss.dim() == 0
    assert abs(loss.item() - math.log(50)) < 0.3


def test_causality_of_the_model():
    model = _small_gpt().eval()
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 50, (2, 12), generator=g)
    with torch.no_grad():
        base, _ = model(idx)
        for t in (0, 5, 10):
            changed = idx.clone()
            changed[:, t + 1 :] = torch.randint(0, 50, changed[:, t + 1 :].shape, generator=g)
            out, _ = model(changed)
            assert torch.equal(out[:, : t + 1], base[:, : t + 1])
            assert not torch.equal(out[:, t + 1 :], base[:, t + 1 :])


def test_sequence_longer_than_block_size_raises():
    model = _small_gpt(block_size=8)
    model(torch.zeros(1, 8, dtype=torch.long))  # exactly block_size is fine
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


# --------------------------------------------------------------------------- attention and mask


def test_causal_mask_table():
    expected = torch.tensor(
        [[True, True, True, True, False], [True, True, True, True, True]], dtype=torch.bool
    )
    mask = causal_mask(2, 5)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)
    assert torch.equal(causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(1, 6), torch.ones(1, 6, dtype=torch.bool))


@pytest.mark.parametrize(("t_q", "t_k"), [(3, 2), (0, 4), (0, 0), (1, 0), (-1, 3)])
def test_causal_mask_rejects_bad_sizes(t_q, t_k):
    with pytest.raises(ValueError):
        causal_mask(t_q, t_k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_weights_and_values(dtype):
    g = torch.Generator().manual_seed(0)
    lead, t_q, t_k, d_k, d_v = (2, 3), 4, 6, 5, 7
    q = torch.randn(*lead, t_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*lead, t_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*lead, t_k, d_v, generator=g, dtype=dtype)
    mask = causal_mask(t_q, t_k)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (*lead, t_q, d_v) and weights.shape == (*lead, t_q, t_k)
    assert out.dtype == dtype and weights.dtype == dtype
    assert torch.all(weights[..., ~mask] == 0)  # exactly zero, not merely tiny
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(*lead, t_q, dtype=dtype), atol=tol, rtol=0
    )
    # PyTorch's fused kernel uses the same convention (bool mask, True = take part).
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, atol=10 * tol, rtol=10 * tol)
    manual = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_k), dim=-1)
    unmasked_out, unmasked_w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(unmasked_w, manual, atol=tol, rtol=tol)
    torch.testing.assert_close(unmasked_out, manual @ v, atol=10 * tol, rtol=10 * tol)


def test_multi_head_attention_shapes_and_mask_broadcast():
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 3)
    assert (mha.n_embd, mha.n_head) == (24, 3)
    assert mha.c_attn.weight.shape == (72, 24) and mha.c_proj.weight.shape == (24, 24)
    x = torch.randn(2, 5, 24)
    y = mha(x)
    assert y.shape == (2, 5, 24)
    all_true = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    assert torch.equal(mha(x, all_true), y)
    with pytest.raises(AssertionError):
        MultiHeadAttention(10, 3)


def test_causal_self_attention_state_dict_and_mask():
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 4, block_size=8)
    assert attn.block_size == 8
    assert set(attn.state_dict()) == {
        "c_attn.weight",
        "c_attn.bias",
        "c_proj.weight",
        "c_proj.bias",
    }
    x = torch.randn(2, 6, 16)
    expected = MultiHeadAttention.forward(attn, x, causal_mask(6, 6))
    torch.testing.assert_close(attn(x), expected, atol=0, rtol=0)


# --------------------------------------------------------------------------- stubs


@pytest.fixture
def stubs(monkeypatch):
    """Import the stub modules under their bare names, as a student's submission would be."""
    for name in STUB_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(ASSIGNMENTS))
    modules = {}
    for name in STUB_MODULES:
        spec = importlib.util.spec_from_file_location(name, ASSIGNMENTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)  # the next stub imports it by name
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


def _public_api(module):
    """Names the module defines itself (not the ones it imports), minus private ones."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
    }


def _signature(fn):
    """The signature with annotations reduced to names: stub and reference classes differ."""
    sig = inspect.signature(fn)

    def name(annotation):
        return getattr(annotation, "__qualname__", annotation)

    params = [p.replace(annotation=name(p.annotation)) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=name(sig.return_annotation))


def _methods(cls):
    return {n: f for n, f in vars(cls).items() if inspect.isfunction(f)}


@pytest.mark.parametrize("name", STUB_MODULES)
def test_stub_api_matches_reference(stubs, name):
    stub = stubs[name]
    ref = importlib.import_module(f"reference.{name}")
    stub_api, ref_api = _public_api(stub), _public_api(ref)
    assert set(stub_api) == set(ref_api)
    assert (stub.__doc__ or "").strip()
    for attr, ref_obj in ref_api.items():
        stub_obj = stub_api[attr]
        assert inspect.getdoc(stub_obj) == inspect.getdoc(ref_obj), attr
        if inspect.isclass(ref_obj):
            assert set(_methods(stub_obj)) == set(_methods(ref_obj)), attr
            for meth, ref_fn in _methods(ref_obj).items():
                stub_sig = _signature(_methods(stub_obj)[meth])
                assert stub_sig == _signature(ref_fn), f"{attr}.{meth}"
                assert inspect.getdoc(_methods(stub_obj)[meth]) == inspect.getdoc(ref_fn)
            assert [b.__name__ for b in stub_obj.__mro__] == [b.__name__ for b in ref_obj.__mro__]
        else:
            assert _signature(stub_obj) == _signature(ref_obj), attr


def test_stub_config_is_complete(stubs):
    stub_fields = dataclasses.fields(stubs["block"].GPTConfig)
    ref_fields = dataclasses.fields(GPTConfig)
    assert [(f.name, f.type, f.default) for f in stub_fields] == [
        (f.name, f.type, f.default) for f in ref_fields
    ]
    assert dataclasses.asdict(stubs["block"].GPTConfig()) == dataclasses.asdict(GPTConfig())


def test_stubs_raise_not_implemented(stubs):
    sdpa = stubs["attention"].scaled_dot_product_attention
    q = torch.randn(1, 2, 4)
    with pytest.raises(NotImplementedError):
        sdpa(q, q, q)
    with pytest.raises(NotImplementedError):
        stubs["causal_mask"].causal_mask(2, 3)

    ctor_args = {
        "MultiHeadAttention": (8, 2),
        "CausalSelfAttention": (8, 2, 4),
        "MLP": (8,),
        "Block": (8, 2, 4),
        "GPT": (
            stubs["block"].GPTConfig(block_size=4, vocab_size=10, n_layer=1, n_head=2, n_embd=8),
        ),
    }
    checked = set()
    for module in stubs.values():
        for name, obj in _public_api(module).items():
            if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
                continue
            with pytest.raises(NotImplementedError):
                obj(*ctor_args[name])
            # The constructor raises, so build a bare module to reach the other methods.
            bare = obj.__new__(obj)
            nn.Module.__init__(bare)
            for meth, fn in _methods(obj).items():
                if meth == "__init__":
                    continue
                n_args = (
                    sum(
                        p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
                        for p in inspect.signature(fn).parameters.values()
                    )
                    - 1
                )
                with pytest.raises(NotImplementedError):
                    getattr(bare, meth)(*[None] * n_args)
            checked.add(name)
    assert checked == set(ctor_args)


def test_reference_package_reexports():
    expected = {
        "scaled_dot_product_attention",
        "MultiHeadAttention",
        "causal_mask",
        "CausalSelfAttention",
        "MLP",
        "Block",
        "GPTConfig",
        "GPT",
    }
    assert set(reference.__all__) == expected
    assert all(hasattr(reference, n) for n in expected)
