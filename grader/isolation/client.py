"""The grader's handle on one worker process: start it isolated, send tasks, enforce limits.

A worker serves one submission, so ``import torch`` is paid once per submission -- unless the
client is given a warm pool (:mod:`grader.isolation.pool`, batches only): its workers are then
forked from a zygote that imported torch once, each with the isolation of a fresh sandboxed
worker, and the client falls back to starting fresh workers wherever the pool cannot serve it.
When the student's code hangs, crashes the process, or floods its output, the worker is killed,
the request fails with a clear error, and the next request starts a fresh worker.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.isolation import leases, replies, sandbox

if TYPE_CHECKING:
    from grader.isolation.pool import PoolSlot, WarmPool
from grader.shared import protocol

WORKER_PACKAGE = Path(__file__).resolve().parent.parent / "worker"
SHARED_PACKAGE = WORKER_PACKAGE.parent / "shared"
# Inside the sandbox only the worker package and the code both sides share are mounted, under a
# namespace-package `grader`: nothing of the trusted side is visible there.
SANDBOX_WORKER = "/opt/grader/grader/worker"
SANDBOX_SHARED = "/opt/grader/grader/shared"
# Large inputs (checkpoints) are shared as files in a per-worker folder, mounted read-only.
SANDBOX_DATA = "/opt/grader-data"
# A folder the worker may read in place, lent read-only (the grader's checkpoint cache: seeded
# random weights the grader built, nothing of anyone's): no 0.5 GB copy into data_dir per run.
SANDBOX_LENT = "/opt/grader-lent"
# The folder of data_dir holding modules made from a submission's notebooks.
MODULES_DIR = "modules"


class WorkerError(Exception):
    """Base of the ways a request to the worker can fail."""


class StudentCodeError(WorkerError):
    """The student's code raised (or broke the assignment's contract) while running a task."""

    def __init__(self, error: dict[str, Any]):
        self.error = error
        super().__init__(error.get("message", ""))

    @property
    def contract(self) -> bool:
        return bool(self.error.get("contract"))

    def describe(self) -> str:
        """One line for the student: what was raised and where in their code."""
        e = self.error
        kind, message = str(e.get("type", "Error")), str(e.get("message", ""))
        text = message if e.get("contract") else f"{kind}: {message}"
        text = text.strip().splitlines()[0] if text.strip() else kind
        if e.get("where"):
            text += f" ({e['where']})"
        return replies.cut(text, 2000)


class WorkerTimeout(WorkerError):
    """The student's code ran past the time limit of a request or of the whole submission."""


class WorkerCrashed(WorkerError):
    """The worker process died or sent something that is not a reply."""


@dataclass
class Reply:
    result: dict[str, Any]
    tensors: dict[str, Any]


@dataclass
class WorkerSettings:
    """How workers are started and bounded. ``threads`` should be cores / concurrent workers:
    oversubscribed torch threads make training steps many times slower."""

    isolation: str = "auto"
    threads: int = 1
    # None: the client leases a free slot host-wide for its life (see grader.isolation.leases).
    # A number: that slot; the caller should hold its lease (a batch does), else the client
    # leases exactly that slot, waiting while another job holds it.
    slot: int | None = None
    call_timeout: float = 60.0
    total_timeout: float = 600.0
    start_timeout: float = 60.0
    max_reply_bytes: int = 512 * 2**20
    # Bounds of a reply's JSON part (size, depth, lengths, digits): see grader.isolation.replies.
    reply_bounds: replies.Bounds = field(default_factory=replies.Bounds)
    log_bytes: int = 64 * 1024
    max_restarts: int = 10
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)


class _BoundedLog:
    """Keeps the head and the tail of a stream so a flood of prints cannot exhaust memory."""

    def __init__(self, limit: int):
        self.limit, self.head, self.tail, self.dropped = limit, bytearray(), bytearray(), 0
        self.lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self.lock:
            room = self.limit // 2 - len(self.head)
            if room > 0:
                self.head += data[:room]
                data = data[room:]
            self.tail += data
            if len(self.tail) > self.limit // 2:
                cut = len(self.tail) - self.limit // 2
                self.dropped += cut
                del self.tail[:cut]

    def text(self) -> str:
        with self.lock:
            middle = f"\n[... {self.dropped:,} bytes of output cut ...]\n" if self.dropped else ""
            return (bytes(self.head).decode(errors="replace") + middle
                    + bytes(self.tail).decode(errors="replace"))


