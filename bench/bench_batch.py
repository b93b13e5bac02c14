"""`grader batch` (warm pool and fresh workers) against a shell loop of `grader run`, in one run.

Two classes are made from examples/ with planted differences:

- **complete**: at least 12 submissions of every assignment examples/correct holds (each is the
  correct example with one example folder's modules laid over it: other styles and planted
  bugs);
- **attention**: at least 20 attention-only submissions (correct, einsum, F.sdpa, no-scale).

For each class it times, as whole processes: a shell loop of `grader run DIR -a ... --json`
over the student folders (unless ``--no-loop``), `grader batch CLASS --out RUN` with its
automatic settings (its workers forked from a warm pool where one can be had), and the same
batch with fresh worker processes only. It prints the times, the ratios, the CPU utilisation of
each (children's CPU time / wall time / cores; the sandboxed workers' own CPU, inside
bubblewrap's pid namespace, is not reported back to us, so this is the trusted side's share),
the time per submission against one `import torch`, and checks that all gave the same verdicts
(same seed, so message for message, but for 0-point speed notes). Targets (issues 11 and 12):
the batch at least 1.7x faster than the loop; attention batch at most 0.4x `import torch` per
submission; the complete batch at most 5 s per submission on 2 cores.

    python bench/bench_batch.py [--complete 12] [--attention 20] [--only complete|attention]
                                [--no-loop]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import grader_command

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED = 424242


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str] | str, shell: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one command."""
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, shell=shell, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, executable="/bin/bash" if shell else None)
    return time.perf_counter() - start, _children_cpu() - cpu


def _verdicts(path: Path) -> list[tuple]:
    """Status and score of every check, and its message, except for the 0-point notes that
    report a measured speed (their numbers differ from run to run by nature)."""
    data = json.loads(path.read_text())
    return [(a["name"], c["id"], c["status"], c["score"],
             c["message"] if c["max_score"] else "")
            for a in data["assignments"] for c in a["checks"]]


