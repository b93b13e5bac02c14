"""A warm worker pool: one zygote per slot, a fresh sandboxed worker forked for every start.

A fresh worker pays ``import torch`` (and ``torch._dynamo`` at its first optimizer step); a
worker forked from a zygote that imported them once per slot does not. Each pooled worker gets
everything a fresh sandboxed worker gets before any student code runs (ARCHITECTURE.md, "A warm
worker pool"): the zygote (:mod:`grader.worker.zygote`) runs in the slot's bubblewrap sandbox,
and every job it forks has its own pid, mount, network, ipc, uts and cgroup namespaces, fresh
tmpfs at ``/tmp``, ``/dev/shm`` and the home, the job's submission and data only, the slot's
uid, no capabilities, rlimits, the seccomp filter, and the job's cgroup (joined before it may go
on).

The pieces:

- :class:`WarmPool` (one per batch): ``size`` slots, each holding a slot lease (its uid and
  cgroup) for the pool's life and a zygote started on first use. :meth:`WarmPool.checkout`
  hands a slot to one submission's worker client, :meth:`WarmPool.checkin` takes it back.
- :class:`PoolSlot`: starts a job (:meth:`PoolSlot.spawn`) and, after it, makes sure nothing of
  it is left (:meth:`PoolSlot.finish`): no process of the slot's uid, the job's cgroup empty
  and removed. A zygote found dead, refusing, or leaving anything behind is stopped and the
  next start makes a new one (one ``import torch``).
- :class:`PooledProcess`: what :class:`grader.isolation.client.WorkerClient` holds instead of
  a ``Popen``: ``stdin``/``stdout``/``stderr``, ``pid`` (the job's init, leader of its own
  session: ``killpg(pid)`` ends the whole pid namespace), ``poll``/``wait``/``kill``.

Where the pool cannot be had (:func:`pool_available`: no bubblewrap, not root, no pidfd, the
Python installation inside a folder each job replaces), or a zygote cannot be started or fails
its self-test, callers use the fresh-process path, unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.isolation import bwrap, cgroups, leases, sandbox
from grader.isolation.limits import Limits, rlimits

WORKER_PACKAGE = Path(__file__).resolve().parent.parent / "worker"
SHARED_PACKAGE = WORKER_PACKAGE.parent / "shared"
ZYGOTE = WORKER_PACKAGE / "zygote.py"
# Inside the zygote's sandbox; grader.worker.zygote uses the same paths.
SANDBOX_WORKER = "/opt/grader/grader/worker"
SANDBOX_SHARED = "/opt/grader/grader/shared"
SANDBOX_DATA = "/opt/grader-data"
# In the zygote's /tmp, which each job unmounts whole after binding its own two folders.
SANDBOX_JOBS = "/tmp/grader-jobs"
# Folders every job mounts afresh: anything the Python installation keeps there would vanish.
_JOB_PRIVATE = ("/tmp", "/dev/shm", sandbox.SANDBOX_HOME, sandbox.SANDBOX_SUBMISSION,
                SANDBOX_DATA)
_CRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
# After this many zygotes in a row fail to start, a slot stops trying (fresh path from then on).
MAX_ZYGOTE_FAILURES = 2


class PoolUnavailable(RuntimeError):
    """The pool cannot run this worker: use the fresh-process path instead."""


class ZygoteBroken(RuntimeError):
    """The slot's zygote misbehaved (died, refused, failed a job's setup): it is replaced."""


@functools.cache
def pool_available() -> tuple[bool, str]:
    """Whether warm pools can be had here, and why not if they cannot (cached).

    Needs what the fresh sandbox needs (bubblewrap, root) and, for the host's handle on a
    forked worker, pidfds. A zygote's self-test decides the rest when it starts."""
    ok, why = sandbox.isolation_available()
    if not ok:
        return False, why
    if not hasattr(os, "pidfd_open") or not hasattr(socket, "recv_fds"):
        return False, "this Python has no pidfd_open/recv_fds"
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as exc:
        return False, f"pidfd_open is not supported by this kernel: {exc}"
    for d in bwrap.python_dirs():
        for point in _JOB_PRIVATE:
            if bwrap.inside(os.path.realpath(d), point) or bwrap.inside(d, point):
                return False, f"the Python installation lies in {point} ({d}), which every " \
                              "pooled job replaces with a fresh tmpfs"
    return True, ""


