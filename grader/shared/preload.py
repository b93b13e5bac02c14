"""Import ``torch._dynamo`` beside other work, in both the worker and the grader.

Every ``torch.optim`` ``Optimizer.step`` imports ``torch._dynamo`` (it marks a graph break for
compiled code). In a fresh process that costs ~1 s (dynamo and sympy) in the middle of the first
training run: the student's in the worker and the reference's in the grader. Both processes are
mostly waiting on each other before then, so a background thread started early pays the import
in that time. Importing changes no computation, and CPython's ``os.fork`` waits for an import in
progress, so a fork cannot catch it half done. A process that has it already (a pooled worker,
whose zygote imported it; a batch's second grading) starts nothing.

Two threads importing into one circular package graph (torch's, sympy's) can each hold a module
the other needs; CPython then breaks the cycle by handing one of them a half-initialised module
("cannot import name ... from partially initialized module"). So while the thread runs, another
thread's first import of a module of those packages waits for it to finish (an audit hook: the
``import`` event comes before the import takes any lock). Imports of anything else, such as
the student's own modules, go on beside it.
"""

from __future__ import annotations

import sys
import threading

# Packages with import cycles that torch._dynamo's import walks through.
_GATED = frozenset({"torch", "functorch", "sympy", "mpmath"})
_WAIT = 30.0
_running: threading.Thread | None = None
_hooked = False


def import_dynamo_beside() -> threading.Thread | None:
    """Start importing ``torch._dynamo`` in a daemon thread; None when it is imported already
    or being imported. A failure is left to the first ``step()``, which then imports it as it
    would have."""
    global _running, _hooked
    if "torch._dynamo" in sys.modules or (_running is not None and _running.is_alive()):
        return None

    def load() -> None:
        global _running
        try:
            import torch._dynamo  # noqa: F401
        except Exception:  # noqa: BLE001 - see the docstring
            pass
        finally:
            _running = None

    thread = threading.Thread(target=load, name="grader-import-dynamo", daemon=True)
    _running = thread
    if not _hooked:
        sys.addaudithook(_wait_for_preload)  # hooks cannot be removed: it checks a flag
        _hooked = True
    thread.start()
    return thread


def _wait_for_preload(event: str, args: tuple) -> None:
    if event != "import":
        return
    thread = _running
    if (thread is None or thread is threading.current_thread()
            or str(args[0]).partition(".")[0] not in _GATED):
        return
    # Bounded: were the waiting thread to hold a module the import needs (a package outside
    # the gate that imports torch at its own import), waiting for ever would be a deadlock.
    thread.join(_WAIT)
