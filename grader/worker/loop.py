"""The worker's main loop: read a request frame, run the task, write a reply frame.

The protocol channel is a private duplicate of the original stdout; file descriptor 1 is pointed
at stderr so that whatever the student's code prints is captured for display and can never be
mistaken for a reply.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _configure_torch(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    # Same verdict on every run and every machine: no TF32, deterministic kernels where they exist.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    # The same switch as torch.use_deterministic_algorithms(True, warn_only=True), without its
    # import of torch._inductor.config (dynamo and sympy: ~0.9 s per worker start). Inductor's
    # own flag is set when inductor is first used, through torch.compile.
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    _deterministic_compile(torch)


def _deterministic_compile(torch) -> None:
    original = torch.compile

    def compile(*args, **kwargs):
        import torch._inductor.config as inductor_config

        inductor_config.deterministic = True
        return original(*args, **kwargs)

    compile.__wrapped__ = original
    compile.__doc__ = original.__doc__
    torch.compile = compile


def refuse_withheld() -> None:
    """Make ``import tiktoken`` (and the other packages of :mod:`grader.shared.withheld`) fail
    with a message saying why, rather than find the empty folder the sandbox leaves there."""
    import importlib.abc

    from grader.shared.withheld import WITHHELD

    class Withheld(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in WITHHELD:
                raise ModuleNotFoundError(f"{top} is not available to submissions: "
                                          f"{WITHHELD[top]}", name=name)
            return None

    sys.meta_path.insert(0, Withheld())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grader-worker")
    parser.add_argument("--submission", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-request-bytes", type=int, default=2**31)
    parser.add_argument("--modules", type=Path, default=None,
                        help="folder of modules made from the submission's notebooks")
    parser.add_argument("--no-processes", action="store_true",
                        help="deny process creation from the start (a notebook submission)")
    args = parser.parse_args(argv)

    channel_out = os.fdopen(os.dup(1), "wb", buffering=0)
    channel_in = os.fdopen(os.dup(0), "rb", buffering=0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # a student's input() gets EOF instead of reading our requests
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stdin = os.fdopen(0, "r", closefd=False)

    _configure_torch(args.threads)
    if args.no_processes:
        from grader.worker.notebook import forbid_processes

        forbid_processes()
    from grader.shared import protocol
    from grader.worker import registry, tasks

    refuse_withheld()

    session = tasks.Session(submission=args.submission.resolve(), modules_dir=args.modules)
    sys.path.insert(0, str(session.submission))
    if args.modules is not None:  # may not exist yet: the grader writes it when it needs it
        sys.path.insert(0, str(args.modules))
        tasks.STUDENT_ROOTS.append(args.modules)
    os.environ.setdefault("MPLBACKEND", "Agg")

    while True:
        try:
            request, tensors = protocol.read_frame(channel_in, args.max_request_bytes)
        except EOFError:
            # Nothing left to do: skip the interpreter's teardown (torch's takes ~1 s), which
            # every submission would otherwise wait for.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        reply, out = _handle(session, request, tensors, registry)
        try:
            frame = protocol.pack(reply, out)
        except Exception as exc:  # noqa: BLE001 - e.g. a student's tensor that cannot be saved
            frame = protocol.pack({"id": request.get("id"), "ok": False, "error": {
                "type": type(exc).__name__, "message": f"could not send the result: {exc}",
                "where": "", "traceback": "", "contract": True}})
        sys.stdout.flush()
        sys.stderr.flush()
        channel_out.write(frame)


def _handle(session, request, tensors, registry):
    from grader.worker import tasks

    task = registry.TASKS.get(request.get("task"))
    if task is None:
        return {"id": request.get("id"), "ok": False, "error": {
            "type": "UnknownTask", "message": str(request.get("task")), "where": "",
            "traceback": "", "contract": True}}, {}
    try:
        result, out = task(session, request.get("args", {}), tensors)
        return {"id": request.get("id"), "ok": True, "result": result}, out
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a student is an error too
        if isinstance(exc, KeyboardInterrupt):
            raise
        error = tasks.describe_exception(exc, session.submission)
        return {"id": request.get("id"), "ok": False, "error": error}, {}
