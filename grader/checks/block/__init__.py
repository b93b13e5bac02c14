"""Checks of assignment 3: the MLP, the pre-norm transformer block and the GPT model."""

from __future__ import annotations

import math

import torch

from grader.checks.base import Assignment, CheckFailed, Context, ok
from grader.checks.block import mistakes as catalogue
from grader.checks.common import (
    F64_ATOL,
    F64_RTOL,
    assert_gradients,
    forward_backward,
    random_parameters,
    require_finite,
)
from grader.checks.compare import assert_close, assert_shape
from grader.checks.harness import T, call_spec, new, run_module, seeded
from grader.diagnosis import Diagnosis, likely

ASSIGNMENT = Assignment(
    "block", "The transformer block and the GPT model",
    course="series4-llms-and-transformers-summary.md Module 4.3 (nanoGPT)",
)
check = ASSIGNMENT.check

# A small GPT for value checks: T < block_size, several heads and layers, an odd vocabulary.
SMALL = {"block_size": 16, "vocab_size": 99, "n_layer": 2, "n_head": 4, "n_embd": 32}
# Large enough that standard deviations are estimated to ~0.3 %, small enough to build in ms.
INIT = {"block_size": 64, "vocab_size": 512, "n_layer": 4, "n_head": 4, "n_embd": 128}


def _config(cfg: dict[str, int]):
    return new("block", "GPTConfig", **cfg)


def _mlp_block_params(ctx: Context, what: str, n_embd: int, n_head: int = 4, block: int = 16):
    def build(ref):
        model = ref.MLP(n_embd) if what == "MLP" else ref.Block(n_embd, n_head, block)
        return random_parameters(model, seed=81)

    return ctx.expected(f"{what}_params/{n_embd}x{n_head}x{block}", build)


def _module_values(ctx: Context, cls: str, args: list[int], grads: bool):
    params = _mlp_block_params(ctx, cls, *args)
    n_embd = args[0]
    key = f"{cls}_values/{'x'.join(map(str, args))}"
    # Inputs with std 2: the tanh and the exact GELU differ most for |x| between 1 and 3.
    inp = ctx.inputs(key, lambda: {
        "x": torch.randn(2, 7, n_embd, generator=seeded(82), dtype=torch.float64) * 2,
        "g": torch.randn(2, 7, n_embd, generator=seeded(83), dtype=torch.float64)})

    def reference(ref):
        return forward_backward(ref.MLP(*args) if cls == "MLP" else ref.Block(*args), params, inp)

    exp = ctx.expected(key, reference)
    run = run_module(ctx, "block", cls, args=args, params=params, dtype="float64", tensors=inp,
                     calls=[call_spec(T("x"), requires_grad=("x",) if grads else (),
                                      grad_outputs={"out": "g"} if grads else None,
                                      param_grads=grads)],
                     what=f"`{cls}`")
    mistakes = catalogue.MLP if cls == "MLP" else catalogue.BLOCK
    return run.calls[0], exp, Diagnosis(ctx, key, reference, mistakes)


@check("mlp_values", "MLP: output equals the reference (GELU, tanh approximation)", 2,
       needs=("MLP",))
def mlp_values(ctx: Context):
    """``MLP(n_embd)`` with ``c_fc`` (C -> 4C), GPT-2's tanh-approximated GELU and ``c_proj``
    (4C -> C) gives the reference's output with the same weights (float64)."""
    call, exp, diagnosis = _module_values(ctx, "MLP", [32], grads=False)
    assert_close(call.output.tensor(), exp["y"], "the MLP's output", atol=F64_ATOL, rtol=F64_RTOL,
                 hint="GPT-2 uses nn.GELU(approximate='tanh'); also check c_fc is C -> 4C.",
                 diagnose=diagnosis.on("y"))
    return ok()


@check("block_values", "Block: output equals the reference (pre-norm, residuals)", 3,
       needs=("Block",))
def block_values(ctx: Context):
    """``Block(n_embd, n_head, block_size)`` computes ``x + attn(ln_1(x))`` then
    ``x + mlp(ln_2(x))``: the reference's output with the same weights (float64)."""
    call, exp, diagnosis = _module_values(ctx, "Block", [32, 4, 16], grads=False)
    assert_close(call.output.tensor(), exp["y"], "the block's output", atol=F64_ATOL,
                 rtol=F64_RTOL,
                 hint="Pre-norm: the LayerNorm goes inside each residual branch, and each "
                      "branch is added back to its input.", diagnose=diagnosis.on("y"))
    return ok()


@check("block_gradients", "MLP and Block: input and parameter gradients", 2, hidden=True,
       needs=("MLP", "Block"))
