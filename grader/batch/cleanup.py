"""Nothing left behind, however the batch ends.

A batch puts every temporary file of its jobs (the workers' shared folders, the sandboxes'
private /tmp and home) under one **temp root** of its own, and notes each running worker's
process group and slot there. A small **reaper** process, started in a session of its own,
waits on a pipe from the coordinator: when the coordinator ends -- normally, by SIGINT or
SIGTERM, or by SIGKILL, which no handler sees -- the pipe closes, and the reaper kills the
process groups still noted, removes the cgroups of those slots that no other grader has leased
since, and deletes the temp root. A later batch also deletes temp roots whose batch has died
(in case the reaper was killed too).

Run as ``python -m grader.batch.cleanup TEMP_ROOT`` by :func:`start_reaper` only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREFIX = "grader-batch-"
PIDS = "pids"


def make_temp_root() -> Path:
    """A fresh temp root for this process (``/tmp/grader-batch-<pid>-XXXX``)."""
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-",
                                 dir=tempfile.gettempdir()))
    (root / PIDS).mkdir()
    return root


def sweep_dead_roots(base: Path | None = None) -> list[Path]:
    """Delete temp roots of batches that are no longer running; returns those deleted."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    for d in base.glob(f"{PREFIX}*"):
        m = re.match(rf"{PREFIX}(\d+)-", d.name)
        if not m or not d.is_dir():
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        reap(d)
        removed.append(d)
    return removed


class Reaper:
    """The handle on a started reaper: :meth:`finish` at the normal end of the batch."""

    def __init__(self, proc: subprocess.Popen | None, root: Path):
        self.proc, self.root = proc, root

    def finish(self) -> None:
        """End the reaper by closing its pipe (it then cleans up, as after a crash) and wait."""
        if self.proc is None:
            reap(self.root)
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        reap(self.root)  # whatever it could not do (it is the same code: idempotent)


def start_reaper(root: Path) -> Reaper:
    """Start the reaper of ``root`` (see the module docstring)."""
    from grader.isolation.bounded import trusted_python

    argv, env = trusted_python("-m", "grader.batch.cleanup", str(root),
                               env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True, env=env)
    except OSError:
        return Reaper(None, root)
    return Reaper(proc, root)


def reap(root: Path) -> None:
    """Kill the process groups noted under ``root``, free their slots' cgroups, delete it."""
    pid_dir = root / PIDS
    slots = set()
    for note in list(pid_dir.glob("*")) if pid_dir.is_dir() else []:
        try:
            pid = int(note.name)
            slot_text = note.read_text().strip()
            if slot_text.isdigit():
                slots.add(int(slot_text))
        except (OSError, ValueError):
            continue
        _kill_group(pid)
    for slot in sorted(slots):
        _remove_stale_cgroups(slot)
    shutil.rmtree(root, ignore_errors=True)


def _kill_group(pid: int) -> None:
    # Workers run in a session (process group) of their own, led by the process we started.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)


def _remove_stale_cgroups(slot: int) -> None:
    """Remove the slot's cgroups below ours, unless another grader holds the slot now (it
    then owns them, and removes a stale group itself when it sets up its own)."""
    try:
        from grader.isolation import cgroups, leases
    except ImportError:
        return
    try:
        lease = leases.acquire_slot(slot, wait=0)
    except Exception:  # noqa: BLE001 - held elsewhere (or no lease directory): leave it
        return
    try:
        name = leases.cgroup_name(slot)
        own = cgroups.own_cgroup_paths()
        for fstype, mount_root, point, options in cgroups.cgroup_mounts():
            ctrls = [c for c in options if c in own] if fstype == "cgroup" else [""]
            for ctrl in ctrls:
                parent = cgroups.host_dir(mount_root, point, own.get(ctrl, ""))
                if parent is not None and (parent / name).is_dir():
                    cgroups.remove_cgroup(parent / name)
    except Exception:  # noqa: BLE001 - cleanup is best effort
        pass
    finally:
        lease.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _main(argv: list[str]) -> int:
    root = Path(argv[0])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the pipe's end stops us
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except OSError:
        pass
    reap(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
