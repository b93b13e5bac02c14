"""The root launcher and the unprivileged judge's handle on it.

The judging process (the checks reading a worker's replies) runs as :data:`JUDGE_UID` with no
capabilities, in a sandbox of its own (:func:`grader.isolation.sandbox.plan_judge`). It cannot
start a worker sandbox itself: bubblewrap without a user namespace needs root to drop the worker
to its slot's uid. So the root process keeps a :class:`Launcher` -- a thread serving one judge
over a ``SOCK_SEQPACKET`` socketpair -- and the judge's :class:`LauncherProxy` asks it to:

``launch``  start a worker for a submission folder and a data folder, both of which must lie in
            the work area the launcher made for this judge; threads and limits are capped at the
            launcher's own. The launcher plans the bwrap argv itself (:func:`sandbox.plan_launch`,
            the command of :func:`client.worker_command`): no argv, path or environment of the
            judge's reaches it unchecked. It answers with the worker's stdin, stdout and stderr
            by ``SCM_RIGHTS``.
``poll``/``wait``  the worker's wait status (a negative code is the signal, as Popen says).
``kill``    kill the worker's process group.
``release`` kill if running, reap, remove the launch's folder and cgroups.
``data_dir`` a folder for one worker client's shared files. A launcher serving a batch's warm
            judge (``pool_slot=``) forks its workers from that pool slot's zygote, which sees
            only the slot's job folders: it makes one (:meth:`PoolSlot.new_job_folder`), gives
            the judge its ``data/`` (owned by the judge uid) and later copies the submission
            into its ``submission/``. A plain launcher answers None (the judge makes its own).

When the judge disconnects (it exited, crashed, was killed at its deadline), the launcher kills
and releases every launch it made for it. The launcher holds the judge's slot lease.
"""

from __future__ import annotations

import array
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from grader.isolation import bwrap, leases, sandbox
from grader.isolation.limits import Limits

# The judge's uid: below every slot's (60000 + slot), owned by nothing else on the machine.
JUDGE_UID = 59999
# The descriptor of the judge's end of the socket, in its environment.
LAUNCHER_FD_ENV = "GRADER_LAUNCHER_FD"
_MAX_MESSAGE = 64 * 1024
_MAX_WAIT = 5.0


class LaunchRefused(OSError):
    """The launcher refused a request (a folder outside the work area, a malformed request)."""


def new_work_area() -> Path:
    """A fresh folder for one judge: owned by the judge uid (it makes its worker data folders
    and temporary files there), traversable by the workers' uids."""
    area = Path(tempfile.mkdtemp(prefix="grader-judge-"))
    os.chmod(area, 0o755)
    for sub in ("tmp", "home"):
        os.mkdir(area / sub, 0o755)
        os.chown(area / sub, JUDGE_UID, JUDGE_UID)
    os.chown(area, JUDGE_UID, JUDGE_UID)
    return area