def block_gradients(ctx: Context):
    """Gradients of the input and every parameter of the MLP and the Block (float64)."""
    for cls, args in (("MLP", [32]), ("Block", [32, 4, 16])):
        assert_gradients(*_module_values(ctx, cls, args, grads=True))
    return ok()


def _gpt_params(ctx: Context):
    return ctx.expected("gpt_params", lambda ref: random_parameters(
        ref.GPT(ref.GPTConfig(**SMALL)), seed=91, std=0.2))


def _gpt_inputs(ctx: Context):
    def make():
        g = seeded(92)
        return {"idx": torch.randint(0, SMALL["vocab_size"], (2, 11), generator=g),
                "targets": torch.randint(0, SMALL["vocab_size"], (2, 11), generator=g),
                "one": torch.randint(0, SMALL["vocab_size"], (1, 1), generator=g),
                "full": torch.randint(0, SMALL["vocab_size"], (1, SMALL["block_size"]),
                                      generator=g)}

    return ctx.inputs("gpt_inputs", make)


def _gpt_reference(ctx: Context):
    params, inp = _gpt_params(ctx), _gpt_inputs(ctx)

    def compute(ref):
        model = ref.GPT(ref.GPTConfig(**SMALL)).double()
        model.load_state_dict({k: v for k, v in params.items()}, strict=False)
        out = {}
        for name in ("one", "full"):
            out[f"logits.{name}"] = model(inp[name])[0].detach()
        logits, loss = model(inp["idx"], inp["targets"])
        loss.backward()
        out.update({"logits": logits.detach(), "loss": loss.detach()})
        out.update({f"pgrad.{n}": p.grad for n, p in model.named_parameters()
                    if p.grad is not None})
        return out

    return (params, inp, ctx.expected("gpt_reference", compute),
            Diagnosis(ctx, "gpt_reference", compute, catalogue.GPT))


def _run_gpt(ctx: Context, grads: bool):
    params, inp, exp, diagnosis = _gpt_reference(ctx)
    calls = [call_spec(T("idx"), T("targets"), grad_outputs={"out.1": "one_scalar"} if grads
                       else None, param_grads=grads),
             call_spec(T("one")), call_spec(T("full"))]
    run = run_module(ctx, "block", "GPT", args=[_config(SMALL)], params=params, dtype="float64",
                     tensors={**inp, "one_scalar": torch.tensor(1.0, dtype=torch.float64)},
                     calls=calls, what="`GPT(config)(idx, targets)`")
    return run, exp, diagnosis


@check("gpt_logits", "GPT: logits and loss equal the reference with the same weights", 4,
       needs=("GPT", "GPTConfig"))
def gpt_logits(ctx: Context):
    """With the reference's state dict loaded, ``GPT(config)(idx, targets)`` returns the
    reference's ``(logits, loss)``: logits ``(B, T, vocab_size)`` for T < block_size, T = 1 and
    T = block_size (float64)."""
    run, exp, diagnosis = _run_gpt(ctx, grads=False)
    logits, loss = run.calls[0].output.tensor_tuple(2, "(logits, loss)")
    assert_close(logits, exp["logits"], "the logits", atol=F64_ATOL, rtol=F64_RTOL,
                 diagnose=diagnosis.on("logits"))
    assert_close(loss.reshape(()), exp["loss"], "the loss", atol=F64_ATOL, rtol=F64_RTOL,
                 diagnose=diagnosis.on("loss"))
    for i, name in ((1, "one"), (2, "full")):
        out = run.calls[i].output
        got = out.item(0).tensor() if out.description["kind"] in ("tuple", "list") else \
            out.tensor()
        assert_close(got, exp[f"logits.{name}"], f"the logits for T = "
                     f"{1 if name == 'one' else SMALL['block_size']}",
                     atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on(f"logits.{name}"))
    second = run.calls[1].output
    if second.description["kind"] in ("tuple", "list"):
        rest = second.item(1).description
        if rest["kind"] != "none":
            raise CheckFailed("GPT(config)(idx) without targets must return (logits, None)")
    return ok()


@check("gpt_gradients", "GPT: gradients of every parameter", 2, hidden=True,
       needs=("GPT", "GPTConfig"))
def gpt_gradients(ctx: Context):
    """The loss's gradient for every parameter equals the reference's (float64); with tied
    weights, ``lm_head.weight`` and ``transformer.wte.weight`` get the sum of both uses."""
    run, exp, diagnosis = _run_gpt(ctx, grads=True)
    call = run.calls[0]
    for name, g in sorted(call.param_grads.items()):
        if f"pgrad.{name}" not in exp:
            continue
        assert_close(g, exp[f"pgrad.{name}"], f"the gradient of `{name}`", atol=F64_ATOL,
                     rtol=F64_RTOL, diagnose=diagnosis.on(f"pgrad.{name}"))
    if call.params_without_grad:
        raise CheckFailed("no gradient reached " + ", ".join(call.params_without_grad[:6]))
    return ok()