# --------------------------------------------------------------------------- the handle


def _readable(fd: int, timeout: float | None) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


class PooledProcess:
    """The ``Popen``-like handle on one pooled worker (see the module docstring).

    ``pid`` is the job's init in the host's pid namespace; it leads its own session, so
    ``os.killpg(pid, SIGKILL)`` kills it, and with it everything in the job's pid namespace.
    The exit status is the worker's (pid 2), as the zygote's reporter saw it; a job killed from
    outside reads as killed by SIGKILL.
    """

    def __init__(self, pid: int, pidfd: int, stdin: Any, stdout: Any, stderr: Any,
                 status: socket.socket):
        self.pid = pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._status = status
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """The exit code once the job has ended, else None (never blocks)."""
        with self._lock:
            if self.returncode is None and self._pidfd >= 0 and _readable(self._pidfd, 0):
                self._read_exit()
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the job's end (``subprocess.TimeoutExpired`` after ``timeout``)."""
        if self.poll() is None:
            if not _readable(self._pidfd, timeout):
                raise subprocess.TimeoutExpired("pooled worker", timeout or 0)
        code = self.poll()
        assert code is not None
        return code

    def _read_exit(self) -> None:
        # The init is gone (and with it every process of the namespace); the reporter sends
        # the worker's status right after.
        code = -signal.SIGKILL
        deadline = time.monotonic() + 2.0
        try:
            while (left := deadline - time.monotonic()) > 0:
                self._status.settimeout(left)
                data = self._status.recv(4096)
                if not data:
                    break
                message = json.loads(data)
                if isinstance(message, dict) and isinstance(message.get("exit"), int):
                    code = message["exit"]
                    break
        except (OSError, ValueError):
            pass
        self.returncode = code

    def send_signal(self, sig: int) -> None:
        """Signal the job's init through its pidfd (never a recycled pid)."""
        if self._pidfd >= 0:
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the init: the kernel then kills every process of the job's pid namespace."""
        self.send_signal(signal.SIGKILL)

    kill_tree = kill

    def close(self) -> None:
        """Release the pidfd, the status socket and the pipes."""
        with self._lock:
            for stream in (self.stdin, self.stdout, self.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                self._status.close()
            except OSError:
                pass
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1


# --------------------------------------------------------------------------- zygotes


class _Launcher:
    """One long-lived thread that starts every zygote of a pool: bubblewrap's
    ``--die-with-parent`` ties a sandbox to the *thread* that started it, and a job's thread
    may end before the slot's zygote should."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="grader-zygote-launcher",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            fn, future = item
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the launcher thread and return its result."""
        future: Future = Future()
        self._jobs.put((fn, future))
        return future.result()

    def stop(self) -> None:
        self._jobs.put(None)


class _Zygote:
    """One running zygote: its bubblewrap process, control socket and log."""

    def __init__(self, proc: subprocess.Popen, control: socket.socket,
                 launch: sandbox.Launch, threads: int):
        self.proc, self.control, self.launch, self.threads = proc, control, launch, threads
        self.log = bytearray()
        self.ready: dict[str, Any] = {}
        threading.Thread(target=self._drain, daemon=True, name="grader-zygote-log").start()

    def _drain(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self.log += chunk
            del self.log[:-65536]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def hang_up(self) -> None:
        """Close the control socket: the zygote's serve loop ends on EOF and it exits."""
        try:
            self.control.close()
        except OSError:
            pass

    def stop(self) -> None:
        self.hang_up()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap's session: its pid namespace
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.launch.cleanup()


@dataclass
class _Job:
    """What :meth:`PoolSlot.finish` needs of a started job."""

    proc: PooledProcess
    groups: cgroups.Cgroups


class PoolSlot:
    """One slot of a pool: a lease (uid, cgroup), a folder for its jobs, a zygote."""

    def __init__(self, pool: WarmPool, lease: leases.SlotLease, root: Path):
        self.pool, self.lease = pool, lease
        self.slot, self.uid = lease.slot, lease.uid
        self.jobs = root / f"slot-{lease.slot}"
        self.jobs.mkdir(mode=0o755)
        os.chmod(self.jobs, 0o755)  # bound whole into the zygote (its parent is private)
        self.failures = 0
        self.disabled = ""
        self._zygote: _Zygote | None = None
        self.zygote_starts = 0
        self.events: list[str] = []  # what finish() found and cleaned (for tests and logs)

    # -- jobs' folders ---------------------------------------------------------------
    def new_job_folder(self) -> Path:
        """A fresh folder for one submission's worker: ``submission/`` (a copy of the
        submission, made by the client) and ``data/`` (its shared files), bound read-only at
        ``/submission`` and ``/opt/grader-data`` in each of its jobs."""
        folder = self.jobs / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        for sub in ("submission", "data"):
            (folder / sub).mkdir()
            os.chmod(folder / sub, 0o755)
        return folder

    # -- the zygote ------------------------------------------------------------------
    def _start_zygote(self, threads: int, timeout: float) -> _Zygote:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            launch = sandbox.plan_zygote(
                lambda path: [sys.executable, "-I", path(ZYGOTE), "--control",
                              str(child.fileno()), "--uid", str(self.uid),
                              *(() if self.pool.dynamo else ("--no-dynamo",))],
                uid=self.uid,
                extra_ro_binds=[(WORKER_PACKAGE, SANDBOX_WORKER), (SHARED_PACKAGE, SANDBOX_SHARED),
                                (self.jobs, SANDBOX_JOBS)],
                mount_points=[SANDBOX_DATA], threads=threads)
        except BaseException:
            parent.close()
            child.close()
            raise
        try:
            proc = self.pool.launcher.call(lambda: subprocess.Popen(
                launch.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, env=launch.env, cwd=launch.cwd,
                pass_fds=(*launch.pass_fds, child.fileno()), start_new_session=True))
        except BaseException:
            launch.cleanup()
            parent.close()
            raise
        finally:
            child.close()
        zygote = _Zygote(proc, parent, launch, threads)
        self.zygote_starts += 1
        try:
            parent.settimeout(timeout)
            ready = json.loads(parent.recv(1 << 16) or b"{}")
            if not ready.get("ready"):
                raise ZygoteBroken(f"the zygote did not start: {ready.get('hazards') or ''} "
                                   f"{bytes(zygote.log[-2000:]).decode(errors='replace')}")
            zygote.ready = ready
            self._selftest(zygote, timeout)
        except BaseException as exc:
            zygote.stop()
            if isinstance(exc, (OSError, ValueError)):
                raise ZygoteBroken(f"the zygote did not start: {exc}: "
                                   f"{bytes(zygote.log[-2000:]).decode(errors='replace')}") \
                    from None
            raise
        return zygote

    def zygote(self, threads: int, timeout: float) -> _Zygote:
        """The running zygote for ``threads`` BLAS threads (started or replaced if needed)."""
        z = self._zygote
        if z is not None and (not z.alive() or z.threads != threads):
            self.stop_zygote()
            z = None
        if z is None:
            if self.disabled:
                raise PoolUnavailable(self.disabled)
            try:
                z = self._start_zygote(threads, timeout)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the fresh path remains
                self.failures += 1
                if self.failures >= MAX_ZYGOTE_FAILURES:
                    self.disabled = f"the warm pool's zygote failed to start: {exc}"
                raise PoolUnavailable(f"the warm pool's zygote failed to start: {exc}") from None
            self.failures = 0
            self._zygote = z
        return z

    def stop_zygote(self) -> None:
        """Stop the zygote (the next start makes a new one)."""
        z, self._zygote = self._zygote, None
        if z is not None:
            z.stop()

    def _selftest(self, zygote: _Zygote, timeout: float) -> None:
        """Start one job that reports, instead of serving, what a worker starts with; refuse
        the zygote unless that is everything a fresh sandboxed worker gets."""
        folder = self.new_job_folder()
        try:
            job = self._spawn_on(zygote, folder.name, [], {"PATH": "/usr/bin"}, Limits(), 1,
                                 timeout, selftest=True)
            try:
                job.proc.stdin.close()
                out = b""
                deadline = time.monotonic() + timeout
                while chunk := _read_some(job.proc.stdout, deadline):
                    out += chunk
                code = job.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            finally:
                left = self.finish(job, restart_on_leftovers=False)
            facts = json.loads(out or b"{}")
            problems = selftest_problems(facts, self.uid) + left
            if code != 0 or problems:
                raise ZygoteBroken(f"the zygote's self-test failed (exit {code}): "
                                   + "; ".join(problems))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- jobs ------------------------------------------------------------------------
    def spawn(self, folder: str, argv: Sequence[str], env: Mapping[str, str], limits: Limits,
              threads: int, timeout: float) -> _Job:
        """Start one worker in the job folder ``folder`` (a name made by
        :meth:`new_job_folder`) with the worker's arguments ``argv`` (after its script) and
        environment ``env``; returns once the worker is in its cgroup and may go on.

        Raises :class:`PoolUnavailable` when no zygote can be had (use the fresh path). A
        zygote that fails a start is stopped first, and the start is tried once more on a new
        one, so a broken zygote costs time, never a result."""
        for attempt in (1, 2):
            z = self.zygote(threads, timeout)
            try:
                return self._spawn_on(z, folder, argv, env, limits, threads, timeout)
            except (ZygoteBroken, OSError) as exc:
                self.stop_zygote()
                if attempt == 2:
                    raise PoolUnavailable(f"the warm pool's zygote failed twice: {exc}") \
                        from None
        raise AssertionError("unreachable")

    def _spawn_on(self, z: _Zygote, folder: str, argv: Sequence[str], env: Mapping[str, str],
                  limits: Limits, threads: int, timeout: float, selftest: bool = False) -> _Job:
        groups = cgroups.setup_cgroups(leases.cgroup_name(self.slot), limits, threads)
        ends: list[int] = []
        host: list[Any] = []
        try:
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            err_r, err_w = os.pipe()
            ends += [req_r, req_w, rep_r, rep_w, err_r, err_w]
            st_host, st_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            host.append(st_host)
            st_host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            message = {"op": "job", "dir": folder, "argv": list(argv), "env": dict(env),
                       "rlimits": rlimits(limits, with_nproc=True),
                       "tmpfs_bytes": limits.tmpfs_bytes, "go_timeout": timeout,
                       "selftest": selftest}
            try:
                z.control.settimeout(timeout)
                socket.send_fds(z.control, [json.dumps(message).encode()],
                                [req_r, rep_w, err_w, st_child.fileno()])
            finally:
                st_child.close()
            for fd in (req_r, rep_w, err_w):
                os.close(fd)
                ends.remove(fd)
            answer = json.loads(z.control.recv(1 << 16) or b"{}")
            if not answer.get("ok"):
                raise ZygoteBroken(f"the zygote refused the job: {answer.get('error', 'EOF')}")
            pid, pidfd = self._await_init(st_host, timeout)
            try:
                # Before "go": nothing of the job has run, and all it starts is accounted.
                for f in groups.join_files:
                    with open(f, "w") as fh:
                        fh.write(str(pid))
                st_host.send(b"go")
            except BaseException:
                _kill_pidfd(pidfd)
                os.close(pidfd)
                raise
            proc = PooledProcess(pid, pidfd, os.fdopen(req_w, "wb", buffering=0),
                                 os.fdopen(rep_r, "rb", buffering=0),
                                 os.fdopen(err_r, "rb"), st_host)
            return _Job(proc, groups)
        except BaseException:
            for fd in ends:
                try:
                    os.close(fd)
                except OSError:
                    pass
            for s in host:
                s.close()
            for d in reversed(groups.dirs):
                cgroups.remove_cgroup(d)
            raise

    def _await_init(self, st_host: socket.socket, timeout: float) -> tuple[int, int]:
        """The job's init pid, from the credentials the kernel attached to its first message
        (translated into our pid namespace), and a pidfd on it while it waits for "go"."""
        st_host.settimeout(timeout)
        try:
            data, ancdata, _, _ = st_host.recvmsg(1 << 16, socket.CMSG_SPACE(_CRED.size))
        except OSError as exc:
            raise ZygoteBroken(f"the job's init did not report: {exc}") from None
        try:
            message = json.loads(data or b"{}")
        except ValueError:
            message = {}
        if not message.get("init"):
            raise ZygoteBroken(f"the job could not be set up: {message.get('error', 'EOF')}")
        creds = [c for lvl, typ, c in ancdata
                 if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS]
        if len(creds) != 1 or len(creds[0]) < _CRED.size:
            raise ZygoteBroken("the job's init sent no credentials")
        pid, uid, _ = _CRED.unpack(creds[0][:_CRED.size])
        pidfd = os.pidfd_open(pid)
        try:
            # It is blocked waiting for us, so this pid cannot have been recycled; check it is
            # pid 1 of a namespace below the zygote's, still root, before trusting it.
            nspid = _status(pid).get("NSpid", "").split()
            if uid != 0 or len(nspid) < 3 or nspid[-1] != "1":
                raise ZygoteBroken(f"the job's init is not pid 1 of its own namespace ({nspid})")
        except BaseException:
            os.close(pidfd)
            raise
        return pid, pidfd

    def description(self, job: _Job) -> str:
        """How a pooled worker is isolated, for the results' environment."""
        return ("bubblewrap (warm pool: forked from a zygote): no network, pid/mount/ipc/uts "
                "namespaces, read-only root, private /tmp, "
                f"uid {self.uid}, seccomp (no keyrings, no new namespaces); {job.groups.summary}")

    def finish(self, job: _Job, *, restart_on_leftovers: bool = True) -> list[str]:
        """After a job: make sure it has ended, that no process of the slot's uid is left
        (killing any), and that its cgroup is empty, then remove the cgroup. Returns what was
        found left over (nothing, unless the isolation failed); the zygote is then replaced."""
        proc = job.proc
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        found: list[str] = []
        left = processes_of_uid(self.uid)
        if left:
            found.append(f"processes of uid {self.uid} after the job: {left}")
            _kill_pids(left)
        for d in job.groups.dirs:
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                pids = []
            if pids:
                found.append(f"processes in {d} after the job: {pids}")
        for d in reversed(job.groups.dirs):
            cgroups.remove_cgroup(d)
        job.groups.dirs.clear()
        proc.close()
        if found:
            self.events.extend(found)
            if restart_on_leftovers:
                self.stop_zygote()
        return found


def _read_some(stream: Any, deadline: float) -> bytes:
    if not _readable(stream.fileno(), max(0.0, deadline - time.monotonic())):
        raise ZygoteBroken("no answer from the job in time")
    return os.read(stream.fileno(), 1 << 16)


def _kill_pidfd(pidfd: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def processes_of_uid(uid: int) -> list[int]:
    """Every process on the machine with ``uid`` as its real, effective, saved or file-system
    uid (a zombie included: it still holds its pid and counts against RLIMIT_NPROC)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        uids = _status(int(name)).get("Uid", "").split()
        if str(uid) in uids:
            found.append(int(name))
    return found


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def selftest_problems(facts: dict[str, Any], uid: int) -> list[str]:
    """What a self-test job's report shows to be less than a fresh sandboxed worker gets."""
    problems = []
    if not facts:
        return ["no report"]
    if facts.get("uid") != [uid] * 4 or facts.get("gid") != [uid] * 4 or facts.get("groups"):
        problems.append(f"ids {facts.get('uid')} {facts.get('gid')} {facts.get('groups')!r}")
    caps = facts.get("caps") or {}
    if any(int(v or "1", 16) for v in caps.values()) or len(caps) != 5:
        problems.append(f"capabilities left: {caps}")
    if facts.get("no_new_privs") != "1":
        problems.append("no_new_privs not set")
    if facts.get("seccomp") != "2":
        problems.append(f"no seccomp filter (Seccomp: {facts.get('seccomp')})")
    if facts.get("pid") != 2 or not set(facts.get("pids") or [0]) <= {1, 2}:
        problems.append(f"not alone in its pid namespace: pid {facts.get('pid')}, "
                        f"sees {facts.get('pids')}")
    if not set(facts.get("fds") or [99]) <= {0, 1, 2, 3}:
        problems.append(f"descriptors left open: {facts.get('fds')}")
    if facts.get("jobs_visible"):
        problems.append("the folder of all jobs is visible")
    if facts.get("interfaces") != ["lo"]:
        problems.append(f"network interfaces: {facts.get('interfaces')}")
    if facts.get("root_writable"):
        problems.append("the root is writable")
    if facts.get("tmp"):
        problems.append(f"/tmp is not empty: {facts.get('tmp')}")
    if facts.get("home_owner") != uid or facts.get("home_mode") != "0o700":
        problems.append(f"home {facts.get('home_mode')} owned by {facts.get('home_owner')}")
    return problems


# --------------------------------------------------------------------------- the pool


class WarmPool:
    """``size`` pool slots for the workers of one batch (see the module docstring).

    Slots are leased host-wide as the pool creates them, and held until :meth:`close`; their
    zygotes start on first use (or at once, in the background, with :meth:`prestart`). Use as
    a context manager, or call :meth:`close`.

    ``dynamo``: the zygotes import ``torch._dynamo`` (~1 s of CPU each), which only a grading
    that trains needs; a pool for one that does not can leave it to the rare worker that does.
    """

    def __init__(self, size: int, *, dynamo: bool = True, lease_wait: float = 600.0):
        if size < 1:
            raise ValueError("a pool has at least one slot")
        self.size = size
        self.dynamo = dynamo
        self.lease_wait = lease_wait
        self.root = Path(tempfile.mkdtemp(prefix="grader-pool-"))  # 0700: slots inside are 0755
        self.launcher = _Launcher()
        self._free: queue.Queue[PoolSlot] = queue.Queue()
        self._slots: list[PoolSlot] = []
        self._made = 0
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def available() -> tuple[bool, str]:
        """:func:`pool_available`."""
        return pool_available()

    def usable_for(self, isolation: str, slot: int | None) -> bool:
        """Whether a worker with these settings may be pooled: sandboxed isolation asked for
        (or allowed), no fixed slot of its own, and pools possible here."""
        return not self._closed and isolation in ("auto", "bwrap") and slot is None \
            and pool_available()[0]

    def checkout(self, timeout: float) -> PoolSlot:
        """A free slot (made, and its lease taken, if fewer than ``size`` exist yet); waits up
        to ``timeout`` seconds for one to be checked in, or for a lease."""
        with self._lock:
            if self._closed:
                raise PoolUnavailable("the pool is closed")
            try:
                return self._free.get_nowait()
            except queue.Empty:
                pass
            make = self._made < self.size
            if make:
                self._made += 1  # reserved; the lease is waited for outside the lock
        if not make:
            try:
                return self._free.get(timeout=timeout)
            except queue.Empty:
                raise PoolUnavailable(f"no free pool slot within {timeout:.0f} s") from None
        try:
            lease = leases.acquire_slot(wait=min(timeout, self.lease_wait), register=False)
        except (leases.SlotsExhausted, leases.LeaseDirectoryUnsafe) as exc:
            with self._lock:
                self._made -= 1
            raise PoolUnavailable(f"no slot lease for the pool: {exc}") from None
        try:
            slot = PoolSlot(self, lease, self.root)
        except BaseException:
            lease.release()
            with self._lock:
                self._made -= 1
            raise
        with self._lock:
            self._slots.append(slot)
            closed = self._closed
        if closed:  # closed while we waited for the lease
            lease.release()
            raise PoolUnavailable("the pool is closed")
        return slot

    @property
    def slots(self) -> list[PoolSlot]:
        """The slots made so far."""
        with self._lock:
            return list(self._slots)

    def checkin(self, slot: PoolSlot) -> None:
        """Give a slot back (its zygote keeps running for the next submission)."""
        if self._closed:
            slot.stop_zygote()
            return
        self._free.put(slot)

    def prestart(self, threads: int, timeout: float = 120.0) -> None:
        """Make every free slot and start its zygote now, in the background and side by side
        (so that the first submissions do not wait for ``import torch`` one after another)."""
        def start(slot: PoolSlot) -> None:
            try:
                slot.zygote(threads, timeout)
            except PoolUnavailable:
                pass  # its first client will use the fresh path, and say why
            finally:
                self.checkin(slot)

        for _ in range(self.size):
            try:
                slot = self.checkout(timeout=0)
            except PoolUnavailable:
                break
            threading.Thread(target=start, args=(slot,), daemon=True,
                             name=f"grader-pool-prestart-{slot.slot}").start()

    def close(self) -> None:
        """Stop every zygote, release the slots' leases, remove the jobs' folders."""
        with self._lock:
            self._closed = True
            slots = list(self._slots)
        for slot in slots:  # all exit side by side, then each is waited for
            if slot._zygote is not None:
                slot._zygote.hang_up()
        for slot in slots:
            slot.stop_zygote()
            slot.lease.release()
        self.launcher.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