def inside_area(path: str, area: Path) -> Path:
    """``path`` resolved, if it is an existing folder strictly inside ``area``; else refused."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise LaunchRefused(f"not an absolute path: {path!r}")
    real = os.path.realpath(path)
    base = os.path.realpath(area)
    if not real.startswith(base.rstrip("/") + "/"):
        raise LaunchRefused(f"{path} is outside the judge's work area")
    if not os.path.isdir(real):
        raise LaunchRefused(f"{path} is not a folder")
    return Path(real)


def hold_folder(real: Path) -> int:
    """An ``O_PATH`` descriptor of the folder ``real`` (an already checked, resolved path),
    refused unless the descriptor holds exactly that folder: what the kernel opened is what
    was checked, and bubblewrap binds the descriptor, so renaming or swapping a symlink into
    the path afterwards changes nothing."""
    try:
        fd = os.open(real, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LaunchRefused(f"{real} cannot be opened: {exc.strerror}") from None
    if os.readlink(f"/proc/self/fd/{fd}") != str(real):
        os.close(fd)
        raise LaunchRefused(f"{real} changed while it was being checked")
    return fd


class TooLarge(LaunchRefused):
    """A folder to copy holds more bytes than the copy may."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_held(real: Path, target: Path, max_bytes: int) -> None:
    """Copy the folder ``real`` (checked and resolved) into the folder ``target`` (made if
    missing; else empty, and root's) as root,
    walking descriptors and never following a symlink: symlinks are copied as symlinks,
    special files left out, folders gain r-x and files r for everyone, and no mode keeps its
    setuid, setgid or sticky bit (the copy is root's).

    Why not ``shutil.copytree``: it reopens every folder by name, so a judge that owns the
    source could swap a folder for a symlink to ``/root`` between the listing and the descent,
    and root would copy what the link names where the judge's worker reads it. Here every
    folder is opened relative to its parent's descriptor with ``O_NOFOLLOW``, and the top one
    is refused unless ``/proc/self/fd`` names exactly the checked path. Past ``max_bytes``
    copied: :class:`TooLarge`. Any failure removes the partial copy."""
    import stat as st

    try:
        top = os.open(real, _DIR_FLAGS)
    except OSError as exc:
        raise LaunchRefused(f"{real} cannot be opened: {exc.strerror}") from None
    try:
        os.mkdir(target, 0o755)
    except FileExistsError:
        if os.listdir(target):
            os.close(top)
            raise LaunchRefused(f"{target} is not empty") from None
    copied = 0
    stack = [(top, target)]
    try:
        if os.readlink(f"/proc/self/fd/{top}") != str(real):
            raise LaunchRefused(f"{real} changed while it was being checked")
        while stack:
            fd, dest = stack.pop()
            try:
                os.chmod(dest, os.stat(fd).st_mode & 0o777 | 0o555)
                for name in os.listdir(fd):
                    mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
                    if st.S_ISLNK(mode):
                        os.symlink(os.readlink(name, dir_fd=fd), dest / name)
                    elif st.S_ISDIR(mode):
                        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                        os.mkdir(dest / name, 0o755)
                        stack.append((sub, dest / name))
                    elif st.S_ISREG(mode):
                        copied += _copy_file(fd, name, dest / name, max_bytes - copied)
            finally:
                os.close(fd)
    except BaseException:
        for fd, _ in stack:
            os.close(fd)
        shutil.rmtree(target, ignore_errors=True)
        raise


def _copy_file(dir_fd: int, name: str, dest: Path, room: int) -> int:
    """Copy the regular file ``name`` of ``dir_fd`` (never a symlink; a FIFO or device swapped
    in after the listing is refused by the check on the opened file) to ``dest``; its size."""
    import stat as st

    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                  dir_fd=dir_fd)
    try:
        info = os.fstat(src)
        if not st.S_ISREG(info.st_mode):
            raise LaunchRefused(f"{name} is no longer a regular file")
        if info.st_size > room:
            raise TooLarge("more than the copy's limit")
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                      info.st_mode & 0o777 | 0o444)
        try:
            size = 0
            while chunk := os.read(src, 1 << 20):
                size += len(chunk)
                if size > room:  # grew since the fstat
                    raise TooLarge("more than the copy's limit")
                os.write(out, chunk)
        finally:
            os.close(out)
        return size
    finally:
        os.close(src)


def capped_limits(asked: dict[str, Any], cap: Limits) -> Limits:
    """The judge's limits, each at most the launcher's own (unknown or malformed fields: the
    launcher's)."""
    values = {}
    for f in fields(Limits):
        mine, theirs = getattr(cap, f.name), asked.get(f.name) if isinstance(asked, dict) else None
        ok = isinstance(theirs, (int, float)) and not isinstance(theirs, bool) and theirs > 0
        if mine is None:
            values[f.name] = None
        elif ok:
            values[f.name] = type(mine)(min(theirs, mine))
        else:
            values[f.name] = mine
    return replace(cap, **values)


