"""Checks of assignment 3: the MLP, the pre-norm transformer block and the GPT model."""

from __future__ import annotations

import math

import torch

from grader.checks.base import Assignment, CheckFailed, Context, ok
from grader.checks.block import mistakes  # noqa: F401 - registers the mistakes
from grader.checks.common import (
    F64_ATOL,
    F64_RTOL,
    assert_gradients,
    forward_backward,
    random_parameters,
    require_deterministic,
    require_finite,
    require_value_error,
)
from grader.checks.compare import assert_close, assert_shape, diagnosed
from grader.checks.harness import T, call_spec, new, run_module
from grader.diagnosis import Diagnosis, affecting, likely, mistake
from grader.diagnosis.hook import named

ASSIGNMENT = Assignment(
    "block", "The transformer block and the GPT model",
    course="series4-llms-and-transformers-summary.md Module 4.3 (nanoGPT)",
    trains=True,  # the GPT probe
)
check = ASSIGNMENT.check
# The block's values depend on the student's attention and mask too: every mistake planted in
# any of the three modules is compared.
MODULES = ("attention", "causal_mask", "block")

# A small GPT for value checks: T < block_size, several heads and layers, an odd vocabulary.
SMALL = {"block_size": 16, "vocab_size": 99, "n_layer": 2, "n_head": 4, "n_embd": 32}
# Large enough that standard deviations are estimated to ~0.3 %, small enough to build in ms.
INIT = {"block_size": 64, "vocab_size": 512, "n_layer": 4, "n_head": 4, "n_embd": 128}


def _config(cfg: dict[str, int]):
    return new("block", "GPTConfig", **cfg)


def _mlp_block_params(ctx: Context, what: str, n_embd: int, n_head: int = 4, block: int = 16):
    key = f"{what}_params/{n_embd}x{n_head}x{block}"

    def build(ref):
        model = ref.MLP(n_embd) if what == "MLP" else ref.Block(n_embd, n_head, block)
        return random_parameters(model, seed=ctx.seed_for(key))

    return ctx.expected(key, build)


def _module_values(ctx: Context, cls: str, args: list[int], grads: bool):
    params = _mlp_block_params(ctx, cls, *args)
    n_embd = args[0]
    key = f"{cls}_values/{'x'.join(map(str, args))}"
    # Inputs with std 2 (the tanh and the exact GELU differ most for |x| between 1 and 3), and
    # a second sequence with std 0.01, whose variance is small enough that a LayerNorm eps other
    # than 1e-5 shows.
    inp = ctx.inputs(key, lambda g: {
        "x": torch.randn(2, 7, n_embd, generator=g, dtype=torch.float64)
        * torch.tensor([2.0, 0.01], dtype=torch.float64).view(2, 1, 1),
        "g": torch.randn(2, 7, n_embd, generator=g, dtype=torch.float64)})

    def reference(ref):
        return forward_backward(ref.MLP(*args) if cls == "MLP" else ref.Block(*args), params, inp)

    exp = ctx.expected(key, reference)
    calls = [call_spec(T("x"), requires_grad=("x",) if grads else (),
                       grad_outputs={"out": "g"} if grads else None, param_grads=grads)]
    if not grads:
        calls.append(call_spec(T("x"), seed=1))  # the same input again, other random state
    run = run_module(ctx, "block", cls, args=args, params=params, dtype="float64", tensors=inp,
                     calls=calls, what=f"`{cls}`")
    if not grads:
        require_deterministic(run.calls[0].output.tensor(), run.calls[1].output.tensor(),
                              f"`{cls}`")
    return run.calls[0], exp, Diagnosis(ctx, key, reference, affecting(*MODULES))


@check("mlp_values", "MLP: output equals the reference (GELU, tanh approximation)", 2,
       needs=("MLP",))
def mlp_values(ctx: Context):
    """``MLP(n_embd)`` with ``c_fc`` (C -> 4C), GPT-2's tanh-approximated GELU and ``c_proj``
    (4C -> C) gives the reference's output with the same weights (float64)."""
    call, exp, diagnosis = _module_values(ctx, "MLP", [32], grads=False)
    assert_close(call.output.tensor(), exp["y"], "the MLP's output", atol=F64_ATOL, rtol=F64_RTOL,
                 diagnose=diagnosis.on("y"))
    return ok()


