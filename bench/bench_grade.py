"""A fresh `grader run` against the cost of `import torch`, measured side by side in one run.

Each round times, as whole processes and in turn: `python -c "import torch"`, a fresh
`grader run DIR -a attention`, and a fresh `grader run DIR` of every assignment. A warm-up round
comes first and is not counted. It prints the medians, the ratios to `import torch` and the
targets (issue 12: attention-only at most 1.2x, the full grade at most 4x), and checks that every
run gave the same verdicts.

    python bench/bench_grade.py [--runs 5] [--submission examples/correct] [--isolation auto]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import grader_command

ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _verdicts(path: Path) -> list[tuple[str, str, str, float]]:
    data = json.loads(path.read_text())
    return [(a["name"], c["id"], c["status"], c["score"])
            for a in data["assignments"] for c in a["checks"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--submission", type=Path, default=ROOT / "examples" / "correct")
    parser.add_argument("--isolation", default="auto")
    args = parser.parse_args()

    grader = grader_command()
    out = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    run = [grader, "run", str(args.submission), "--isolation", args.isolation]
    commands = {
        "import torch": [sys.executable, "-c", "import torch"],
        "grader run -a attention": [*run, "-a", "attention", "--json", str(out / "a.json")],
        "grader run (all)": [*run, "--json", str(out / "all.json")],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    verdicts: dict[str, set] = {"a.json": set(), "all.json": set()}
    try:
        for round_ in range(args.runs + 1):
            for name, cmd in commands.items():
                seconds = _time(cmd)
                if round_:  # the first round warms the caches and is not counted
                    times[name].append(seconds)
            for file in verdicts:
                verdicts[file].add(tuple(_verdicts(out / file)))
        full = json.loads((out / "all.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)

    med = {name: statistics.median(t) for name, t in times.items()}
    torch_s = med["import torch"]
    print(f"runs: {args.runs} (+1 warm-up), submission: {args.submission}, score "
          f"{full['score']:g}/{full['max_score']:g}, isolation: "
          f"{full['environment']['isolation'].split(':')[0]}")
    for name, t in times.items():
        print(f"median {name:<26} {med[name]:6.2f} s  (min {min(t):.2f}, max {max(t):.2f})")
    for name, target in (("grader run -a attention", 1.2), ("grader run (all)", 4.0)):
        ratio = med[name] / torch_s
        verdict = "met" if ratio <= target else "NOT met"
        print(f"ratio {name} / import torch  {ratio:5.2f}  (target <= {target}: {verdict})")
    same = all(len(v) == 1 for v in verdicts.values())
    print(f"identical verdicts in every run: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
