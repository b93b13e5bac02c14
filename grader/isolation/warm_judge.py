"""A batch's warm judge: the unprivileged judging process, started once per batch thread, that
has imported torch and the checks and forks one judging child per submission.

A fresh judge per submission (:func:`grader.isolation.bounded.start_judge`, what ``grader run``
uses) costs an ``import torch`` and the checks' imports each time: more than a whole attention
grade from a warm pool. So a batch keeps, per thread, one judge sandbox (the same sandbox as a
fresh judge's: :data:`grader.isolation.launcher.JUDGE_UID`, no capabilities, no network, its
own pid namespace) whose process imports everything once and then, for each submission, forks a
child (one thread and no writable shared mapping before every fork, as the worker zygote
checks) that:

- runs under its own ``RLIMIT_DATA``, undumpable, its stderr and its answer on descriptors this
  side opened (the answer read here by the same strict reader as a fresh judge's);
- talks to its own root :class:`~grader.isolation.launcher.Launcher` (given by ``SCM_RIGHTS``),
  which forks the submission's workers from the batch's warm pool slot;
- ends with the submission: whatever it did to its memory dies with it, and the next child is
  forked from the unchanged judge.

A child past its deadline, or a judge that stops answering, is ended by killing the whole judge
sandbox (its process group): that costs the submission its result -- recorded, every check an
error saying why -- and the next submission one judge start. The judge side is the ``entry``
the caller gives (``grader.batch.judging``): this module never imports the checks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grader.isolation import bounded
from grader.isolation.bounded import JudgeLimits, JudgingFailed
from grader.isolation.client import kill_group

# The descriptor of the judge's control socket, in its environment.
CONTROL_FD_ENV = "GRADER_JUDGE_CONTROL_FD"
_MAX_MESSAGE = 64 * 1024
# Of a child's stderr, the tail kept to say why it failed.
_ERR_TAIL = 64 * 1024


class JudgeUnavailable(RuntimeError):
    """The warm judge could not be started (the caller grades another way, and says why)."""


class WarmJudge:
    """One warm judge sandbox (see the module docstring). Not thread-safe: one batch thread
    uses it at a time (:class:`WarmJudges` hands them out).

    ``entry``: the judge's Python code (``python -c``); ``setting``: a
    :class:`~grader.isolation.bounded.Judge` (work area, read-only paths, import path and
    environment; its launcher is unused: every submission gets its own); ``starter``: runs a
    callable on a long-lived thread (bubblewrap's ``--die-with-parent`` follows the thread
    that started it), e.g. a warm pool's launcher thread."""

    def __init__(self, entry: str, setting: bounded.Judge,
                 starter: Callable[[Callable[[], Any]], Any] | None = None,
                 start_timeout: float = 180.0):
        self.entry, self.setting = entry, setting
        self.starter = starter or (lambda fn: fn())
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None
        self._launch: Any = None
        self._control: socket.socket | None = None
        self._err: Any = None
        self.starts = 0
        self.served = 0
        self.last_start_seconds = 0.0
        # Where its children keep the run's reference outputs and checkpoints (the caller's).
        self.caches: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def work_area(self) -> Path:
        """The judge's folder: submissions' copies go in it, its children's temporary files."""
        return self.setting.work_area

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- the judge process ---------------------------------------------------------------
    def start(self) -> None:
        """Start the judge if it is not running, and wait for it to say it may fork."""
        if self.alive and self._control is not None:
            return
        self.stop()
        from grader.isolation import sandbox
        from grader.isolation.launcher import JUDGE_UID

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        err = tempfile.TemporaryFile(prefix="grader-judge-log-")
        env = {**self.setting.env, CONTROL_FD_ENV: str(theirs.fileno()),
               "PYTHONPATH": os.pathsep.join(self.setting.import_path)}
        started = time.monotonic()
        try:
            launch = sandbox.plan_judge([sys.executable, "-P", "-c", self.entry], uid=JUDGE_UID,
                                        work_area=self.setting.work_area,
                                        ro_paths=self.setting.ro_paths,
                                        rw_paths=self.setting.rw_paths,
                                        threads=self.setting.threads, env=env,
                                        pass_fds=(theirs.fileno(),))
        except Exception as exc:  # noqa: BLE001 - no sandbox: the caller grades another way
            mine.close()
            theirs.close()
            err.close()
            raise JudgeUnavailable(f"the warm judge could not be planned: {exc}") from None

        def popen() -> subprocess.Popen:
            return subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, env=launch.env,
                                    cwd=launch.cwd, pass_fds=launch.pass_fds,
                                    start_new_session=True)

        try:
            proc = self.starter(popen)
        except OSError as exc:
            launch.cleanup()
            mine.close()
            err.close()
            raise JudgeUnavailable(f"the warm judge could not be started: {exc}") from None
        finally:
            theirs.close()
        self._proc, self._launch, self._control, self._err = proc, launch, mine, err
        self.starts += 1
        try:
            ready = self._receive(self.start_timeout)
        except JudgingFailed as exc:
            self.stop()
            raise JudgeUnavailable(f"the warm judge did not start: {exc}") from None
        if not ready.get("ready"):
            self.stop()
            raise JudgeUnavailable(f"the warm judge may not fork: {ready.get('hazards')}")
        self.last_start_seconds = time.monotonic() - started

    def start_once(self) -> None:
        """:meth:`start`, waiting for a submission being judged first (a prestart)."""
        with self._lock:
            self.start()

    def stop(self) -> None:
        """Kill the judge sandbox (and the child it is running, if any)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            kill_group(proc)
        for thing in (self._control, self._err):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
        self._control = self._err = None
        if self._launch is not None:
            self._launch.cleanup()
            self._launch = None

    def close(self) -> None:
        """Stop the judge and remove its work area."""
        from grader.isolation.launcher import remove_work_area

        self.stop()
        remove_work_area(self.setting.work_area)

    def abort(self) -> None:
        """From another thread: end the submission being judged now (the judge with it)."""
        proc = self._proc
        if proc is not None:
            kill_group(proc)

    # -- one submission ------------------------------------------------------------------
    def judge(self, payload: bytes, launcher: Any, limits: JudgeLimits) -> dict[str, Any]:
        """Judge one submission: fork a child on ``payload`` (what the entry's child reads),
        its workers started by ``launcher`` (a started
        :class:`~grader.isolation.launcher.Launcher` for this submission). Returns the child's
        answer, its strings cut; raises :class:`JudgingFailed` saying why there is none."""
        with self._lock:
            try:
                self.start()
            except JudgeUnavailable as exc:
                raise JudgingFailed(str(exc)) from None
            assert self._control is not None
            with tempfile.TemporaryFile(prefix="grader-judge-in-") as given, \
                    tempfile.TemporaryFile(prefix="grader-judge-out-") as out, \
                    tempfile.TemporaryFile(prefix="grader-judge-err-") as err:
                given.write(payload)
                given.flush()
                fds = [given.fileno(), out.fileno(), err.fileno(), launcher.judge_end.fileno()]
                message = {"op": "judge", "memory": int(limits.memory_bytes)}
                try:
                    socket.send_fds(self._control, [json.dumps(message).encode()], fds)
                except OSError as exc:
                    self.stop()
                    raise JudgingFailed(f"the warm judge stopped answering: {exc}") from None
                finally:
                    launcher.judge_started()  # the child's exit now reads as a hang-up
                deadline = time.monotonic() + limits.timeout
                try:
                    answer = self._receive(30.0)
                    if not answer.get("ok"):
                        raise JudgingFailed(f"the warm judge refused the submission: "
                                            f"{str(answer.get('error'))[:300]}")
                    ended = self._receive(max(0.0, deadline - time.monotonic()),
                                          timed_out=f"judging this submission took longer "
                                                    f"than {limits.timeout:.0f} s and was "
                                                    "stopped")
                except JudgingFailed:
                    self.stop()
                    raise
                self.served += 1
                code = ended.get("exit")
                if not isinstance(code, int) or isinstance(code, bool):
                    self.stop()
                    raise JudgingFailed("the warm judge sent a malformed answer")
                if code != 0:
                    size = os.fstat(err.fileno()).st_size
                    tail = os.pread(err.fileno(), _ERR_TAIL, max(0, size - _ERR_TAIL))
                    raise JudgingFailed(bounded._why(code, tail))
                return bounded._read_result(out.fileno(), limits)

    def _receive(self, timeout: float, timed_out: str = "") -> dict[str, Any]:
        assert self._control is not None
        self._control.settimeout(max(timeout, 0.001))
        try:
            data = self._control.recv(_MAX_MESSAGE)
        except TimeoutError:
            raise JudgingFailed(timed_out or f"the warm judge did not answer within "
                                             f"{timeout:.0f} s") from None
        except OSError as exc:
            raise JudgingFailed(f"the warm judge stopped answering: {exc}") from None
        if not data:
            raise JudgingFailed("the warm judge died" + self._log_tail())
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise JudgingFailed("the warm judge sent a malformed message")
        return value

    def _log_tail(self) -> str:
        if self._err is None:
            return ""
        try:
            size = os.fstat(self._err.fileno()).st_size
            tail = os.pread(self._err.fileno(), 2000, max(0, size - 2000))
        except OSError:
            return ""
        lines = tail.decode(errors="replace").strip().splitlines()
        return f" ({lines[-1][:300]})" if lines else ""


class WarmJudges:
    """The warm judges of one batch, one per warm pool slot: a submission's judge is its
    slot's, so a judge sees only its own slot's job folders and is used by one thread at a
    time, the slot's. ``make(slot_folder, setup)`` builds one that writes in ``slot_folder``;
    ``setup`` is what its sandbox depends on (threads, the paths it reads): a submission
    graded with another setup gets a new judge."""

    def __init__(self, make: Callable[[Path, Any], WarmJudge]):
        self._make = make
        self._judges: dict[int, tuple[Any, WarmJudge]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def for_slot(self, slot: Any, setup: Any) -> WarmJudge:
        """The judge of a :class:`grader.isolation.pool.PoolSlot` for ``setup`` (made, not
        started, on first use). Raises :class:`JudgeUnavailable` where none can be made."""
        with self._lock:
            if self._closed:
                raise JudgeUnavailable("the batch's judges are closed")
            known = self._judges.get(slot.slot)
            if known is not None and known[0] == setup:
                return known[1]
            old = known[1] if known is not None else None
            try:
                judge = self._make(slot.jobs, setup)
            except JudgingFailed as exc:
                raise JudgeUnavailable(str(exc)) from None
            self._judges[slot.slot] = (setup, judge)
        if old is not None:
            old.close()
        return judge

    def prestart(self, slots: Sequence[Any], setup: Any) -> None:
        """Start the judges of ``slots`` now, in the background (their imports then overlap
        the zygotes' and the first submissions' preparation)."""
        def start(judge: WarmJudge) -> None:
            try:
                judge.start_once()
            except JudgeUnavailable:
                pass  # its first submission says why

        for slot in slots:
            try:
                judge = self.for_slot(slot, setup)
            except JudgeUnavailable:
                return
            threading.Thread(target=start, args=(judge,), daemon=True,
                             name=f"grader-judge-prestart-{slot.slot}").start()

    def close(self) -> None:
        """Stop every judge and remove their work areas."""
        with self._lock:
            self._closed = True
            judges = [j for _, j in self._judges.values()]
        for judge in judges:
            judge.close()


def judges_possible(ro_paths: Sequence[Path] = ()) -> tuple[bool, str]:
    """Whether warm judges can run here (root, bubblewrap working, every path readable)."""
    if not bounded.judge_available("bwrap"):
        return False, "unprivileged judging needs root and a working bubblewrap"
    hidden = bounded.unreadable_for_judge([Path(__file__).resolve().parents[1],
                                           *(Path(p) for p in ro_paths)])
    if hidden:
        return False, f"the judge's uid cannot read {hidden[0]}"
    return True, ""
