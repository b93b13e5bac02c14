"""The worker's torch is as strict as before its start got faster: deterministic algorithms on,
inductor's own flag set when (and only when) the student's code compiles something."""

from __future__ import annotations

from conftest import settings

from grader.isolation.client import WorkerClient

PROBE = '''
import sys
import torch

def settings():
    return [torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            "torch._inductor.config" in sys.modules]

def compiled():
    torch.compile(lambda x: x + 1, backend="eager")(torch.ones(2))
    import torch._inductor.config as c
    return c.deterministic
'''


def _call(worker, function):
    reply = worker.request("call", {"module": "probe", "function": function, "args": [],
                                    "kwargs": {}, "requires_grad": [], "grad_outputs": {},
                                    "seed": 0}, {})
    out = reply.result["output"]
    return [item["value"] for item in out["items"]] if "items" in out else out["value"]


def test_deterministic_without_importing_inductor_until_compile(tmp_path):
    sub = tmp_path / "sub"  # tmp_path itself is private to root; the worker runs as another uid
    sub.mkdir()
    (sub / "probe.py").write_text(PROBE)
    with WorkerClient(sub, settings()) as worker:
        worker.request("import", {"modules": ["probe"]})
        assert _call(worker, "settings") == [True, True, False]
        assert _call(worker, "compiled") is True


def test_a_private_submission_folder_is_graded_from_a_readable_copy(tmp_path):
    # `mktemp -d` makes 0700 folders; the sandboxed worker runs as another uid.
    sub = tmp_path / "private"
    sub.mkdir(mode=0o700)
    (sub / "probe.py").write_text(PROBE)
    (sub / "probe.py").chmod(0o600)
    with WorkerClient(sub, settings()) as worker:
        reply = worker.request("import", {"modules": ["probe"]})
        assert reply.result["modules"]["probe"]["ok"], reply.result
        assert _call(worker, "settings")[0] is True
    assert oct(sub.stat().st_mode & 0o777) == "0o700"  # the student's folder is left as it was