# Folders a staged copy of a submission leaves out (caches and environments, never graded).
STAGING_IGNORED = ("__pycache__", ".git", ".venv", "venv", "node_modules", ".ipynb_checkpoints")
# A submission larger than this is never copied (it is graded in place, readable or not).
STAGING_MAX_BYTES = 256 * 2**20


def _tree_bytes(root: Path, limit: int) -> int:
    """Bytes of the files under ``root`` (counting stops past ``limit``)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
            if total > limit:
                return total
    return total


def _special_files(folder: str, names: list[str]) -> list[str]:
    """The entries of ``folder`` that are neither files, folders nor symlinks (a FIFO would
    block the copy forever; a device or socket means nothing to a worker)."""
    out = []
    for name in names:
        mode = os.lstat(os.path.join(folder, name)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            out.append(name)
    return out


def _readable_copy(source: Path, target: Path) -> None:
    """Copy ``source`` whole into ``target`` (symlinks as symlinks, special files left out),
    as a bind of it would show it, but readable by any uid: folders gain r-x and files r for
    everyone, modes otherwise kept but for setuid, setgid and sticky bits (the copy is root's:
    a setuid file in it would be a setuid-root file on the host)."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=_special_files)
    for folder, _dirs, files in os.walk(target):
        os.chmod(folder, os.stat(folder).st_mode & 0o777 | 0o555)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o777 | 0o444)


def _open_up(copy: Path) -> None:
    """Make a staged copy readable by the worker's uid (folders 0755, files 0644)."""
    for folder, _dirs, files in os.walk(copy):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


def _readable_by_others(root: Path) -> bool:
    """Whether every folder under ``root`` can be listed and every file read by any user, or
    the tree is too large to copy (then it is used in place, and an unreadable file is the
    student's own error)."""
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in STAGING_IGNORED]
        if os.stat(folder).st_mode & 0o005 != 0o005:
            return False
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            total += st.st_size
            if total > STAGING_MAX_BYTES:
                return True
            if not (st.st_mode & 0o004) and not os.path.islink(os.path.join(folder, name)):
                return False
    return True


class _PooledLaunch:
    """What :meth:`WorkerClient._stop` needs of a pooled start: its cleanup (the slot checked
    clean and the job's cgroup removed)."""

    def __init__(self, slot: PoolSlot, job: Any):
        self.slot, self.job = slot, job

    def cleanup(self) -> None:
        self.slot.finish(self.job)


