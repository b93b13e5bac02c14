"""Grading time of a complete correct submission against the cost of `import torch`.

Runs both side by side in one process tree, several times, and prints the medians and the
ratio. The target (DESIGN.md): grading stays within 1.3x of one `import torch` plus the checks'
own compute. The checks' compute is measured too: the time spent inside the worker's tasks
minus nothing else, read from the per-check timings of the results.

    python bench/bench_grade.py [--runs 5] [--submission examples/correct] [--isolation auto]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--submission", type=Path, default=ROOT / "examples" / "correct")
    parser.add_argument("--isolation", default="auto")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from grader.grading import GradeOptions, grade
    from grader.isolation.client import WorkerSettings

    torch_times, grade_times, check_times, in_process = [], [], [], []
    for _ in range(args.runs):
        torch_times.append(_time([sys.executable, "-c", "import torch"]))
        grade_times.append(_time([sys.executable, "-m", "grader.cli", "run",
                                  str(args.submission), "--isolation", args.isolation]))
        start = time.perf_counter()
        result = grade(args.submission, GradeOptions(worker=WorkerSettings(
            isolation=args.isolation, threads=2)))
        in_process.append(time.perf_counter() - start)
        check_times.append(sum(c.seconds for _, c in result.all_checks()))
    t, g, c = (statistics.median(x) for x in (torch_times, grade_times, check_times))
    print(f"runs: {args.runs}, submission: {args.submission}, score "
          f"{result.score:g}/{result.max_score:g}, isolation: "
          f"{result.environment['isolation'].split(':')[0]}")
    print(f"median `python -c 'import torch'`       {t:7.2f} s")
    print(f"median `grader run` (whole command)     {g:7.2f} s")
    print(f"median checks' time inside grading      {c:7.2f} s")
    print(f"median grade() called in-process        {statistics.median(in_process):7.2f} s")
    print(f"ratio grader run / import torch         {g / t:7.2f}")
    print(f"ratio grader run / (import torch + checks) {g / (t + c):5.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
