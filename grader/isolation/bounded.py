"""Run one submission's judging in its own process, bounded in memory and wall-clock time.

The judging process reads everything the worker sends (bounded by :mod:`grader.isolation.replies`)
and runs the trusted checks on it. If that still goes wrong -- a judging routine that is slow on
some legal input, a memory blow-up -- it must cost that submission's result, never the batch or
the machine. :func:`run_bounded` starts ``python -c <entry>`` with the payload on stdin,
``RLIMIT_DATA`` as its heap cap, its own process group (killed whole at the deadline), and reads
its answer from a file of bounded size; any failure is a :class:`JudgingFailed` naming why.

The trust decision (ARCHITECTURE.md, "Trust boundary"): the judging process keeps the
privileges of its parent, because bubblewrap without a user namespace needs root to drop the
sandbox to a per-job uid. It is bounded, handles only bounded data, and runs no student code.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from grader.isolation import replies
from grader.isolation.client import kill_group


class JudgingFailed(Exception):
    """The judging process did not produce a result: timed out, ran out of memory, crashed."""


@dataclass(frozen=True)
class JudgeLimits:
    """Bounds of one judging process."""

    memory_bytes: int = 8 * 2**30
    timeout: float = 3600.0
    result_bytes: int = 32 * 2**20
    # Strings of the results are cut to this many characters (the log to ``log_chars``) with a
    # note, so a results file stays small whatever the student's code printed or raised.
    string_chars: int = 20_000
    log_chars: int = 128 * 1024


def run_bounded(entry: str, payload: bytes, limits: JudgeLimits = JudgeLimits(),
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -c entry`` with ``payload`` on stdin; the child writes one JSON object to
    the file named by ``$GRADER_JUDGE_OUT``. Returns that object, its strings cut to bounds."""
    out = tempfile.NamedTemporaryFile(prefix="grader-judge-", suffix=".json", delete=False)
    out.close()

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # No RLIMIT_FSIZE: the sandboxes it starts inherit it, and the grader writes checkpoints
        # of hundreds of MB for them; the results file is size-checked instead.

    child_env = dict(os.environ if env is None else env)
    child_env["GRADER_JUDGE_OUT"] = out.name
    try:
        proc = subprocess.Popen([sys.executable, "-c", entry], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=child_env, preexec_fn=preexec, start_new_session=True)
        try:
            _, err = proc.communicate(payload, timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise JudgingFailed(f"judging this submission took longer than "
                                f"{limits.timeout:.0f} s and was stopped") from None
        finally:
            kill_group(proc)
        if proc.returncode != 0:
            raise JudgingFailed(_why(proc.returncode, err or b""))
        size = os.path.getsize(out.name)
        if size > limits.result_bytes:
            raise JudgingFailed(f"the judging process wrote {size:,} bytes of results (limit "
                                f"{limits.result_bytes:,})")
        with open(out.name, "rb") as fh:
            data = fh.read()
        bounds = replies.Bounds(json_bytes=limits.result_bytes, depth=64,
                                string_chars=limits.result_bytes, items=1 << 20)
        try:
            value = replies.parse_json(data, bounds)
        except replies.ReplyRejected as exc:
            raise JudgingFailed(f"the judging process wrote unreadable results: {exc}") from None
        return cut_strings(value, limits.string_chars, {"log": limits.log_chars})
    finally:
        try:
            os.unlink(out.name)
        except OSError:
            pass


def cut_strings(value: Any, limit: int, per_key: dict[str, int] | None = None) -> Any:
    """A copy of a JSON value whose strings longer than ``limit`` (``per_key[k]`` under key
    ``k``) are cut with a note."""
    per_key = per_key or {}

    def walk(v: Any, cap: int) -> Any:
        if isinstance(v, str):
            return replies.cut(v, cap)
        if isinstance(v, list):
            return [walk(x, cap) for x in v]
        if isinstance(v, dict):
            return {k: walk(x, per_key.get(k, limit)) for k, x in v.items()}
        return v

    return walk(value, limit)


def write_result(value: dict[str, Any]) -> None:
    """In the judging process: write the answer where :func:`run_bounded` reads it."""
    with open(os.environ["GRADER_JUDGE_OUT"], "w") as fh:
        json.dump(value, fh, allow_nan=False)


def _why(code: int, err: bytes) -> str:
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        return f"the judging process was killed by {sig}" + (
            " (out of memory?)" if sig == "SIGKILL" else "")
    if "MemoryError" in err.decode(errors="replace"):
        return "the judging process ran out of memory (its limit was reached)"
    return f"the judging process exited with code {code}: {replies.cut(tail[0], 300)}"
