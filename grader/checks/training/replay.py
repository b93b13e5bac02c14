"""The loop run and its trusted replay: how the training-loop checks judge by outcomes.

The worker runs the student's ``train`` for a few steps on the grader's probe model (seeded
initial parameters, a BatchNorm so that train and eval mode differ) while ``get_batch`` stands
in for the grader's fixed batch stream, and sends back the metrics, the FINAL state dict and
what was fed to the model. All of that is the student's claim (their code shares the worker's
interpreter). The trusted side then replays the reference ``train`` on the same batches, with
the student's own learning-rate schedule (so a schedule mistake is counted once, by the
schedule's checks), and with each known loop mistake planted, and asks which of these runs the
student's final state equals:

- the reference's (or an accepted style, e.g. no weight decay on biases): the loop is right;
- a planted mistake's (or two at once): exactly those properties fail, named;
- none: nothing about the loop can be confirmed, every loop check fails.

A ``train`` that trains nothing, or reports a fake stream of events, ends with parameters that
no correct loop produces, so it scores nothing here; nor does one that claims learning rates
(or batches) under which the reference trains nothing either (:func:`_trains`: the matching
run must move the parameters as the same loop does on the grader's own inputs). The per-step
metrics are compared with the matching run's own metrics (what that loop really computed),
never taken on trust.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from grader.checks.base import CheckFailed, Context
from grader.checks.training import mistakes as catalogue
from grader.checks.training.common import metric
from grader.checks.training.task import V
from grader.diagnosis.variants import load_edited
from grader.shared.probe import probe_model
from grader.tolerance import within

# A few steps, long enough for warmup, decay and three evaluations. Training tokens are 0..9
# and validation tokens 10..19. grad_clip is far below the gradient norms (~0.5-3 here), so
# every step clips and clipping at the wrong place moves the parameters a lot.
LOOP_CONFIG = {"max_steps": 8, "batch_size": 4, "block_size": 12, "max_lr": 1e-2,
               "min_lr": 1e-3, "warmup_steps": 2, "weight_decay": 0.1, "grad_clip": 0.05,
               "eval_interval": 3, "eval_iters": 2, "seed": 3}
LOOP_EVAL_STEPS = [s for s in range(LOOP_CONFIG["max_steps"])
                   if s % LOOP_CONFIG["eval_interval"] == 0 or s == LOOP_CONFIG["max_steps"] - 1]
LOOP_MODEL = {"vocab_size": V, "context": 10, "n_embd": 16, "n_hidden": 128, "norm": True}
LOOP_SEED = 5
# Two runs of the same loop on the same batches differ only by rounding (float32, ~1e-7 of
# the parameters' travel); the smallest planted difference (AdamW's default betas over 8
# steps) moves the final parameters by ~1 % of their travel from the initial values.
STATE_ATOL, STATE_RTOL = 1e-6, 1e-4
METRIC_ATOL, METRIC_RTOL = 1e-6, 1e-4

_LOCK = threading.Lock()  # the replay modules' get_batch/get_lr are swapped during a run
_MODULES: dict[tuple[str, tuple[str, ...]], Any] = {}


@dataclass
class LoopRun:
    """What the student's loop run returned (claims), sorted for the replay."""

    reply: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor]
    train_batches: list[tuple[torch.Tensor, torch.Tensor]]
    schedule: list[float]

    def metric(self, key: str) -> list[float]:
        return metric(self.tensors, key)


@dataclass
class Replay:
    """One trusted run of the reference loop (``mistakes`` planted) on the student's batches."""

    mistakes: tuple[str, ...]
    state: dict[str, torch.Tensor]
    metrics: dict[str, list[float]]


@dataclass
class Verdict:
    """Which trusted run the student's final state equals: ``mistakes`` (empty: a correct
    loop) or ``None`` (no known run), the run itself, and the runs compared."""

    mistakes: tuple[str, ...] | None
    replay: Replay | None
    compared: int
    nearest: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    styles: tuple[str, ...] = ()  # the accepted style the loop is written in, if any
    alternatives: tuple[str, ...] = ()  # other mistakes that explain the outcome as well

    def has(self, *ids: str) -> list[str]:
        """The mistakes of ``ids`` this verdict names (all of them when unexplained)."""
        if self.mistakes is None:
            return list(ids)
        return [m for m in self.mistakes if m.split("/", 1)[0] in ids or m in ids]


