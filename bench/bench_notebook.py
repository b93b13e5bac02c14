"""What grading a submission as notebooks costs over the same code as modules.

Grades the same code three ways, side by side in one run, several times (alternating, so that
machine noise hits all alike): as modules, as one notebook per assignment, and as one notebook
holding every assignment. It also times, on this machine, a Jupyter kernel start (a fresh
``ipykernel`` until it answers, then shut down) and ``import torch``. The target (DESIGN.md):
notebooks cost at most one kernel start more than modules.

    python bench/bench_notebook.py [--runs 5] [--submission examples/correct] [--all] [--spawn]

By default only the three core assignments are graded (attention, causal_mask, block: their
checks take ~2 s, so the noise of the long training and loading checks does not drown the
difference); ``--all`` grades every assignment the submission has.

``--spawn`` adds a column for kernels started as new processes instead of forked from the
worker (``GRADER_NOTEBOOK_KERNEL=spawn``), to show what the fork saves.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KERNEL_START = """
import time
from jupyter_client.manager import start_new_kernel
t = time.perf_counter()
km, kc = start_new_kernel(kernel_name="python3")
kc.stop_channels()
km.shutdown_kernel(now=True)
print(time.perf_counter() - t)
"""


def _kernel_start() -> float:
    out = subprocess.run([sys.executable, "-c", KERNEL_START], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _import_torch() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="grade every assignment")
    parser.add_argument("--submission", type=Path, default=ROOT / "examples" / "correct")
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spawn", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import nbformat

    from grader.checks import ASSIGNMENTS
    from grader.grading import GradeOptions, grade
    from grader.intake.notebooks import module_to_notebook
    from grader.isolation.client import WorkerSettings

    core = ("attention", "causal_mask", "block")
    modules = [a.module for a in ASSIGNMENTS.values()
               if (args.submission / f"{a.module}.py").exists() and (args.all or a.name in core)]
    assignments = [a.name for a in ASSIGNMENTS.values() if a.module in modules]
    tmp = Path(tempfile.mkdtemp(prefix="bench-notebook-"))
    os.chmod(tmp, 0o755)
    per, one = tmp / "per-assignment", tmp / "one"
    per.mkdir()
    one.mkdir()
    sibling = re.compile(rf"^from ({'|'.join(modules)}) import .*$", re.M)
    combined = nbformat.v4.new_notebook()
    for m in modules:
        source = (args.submission / f"{m}.py").read_text()
        nbformat.write(module_to_notebook(source), per / f"{m}.ipynb")
        combined.cells.extend(module_to_notebook(sibling.sub("", source)).cells)
    nbformat.write(combined, one / "gpt.ipynb")
    for folder in (per, one):
        os.chmod(folder, 0o755)
        for f in folder.iterdir():
            os.chmod(f, 0o644)

    ways = {"modules": args.submission, "notebooks": per, "one notebook": one}
    if args.spawn:
        ways["notebooks, spawned kernels"] = per
    times: dict[str, list[float]] = {w: [] for w in ways}
    kernel_time: dict[str, list[float]] = {w: [] for w in ways}
    scores = {}
    kernels, torches = [], []
    for _ in range(args.runs):
        kernels.append(_kernel_start())
        torches.append(_import_torch())
        for way, folder in ways.items():
            os.environ["GRADER_NOTEBOOK_KERNEL"] = "spawn" if "spawned" in way else ""
            start = time.perf_counter()
            result = grade(folder, GradeOptions(assignments=assignments, worker=WorkerSettings(
                isolation=args.isolation, threads=args.threads)))
            times[way].append(time.perf_counter() - start)
            runs = result.environment.get("notebooks", {})
            kernel_time[way].append(sum(r.get("seconds", 0.0) for r in runs.values()))
            scores[way] = f"{result.score:g}/{result.max_score:g}"
    os.environ.pop("GRADER_NOTEBOOK_KERNEL", None)

    k, t = statistics.median(kernels), statistics.median(torches)
    base = statistics.median(times["modules"])
    print(f"runs: {args.runs}, submission: {args.submission} ({len(modules)} modules), "
          f"isolation: {result.environment['isolation'].split(':')[0]}")
    print(f"median `import torch`                         {t:7.2f} s")
    print(f"median Jupyter kernel start (fresh ipykernel) {k:7.2f} s")
    print(f"{'graded as':<28} {'score':>9} {'median':>8} {'notebook runs':>14} {'overhead':>9} "
          f"{'/ kernel start':>15}")
    for way in ways:
        med = statistics.median(times[way])
        nb = statistics.median(kernel_time[way])
        over = med - base
        print(f"{way:<28} {scores[way]:>9} {med:7.2f}s {nb:13.2f}s {over:+8.2f}s "
              f"{over / k:14.2f}x")
    print("target: overhead <= 1 kernel start (1.00x)")


if __name__ == "__main__":
    main()