@check("block_values", "Block: output equals the reference (pre-norm, residuals)", 3,
       needs=("Block",))
def block_values(ctx: Context):
    """``Block(n_embd, n_head, block_size)`` computes ``x + attn(ln_1(x))`` then
    ``x + mlp(ln_2(x))``: the reference's output with the same weights (float64)."""
    call, exp, diagnosis = _module_values(ctx, "Block", [32, 4, 16], grads=False)
    assert_close(call.output.tensor(), exp["y"], "the block's output", atol=F64_ATOL,
                 rtol=F64_RTOL, diagnose=diagnosis.on("y"))
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
        ref.GPT(ref.GPTConfig(**SMALL)), seed=ctx.seed_for("gpt_params"), std=0.2))


def _gpt_inputs(ctx: Context):
    def make(g):
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
            try:
                out[f"logits.{name}"] = model(inp[name])[0].detach()
            except (IndexError, RuntimeError):
                # Only a planted variant gets here (positions from 1 run past the table at
                # T = block_size): it is still compared on the other outputs.
                continue
        logits, loss = model(inp["idx"], inp["targets"])
        loss.backward()
        out.update({"logits": logits.detach(), "loss": loss.detach()})
        out.update({f"pgrad.{n}": p.grad for n, p in model.named_parameters()
                    if p.grad is not None})
        return out

    return (params, inp, ctx.expected("gpt_reference", compute),
            Diagnosis(ctx, "gpt_reference", compute, affecting(*MODULES)))


def _run_gpt(ctx: Context, grads: bool, calls: tuple[str, ...] = ("idx",)):
    """The student's GPT with the reference's weights, run on ``calls`` (``"idx"``: the batch
    with targets, plus a repeat with another random state when not ``grads``; ``"one"``: T = 1;
    ``"full"``: T = block_size). One request per group, so that a model failing at
    T = block_size (positions from 1 run past the table) is still compared on the rest."""
    params, inp, exp, diagnosis = _gpt_reference(ctx)
    specs = []
    for name in calls:
        if name == "idx":
            specs.append(call_spec(T("idx"), T("targets"), grad_outputs={"out.1": "one_scalar"}
                                   if grads else None, param_grads=grads))
            if not grads:
                specs.append(call_spec(T("idx"), T("targets"), seed=1))
        else:
            specs.append(call_spec(T(name)))
    run = run_module(ctx, "block", "GPT", args=[_config(SMALL)], params=params, dtype="float64",
                     tensors={**inp, "one_scalar": torch.tensor(1.0, dtype=torch.float64)},
                     calls=specs, what="`GPT(config)(idx, targets)`")
    return run, exp, diagnosis


def _logits_of(out) -> torch.Tensor:
    return out.item(0).tensor() if out.description["kind"] in ("tuple", "list") else out.tensor()


@check("gpt_logits", "GPT: logits and loss equal the reference with the same weights", 4,
       needs=("GPT", "GPTConfig"))
def gpt_logits(ctx: Context):
    """With the reference's state dict loaded, ``GPT(config)(idx, targets)`` returns the
    reference's ``(logits, loss)``: logits ``(B, T, vocab_size)`` for T < block_size, T = 1 and
    T = block_size (float64); the same input twice gives the same output (eval mode)."""
    run, exp, diagnosis = _run_gpt(ctx, grads=False, calls=("idx", "one"))
    logits, loss = run.calls[0].output.tensor_tuple(2, "(logits, loss)")
    require_deterministic(logits, run.calls[1].output.tensor_tuple(2, "(logits, loss)")[0],
                          "`GPT(config)(idx, targets)`")
    assert_close(logits, exp["logits"], "the logits", atol=F64_ATOL, rtol=F64_RTOL,
                 diagnose=diagnosis.on("logits"))
    assert_close(loss.reshape(()), exp["loss"], "the loss", atol=F64_ATOL, rtol=F64_RTOL,
                 diagnose=diagnosis.on("loss"))
    second = run.calls[2].output
    assert_close(_logits_of(second), exp["logits.one"], "the logits for T = 1",
                 atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on("logits.one"))
    if second.description["kind"] in ("tuple", "list"):
        rest = second.item(1).description
        if rest["kind"] != "none":
            raise CheckFailed("GPT(config)(idx) without targets must return (logits, None)")
    full, _, _ = _run_gpt(ctx, grads=False, calls=("full",))
    assert_close(_logits_of(full.calls[0].output), exp["logits.full"],
                 f"the logits for T = block_size = {SMALL['block_size']}",
                 atol=F64_ATOL, rtol=F64_RTOL, diagnose=diagnosis.on("logits.full"))
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
    """The student's own model, freshly initialised (seed 0): its parameters, and its logits on
    a few tokens (to see that the parameters reported are the ones it computes with)."""
    inp = ctx.inputs("init_probe", lambda g: {
        "idx": torch.randint(0, INIT["vocab_size"], (1, 8), generator=g)})
    return run_module(ctx, "block", "GPT", args=[_config(INIT)], return_params=True, seed=0,
                      tensors=inp, calls=[call_spec(T("idx"), T("idx"))],
                      what="`GPT(config)`"), inp