def loop_inputs(ctx: Context) -> dict[str, torch.Tensor]:
    """The data and the fixed batch stream of the loop run (from the run's secret seed)."""
    cfg = LOOP_CONFIG
    t, b = cfg["block_size"], cfg["batch_size"]

    def windows(data: torch.Tensor, n: int, g: torch.Generator):
        starts = torch.randint(len(data) - t, (n, b), generator=g)
        w = data[starts.unsqueeze(-1) + torch.arange(t + 1)]
        return w[..., :-1].contiguous(), w[..., 1:].contiguous()

    def make(g: torch.Generator):
        train = torch.randint(0, 10, (400,), generator=g)
        val = torch.randint(10, 20, (200,), generator=g)
        sx, sy = windows(train, cfg["max_steps"] + 4, g)
        vx, vy = windows(val, cfg["eval_iters"], g)
        return {"train_data": train, "val_data": val, "stream.x": sx, "stream.y": sy,
                "val.x": vx, "val.y": vy}

    return ctx.inputs("loop", make)


def run_loop(ctx: Context) -> LoopRun:
    """The student's loop run, once per grading (shared by every loop check)."""
    return ctx.once("training/loop", lambda: _run_loop(ctx))


def _run_loop(ctx: Context) -> LoopRun:
    data = loop_inputs(ctx)
    reply = ctx.request("training.loop", {
        "config": LOOP_CONFIG, "seed": LOOP_SEED, "model": LOOP_MODEL, "device": "cpu"}, data,
        timeout=60)
    if reply.result.get("metrics") is None:
        raise CheckFailed(f"train returned {reply.result.get('returned')}, expected a dict of "
                          f"metrics (train_losses, val_losses, lrs, grad_norms, eval_interval)")
    state = {k[2:]: v for k, v in reply.tensors.items() if k.startswith("p.")}
    batches = []
    for i, f in enumerate(reply.result.get("forwards", [])):
        x, y = reply.tensors.get(f"f{i}.x"), reply.tensors.get(f"f{i}.y")
        if f.get("backward") and x is not None and y is not None:
            batches.append((x, y))
    schedule = [float(v) for v in reply.tensors.get("schedule", torch.tensor([]))]
    return LoopRun(reply.result, reply.tensors, state, batches, schedule)


def replay_batches(ctx: Context, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batches to replay: those the student's loop trained on (as claimed; a
    lie only changes what the replay is run on), completed from the grader's stream. Batches
    of another shape than the configured one are replaced by the stream's."""
    data = loop_inputs(ctx)
    sx, sy = data["stream.x"], data["stream.y"]
    n = LOOP_CONFIG["max_steps"]
    xs, ys = sx[:n].clone(), sy[:n].clone()
    for i, (x, y) in enumerate(run.train_batches[:n]):
        if x.shape == xs[i].shape and y.shape == ys[i].shape:
            xs[i], ys[i] = x.long(), y.long()
    return xs, ys


def _schedule(ctx: Context, run: LoopRun) -> list[float]:
    n = LOOP_CONFIG["max_steps"]
    if len(run.schedule) == n and all(v == v and abs(v) != float("inf") for v in run.schedule):
        return run.schedule
    return _trusted_schedule(ctx)  # the student's get_lr cannot be called


def _module(ref: Any, mistakes: tuple[str, ...]):
    """A private copy of the reference's training module with ``mistakes`` planted (each a
    variant id of the catalogue, or an accepted style of :data:`catalogue.STYLES`)."""
    key = (ref.__name__, mistakes)
    if key not in _MODULES:
        edits: dict[str, list[tuple[str, str]]] = {}
        for m in mistakes:
            for module, pairs in catalogue.loop_edits(m).items():
                edits.setdefault(module, []).extend(pairs)
        name = "_grader_replay_" + hashlib.sha256(repr(key).encode()).hexdigest()[:12]
        _MODULES[key] = load_edited(ref, edits, name, "+".join(mistakes) or "replay").training
    return _MODULES[key]