def _fresh(ctx: Context):
    """The student's own model, freshly initialised (seed 0), and its parameters."""
    return run_module(ctx, "block", "GPT", args=[_config(INIT)], return_params=True, seed=0,
                      what="`GPT(config)`")


@check("gpt_init", "GPT: initialisation (std 0.02, scaled residual projections)", 2,
       needs=("GPT", "GPTConfig"))
def gpt_init(ctx: Context):
    """Linear and embedding weights ~ N(0, 0.02); every ``c_proj.weight`` ~
    N(0, 0.02/sqrt(2 n_layer)); biases 0; LayerNorm weight 1 and bias 0."""
    params = _fresh(ctx).params
    measured = _init_stats(params)
    diagnosis = Diagnosis(ctx, "init_std", _reference_init_stds, catalogue.INIT)
    for label, m in measured.items():
        std, mean, target = m["std"], m["mean"], m["expected_std"]
        # 10 %: the estimate's own error at these sizes is ~0.3 %; N(0, 0.02) against
        # 0.02/sqrt(8) (unscaled residuals) or PyTorch's defaults differ by far more.
        if abs(std - target) > 0.1 * target or abs(mean) > 0.1 * target:
            stds = {"std": torch.tensor([v["std"] for v in measured.values()])}
            targets = {"std": torch.tensor([v["expected_std"] for v in measured.values()])}
            raise CheckFailed(
                f"{label} has std {std:.4g} (mean {mean:.2g}); expected N(0, {target:.4g})",
                hint="GPT-2 initialises weights with std 0.02 and the residual projections "
                     "(every c_proj.weight) with 0.02/sqrt(2*n_layer), so that the residual "
                     "stream's variance does not grow with depth.", measured=measured,
                **diagnosis.details(stds, targets, atol=0.0, rtol=0.1))
    for name, p in params.items():
        if name.endswith(".bias") and bool((p != 0).any()):
            raise CheckFailed(f"`{name}` is not initialised to zero", measured=measured)
        if name.split(".")[-2].startswith("ln") and name.endswith(".weight") and bool(
                (p != 1).any()):
            raise CheckFailed(f"`{name}` is not initialised to one", measured=measured)
    return ok(measured=measured)