class Launcher:
    """The root side: serves one judge on a thread (which also starts every worker, so bwrap's
    ``--die-with-parent`` follows a thread that outlives them).

    ``work_area``: the judge's folder (:func:`new_work_area`); ``limits``, ``threads``,
    ``isolation``: the caps of every launch."""

    def __init__(self, work_area: Path, limits: Limits = Limits(), threads: int = 4,  # noqa: B008
                 isolation: str = "bwrap", lease_wait: float = 600.0, pool_slot: Any = None,
                 start_timeout: float = 120.0, lend: Path | None = None):
        self.work_area = Path(work_area)
        # A folder every fresh worker reads in place, read-only (the user's checkpoint cache,
        # which only the trusted side writes); the root chooses it, never the judge.
        self.lend = Path(lend).resolve() if lend is not None and Path(lend).is_dir() else None
        self.limits, self.threads, self.isolation = limits, threads, isolation
        self.lease_wait = lease_wait
        self._mine, self.judge_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._launches: dict[int, tuple[Any, Any]] = {}
        self._next = 0
        self._lease: leases.SlotLease | None = None
        # A batch's pool slot (grader.isolation.pool.PoolSlot, checked out for this judge's
        # submission): workers are forked from its zygote, under its lease.
        self._pool_slot = pool_slot
        self.start_timeout = start_timeout
        self._job_folders: dict[str, Path] = {}  # data/ handed out -> its job folder
        self._copied: dict[str, str] = {}  # job folder -> the submission copied into it
        self.pool_refused = ""  # why a pooled launch used a fresh sandbox instead
        self.refused: list[str] = []  # what was refused, for the record (and the tests)
        self._thread = threading.Thread(target=self._serve, name="grader-launcher", daemon=True)

    def start(self) -> Launcher:
        """Start serving; pass :attr:`judge_end` to the judge, then :meth:`judge_started`."""
        self._thread.start()
        return self

    def judge_started(self) -> None:
        """Close the root's copy of the judge's end, so the judge's exit reads as a hang-up."""
        self.judge_end.close()

    def close(self, timeout: float = 30.0) -> None:
        """Hang up (the launcher then kills and releases every launch) and wait for it."""
        try:
            self._mine.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            self.judge_end.close()
        except OSError:
            pass

    @property
    def running(self) -> list[int]:
        """Pids of the launches still running."""
        return [p.pid for p, _ in self._launches.values() if p.poll() is None]

    # -- serving -------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            while True:
                try:
                    data = self._mine.recv(_MAX_MESSAGE)
                except OSError:
                    break
                if not data:
                    break  # the judge hung up or died
                try:
                    reply, fds = self._handle(json.loads(data))
                except (LaunchRefused, ValueError, TypeError, KeyError) as exc:
                    self.refused.append(str(exc))
                    reply, fds = {"ok": False, "error": str(exc)[:2000]}, []
                except Exception as exc:  # noqa: BLE001 - a launch that failed, not the launcher
                    reply, fds = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}, []
                try:
                    self._send(reply, fds)
                except OSError:
                    break
                finally:
                    for fd in fds:
                        os.close(fd)
        finally:
            for key in list(self._launches):
                self._release(key)
            for folder in self._job_folders.values():
                shutil.rmtree(folder, ignore_errors=True)
            self._job_folders.clear()
            if self._lease is not None and self._pool_slot is None:
                self._lease.release()  # a pool slot's lease stays the pool's
            self._lease = None
            self._mine.close()

    def _send(self, reply: dict[str, Any], fds: list[int]) -> None:
        body = json.dumps(reply).encode()
        if fds:
            self._mine.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                         array.array("i", fds))])
        else:
            self._mine.send(body)

    def _handle(self, msg: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        op = msg["op"]
        if op == "launch":
            return self._launch(msg)
        if op == "data_dir":
            return {"ok": True, "path": self._new_data_dir()}, []
        key = msg["id"]
        if not isinstance(key, int) or key not in self._launches:
            raise LaunchRefused(f"no launch {key!r}")
        proc, _ = self._launches[key]
        if op == "poll":
            return {"ok": True, "returncode": proc.poll()}, []
        if op == "wait":
            wait = min(float(msg.get("timeout") or 0), _MAX_WAIT)
            try:
                return {"ok": True, "returncode": proc.wait(max(wait, 0.0))}, []
            except subprocess.TimeoutExpired:
                return {"ok": True, "returncode": None}, []
        if op == "kill":
            _kill(proc)
            return {"ok": True, "returncode": proc.poll()}, []
        if op == "release":
            self._release(key)
            return {"ok": True}, []
        raise LaunchRefused(f"unknown request {op!r}")

    def _new_data_dir(self) -> str | None:
        if self._pool_slot is None:
            return None
        if len(self._job_folders) >= 16:
            raise LaunchRefused("too many data folders for one submission")
        folder = self._pool_slot.new_job_folder()
        # The judge reaches data/ by its full (unguessable) name only; the job folder stays
        # root's, so the judge cannot swap submission/ or data/ under the zygote.
        os.chmod(folder, 0o711)
        os.chown(folder / "data", JUDGE_UID, JUDGE_UID)
        self._job_folders[os.path.realpath(folder / "data")] = folder  # as _launch looks up
        return str(folder / "data")

    def _slot(self) -> leases.SlotLease:
        if self._pool_slot is not None:
            self._lease = self._pool_slot.lease
            return self._lease
        if self._lease is None or not self._lease.active:
            self._lease = leases.acquire_slot(None, wait=self.lease_wait, register=False)
        return self._lease

    def _launch(self, msg: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        from grader.isolation import client

        pooled = self._job_folders.get(os.path.realpath(msg["data_dir"])) \
            if isinstance(msg.get("data_dir"), str) else None
        if self._pool_slot is not None and pooled is None:
            raise LaunchRefused("a data folder this launcher did not hand out")
        # Resolved (a TMPDIR reached through a symlink): hold_folder compares what the kernel
        # opened with this very path.
        data_dir = Path(os.path.realpath(pooled / "data")) if pooled is not None else \
            inside_area(msg["data_dir"], self.work_area)
        submission = self._submission(msg["submission"], data_dir)
        if submission == data_dir:
            raise LaunchRefused("the submission and the data folder must differ")
        threads = msg.get("threads")
        threads = max(1, min(threads if isinstance(threads, int) and not
                             isinstance(threads, bool) else 1, self.threads))
        limits = capped_limits(msg.get("limits") or {}, self.limits)
        no_processes = msg.get("no_processes") is True
        if pooled is not None and not self.pool_refused:
            from grader.isolation.pool import PoolUnavailable

            try:
                return self._launch_pooled(pooled, submission, threads, limits, no_processes)
            except PoolUnavailable as exc:
                self.pool_refused = str(exc)  # from now on fresh sandboxes, as without a pool
        lease = self._slot()
        lend = [(self.lend, client.SANDBOX_LENT)] if self.lend is not None else []
        # Both folders lie in the judge's own work area, which the judge can rename in: bound
        # through descriptors held since the check (hold_folder; bwrap then checks that what
        # it mounts is that folder). A bwrap without --ro-bind-fd binds them by name.
        held: dict[str, tuple[int, str]] = {}
        try:
            for folder in {submission, data_dir} if bwrap.binds_by_descriptor() else ():
                held[str(folder)] = (hold_folder(folder), str(folder))
        except BaseException:
            _close_held(held)
            raise
        try:
            return self._start_fresh(submission, data_dir, threads, limits, no_processes, lease,
                                     lend, held)
        finally:
            _close_held(held)

    def _start_fresh(self, submission: Path, data_dir: Path, threads: int, limits: Limits,
                     no_processes: bool, lease: Any, lend: list, held: dict
                     ) -> tuple[dict[str, Any], list[int]]:
        from grader.isolation import client

        launch = sandbox.plan_launch(
            lambda path: client.worker_command(path, submission, data_dir, threads, no_processes),
            submission_dir=submission,
            extra_ro_binds=[(client.WORKER_PACKAGE, client.SANDBOX_WORKER),
                            (client.SHARED_PACKAGE, client.SANDBOX_SHARED),
                            (data_dir, client.SANDBOX_DATA), *lend],
            isolation=self.isolation, limits=limits, slot=lease.slot, lease=lease,
            threads=threads, pinned=held)
        try:
            proc = subprocess.Popen(launch.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, **launch.popen_kwargs())
        except BaseException:
            launch.cleanup()
            raise
        self._next += 1
        self._launches[self._next] = (proc, launch)
        # The judge gets its own copies; the launcher keeps none (EOF must mean the worker).
        fds = [os.dup(s.fileno()) for s in (proc.stdin, proc.stdout, proc.stderr)]
        for s in (proc.stdin, proc.stdout, proc.stderr):
            s.close()
        return {"ok": True, "id": self._next, "pid": proc.pid,
                "description": launch.description,
                "lent": {str(h): d for h, d in lend}}, fds

    def _submission(self, asked: Any, data_dir: Path) -> Path:
        """The folder a launch serves: in the work area (the root's copy), or a readable copy
        the judge's client staged in its data folder."""
        if isinstance(asked, str) and os.path.isabs(asked):
            real = os.path.realpath(asked)
            if real.startswith(str(data_dir).rstrip("/") + "/") and os.path.isdir(real):
                return Path(real)
        return inside_area(asked, self.work_area)

    def _launch_pooled(self, folder: Path, submission: Path, threads: int, limits: Limits,
                       no_processes: bool) -> tuple[dict[str, Any], list[int]]:
        from grader.isolation import client

        staged = folder / "submission"
        # The zygote sees only the job folder: the submission is copied in (once: a restarted
        # worker serves the same copy), root-owned, so the judge cannot change it afterwards.
        # The judge owns the folder copied from, so the copy walks descriptors (copy_held).
        if self._copied.get(str(folder)) != str(submission):
            if self._copied.get(str(folder)) is not None:
                raise LaunchRefused("one data folder serves one submission folder")
            try:
                copy_held(submission, staged, client.STAGING_MAX_BYTES)
            except TooLarge:
                from grader.isolation.pool import PoolUnavailable

                raise PoolUnavailable(f"the submission is larger than "
                                      f"{client.STAGING_MAX_BYTES // 2**20} MB: graded in "
                                      f"place") from None
            except OSError as exc:
                if isinstance(exc, LaunchRefused):
                    raise
                raise LaunchRefused(f"the submission could not be copied: {exc}") from None
            self._copied[str(folder)] = str(submission)
        seen = {str(folder / "data"): client.SANDBOX_DATA, str(staged): "/submission"}

        def path(host: Any) -> str:
            real = os.path.realpath(host)
            for base, dest in seen.items():
                if real == base or real.startswith(base + "/"):
                    return dest + real[len(base):]
            raise LaunchRefused(f"{host} is not visible to the pooled worker")

        args = client.worker_args(path, staged, folder / "data" / client.MODULES_DIR, threads,
                                  no_processes)
        slot = self._pool_slot
        job = slot.spawn(folder.name, args, sandbox.worker_env(threads), limits, threads,
                         self.start_timeout)
        self._next += 1
        self._launches[self._next] = (job.proc, client._PooledLaunch(slot, job))
        proc = job.proc
        fds = [os.dup(s.fileno()) for s in (proc.stdin, proc.stdout, proc.stderr)]
        for s in (proc.stdin, proc.stdout, proc.stderr):
            s.close()
        return {"ok": True, "id": self._next, "pid": proc.pid,
                "description": slot.description(job)}, fds

    def _release(self, key: int) -> None:
        proc, launch = self._launches.pop(key)
        if proc.poll() is None:
            _kill(proc)
        launch.cleanup()


def _close_held(held: dict[str, tuple[int, str]]) -> None:
    for fd, _ in held.values():
        try:
            os.close(fd)
        except OSError:
            pass


def _kill(proc: subprocess.Popen) -> None:
    from grader.isolation.client import kill_group

    kill_group(proc)


class LauncherProxy:
    """The judge's side: :meth:`launch` returns a :class:`RemoteProc` the worker client uses as
    it would a Popen."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> LauncherProxy:
        """The proxy on the descriptor the root side passed (``$GRADER_LAUNCHER_FD``)."""
        fd = int(os.environ[LAUNCHER_FD_ENV])
        return cls(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd))

    def call(self, msg: dict[str, Any], n_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
        """One request and its answer (with up to ``n_fds`` descriptors)."""
        with self._lock:
            self._sock.send(json.dumps(msg).encode())
            space = socket.CMSG_SPACE(n_fds * array.array("i").itemsize) if n_fds else 0
            data, ancillary, _flags, _addr = self._sock.recvmsg(_MAX_MESSAGE, space)
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds += list(got)
        if not data:
            for fd in fds:
                os.close(fd)
            raise ConnectionError("the launcher hung up")
        reply = json.loads(data)
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            raise LaunchRefused(reply.get("error", "refused"))
        return reply, fds

    def data_dir(self) -> Path | None:
        """A data folder the launcher made for one worker client (a warm judge's launcher,
        whose pooled workers see only folders it made), or None: make your own."""
        reply, _ = self.call({"op": "data_dir"})
        return Path(reply["path"]) if isinstance(reply.get("path"), str) else None

    def launch(self, submission: Path, data_dir: Path, threads: int, limits: Limits,
               no_processes: bool = False) -> RemoteProc:
        """Ask for a worker sandbox on these folders (inside this judge's work area)."""
        reply, fds = self.call({"op": "launch", "submission": str(submission),
                                "data_dir": str(data_dir), "threads": threads,
                                "limits": asdict(limits), "no_processes": no_processes}, 3)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise LaunchRefused("the launcher sent no pipes")
        lent = reply.get("lent")
        lent = {h: d for h, d in lent.items() if isinstance(h, str) and isinstance(d, str)} \
            if isinstance(lent, dict) else {}
        return RemoteProc(self, reply["id"], reply["pid"], reply["description"], fds, lent)


class RemoteProc:
    """A worker started by the launcher, with the part of Popen's interface the client uses."""

    def __init__(self, proxy: LauncherProxy, key: int, pid: int, description: str,
                 fds: list[int], lent: dict[str, str] | None = None):
        self._proxy, self._key = proxy, key
        self.pid, self.description = pid, description
        self.lent = lent or {}  # host folder -> where the worker reads it (read-only)
        self.returncode: int | None = None
        self.stdin = open(fds[0], "wb", buffering=0)  # noqa: SIM115
        self.stdout = open(fds[1], "rb", buffering=0)  # noqa: SIM115
        self.stderr = open(fds[2], "rb")  # noqa: SIM115  (buffered: the log drain uses read1)
        self._released = False

    def _ask(self, op: str, **extra: Any) -> int | None:
        if self.returncode is not None or self._released:
            return self.returncode
        try:
            reply, _ = self._proxy.call({"op": op, "id": self._key, **extra})
        except (OSError, ValueError):
            return self.returncode
        self.returncode = reply.get("returncode")
        return self.returncode

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self._ask("poll")

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (``subprocess.TimeoutExpired`` past ``timeout``)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _MAX_WAIT if deadline is None else deadline - time.monotonic()
            code = self._ask("wait", timeout=max(0.0, min(left, _MAX_WAIT)))
            if code is not None or self._released:
                return code  # type: ignore[return-value]
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("worker", timeout)

    def kill_tree(self) -> None:
        """Kill the worker's whole process group (by the launcher)."""
        self._ask("kill")

    def cleanup(self) -> None:
        """Release the launch (killed if running, its folder and cgroups removed)."""
        if self._released:
            return
        try:
            self._proxy.call({"op": "release", "id": self._key})
        except (OSError, ValueError):
            pass
        self._released = True
        for stream in (self.stdin, self.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass


def early_worker() -> tuple[Any, bytes]:
    """In the judge, first thing: read the head of the payload on stdin (the submission folder
    and the worker settings), ask the launcher for the worker -- its ``import torch`` then
    overlaps the judge's own -- and return the client and the rest of the payload."""
    import io

    from grader.isolation.client import WorkerClient

    stream = io.BytesIO(sys.stdin.buffer.read())
    folder, settings = pickle.load(stream)  # trusted to trusted: the root side's own values
    worker = WorkerClient(folder, settings, launcher=LauncherProxy.from_env())
    worker.launch()
    return worker, stream.read()


def copy_submission(source: Path, area: Path) -> Path:
    """A readable, root-owned copy of ``source`` (a folder) in the judge's work area (the judge
    cannot change it): what the judge and its workers see."""
    from grader.isolation.client import _readable_copy

    target = area / "submission"
    os.mkdir(target, 0o755)
    _readable_copy(source, target)
    return target


def remove_work_area(area: Path) -> None:
    """Remove a judge's work area (after the judge and its launcher are gone)."""
    shutil.rmtree(area, ignore_errors=True)