def _reported_parameters_are_used(ctx: Context, run, inp) -> None:
    """The parameters the worker reports are a claim: the trusted side runs the reference GPT
    with them and compares with the logits the student's fresh model computed. They differ
    either because the report is not the model's (a forgery) or because the student's forward
    pass differs from the reference's; only when the forward pass is the reference's (as
    ``gpt_logits`` judges it, on the reference's weights) is a difference a failure here."""
    from grader.tolerance import within

    logits = _logits_of(run.calls[0].output).detach().double()
    params = {k: v.detach().double() for k, v in run.params.items()}

    def compute(ref):
        model = ref.GPT(ref.GPTConfig(**INIT)).double()
        head = params.pop("lm_head.weight", None)
        model.load_state_dict(params, strict=False)
        if head is not None:  # reported separately: an untied model, computed as such
            model.lm_head.weight = torch.nn.Parameter(head.clone())
        return {"logits": model(inp["idx"], inp["idx"])[0].detach()}

    try:
        theirs = compute(_trusted_reference(ctx))["logits"]
    except Exception:  # noqa: BLE001 - no reference here (a bundle) or unloadable names
        return
    if logits.shape != theirs.shape or within(logits, theirs, atol=1e-4, rtol=1e-4):
        return  # another shape: gpt_logits and gpt_shapes judge that
    gpt, exp, _ = _run_gpt(ctx, grads=False)
    forward_ok = within(gpt.calls[0].output.tensor_tuple(2, "(logits, loss)")[0],
                        exp["logits"], atol=F64_ATOL, rtol=F64_RTOL)
    if forward_ok:
        raise CheckFailed("the parameters your model reports are not the ones it computes with "
                          "(the reference's forward pass on them gives other logits than your "
                          "fresh model's)")


def _trusted_reference(ctx: Context):
    """The reference package on the instructor's side (None-safe for a bundle: raises)."""
    package = getattr(ctx.source, "package", None)
    if package is None:
        raise LookupError("no reference here")
    return package


@check("gpt_init", "GPT: initialisation (std 0.02, scaled residual projections)", 2,
       needs=("GPT", "GPTConfig"))