class WorkerClient:
    """A worker for one submission folder. Use as a context manager.

    ``pool``: a :class:`grader.isolation.pool.WarmPool` to fork the workers from (a batch's);
    without one, or where it cannot serve (isolation "none", a fixed slot, a submission too
    large to copy, no zygote), every worker is a fresh process."""

    def __init__(self, submission: Path, settings: WorkerSettings | None = None,
                 pool: WarmPool | None = None, launcher: Any = None, lend: Path | None = None):
        self.submission = Path(submission).resolve()
        # ``lend``: a folder a fresh sandboxed worker gets read-only at SANDBOX_LENT (see
        # :meth:`seen_as`); a launcher's workers get the launcher's own, as it says.
        self._lend = Path(lend).resolve() if lend is not None else None
        self._lent: dict[str, str] = {}
        # A :class:`grader.isolation.launcher.LauncherProxy` (in the unprivileged judge): every
        # worker is then started, waited for and killed by the root launcher it talks to.
        self._launcher = launcher
        self.settings = settings or WorkerSettings()
        self.log = _BoundedLog(self.settings.log_bytes)
        self.isolation_description = ""
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._launch: sandbox.Launch | None = None
        self._deadline = time.monotonic() + self.settings.total_timeout
        self._next_id = 0
        self._info: dict[str, Any] = {}
        self._in_sandbox = False
        self._ready = False
        self._lease: leases.SlotLease | None = None
        self.processes_forbidden = False
        self._wants_dynamo = False
        self._staged: Path | None = None
        self._pool_slot: PoolSlot | None = None
        self._pool_folder: Path | None = None
        self._pool_copied = False
        self.pool_refused = ""  # why this client's workers are fresh although a pool was given
        if launcher is None and pool is not None and pool.usable_for(self.settings.isolation,
                                                                     self.settings.slot):
            from grader.isolation.pool import PoolUnavailable

            try:
                self._pool_slot = pool.checkout(self.settings.start_timeout)
            except PoolUnavailable as exc:
                self.pool_refused = str(exc)
        if self._pool_slot is not None:
            # The slot's lease is the pool's: the client's fresh fallback runs under it too.
            self._lease = self._pool_slot.lease
            self._pool = pool
            self._pool_folder = self._pool_slot.new_job_folder()
            self.data_dir = self._pool_folder / "data"
        else:
            self._pool = None
            # A warm judge's launcher forks pooled workers, which see only folders it made.
            given = launcher.data_dir() if launcher is not None else None
            self.data_dir = given or Path(tempfile.mkdtemp(prefix="grader-data-"))
            os.chmod(self.data_dir, 0o755)

    def use_folder(self, folder: Path) -> None:
        """Serve ``folder`` instead of the folder given at construction (discovery found the
        student's files one or two folders down, e.g. ``ann/hw1/``). Only before the first
        worker started: a running worker already sees its ``/submission``."""
        folder = Path(folder).resolve()
        if folder == self.submission:
            return
        if self.starts or self._staged is not None or self._pool_copied:
            raise RuntimeError(f"the worker already serves {self.submission}; cannot switch "
                               f"to {folder}")
        self.submission = folder

    @property
    def launcher(self) -> Any:
        """The root launcher's proxy this client starts its workers through, if any."""
        return self._launcher

    @property
    def slot(self) -> int | None:
        """The slot (uid ``60000 + slot``) this client's workers run under, once launched."""
        if self.settings.slot is not None and self._lease is None:
            return self.settings.slot
        return self._lease.slot if self._lease is not None else None

    def _slot(self) -> int:
        # One lease for the client's life: restarted workers keep the same identity, and no other
        # job on the machine can have it meanwhile.
        wanted = self.settings.slot
        if wanted is not None and leases.held(wanted):
            return wanted
        if self._lease is None or not self._lease.active:
            try:
                self._lease = leases.acquire_slot(wanted, wait=self.settings.start_timeout,
                                                  register=False)
            except (leases.SlotsExhausted, leases.LeaseDirectoryUnsafe) as exc:
                raise WorkerCrashed(f"no sandbox slot for this submission: {exc}") from None
        return self._lease.slot

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def info(self) -> dict[str, Any]:
        """What the worker said about itself at start (python, torch, threads, cuda)."""
        return self._info

    def start(self) -> None:
        """Start a worker if none is running (and the restart budget allows), and wait until it
        answers."""
        self.launch()
        self._await_ready()

    def _visible_submission(self) -> Path:
        """The folder the worker is given as ``/submission``: the submission itself, or, when
        part of it is not readable by other users (a folder made by ``mktemp -d``, an archive
        unpacked with private modes), a readable copy in this worker's data folder. The
        sandboxed worker runs as its own unprivileged uid and would otherwise fail to import
        the student's modules with a PermissionError that says nothing useful."""
        if self._staged is not None:
            return self._staged
        self._staged = self.submission
        if not _readable_by_others(self.submission):
            copy = self.data_dir / "submission"
            shutil.copytree(self.submission, copy, symlinks=True,
                            ignore=shutil.ignore_patterns(*STAGING_IGNORED))
            _open_up(copy)
            self._staged = copy
        return self._staged

    def launch(self) -> None:
        """Start the worker process without waiting for it: its ``import torch`` then overlaps
        with whatever the caller does next (e.g. importing the checks)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        if self.starts > self.settings.max_restarts:
            raise WorkerCrashed("the worker process was restarted too often; giving up on the "
                                "remaining checks")
        self.starts += 1
        self._lent = {}  # what this start lends, as it says (a pooled worker: nothing)
        if self._launcher is not None:
            self._launch_remote()
            return
        if self._pool_slot is not None and not self.pool_refused:
            from grader.isolation.pool import PoolUnavailable

            try:
                self._launch_pooled()
                return
            except PoolUnavailable as exc:
                self.pool_refused = str(exc)  # from now on: fresh workers, as without a pool
        lend = [(self._lend, SANDBOX_LENT)] if self._lend and self._lend.is_dir() else []
        launch = sandbox.plan_launch(
            self._command,
            submission_dir=self._visible_submission(),
            extra_ro_binds=[(WORKER_PACKAGE, SANDBOX_WORKER), (SHARED_PACKAGE, SANDBOX_SHARED),
                            (self.data_dir, SANDBOX_DATA), *lend],
            isolation=self.settings.isolation,
            limits=self.settings.limits,
            slot=self._slot(),
            lease=self._lease,
            threads=self.settings.threads,
        )
        self._launch = launch
        self._in_sandbox = launch.isolation == "bwrap"
        self._lent = {str(h): d for h, d in lend} if self._in_sandbox else {}
        self.isolation_description = launch.description
        try:
            self._proc = subprocess.Popen(
                launch.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, **launch.popen_kwargs(),
            )
        except OSError as exc:
            self._stop()
            raise WorkerCrashed(f"the worker process could not be started: {exc}") from None
        threading.Thread(target=self._drain_stderr, args=(self._proc,), daemon=True).start()
        self._ready = False

    def _launch_remote(self) -> None:
        """Ask the root launcher for a worker sandbox: it plans the launch itself from these
        few fields (no argv), checks the folders lie in this judge's work area, caps the limits
        and hands back the worker's pipes; the rest of the client does not know the difference."""
        try:
            proc = self._launcher.launch(
                submission=self._visible_submission(), data_dir=self.data_dir,
                threads=self.settings.threads, limits=self.settings.limits,
                no_processes=self.processes_forbidden)
        except OSError as exc:
            raise WorkerCrashed(f"the worker process could not be started: {exc}") from None
        self._proc = proc
        self._launch = proc  # type: ignore[assignment]  (its cleanup() releases the launch)
        self._in_sandbox = True
        self._lent = dict(proc.lent)
        self.isolation_description = proc.description
        threading.Thread(target=self._drain_stderr, args=(self._proc,), daemon=True).start()
        self._ready = False

    def _pooled_submission(self) -> Path:
        """The submission as the pooled worker sees it at ``/submission``: a readable copy in
        the job's folder (the zygote sees only that folder)."""
        from grader.isolation.pool import PoolUnavailable

        assert self._pool_folder is not None
        target = self._pool_folder / "submission"
        if not self._pool_copied:
            if _tree_bytes(self.submission, STAGING_MAX_BYTES) > STAGING_MAX_BYTES:
                raise PoolUnavailable(f"the submission is larger than "
                                      f"{STAGING_MAX_BYTES // 2**20} MB: graded in place")
            _readable_copy(self.submission, target)
            self._pool_copied = True
        return target

    def _launch_pooled(self) -> None:
        assert self._pool_slot is not None
        staged = self._pooled_submission()
        seen = {str(self.data_dir.resolve()): SANDBOX_DATA, str(staged.resolve()): "/submission"}

        def path(host) -> str:
            real = str(Path(host).resolve())
            for base, dest in seen.items():
                if real == base or real.startswith(base + "/"):
                    return dest + real[len(base):]
            raise ValueError(f"{host} is not visible to the pooled worker")

        args = self._worker_args(path, staged)
        env = sandbox.worker_env(self.settings.threads)
        job = self._pool_slot.spawn(self._pool_folder.name, args, env, self.settings.limits,
                                    self.settings.threads, self.settings.start_timeout)
        self._launch = _PooledLaunch(self._pool_slot, job)  # type: ignore[assignment]
        self._proc = job.proc  # type: ignore[assignment]
        self._in_sandbox = True
        self.isolation_description = self._pool_slot.description(job)
        threading.Thread(target=self._drain_stderr, args=(self._proc,), daemon=True).start()
        self._ready = False

    def _await_ready(self) -> None:
        if self._ready:
            return
        reply = self._exchange("ping", {}, {}, self.settings.start_timeout)
        self._info = reply.result
        self._ready = True
        if self._wants_dynamo:
            try:
                self._exchange("preload", {}, {}, self.settings.start_timeout)
            except StudentCodeError:
                pass  # an optimisation only; the student's code broke it for itself

    def preload_dynamo(self) -> None:
        """The grading will train: the worker (this one and every restarted one) imports
        torch._dynamo in the background from its start (:mod:`grader.shared.preload`), not in
        the middle of the student's first optimizer step. Never blocks for a worker starting."""
        self._wants_dynamo = True
        if self._proc is not None and self._proc.poll() is None and self._ready:
            try:
                self.request("preload")
            except WorkerError:
                pass  # an optimisation only: a crash or a hang shows again at the next request

    def _command(self, path) -> list[str]:
        # `path` maps a host path to where the (possibly sandboxed) worker sees it.
        return [sys.executable, "-I", path(WORKER_PACKAGE / "__main__.py"),
                *self._worker_args(path, self._visible_submission())]

    def _worker_args(self, path, submission: Path) -> list[str]:
        """The worker's arguments after its script (the same for a fresh and a pooled one)."""
        return worker_args(path, submission, self.modules_dir, self.settings.threads,
                           self.processes_forbidden)

    def forbid_processes(self) -> None:
        """From now on the worker (this one and every restarted one) cannot start processes:
        called before modules made from notebooks are imported, so that their cells cannot
        start a process in the worker either (they could not in the kernel)."""
        self.processes_forbidden = True
        if self._proc is not None and self._proc.poll() is None and self._ready:
            self.request("forbid_processes")

    @property
    def modules_dir(self) -> Path:
        """Where the grader puts modules made from notebooks (shared like :meth:`share_file`);
        the worker imports from it before the submission folder."""
        return self.data_dir / MODULES_DIR

    def close(self) -> None:
        """Stop the worker, release its sandbox and delete its shared files."""
        self._stop()
        if self._pool_slot is not None:
            slot, self._pool_slot, self._lease = self._pool_slot, None, None
            shutil.rmtree(self._pool_folder, ignore_errors=True)
            self._pool.checkin(slot)  # the lease stays the pool's
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def share_file(self, name: str, data: bytes | None = None, source: Path | None = None) -> str:
        """Put a file (bytes, or a copy of ``source``; a folder is copied whole) where the
        worker can read it, and return the path under which the worker sees it."""
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad shared file name {name!r}")
        target = self.data_dir / name
        if data is not None:
            target.write_bytes(data)
        elif source is not None and Path(source).is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source is not None:
            shutil.copyfile(source, target)
        for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        return self.worker_path(target)

    def worker_path(self, host_path: Path) -> str:
        """Where the worker sees a file of :attr:`data_dir` (started or not: decided by the
        isolation the next start will use)."""
        rel = Path(host_path).resolve().relative_to(self.data_dir.resolve())
        in_sandbox = self._in_sandbox if self._proc is not None else (
            self._launcher is not None or sandbox_will_isolate(self.settings.isolation))
        return str((Path(SANDBOX_DATA) if in_sandbox else self.data_dir) / rel)

    def seen_as(self, host_path: Path) -> str | None:
        """Where the running worker reads ``host_path`` in place, or None where it cannot (its
        sandbox does not show it: share a copy with :meth:`share_file` instead). Without a
        sandbox, the host path itself."""
        if self._proc is None:
            return None
        real = os.path.realpath(host_path)
        if not self._in_sandbox:
            return real
        for base, dest in self._lent.items():
            if real == base or real.startswith(base.rstrip("/") + "/"):
                return dest + real[len(base):]
        return None

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.stdin.close()
                    proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if proc.poll() is None:
                kill_group(proc)
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self._launch is not None:
            self._launch.cleanup()
            self._launch = None

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        for chunk in iter(lambda: proc.stderr.read1(65536), b""):
            self.log.add(chunk)

    # -- requests ------------------------------------------------------------------------
    def request(self, task: str, args: dict[str, Any] | None = None,
                tensors: dict[str, Any] | None = None, timeout: float | None = None) -> Reply:
        """Run one task in the worker and return its reply.

        Raises :class:`StudentCodeError` when the student's code raised,
        :class:`WorkerTimeout` when it ran too long (the worker is then killed), and
        :class:`WorkerCrashed` when the process died or replied with garbage.
        """
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerTimeout(f"the submission used up its total time of "
                                f"{self.settings.total_timeout:.0f} s")
        self.start()
        limit = min(timeout or self.settings.call_timeout, remaining)
        return self._exchange(task, args or {}, tensors or {}, limit)

    def _exchange(self, task: str, args: dict[str, Any], tensors: dict[str, Any],
                  timeout: float) -> Reply:
        proc = self._proc
        assert proc is not None
        self._next_id += 1
        frame = protocol.pack({"id": self._next_id, "task": task, "args": args}, tensors)
        deadline = time.monotonic() + timeout
        try:
            _write_all(proc, frame, deadline)
            header = self._read(proc, protocol.HEADER_SIZE, deadline)
            n_json, n_blob = protocol.parse_header(header, self.settings.max_reply_bytes)
            bounds = self.settings.reply_bounds
            if n_json > bounds.json_bytes:  # refused before a byte of it is read
                raise replies.ReplyRejected(f"the reply's JSON part is {n_json:,} bytes; the "
                                            f"limit is {bounds.json_bytes:,}")
            body = self._read(proc, n_json, deadline)
            blob = self._read(proc, n_blob, deadline)
            message = replies.parse_json(body, bounds)
            out = protocol.decode_tensors(blob)
            decoded = replies.read_reply(message, task, self._next_id, out, bounds,
                                         args=args)
        except WorkerTimeout:
            self._stop()
            raise WorkerTimeout(f"no answer within {timeout:.0f} s (an endless loop, or far too "
                                f"much work?); the worker was stopped") from None
        except protocol.ProtocolError as exc:  # ReplyRejected included
            self._stop()
            raise WorkerCrashed(str(exc)) from None
        except (EOFError, BrokenPipeError, OSError):
            code = self._wait_exit(proc)
            self._stop()
            raise WorkerCrashed(_exit_reason(code)) from None
        if not decoded.ok:
            raise StudentCodeError(decoded.error)
        return Reply(decoded.result, out)

    def _read(self, proc: subprocess.Popen, n: int, deadline: float) -> bytes:
        fd = proc.stdout.fileno()
        chunks, left = [], n
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while left:
                wait = deadline - time.monotonic()
                if wait <= 0 or not sel.select(wait):
                    raise WorkerTimeout()
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                left -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _wait_exit(proc: subprocess.Popen) -> int | None:
        try:
            return proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None


