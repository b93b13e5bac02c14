"""Import ``torch._dynamo`` beside other work, in both the worker and the grader.

Every ``torch.optim`` ``Optimizer.step`` imports ``torch._dynamo`` (it marks a graph break for
compiled code). In a fresh process that costs ~1 s (dynamo and sympy) in the middle of the first
training run: the student's in the worker and the reference's in the grader. Both processes are
mostly waiting on each other before then, so a background thread started early pays the import
in that time. Importing changes no computation, and CPython's ``os.fork`` waits for an import in
progress, so a fork cannot catch it half done. A process that has it already (a pooled worker,
whose zygote imported it; a batch's second grading) starts nothing.
"""

from __future__ import annotations

import sys
import threading


def import_dynamo_beside() -> threading.Thread | None:
    """Start importing ``torch._dynamo`` in a daemon thread; None when it is imported already.
    A failure is left to the first ``step()``, which then imports it as it would have."""
    if "torch._dynamo" in sys.modules:
        return None

    def load() -> None:
        try:
            import torch._dynamo  # noqa: F401
        except Exception:  # noqa: BLE001 - see the docstring
            pass

    thread = threading.Thread(target=load, name="grader-import-dynamo", daemon=True)
    thread.start()
    return thread