def _init_stats(params: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Std and mean of each group of weights of a freshly initialised GPT(INIT), with the std
    GPT-2's initialisation gives it."""
    proj_std = 0.02 / math.sqrt(2 * INIT["n_layer"])
    groups = {
        "token embedding `transformer.wte.weight`": (["transformer.wte.weight"], 0.02),
        "position embedding `transformer.wpe.weight`": (["transformer.wpe.weight"], 0.02),
        "`attn.c_attn.weight`": ([n for n in params if n.endswith("attn.c_attn.weight")], 0.02),
        "`mlp.c_fc.weight`": ([n for n in params if n.endswith("mlp.c_fc.weight")], 0.02),
        "the residual projections `c_proj.weight`":
            ([n for n in params if n.endswith("c_proj.weight")], proj_std),
    }
    measured = {}
    for label, (names, target) in groups.items():
        present = [n for n in names if n in params]
        if not present:
            raise CheckFailed(f"no parameter named like {label} was found")
        values = torch.cat([params[n].detach().double().flatten() for n in present])
        measured[label] = {"std": float(values.std()), "expected_std": target,
                           "mean": float(values.mean())}
    return measured


def _reference_init_stds(ref) -> dict[str, torch.Tensor]:
    """The group stds of the reference's (or a variant's) freshly initialised GPT(INIT)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ref.GPT(ref.GPTConfig(**INIT))
    stats = _init_stats(dict(model.named_parameters(remove_duplicate=False)))
    return {"std": torch.tensor([v["std"] for v in stats.values()])}


@check("gpt_init_loss", "GPT: loss at initialisation is close to ln(vocab_size)", 2,
       needs=("GPT", "GPTConfig"))
def gpt_init_loss(ctx: Context):
    """The freshly initialised model's loss on random tokens is within 0.1 of ln V: a model
    that knows nothing spreads its probability evenly over the V tokens."""
    inp = ctx.inputs("init_loss", lambda: {
        "idx": torch.randint(0, INIT["vocab_size"], (4, 32), generator=seeded(101)),
        "targets": torch.randint(0, INIT["vocab_size"], (4, 32), generator=seeded(102))})
    run = run_module(ctx, "block", "GPT", args=[_config(INIT)], tensors=inp, seed=0,
                     calls=[call_spec(T("idx"), T("targets"))], what="`GPT(config)(idx, targets)`")
    logits, loss = run.calls[0].output.tensor_tuple(2, "(logits, loss)")
    assert_shape(logits, (4, 32, INIT["vocab_size"]), "the logits")
    require_finite(loss, "the loss")
    value, ln_v = float(loss.reshape(-1)[0]), math.log(INIT["vocab_size"])
    # With std-0.02 tied embeddings the logits have std ~0.02*sqrt(n_embd) = 0.23, which adds
    # ~var/2 = 0.03 nats above ln V; 0.1 leaves room for seeds. Unscaled N(0, 1) embeddings
    # start several nats higher.
    if abs(value - ln_v) > 0.1:
        raise CheckFailed(f"the loss at initialisation is {value:.4f}; expected about "
                          f"ln({INIT['vocab_size']}) = {ln_v:.4f} (within 0.1)",
                          hint="Large initial weights make confident random predictions; check "
                               "the std-0.02 init of the embeddings and lm_head.",
                          loss=value, ln_vocab=ln_v)
    return ok(loss=value, ln_vocab=ln_v)


@check("gpt_param_count", "GPT: number of parameters", 1, needs=("GPT", "GPTConfig"))
def gpt_param_count(ctx: Context):
    """The model has exactly the reference's number of (unique) parameters."""
    run = run_module(ctx, "block", "GPT", args=[_config(INIT)], what="`GPT(config)`")
    expected = int(ctx.expected("param_count", lambda ref: {
        "n": torch.tensor(ref.GPT(ref.GPTConfig(**INIT)).num_parameters())})["n"])
    got = run.info["num_parameters"]
    if got != expected:
        extra = got - expected
        why = ""
        copied = extra == INIT["vocab_size"] * INIT["n_embd"]
        if copied:
            why = " — exactly vocab_size x n_embd: is lm_head a separate copy of wte?"
        raise CheckFailed(f"the model has {got:,} parameters, expected {expected:,} "
                          f"({extra:+,}){why}", actual=got, expected=expected,
                          **(likely("untied_embeddings") if copied else {}))
    return ok(parameters=got)


@check("gpt_weight_tying", "GPT: lm_head and wte are one shared parameter", 2,
       needs=("GPT", "GPTConfig"))
def gpt_weight_tying(ctx: Context):
    """``lm_head.weight`` is the same Parameter object as ``transformer.wte.weight`` (so they
    share storage and gradients), not a copy."""
    run = run_module(ctx, "block", "GPT", args=[_config(SMALL)], what="`GPT(config)`")
    pair = {"lm_head.weight", "transformer.wte.weight"}
    if not pair <= set(run.info["parameters"]):
        raise CheckFailed("expected parameters `lm_head.weight` and `transformer.wte.weight`")
    if any(pair <= set(group) for group in run.info["same_object"]):
        return ok()
    if any(pair <= set(group) for group in run.info["same_storage"]):
        raise CheckFailed("lm_head.weight and transformer.wte.weight share storage but are two "
                          "Parameter objects: gradients and optimizer updates are not shared",
                          hint="Tie them with `self.lm_head.weight = self.transformer.wte.weight`.")
    raise CheckFailed("lm_head.weight is a separate tensor from transformer.wte.weight (copied, "
                      "not tied)",
                      hint="Tie them with `self.lm_head.weight = self.transformer.wte.weight`.",
                      **likely("untied_embeddings"))


@check("gpt_shapes", "GPT: logits shape, loss only with targets, T <= block_size", 1,
       needs=("GPT", "GPTConfig"))
def gpt_shapes(ctx: Context):
    """``GPT(config)(idx)`` returns ``(logits, None)`` with logits ``(B, T, vocab_size)``, and
    ``(logits, loss)`` with a scalar loss when targets are given."""
    inp = _gpt_inputs(ctx)
    run = run_module(ctx, "block", "GPT", args=[_config(SMALL)], tensors=inp,
                     calls=[call_spec(T("idx")), call_spec(T("idx"), T("targets"))],
                     what="`GPT(config)(idx)`")
    first = run.calls[0].output
    logits = first.item(0).tensor()
    assert_shape(logits, (2, 11, SMALL["vocab_size"]), "the logits for idx of shape (2, 11)")
    if first.item(1).description["kind"] != "none":
        raise CheckFailed("without targets the loss must be None")
    _, loss = run.calls[1].output.tensor_tuple(2, "(logits, loss)")
    if loss.numel() != 1:
        raise CheckFailed(f"the loss has shape {tuple(loss.shape)}; expected a scalar (the mean "
                          "cross-entropy over every position)")
    require_finite(loss, "the loss")
    return ok()