def gpt_init(ctx: Context):
    """Linear and embedding weights ~ N(0, 0.02); every ``c_proj.weight`` ~
    N(0, 0.02/sqrt(2 n_layer)); biases 0; LayerNorm weight 1 and bias 0.

    The initial values can only be seen through the worker's report; the report is checked
    against the model's own computation (:func:`_reported_parameters_are_used`), so a forged
    report costs this check unless the forward pass is wrong too (then gpt_logits has failed)."""
    run, inp = _fresh(ctx)
    params = run.params
    _reported_parameters_are_used(ctx, run, inp)
    measured = _init_stats(params)
    diagnosis = Diagnosis(ctx, "init_std", _reference_init_stds, affecting("block"))
    for label, m in measured.items():
        std, mean, target = m["std"], m["mean"], m["expected_std"]
        # 10 %: the estimate's own error at these sizes is ~0.3 %; N(0, 0.02) against
        # 0.02/sqrt(8) (unscaled residuals) or PyTorch's defaults differ by far more.
        if abs(std - target) > 0.1 * target or abs(mean) > 0.1 * target:
            stds = {"std": torch.tensor([v["std"] for v in measured.values()])}
            targets = {"std": torch.tensor([v["expected_std"] for v in measured.values()])}
            failure = CheckFailed(
                f"{label} has std {std:.4g} (mean {mean:.2g}); expected N(0, {target:.4g})",
                hint="GPT-2 initialises weights with std 0.02 and the residual projections "
                     "(every c_proj.weight) with 0.02/sqrt(2*n_layer), so that the residual "
                     "stream's variance does not grow with depth.", measured=measured)
            raise diagnosed(failure, diagnosis.details(stds, targets, atol=0.0, rtol=0.1))
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
    inp = ctx.inputs("init_loss", lambda g: {
        "idx": torch.randint(0, INIT["vocab_size"], (4, 32), generator=g),
        "targets": torch.randint(0, INIT["vocab_size"], (4, 32), generator=g)})
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
                          hint="A model that knows nothing spreads its probability evenly, so "
                               "its loss (the MEAN cross-entropy over every position) is about "
                               "ln V; weights much larger than std 0.02 make confident random "
                               "predictions instead.",
                          loss=value, ln_vocab=ln_v)
    return ok(loss=value, ln_vocab=ln_v)


@check("gpt_param_count", "GPT: num_parameters() counts the parameters", 1,
       needs=("GPT", "GPTConfig"))
def gpt_param_count(ctx: Context):
    """The student's own ``num_parameters()`` returns the model's number of parameters, the tied
    matrix counted once, for a small configuration drawn from the run's seed: compared with the
    count the trusted side computes from the configuration's shapes (the reference model).
    The worker's own parameter listing is never trusted for the verdict (code in the worker
    could rewrite it); it only helps the message."""
    cfg = _count_config(ctx)
    run = run_module(ctx, "block", "GPT", args=[_config(cfg)],
                     calls=[call_spec(method="num_parameters")],
                     what=f"`GPT({_shown(cfg)}).num_parameters()`")
    expected = int(ctx.expected("param_count", lambda ref: {
        "n": torch.tensor(ref.GPT(ref.GPTConfig(**cfg)).num_parameters())})["n"])
    out = run.calls[0].output
    if out.description["kind"] != "number":
        raise CheckFailed("`num_parameters()` returned "
                          f"{out.description['kind']}, expected an int")
    got = out.description["value"]
    if not isinstance(got, (int, float)) or got != int(got) or int(got) != expected:
        got_text = f"{int(got):,}" if isinstance(got, (int, float)) and got == got else str(got)
        extra = int(got) - expected if isinstance(got, (int, float)) and got == got else None
        twice = extra == cfg["vocab_size"] * cfg["n_embd"]
        # Both a double count and an untied copy give exactly vocab_size x n_embd too many;
        # which one, the count cannot tell.
        lm = named(["num_parameters_counts_tied_twice", "untied_embeddings"]) if twice else None
        raise CheckFailed(
            f"num_parameters() returns {got_text}, expected {expected:,}"
            + (f" ({extra:+,})" if extra is not None else "")
            + (" — exactly vocab_size x n_embd: the wte/lm_head matrix is counted twice, or "
               "lm_head is a copy" if twice else ""),
            hint=lm["hint"] if lm else _count_hint(run.info, got, expected),
            actual=got if isinstance(got, (int, float)) else str(got), expected=expected,
            **({"likely_mistake": lm} if lm else {}))
    return ok(num_parameters=expected)


def _count_config(ctx: Context) -> dict[str, int]:
    """A small configuration drawn from the run's seed: the count of one fixed configuration
    could be returned as a constant."""
    g = ctx.rng("param_count")

    def pick(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=g))

    n_head = (1, 2, 4)[pick(0, 2)]
    return {"block_size": pick(8, 64), "vocab_size": pick(20, 600), "n_layer": pick(1, 3),
            "n_head": n_head, "n_embd": n_head * 4 * pick(1, 6)}


def _shown(cfg: dict[str, int]) -> str:
    return "GPTConfig(" + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ")"


