"""The training-loop convergence probes: verdict time, and the verdict's stability over seeds.

    python bench/bench_probe.py [--seeds 10] [--gpt-seeds 10] [--threads 1]

1. Verdict time of each probe at a grading's seed, for 1 and 2 worker threads, with the
   probes capped at 1 thread or not (the checks' default: not capped): "live"
   (the reference runs now, in the grader's process, then the student's run in the worker) and
   "stored" (the reference already computed: what a student bundle with fixtures pays).
2. The training-loop probe over ``--seeds`` seeds for two correct loops (the example, and one
   drawing other batches) and the five loop bugs of the catalogue. Each cell is
   ``held-out answer loss / reference's`` and ``recorded grad-norm median / reference's``, then
   the verdict. The limits are ``grader.checks.training.PROBE_MAX_RATIO`` and
   ``PROBE_NORM_BAND``.
3. The GPT probe over ``--gpt-seeds`` seeds for correct GPTs (the example, the einsum example
   when present) and two GPTs that cannot train well: cell = held-out loss minus the
   reference's (limit ``GPT_MARGIN``).

Everything runs through the real path: one sandboxed worker per submission folder (planted
bugs are copies of ``examples/correct`` with one line changed), the reference live in this
process. Figures measured side by side in one run; the machine's load average is printed, since
other processes sharing the 2 cores change the times (not the verdicts).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from grader.checks import training as T  # noqa: E402
from grader.checks.base import CheckSettings, Context  # noqa: E402
from grader.checks.block import probe as G  # noqa: E402
from grader.checks.expected import LiveReference  # noqa: E402
from grader.checks.training import probe as P  # noqa: E402
from grader.isolation.client import WorkerClient, WorkerSettings  # noqa: E402

CORRECT = ROOT / "examples" / "correct"
MODULES = ("attention", "causal_mask", "block", "training")

LOOP_VARIANTS: dict[str, tuple[str, list[tuple[str, str]], bool]] = {
    # name: (module, edits, correct?)
    "correct": ("training", [], True),
    "other batches": ("training", [("generator = torch.Generator().manual_seed(config.seed)\n",
                                    "generator = torch.Generator().manual_seed(config.seed + 7)"
                                    "\n")], True),
    "no zero_grad": ("training", [("        optimizer.zero_grad(set_to_none=True)\n", "")],
                     False),
    "lr 100x": ("training", [('group["lr"] = lr\n', 'group["lr"] = lr * 100\n')], False),
    "no opt.step": ("training", [("        optimizer.step()\n", "")], False),
    "clip<backward": ("training", [
        ("set_to_none=True)\n", "set_to_none=True)\n        norm = torch.nn.utils."
                                "clip_grad_norm_(model.parameters(), config.grad_clip)\n"),
        ("        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)\n"
         "        optimizer.step()", "        optimizer.step()")], False),
    "unshifted y": ("training", [("y = torch.stack([data[i + 1:i + 1 + block_size] for i in",
                                  "y = torch.stack([data[i:i + block_size] for i in")], False),
}

GPT_VARIANTS: dict[str, tuple[str, list[tuple[str, str]], bool]] = {
    "correct": ("block", [], True),
    "no residual": ("block", [("        x = x + self.attn(self.ln_1(x))\n",
                               "        x = self.attn(self.ln_1(x))\n")], False),
    "no attention": ("block", [("        x = x + self.attn(self.ln_1(x))\n", "")], False),
    "wte std 1": ("block", [("nn.Embedding):\n                nn.init.normal_(module.weight, "
                             "mean=0.0, std=0.02)", "nn.Embedding):\n                nn.init."
                             "normal_(module.weight, mean=0.0, std=1.0)")], False),
}


def plant(base: Path, name: str, module: str, edits: list[tuple[str, str]],
          source: Path = CORRECT) -> Path:
    folder = base / name.replace(" ", "_").replace("<", "_before_")
    folder.mkdir()
    for m in MODULES:
        src = source / f"{m}.py"
        shutil.copyfile(src if src.exists() else CORRECT / f"{m}.py", folder / f"{m}.py")
    path = folder / f"{module}.py"
    text = path.read_text()
    for old, new in edits:
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    path.write_text(text)
    return folder


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def timing(rows: list[tuple[int, int]], repeats: int) -> None:
    print(f"1. Verdict time at a grading's seed (examples/correct), seconds, median (min) of "
          f"{repeats}")
    print(f"   {'threads':>7}  {'probe':<14} {'live: ref + student':>20} {'stored: student':>16}"
          f"  {'student run alone':>17}  verdicts")
    for threads, probe_threads in rows:
        checks = CheckSettings(probe_threads=probe_threads)  # the probes' cap, per grading
        settings = WorkerSettings(threads=threads, call_timeout=120, total_timeout=1200)
        with WorkerClient(CORRECT, settings) as worker:
            worker.start()
            for name, fn in (("training loop", T.run_probe), ("student's GPT", G.run_gpt_probe)):
                live, stored, alone, verdicts = [], [], [], []
                for _ in range(repeats):
                    ctx = Context(assignment="training", worker=worker, source=LiveReference(),
                                  settings=checks)
                    for times in (live, stored):
                        started = time.perf_counter()
                        result = fn(ctx)
                        times.append(time.perf_counter() - started)
                        alone.append(result.seconds)
                        verdicts.append(result.passed)
                cells = [f"{statistics.median(t):.2f} ({min(t):.2f})"
                         for t in (live, stored, alone)]
                label = f"{threads}/{probe_threads}"
                print(f"   {label:>7}  {name:<14} {cells[0]:>20} {cells[1]:>16}  {cells[2]:>17}"
                      f"  {sum(verdicts)}/{len(verdicts)} pass")
    print(f"   (threads = the worker's / the probe's cap; {load()})\n")


def sweep(title: str, variants: dict, seeds: list[int], fn, cell, threads: int,
          tmp: Path) -> dict[str, list[bool]]:
    if not seeds:
        return {n: [] for n in variants}
    print(title)
    source = LiveReference()  # one reference per seed, shared by every variant
    settings = WorkerSettings(threads=threads, call_timeout=180, total_timeout=3600)
    width = max(15, 2 + max(len(n) for n in variants))
    print("   seed  " + "".join(f"{n:>{width}}" for n in variants))
    verdicts: dict[str, list[bool]] = {n: [] for n in variants}
    workers = {}
    try:
        for name, (module, edits, _) in variants.items():
            extra = {}
            if name == "einsum (correct)":
                extra = {"source": ROOT / "examples" / "correct-einsum"}
            folder = plant(tmp, f"{fn.__name__}-{name}", module, edits, **extra)
            workers[name] = WorkerClient(folder, settings)
        for seed in seeds:
            row = []
            for name in variants:
                ctx = Context(assignment="training", worker=workers[name], source=source)
                result = fn(ctx, seed)
                verdicts[name].append(result.passed)
                row.append(cell(result))
            print(f"   {seed:>4}  " + "".join(f"{c:>{width}}" for c in row), flush=True)
    finally:
        for w in workers.values():
            w.close()
    summary = []
    for name, (_, _, correct) in variants.items():
        v = verdicts[name]
        wrong = v.count(False) if correct else v.count(True)
        summary.append(f"{wrong} {'false fail' if correct else 'missed'}")
    print("   total " + "".join(f"{s:>{width}}" for s in summary))
    print(f"   ({load()})\n")
    return verdicts


def loop_cell(r: T.ProbeResult) -> str:
    return f"{r.ratio:.2f}/{r.norm_ratio:.2f} {'ok' if r.passed else 'F'}"


def gpt_cell(r: T.ProbeResult) -> str:
    return f"{r.ratio:+.3f} {'ok' if r.passed else 'F'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--gpt-seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="worker threads for the sweeps (timing runs 1 and 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}; {load()}\n")
    if not args.skip_timing:
        timing([(1, 1), (2, 1), (2, 2)], args.repeats)
    gpt_variants = dict(GPT_VARIANTS)
    if (ROOT / "examples" / "correct-einsum" / "block.py").exists():
        gpt_variants = {"correct": GPT_VARIANTS["correct"],
                        "einsum (correct)": ("block", [], True),
                        **{k: v for k, v in GPT_VARIANTS.items() if k != "correct"}}
    with tempfile.TemporaryDirectory() as tmp:
        loop = sweep(f"2. Training-loop probe, {args.seeds} seeds: answer-loss ratio / grad-norm "
                     f"ratio (limits <= {P.PROBE_MAX_RATIO}, {P.PROBE_NORM_BAND[0]}-"
                     f"{P.PROBE_NORM_BAND[1]})", LOOP_VARIANTS, list(range(args.seeds)),
                     T.run_probe, loop_cell, args.threads, Path(tmp))
        gpt = sweep(f"3. GPT probe, {args.gpt_seeds} seeds: held-out loss - reference's "
                    f"(limit +{G.GPT_MARGIN})", gpt_variants, list(range(args.gpt_seeds)),
                    G.run_gpt_probe, gpt_cell, args.threads, Path(tmp))
    bad = [n for n, (_, _, ok) in LOOP_VARIANTS.items() if any(v != ok for v in loop[n])]
    bad += [n for n, (_, _, ok) in gpt_variants.items() if any(v != ok for v in gpt[n])]
    print("every verdict right" if not bad else f"wrong verdicts for: {', '.join(bad)}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
