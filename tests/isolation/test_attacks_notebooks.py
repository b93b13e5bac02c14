"""Hostile notebooks: malformed metadata, quadratic-sized input, and every way to reach a shell.

Each attack must end as a recorded problem or a failed cell, cost bounded time, and start no
process: neither in the kernel that runs the cells nor in the worker that imports them.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import nbformat
import pytest

from grader.checks import graded_names
from grader.intake import notebooks
from grader.intake.discover import discover
from grader.isolation.client import WorkerClient, WorkerSettings
from grader.shared import seccomp

needs_filter = pytest.mark.skipif(not seccomp.supported(), reason="no seccomp filter here")


def write(folder: Path, name: str, *sources: str, metadata: dict | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(metadata or {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = folder / name
    path.write_text(nbformat.writes(nb))
    return path


@pytest.mark.parametrize("kernelspec", ["python3", ["python"], {"language": 3}, None, 7])
def test_a_malformed_kernelspec_is_a_recorded_problem_not_a_crash(tmp_path, kernelspec):
    path = write(tmp_path, "attention.ipynb", "x = 1")
    raw = json.loads(path.read_text())
    raw["metadata"]["kernelspec"] = kernelspec
    path.write_text(json.dumps(raw))
    sub = discover(tmp_path, ["attention"], graded_names())  # must not raise
    nb = notebooks.read_notebook(path)
    assert "not a valid notebook" in nb.problem and "kernelspec" in nb.problem
    assert sub.files["attention"].problem or sub.files["attention"].notebook.problem


def test_other_schema_violations_are_named(tmp_path):
    path = write(tmp_path, "attention.ipynb", "x = 1")
    raw = json.loads(path.read_text())
    raw["cells"][0]["source"] = {"not": "text"}
    path.write_text(json.dumps(raw))
    assert "cells/0/source" in notebooks.read_notebook(path).problem


def test_a_legal_2_mb_notebook_of_magics_is_rewritten_in_linear_time():
    # 2 MB of magics and escapes in one cell: IPython alone re-tokenizes the whole cell per
    # escape (quadratic, minutes). Time it against a quarter of the size: linear means ~4x.
    unit = "%time x = 1\n!ls -la\ny = !pwd\nif x:\n    !echo hi\n    z = [1,\n    2]\n"
    small, big = unit * 500, unit * 2000

    def seconds(src):
        started = time.perf_counter()
        python, _, _ = notebooks.python_of(src)
        assert python.count("\n") == src.count("\n")  # line numbers kept
        compile(python, "cell", "exec")  # and it is Python
        return time.perf_counter() - started

    seconds(unit * 5)  # IPython's import, once
    t_small, t_big = seconds(small), seconds(big)
    assert t_big < 8 * t_small + 0.5, (t_small, t_big)


def test_rewriting_keeps_meaning_of_strings_and_indentation():
    src = "s = '''\n!not a shell escape\n'''\nif True:\n    !ls\n    v = 2\n%time w = 3\n"
    python, _, notes = notebooks.python_of(src)
    namespace: dict = {}
    exec(compile(python, "cell", "exec"), namespace)
    assert namespace["s"] == "\n!not a shell escape\n"
    assert namespace["v"] == 2 and namespace["w"] == 3
    assert any("shell escape" in n for n in notes)


ENCODED = base64.b64encode(b"import os\nos.system('echo encoded > marker-exec')").decode()
ATTEMPTS = [
    "import subprocess\nsubprocess.run(['sh', '-c', 'echo ran > marker-subprocess'])",
    "ip = get_ipython()\nsh = ip.system\nsh('echo ran > marker-alias')",
    "get_ipython().system('echo ran > marker-system')",
    f"import base64\nexec(base64.b64decode('{ENCODED}'))",
    "import os\nif os.fork() == 0:\n    open('marker-fork', 'w').write('x')\n    os._exit(0)",
    "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo ran > marker-execv'])",
]
EVIDENCE = """
import os, subprocess
def evidence():
    markers = sorted(f for f in os.listdir('.') if f.startswith('marker-'))
    try:
        subprocess.run(['sh', '-c', 'echo ran > marker-worker'], check=False)
        worker = 'ran'
    except OSError as exc:
        worker = type(exc).__name__
    return [markers, worker, sorted(f for f in os.listdir('.') if f.startswith('marker-'))]
"""


@needs_filter
def test_no_cell_can_start_a_process_in_the_kernel_or_in_the_worker(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    sub.chmod(0o755)
    path = write(sub, "attention.ipynb", *ATTEMPTS, EVIDENCE)
    path.chmod(0o644)
    submission = discover(sub, ["attention"], graded_names())
    with WorkerClient(sub, WorkerSettings(threads=1, call_timeout=120)) as worker:
        report = submission.prepare(worker, cell_timeout=60, total_timeout=240)
        cells = submission.files["attention"].notebook.cells
        outcomes = [c.outcome.get("status") for c in cells]
        # Every attempt failed in the kernel (the os.system one "succeeds" with exit code 127).
        assert outcomes[-1] == "ok", (outcomes, report)
        errors = [c.outcome.get("type") for c in cells[:-1]]
        assert errors.count("PermissionError") >= 3, [c.outcome for c in cells]
        reply = worker.request("import", {"modules": ["attention"]})
        assert reply.result["modules"]["attention"]["ok"], reply.result
        got = worker.request("call", {"module": "attention", "function": "evidence"})
        items = got.result["output"]["items"]
        markers_before = [i["value"] for i in items[0]["items"]]
        assert markers_before == []  # nothing ran in the kernel, nor at import in the worker
        assert items[1]["value"] == "PermissionError"  # nor later, from the worker
        assert [i["value"] for i in items[2]["items"]] == []
