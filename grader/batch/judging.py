"""The warm judge's own process (the judge side of :mod:`grader.isolation.warm_judge`).

It runs in the unprivileged judge sandbox: imports torch, the checks and the reference once
(imports only, so no thread pool exists), proves it may fork, and then for every "judge"
message forks one child that grades one submission and exits. The message carries four
descriptors: the payload (the submission's folder and its :class:`GradeOptions`, pickled by
the root side: trusted to trusted), the answer's file, the stderr file, and the socket of the
submission's own root launcher. The judge answers ``{"ok": true}`` when the child runs, then
``{"exit": code}`` when it has ended; it never reads anything a worker sent (its children do).
"""

from __future__ import annotations

import json
import os
import socket
import sys

ENTRY = "from grader.batch.judging import main; main()"
ENTRY_NO_DYNAMO = "from grader.batch.judging import main; main(dynamo=False)"


def warm(dynamo: bool = True) -> None:
    """Import what judging a submission imports (the checks, the reference, the notebook tools,
    and, ``dynamo``, what torch's optimizers import at their first step): imports only."""
    import importlib

    import safetensors.torch  # noqa: F401

    if dynamo:
        import torch._dynamo  # noqa: F401

    import grader.checks  # noqa: F401
    import grader.grading  # noqa: F401
    import grader.intake.notebooks  # noqa: F401
    import grader.isolation.launcher  # noqa: F401

    importlib.import_module("reference")


def main(dynamo: bool = True) -> None:
    """The judge's entry: warm up (:func:`warm`), say whether it may fork, serve "judge"
    messages until the root side hangs up."""
    import time

    from grader.isolation.warm_judge import CONTROL_FD_ENV
    from grader.worker.zygote import fork_hazards

    started = time.monotonic()
    control = socket.socket(fileno=int(os.environ.pop(CONTROL_FD_ENV)))
    warm(dynamo)
    # OpenBLAS starts threads at load and stops them in a fork handler (see the worker zygote).
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    hazards = fork_hazards()
    control.send(json.dumps({"ready": not hazards, "hazards": hazards,
                             "seconds": time.monotonic() - started}).encode())
    if hazards:
        os._exit(1)
    code = _serve(control)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip torch's teardown, as the worker does


def _serve(control: socket.socket) -> int:
    from grader.worker.zygote import fork_hazards

    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 4)
        except InterruptedError:
            continue
        if not msg:
            return 0
        try:
            job = json.loads(msg)
            if not isinstance(job, dict) or job.get("op") != "judge" or len(fds) != 4:
                raise ValueError("a judge message carries one JSON object and four descriptors")
            memory = job.get("memory")
            if not isinstance(memory, int) or memory <= 0:
                raise ValueError("no memory limit")
            hazards = fork_hazards()
            if hazards:
                raise ValueError("the judge may not fork: " + "; ".join(hazards))
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"ok": False, "error": str(exc)}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            control.close()
            _child(fds, memory)  # never returns
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"ok": True}).encode())
        _, status = os.waitpid(pid, 0)
        control.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())


def _child(fds: list[int], memory: int) -> None:
    """Grade one submission and exit (0 with an answer written, 1 with a traceback on stderr)."""
    code = 1
    try:
        import ctypes
        import pickle
        import resource

        given, out, err, launcher_fd = fds
        os.dup2(err, 2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Undumpable: a later child (the same uid) can neither ptrace it nor read its memory.
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
        size = os.fstat(given).st_size
        path, options = pickle.loads(os.pread(given, size, 0))
        os.close(given)
        from grader.isolation.bounded import OUT_FD_ENV
        from grader.isolation.launcher import LauncherProxy

        os.environ[OUT_FD_ENV] = str(out)
        proxy = LauncherProxy(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET,
                                            fileno=launcher_fd))
        from grader.grading import judge_with_launcher

        judge_with_launcher(path, options, proxy)
        code = 0
    except BaseException:  # noqa: BLE001 - nothing may escape into the judge
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