def _count_hint(info: dict, got: object, expected: int) -> str:
    """What to look at when the count is off by something else than the tied matrix. The
    worker's own count of the model's parameters only chooses the words, never the verdict."""
    own = info.get("num_parameters")
    if isinstance(own, int) and isinstance(got, (int, float)) and own == got:
        # The method counts the model right: the model itself has other parameters.
        return (f"num_parameters() counts your model correctly, but the model has "
                f"{own - expected:+,} parameters against the reference: look for a layer "
                f"missing or added (a LayerNorm without bias, a bias-free Linear, an extra "
                f"layer); the shape checks name the parameters that differ.")
    return ("Count each parameter once, the tied matrix included: "
            "sum(p.numel() for p in self.parameters()).")


def _tying_inputs(ctx: Context) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The reference's weights and a second, different matrix for the tied pair."""
    w2 = ctx.inputs("tying", lambda g: {"w2": torch.randn(
        SMALL["vocab_size"], SMALL["n_embd"], generator=g, dtype=torch.float64) * 0.2})["w2"]
    return _gpt_params(ctx), w2


@check("gpt_weight_tying", "GPT: lm_head and wte are one shared matrix", 2,
       needs=("GPT", "GPTConfig"))
def gpt_weight_tying(ctx: Context):
    """Tying judged by its effect, never by what the worker says about object identity (code in
    the worker could rewrite that): the student's model is loaded three times, with the first
    matrix under both ``transformer.wte.weight`` and ``lm_head.weight``, with the second under
    both, and with one under each. A tied model keeps ONE of them for both uses (whichever it
    loads last), so its logits in the mixed case equal those of one of the pure cases; an untied
    model uses both and matches neither. The comparison is with the student's own model, so a
    bug elsewhere in the forward pass does not count as untied. That the tied matrix's gradient
    is the sum of both uses is judged by ``gpt_gradients``, against the trusted side's values."""
    params, w2 = _tying_inputs(ctx)
    w1 = params["transformer.wte.weight"]
    inp = _gpt_inputs(ctx)
    logits = {}
    for case, (wte, head) in {"first": (w1, w1), "second": (w2, w2), "mixed": (w1, w2)}.items():
        run = run_module(ctx, "block", "GPT", args=[_config(SMALL)], dtype="float64",
                         params={**params, "transformer.wte.weight": wte, "lm_head.weight": head},
                         tensors=inp, calls=[call_spec(T("idx"), T("targets"))],
                         what="`GPT(config)(idx, targets)`")
        logits[case] = _logits_of(run.calls[0].output)
        assert_shape(logits[case], (2, 11, SMALL["vocab_size"]), "the logits")
    from grader.tolerance import within

    tol = {"atol": F64_ATOL, "rtol": F64_RTOL}
    if within(logits["first"], logits["second"], **tol):
        raise CheckFailed("your model's logits do not depend on the token embedding/lm_head "
                          "matrix at all, so whether it is tied cannot be seen")
    if any(within(logits["mixed"], logits[c], **tol) for c in ("first", "second")):
        return ok()
    raise CheckFailed(
        "with different matrices loaded under transformer.wte.weight and lm_head.weight, your "
        "model's logits equal neither those with the first matrix in both places nor those with "
        "the second: it uses two separate matrices, not one tied Parameter",
        hint=mistake("untied_embeddings").hint, **likely("untied_embeddings"))


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


@check("gpt_too_long", "GPT: ValueError for a sequence longer than block_size", 1,
       needs=("GPT", "GPTConfig"))
def gpt_too_long(ctx: Context):
    """``GPT(config)(idx)`` with ``T = block_size + 1`` raises ``ValueError`` (the stub's
    contract: the position table has block_size rows), not an IndexError from the embedding."""
    inp = ctx.inputs("too_long", lambda g: {"idx": torch.randint(
        0, SMALL["vocab_size"], (1, SMALL["block_size"] + 1), generator=g)})
    require_value_error(
        lambda: run_module(ctx, "block", "GPT", args=[_config(SMALL)], tensors=inp,
                           calls=[call_spec(T("idx"))]),
        f"GPT(config)(idx) with T = {SMALL['block_size'] + 1} > block_size", "T > block_size")
    return ok()


from grader.checks.block import probe  # noqa: E402,F401 - the GPT probe, registered last