def _replay(ref: Any, mistakes: tuple[str, ...], xs: torch.Tensor, ys: torch.Tensor,
            schedule: list[float], data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    training = _module(ref, mistakes)
    count = {"train": 0, "val": 0}
    train_data, val_data = data["train_data"], data["val_data"]

    def get_batch(d, block_size, batch_size, *, generator=None, device="cpu"):
        if d is val_data:
            j = count["val"] % data["val.x"].shape[0]
            count["val"] += 1
            return data["val.x"][j].to(device), data["val.y"][j].to(device)
        i = min(count["train"], xs.shape[0] - 1)
        count["train"] += 1
        return xs[i].to(device), ys[i].to(device)

    def get_lr(step, **_):
        return schedule[min(step, len(schedule) - 1)]

    with _LOCK, torch.random.fork_rng(devices=[]):
        saved = training.get_batch, training.get_lr
        training.get_batch, training.get_lr = get_batch, get_lr
        try:
            model = probe_model(LOOP_MODEL, LOOP_SEED, "cpu")
            config = training.TrainConfig(**LOOP_CONFIG, device="cpu")
            metrics = training.train(model, train_data, val_data, config)
        finally:
            training.get_batch, training.get_lr = saved
    out = {f"p.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for k in ("train_losses", "val_losses", "lrs", "grad_norms"):
        out[f"m.{k}"] = torch.tensor([float(v) for v in metrics[k]], dtype=torch.float64)
    return out


def replay(ctx: Context, run: LoopRun, mistakes: tuple[str, ...] = ()) -> Replay:
    """The reference loop (with ``mistakes`` planted) on the student's batches and schedule,
    through the expected-value seam (so a release records the correct loop's run)."""
    xs, ys = replay_batches(ctx, run)
    schedule = _schedule(ctx, run)
    digest = hashlib.sha256(xs.numpy().tobytes() + ys.numpy().tobytes()
                            + torch.tensor(schedule, dtype=torch.float64).numpy().tobytes()
                            ).hexdigest()[:16]
    data = loop_inputs(ctx)
    label = "+".join(mistakes) or "reference"
    exp = ctx.expected(f"loop/replay/{label}/{digest}",
                       lambda ref: _replay(ref, mistakes, xs, ys, schedule, data))
    state = {k[2:]: v for k, v in exp.items() if k.startswith("p.")}
    metrics = {k[2:]: [float(v) for v in exp[k]] for k in exp if k.startswith("m.")}
    return Replay(mistakes, state, metrics)


def state_matches(student: dict[str, torch.Tensor], run: Replay,
                  initial: dict[str, torch.Tensor]) -> bool:
    """The student's final state equals the run's, within rounding of the parameters' travel
    from their initial values (buffers included: BatchNorm's running statistics)."""
    if set(student) != set(run.state):
        return False
    for name, want in run.state.items():
        got = student[name]
        if got.shape != want.shape:
            return False
        start = initial.get(name)
        g, w = got.double(), want.double()
        if start is not None and start.shape == want.shape:
            g, w = g - start.double(), w - start.double()
        scale = float(w.abs().max()) if w.numel() else 0.0
        if not within(g, w, atol=STATE_ATOL + STATE_RTOL * scale, rtol=0.0):
            return False
    return True


def initial_state() -> dict[str, torch.Tensor]:
    """The probe model's seeded initial state (the same on both sides)."""
    with torch.random.fork_rng(devices=[]):
        return {k: v.detach().clone()
                for k, v in probe_model(LOOP_MODEL, LOOP_SEED, "cpu").state_dict().items()}


def verdict(ctx: Context) -> Verdict:
    """Which trusted run explains the student's loop, computed once per grading."""
    return ctx.once("training/loop_verdict", lambda: _trains(ctx, _verdict(ctx)))


# The run that explains a loop must move the parameters at least this fraction as far as the
# same loop does on the grader's own batches and learning rates.
MIN_TRAVEL = 0.25


def _trains(ctx: Context, v: Verdict) -> Verdict:
    """``v``, unless the run that explains the loop only does so because the learning rates
    and batches it was replayed with (the student's claims) train nothing.

    Why: the replay takes the schedule and batches the worker reports. Under a schedule of
    zeros the reference's AdamW leaves every parameter where it started, as a ``train`` with no
    optimizer at all does, so a loop that never steps but reports ``get_lr() == 0`` would pass
    as correct. The same loop on the grader's own batches and the reference schedule (trusted
    inputs) says how far its parameters must travel; a run far short of that explains
    nothing."""
    if v.replay is None or v.mistakes is None:
        return v
    run = run_loop(ctx)
    n = LOOP_CONFIG["max_steps"]
    data = loop_inputs(ctx)
    xs, ys = replay_batches(ctx, run)
    trusted = _trusted_schedule(ctx)
    same = (torch.equal(xs, data["stream.x"][:n]) and torch.equal(ys, data["stream.y"][:n])
            and len(run.schedule) == n
            and all(abs(a - b) <= 1e-12 + 1e-9 * abs(b)
                    for a, b in zip(_schedule(ctx, run), trusted, strict=True)))
    if same:
        return v
    from grader.checks.expected import FixtureMissing

    mistakes = v.replay.mistakes
    label = "+".join(mistakes) or "reference"
    sx, sy = data["stream.x"][:n].clone(), data["stream.y"][:n].clone()
    try:
        honest = ctx.expected(f"loop/replay/trusted/{label}",
                              lambda ref: _replay(ref, mistakes, sx, sy, trusted, data))
    except FixtureMissing:
        return v  # a student bundle's self-check: live grading always has it
    initial = initial_state()
    want = _travel({k[2:]: t for k, t in honest.items() if k.startswith("p.")}, initial)
    got = _travel(v.replay.state, initial)
    if got >= MIN_TRAVEL * want:
        return v
    return Verdict(None, None, v.compared + 1, details={"diagnosis": (
        f"the trusted run that matches your final parameters moved them by {got:.3g} at most, "
        f"with the learning rates and batches your train reported; the same loop moves them by "
        f"{want:.3g} on the grader's own: your train's learning rates (get_lr inside train) "
        f"train nothing, so the loop cannot be judged")})


def _trusted_schedule(ctx: Context) -> list[float]:
    from grader.checks.training.schedule import reference_lrs

    n = LOOP_CONFIG["max_steps"]
    cfg = {k: LOOP_CONFIG[k] for k in ("max_lr", "min_lr", "warmup_steps", "max_steps")}
    return reference_lrs(ctx, cfg, list(range(n)))


def _travel(state: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]) -> float:
    """The largest change of a parameter (not a buffer: BatchNorm's running statistics move in
    any forward pass in train mode, optimizer or not) from its initial value."""
    moved = 0.0
    for name in _parameter_names():
        if name in state and name in initial and state[name].shape == initial[name].shape:
            moved = max(moved, float((state[name].double() - initial[name].double())
                                     .abs().max()))
    return moved


def _parameter_names() -> tuple[str, ...]:
    with torch.random.fork_rng(devices=[]):
        return tuple(n for n, _ in probe_model(LOOP_MODEL, LOOP_SEED, "cpu").named_parameters())


def _variants() -> list[tuple[str, ...]]:
    """Every loop variant id (flavours included), alone."""
    from grader.diagnosis import mistake

    return [(v,) for m in catalogue.LOOP for v in mistake(m).variants()]


def _verdict(ctx: Context) -> Verdict:
    run = run_loop(ctx)
    initial = initial_state()
    compared = 0
    styles = tuple((s,) for s in catalogue.STYLES)
    if getattr(ctx.source, "record", False):
        # A release: the bundle holds the accepted styles and the single mistakes too, so a
        # student's self-check reaches the same verdict as live grading (a correct loop below
        # stops at the reference and would record nothing else).
        for variant in styles + tuple(_variants()):
            _safe_replay(ctx, run, variant)
    # The reference and the accepted styles first: a correct loop costs one or two replays.
    for style in ((),) + styles:
        r = replay(ctx, run, style) if not style else _safe_replay(ctx, run, style)
        compared += 1
        if r is not None and state_matches(run.state, r, initial):
            return Verdict((), r, compared, styles=style)
    if not run.state:
        return Verdict(None, None, compared, details={"diagnosis": "train returned no model"})
    singles = _variants()
    found = []
    for m in singles:
        r = _safe_replay(ctx, run, m)
        compared += 1
        if r is not None and state_matches(run.state, r, initial):
            found.append(r)
    if found:
        # Several mistakes can leave the same parameters (clipping after the step, or never:
        # the update is unclipped either way): the loop's own record breaks the tie where it
        # can, the rest are reported as alternatives.
        found.sort(key=lambda r: not _metrics_match(run, r))
        alternatives = tuple(x.mistakes[0] for x in found[1:]
                             if x.mistakes[0].split("/")[0] != found[0].mistakes[0].split("/")[0]
                             and _metrics_match(run, x) == _metrics_match(run, found[0]))
        return Verdict(found[0].mistakes, found[0], compared, alternatives=alternatives)
    for a, b in itertools.combinations(singles, 2):
        if a[0].split("/")[0] == b[0].split("/")[0]:
            continue  # two flavours of one mistake
        r = _safe_replay(ctx, run, a + b)
        compared += 1
        if r is not None and state_matches(run.state, r, initial):
            return Verdict(a + b, r, compared)
    return Verdict(None, None, compared)


def _metrics_match(run: LoopRun, r: Replay) -> bool:
    """The loop's recorded grad_norms and train_losses are those of the run ``r``."""
    for key in ("grad_norms", "train_losses"):
        got, want = run.metric(key), r.metrics.get(key, [])
        if len(got) != len(want) or not all(abs(g - w) <= METRIC_ATOL + METRIC_RTOL * abs(w)
                                            for g, w in zip(got, want, strict=True)):
            return False
    return True


def _safe_replay(ctx: Context, run: LoopRun, mistakes: tuple[str, ...]) -> Replay | None:
    from grader.checks.expected import FixtureMissing

    try:
        return replay(ctx, run, mistakes)
    except FixtureMissing:
        return None  # a student bundle holds only the runs recorded at release
    except ValueError:
        return None  # two mistakes that edit the same line of the reference cannot combine