def _complete_class(target: Path, n: int) -> list[str]:
    """``n`` complete submissions; returns the assignments graded (those correct/ holds)."""
    from grader import checks

    correct = EXAMPLES / "correct"
    graded = [a for a in checks.names()
              if (correct / f"{checks.ASSIGNMENTS[a].module}.py").is_file()]
    overlays = [None] + sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and p != correct
                               and any((p / f"{checks.ASSIGNMENTS[a].module}.py").is_file()
                                       for a in graded))
    for i in range(n):
        d = target / f"student{i:02d}"
        shutil.copytree(correct, d, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
        overlay = overlays[i % len(overlays)]
        if overlay is not None:
            for f in overlay.glob("*.py"):
                shutil.copy(f, d / f.name)
    return graded


def _attention_class(target: Path, n: int) -> list[str]:
    sources = [EXAMPLES / "correct", EXAMPLES / "correct-einsum", EXAMPLES / "correct-torch-sdpa",
               EXAMPLES / "buggy-attention-no-scale"]
    for i in range(n):
        d = target / f"student{i:02d}"
        d.mkdir(parents=True)
        shutil.copy(sources[i % len(sources)] / "attention.py", d / "attention.py")
    return ["attention"]


def _pooled(run_dir: Path, students: list[str]) -> bool:
    """Whether every result of a batch says its worker was forked from a warm pool."""
    return all(json.loads((run_dir / "results" / f"{s}.json").read_text())["environment"]
               ["isolation"].startswith("bubblewrap (warm pool") for s in students)


def _bench(name: str, class_dir: Path, graded: list[str], work: Path, torch_s: float,
           isolation: str, loop: bool) -> dict:
    grader = grader_command()
    students = sorted(p.name for p in class_dir.iterdir())
    flags = " ".join(f"-a {a}" for a in graded)
    cores = os.cpu_count() or 1
    n = len(students)
    out: dict = {"name": name, "n": n, "assignments": graded, "torch": torch_s}
    outputs = []
    if loop:
        loop_out = work / f"{name}-loop"
        loop_out.mkdir()
        cmd = (f"for d in {class_dir}/*; do {grader} run \"$d\" {flags} --seed {SEED} "
               f"--isolation {isolation} --json {loop_out}/$(basename \"$d\").json "
               f">/dev/null; done")
        wall, cpu = _timed(cmd, shell=True)
        out["loop"] = {"wall": wall, "cpu": cpu / wall / cores}
        outputs.append(lambda s: loop_out / f"{s}.json")
    args = ["batch", str(class_dir), "--progress", "none", "--seed", str(SEED),
            "--isolation", isolation, *sum((["-a", a] for a in graded), [])]
    for kind, extra in (("pooled", []), ("fresh", ["--no-warm-pool"])):
        run_dir = work / f"{name}-batch-{kind}"
        wall, cpu = _timed([grader, *args, *extra, "--out", str(run_dir)])
        out[kind] = {"wall": wall, "cpu": cpu / wall / cores, "warm": _pooled(run_dir, students)}
        outputs.append(lambda s, d=run_dir: d / "results" / f"{s}.json")
    out["same"] = all(len({tuple(_verdicts(where(s))) for where in outputs}) == 1
                      for s in students)
    # Which checks differ, so a "NO" says where to look (the run folders are deleted after).
    out["differences"] = sorted({
        f"{s}: {x[0]}.{x[1]} {x[2]} ({x[3]:g}) vs {y[2]} ({y[3]:g})"
        for s in students for where in outputs[1:]
        for x, y in zip(_verdicts(outputs[0](s)), _verdicts(where(s)), strict=False) if x != y})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complete", type=int, default=12)
    parser.add_argument("--attention", type=int, default=20)
    parser.add_argument("--only", choices=["complete", "attention"])
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--no-loop", action="store_true",
                        help="leave out the loop of `grader run` (the longest part)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        _timed([sys.executable, "-c", "import torch"])  # warm the page cache
        torch_s = statistics.median(_timed([sys.executable, "-c", "import torch"])[0]
                                    for _ in range(3))
        load = os.getloadavg()[0]
        print(f"import torch: {torch_s:.2f} s (median of 3); cores: {os.cpu_count()}; load "
              f"average at start: {load:.1f}", flush=True)
        if args.only in (None, "attention"):
            c = work / "attention-class"
            _report(_bench("attention", c, _attention_class(c, args.attention), work, torch_s,
                           args.isolation, not args.no_loop))
        if args.only in (None, "complete"):
            c = work / "complete-class"
            _report(_bench("complete", c, _complete_class(c, args.complete), work, torch_s,
                           args.isolation, not args.no_loop))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(r: dict) -> None:
    """Print one class's figures as soon as they are measured."""
    n, torch_s = r["n"], r["torch"]
    print(f"\n{r['name']}: {n} submissions of {', '.join(r['assignments'])}")
    rows = [("loop of grader run", r.get("loop")), ("grader batch, warm pool", r["pooled"]),
            ("grader batch, fresh workers", r["fresh"])]
    for label, m in rows:
        if m is not None:
            note = ""
            if label.endswith("warm pool") and not m["warm"]:
                note = "  (NO result was pooled: no warm pool here)"
            elif label.endswith("workers") and m["warm"]:
                note = "  (pooled after all: this figure is not of fresh workers)"
            print(f"  {label:28s} {m['wall']:7.1f} s  ({m['wall'] / n:5.2f} s each = "
                  f"{m['wall'] / n / torch_s:4.2f}x import torch; CPU {m['cpu']:.0%}){note}")
    pooled, fresh = r["pooled"]["wall"], r["fresh"]["wall"]
    print(f"  warm pool against fresh workers: {fresh / pooled:5.2f}x faster")
    if r.get("loop"):
        ratio = r["loop"]["wall"] / pooled
        print(f"  batch against the loop:          {ratio:5.2f}x faster (target >= 1.7: "
              f"{'met' if ratio >= 1.7 else 'NOT met'})")
    per_sub = pooled / n
    if r["name"] == "attention":
        print(f"  target <= 0.4x import torch per submission: "
              f"{'met' if per_sub / torch_s <= 0.4 else 'NOT met'} ({per_sub / torch_s:.2f}x)")
    else:
        print(f"  target <= 5 s per submission: {'met' if per_sub <= 5 else 'NOT met'} "
              f"({per_sub:.2f} s)")
    print(f"  identical verdicts (status, score, message but of speed notes): "
          f"{'yes' if r['same'] else 'NO'}")
    for line in r.get("differences", [])[:10]:
        print(f"    differs: {line}")
    print(f"  load average now: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
