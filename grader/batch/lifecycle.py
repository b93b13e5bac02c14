"""The coordinator process's life during a batch: one coordinator per run folder (a lock the
kernel releases however it ends), and SIGTERM/SIGHUP stopping it the way Ctrl-C does."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from grader.batch.options import BatchError


class BatchInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) arrived: stop like after Ctrl-C."""


def lock_run_dir(out: Path) -> int:
    """An exclusive lock on ``out/.lock`` for the batch's life (released by the kernel however
    the batch ends): a second batch on the same run folder stops with a clear message."""
    import fcntl

    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BatchError(f"another grader batch is writing to {out} right now; wait for it, or "
                         "give this one another --out") from None
    return fd


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the batch the way Ctrl-C does (finished work is kept)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum, frame):
        raise BatchInterrupted(f"signal {signum}")

    saved = {s: signal.signal(s, raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
