"""Slot leases: one identity (uid and cgroup) per concurrent job, host-wide.

Every sandbox runs as uid ``60000 + slot`` in a cgroup named after its slot. Limits that count per
uid (RLIMIT_NPROC) and kernel state keyed by uid (the user keyring) are only per-job if no two jobs
on the machine ever hold the same slot at once -- across *all* grader processes, not just the
threads of one. A slot is therefore held by a **lease**: an exclusive ``flock`` on the file
``slot-<n>.lock`` in a lease directory (``/run/grader-slots`` when running as root). The kernel
releases a flock when the last descriptor of the open file goes away, so a lease ends when its
holder exits, however it exits (SIGKILL and OOM-kill included): there is no stale-lock cleanup to
get wrong, and no daemon.

API (also used by batch grading)::

    from grader.isolation import leases
    with leases.acquire_slot() as lease:      # any free slot; waits up to `wait` seconds
        settings = WorkerSettings(slot=lease.slot)   # held(slot) is true: the client uses it
        ...
    lease = leases.acquire_slot(slot=3)        # exactly slot 3 (waits for it)
    lease.release()                            # idempotent; also on garbage collection/exit
    leases.held(3)                             # does this process hold slot 3?
    leases.uid_for(slot), leases.cgroup_name(slot)

The descriptor is opened close-on-exec, so sandboxes started by the holder never inherit it. A
process forked from the holder (a ``fork`` pool) does inherit the lock; the lease then lasts until
both have exited (never shorter), and :func:`held` is false in the child, so the child leases a
slot of its own instead of sharing its parent's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE_UID = 60000
# uids 60000..60255: far from login users (1000+) and from nobody (65534).
DEFAULT_SLOTS = 256
ROOT_LEASE_DIR = Path("/run/grader-slots")
_POLL_SECONDS = 0.05


class SlotsExhausted(RuntimeError):
    """No slot became free within the wait: as many jobs as slots are running on this machine."""


class LeaseDirectoryUnsafe(RuntimeError):
    """The lease directory is not owned by us (or root) or is writable by others."""


def uid_for(slot: int) -> int:
    """The uid (and gid) a sandbox of ``slot`` runs as."""
    return BASE_UID + slot


def cgroup_name(slot: int) -> str:
    """The name of the cgroup a sandbox of ``slot`` runs in (below the grader's own cgroup)."""
    return f"grader-slot-{slot}"


def default_directory() -> Path:
    """``/run/grader-slots`` for root; a per-user directory otherwise (no uid switching there)."""
    if os.geteuid() == 0:
        return ROOT_LEASE_DIR
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"grader-slots-{os.geteuid()}"


def _prepare_directory(directory: Path) -> None:
    # A directory others can write to would let them plant a symlink or hold our lock files open.
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise LeaseDirectoryUnsafe(
            f"cannot create the slot lease directory {directory}: {exc}") from None
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise LeaseDirectoryUnsafe(f"slot lease directory {directory} is not a directory")
    if st.st_uid not in (0, os.geteuid()):
        raise LeaseDirectoryUnsafe(
            f"slot lease directory {directory} is owned by uid {st.st_uid}, not by us or root"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LeaseDirectoryUnsafe(
            f"slot lease directory {directory} is writable by others (mode {st.st_mode & 0o777:o})"
        )


@dataclass
class SlotLease:
    """An exclusive hold on one slot until :meth:`release` (or the holder's death)."""

    slot: int
    path: Path
    _fd: int | None = field(default=None, repr=False)
    _pid: int = field(default_factory=os.getpid, repr=False)

    @property
    def uid(self) -> int:
        return uid_for(self.slot)

    @property
    def cgroup(self) -> str:
        return cgroup_name(self.slot)

    @property
    def active(self) -> bool:
        """Held by this process (a forked child's copy of the object is not active)."""
        return self._fd is not None and self._pid == os.getpid()

    def release(self) -> None:
        """Give the slot back. Idempotent; in a forked child it only drops the child's copy."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._pid == os.getpid():
            with _lock:
                if _held.get(self.slot) is self:
                    del _held[self.slot]
        try:
            os.close(fd)  # closing the last descriptor releases the flock
        except OSError:
            pass

    def __enter__(self) -> SlotLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter exit the module may be half gone
            pass


_lock = threading.Lock()
_held: dict[int, SlotLease] = {}  # slots this process holds, for held()


def held(slot: int) -> bool:
    """Whether this process (not a parent it was forked from) holds a lease on ``slot``."""
    with _lock:
        lease = _held.get(slot)
    return lease is not None and lease.active


def _try_lock(directory: Path, slot: int) -> SlotLease | None:
    path = directory / f"slot-{slot}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    try:  # for a human looking at the directory: who holds it
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass
    return SlotLease(slot, path, fd)


def acquire_slot(
    slot: int | None = None,
    *,
    directory: str | os.PathLike[str] | None = None,
    slots: int = DEFAULT_SLOTS,
    wait: float = 600.0,
    register: bool = True,
) -> SlotLease:
    """Lease a slot host-wide: ``slot`` exactly, or else the lowest free one of ``range(slots)``.

    Waits up to ``wait`` seconds for one to become free, then raises :class:`SlotsExhausted`.
    ``directory`` defaults to :func:`default_directory`; every grader process on the machine must
    use the same one (the default does) for leases to exclude each other.

    ``register``: record the lease so that :func:`held` is true for it in this process, which
    lets the worker client and ``plan_launch`` use the slot as given (what a batch that hands
    slots to its workers wants). The client's and ``plan_launch``'s own leases are unregistered:
    another client of the same process then gets another slot, never this one.
    """
    if slot is not None and not 0 <= slot < slots:
        raise ValueError(f"slot must be in 0..{slots - 1}, not {slot}")
    directory = Path(directory) if directory is not None else default_directory()
    _prepare_directory(directory)
    candidates = [slot] if slot is not None else list(range(slots))
    deadline = time.monotonic() + wait
    while True:
        for n in candidates:
            with _lock:
                mine = _held.get(n)
                if mine is not None and mine.active:
                    continue  # flock would refuse anyway; skip the syscall
            lease = _try_lock(directory, n)
            if lease is not None:
                if register:
                    with _lock:
                        _held[n] = lease
                return lease
        if time.monotonic() >= deadline:
            which = f"slot {slot}" if slot is not None else f"any of {slots} slots"
            raise SlotsExhausted(
                f"{which} still leased by other grading jobs after {wait:.0f} s ({directory})"
            )
        time.sleep(_POLL_SECONDS)
