"""``import_dynamo_beside``: torch._dynamo is imported in the background, once."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_imports_dynamo_in_a_thread_and_then_starts_nothing():
    code = (
        "import sys, torch\n"
        "from grader.shared.preload import import_dynamo_beside\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "t = import_dynamo_beside()\n"
        "assert t is not None and t.daemon\n"
        "t.join(120)\n"
        "assert 'torch._dynamo' in sys.modules\n"
        "assert import_dynamo_beside() is None\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180)
    if "torch._dynamo" in out.stderr and "assert 'torch._dynamo' not in" in out.stderr:
        pytest.skip("this torch imports dynamo with torch itself")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


RACE = """
import sys, time, torch
from grader.shared.preload import import_dynamo_beside
t = import_dynamo_beside()
time.sleep(float(sys.argv[1]))
sys.path.insert(0, sys.argv[2])
import student_module  # not torch's: goes on beside the background import
beside = t is not None and t.is_alive()
torch.compile(lambda x: x + 1, backend="eager")(torch.ones(2))  # dynamo and inductor, now
import torch._inductor.config as c
from torch._inductor.utils import IndentedBuffer
print("ok", beside)
"""


def test_the_students_own_compile_during_the_background_import_gets_whole_modules(tmp_path):
    # Unguarded, two threads in torch's circular imports handed one a half-initialised module
    # ("cannot import name 'IndentedBuffer' ..."); the timing varies, so several starts.
    (tmp_path / "student_module.py").write_text("import math\nVALUE = math.pi\n")
    runs = [subprocess.Popen([sys.executable, "-c", RACE, str(delay), str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for delay in (0, 0.05, 0.2, 0.4)]
    outs = [(p.communicate(timeout=300), p.returncode) for p in runs]
    for (out, err), code in outs:
        assert code == 0 and out.startswith("ok"), err[-2000:]
    assert outs[0][0][0].split() == ["ok", "True"]  # the student's import did not wait for it


def test_the_worker_imports_dynamo_only_for_a_grading_that_trains(tmp_path):
    # An attention-only grading has no optimizer: a background import would only compete for
    # the worker's two cores and its GIL. A grading that trains asks for it, once per worker.
    from conftest import settings

    from grader.isolation.client import WorkerClient

    sub = tmp_path / "sub"  # tmp_path itself is private to root; the worker runs as another uid
    sub.mkdir()
    (sub / "probe.py").write_text(
        "import sys, threading\n"
        "def has_dynamo():\n"
        "    for t in threading.enumerate():\n"
        "        if t.name == 'grader-import-dynamo':\n"
        "            t.join(120)\n"
        "    return 'torch._dynamo' in sys.modules\n")

    def has_dynamo(worker) -> bool:
        reply = worker.request("call", {"module": "probe", "function": "has_dynamo", "args": [],
                                        "kwargs": {}, "requires_grad": [], "grad_outputs": {},
                                        "seed": 0}, {})
        return reply.result["output"]["value"]

    with WorkerClient(sub, settings()) as worker:
        worker.request("import", {"modules": ["probe"]})
        assert has_dynamo(worker) is False
        worker.preload_dynamo()
        assert has_dynamo(worker) is True
    with WorkerClient(sub, settings()) as worker:
        worker.preload_dynamo()  # before the worker is up: sent once it is
        worker.request("import", {"modules": ["probe"]})
        assert has_dynamo(worker) is True
