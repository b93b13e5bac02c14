"""Speed-up of KV-cached over uncached generation, at several lengths, on the CPU.

Both run side by side in one process, interleaved (cached, uncached, cached, ...), on the same
model, prompt and greedy decoding, with the reference's ``generate`` (or a submission's
``kv_cache.py`` with ``--submission``). Besides the times it prints how many tokens reach the
model in each mode (counted): the cache feeds T0 + N - 1 tokens for N new ones, recomputing
feeds about N * (T0 + N / 2), which is why the speed-up grows with the length.

    python bench/bench_kv_cache.py [--lengths 32 64 128 256 512] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _load(submission: Path | None):
    if submission is None:
        sys.path.insert(0, str(ROOT))
        return importlib.import_module("reference.kv_cache"), importlib.import_module(
            "reference.block")
    sys.path.insert(0, str(submission.resolve()))
    return importlib.import_module("kv_cache"), importlib.import_module("block")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128, 256, 512],
                        help="numbers of new tokens to generate")
    parser.add_argument("--prompt", type=int, default=16, help="prompt length T0")
    parser.add_argument("--repeats", type=int, default=3, help="runs per length and mode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--submission", type=Path, default=None,
                        help="time a submission's kv_cache.py instead of the reference")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    kv, block = _load(args.submission)
    longest = args.prompt + max(args.lengths)
    config = block.GPTConfig(block_size=longest, vocab_size=args.vocab, n_layer=args.n_layer,
                             n_head=args.n_head, n_embd=args.n_embd)
    torch.manual_seed(0)
    model = kv.CachedGPT(config).eval()
    prompt = torch.randint(0, args.vocab, (1, args.prompt), generator=torch.Generator())
    fed = {True: 0, False: 0}
    original = model.forward

    def counting(idx, *a, **kw):
        fed[kw.get("kv_cache") is not None] += idx.numel()
        return original(idx, *a, **kw)

    model.forward = counting
    print(f"model: {args.n_layer} layers, {args.n_head} heads, n_embd {args.n_embd}, vocab "
          f"{args.vocab}; prompt {args.prompt} tokens; greedy; batch 1; torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{'reference' if args.submission is None else args.submission}")
    print(f"{'new tokens':>10} {'uncached s':>11} {'cached s':>9} {'speed-up':>9} "
          f"{'tokens fed uncached':>20} {'cached':>7}")
    kv.generate(model, prompt, 4, temperature=0)  # warm-up
    for n in args.lengths:
        times: dict[bool, list[float]] = {True: [], False: []}
        counts = {}
        outputs = {}
        for _ in range(args.repeats):
            for use_cache in (True, False):
                fed[True] = fed[False] = 0
                start = time.perf_counter()
                outputs[use_cache] = kv.generate(model, prompt, n, temperature=0,
                                                 use_cache=use_cache)
                times[use_cache].append(time.perf_counter() - start)
                counts[use_cache] = fed[True] + fed[False]
        same = "" if torch.equal(outputs[True], outputs[False]) else "  (tokens differ!)"
        cached, plain = statistics.median(times[True]), statistics.median(times[False])
        print(f"{n:>10} {plain:>11.3f} {cached:>9.3f} {plain / cached:>8.1f}x "
              f"{counts[False]:>20,} {counts[True]:>7,}{same}")


if __name__ == "__main__":
    main()