def worker_args(path, submission: Path, modules_dir: Path, threads: int,
                no_processes: bool) -> list[str]:
    """The worker's arguments after its script; ``path`` maps a host path to the worker's."""
    return ["--submission", path(submission), "--threads", str(threads),
            "--modules", path(modules_dir), *(["--no-processes"] if no_processes else [])]


def worker_command(path, submission: Path, data_dir: Path, threads: int,
                   no_processes: bool) -> list[str]:
    """The whole command of a fresh worker (interpreter, script, arguments)."""
    return [sys.executable, "-I", path(WORKER_PACKAGE / "__main__.py"),
            *worker_args(path, submission, Path(data_dir) / MODULES_DIR, threads, no_processes)]


def sandbox_will_isolate(isolation: str) -> bool:
    """Whether a worker started with this isolation setting runs inside bubblewrap."""
    return isolation == "bwrap" or (isolation == "auto" and sandbox.isolation_available()[0])


def _write_all(proc: subprocess.Popen, data: bytes, deadline: float) -> None:
    fd = proc.stdin.fileno()
    view = memoryview(data)
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_WRITE)
        while view:
            wait = deadline - time.monotonic()
            if wait <= 0 or not sel.select(wait):
                raise WorkerTimeout()
            n = os.write(fd, view[: 1 << 20])
            view = view[n:]


def kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc``'s whole process group and reap it (a worker or a judging process leads its
    own session, so this also ends whatever it forked; a pooled worker is killed through its
    pidfd, with its whole pid namespace)."""
    kill_tree = getattr(proc, "kill_tree", None)
    if kill_tree is not None:
        kill_tree()
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "the worker process stopped answering"
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        hint = " (out of memory?)" if sig == "SIGKILL" else ""
        return f"the worker process was killed by {sig}{hint}"
    return f"the worker process exited with code {code} (did the code call exit()?)"
