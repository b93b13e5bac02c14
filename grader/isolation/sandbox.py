"""How a worker process is launched under the strongest isolation available.

The worker runs hostile student code, so :func:`plan_launch` returns a :class:`Launch` (argv, env,
cwd, preexec_fn) that the caller hands to :class:`subprocess.Popen`. Two isolation levels:

``"bwrap"``
    bubblewrap *without* a user namespace (we run as root, and as root a user namespace does not
    protect: uid 65534 inside is root outside), unsharing net/pid/ipc/uts/cgroup namespaces. The
    root file system is an empty read-only tmpfs into which only an allow-list is bound read-only:
    ``/usr`` (and the ``/bin``, ``/lib``... symlinks), a few files of ``/etc``, the Python
    installation, the submission at ``/submission`` and the caller's ``extra_ro_binds``. ``/tmp``,
    ``/dev/shm`` are private size-capped tmpfs; the home ``/home/student`` (also the working
    directory) is a per-launch host directory. ``setpriv`` then drops to uid/gid ``60000 + slot``
    with no capabilities and ``no_new_privs`` before running the command. The repository, other
    submissions, ``/root`` and ``/work`` are not visible, and the ``grader``/``reference`` packages
    are masked wherever they sit inside a bound directory (e.g. installed in site-packages).
``"none"``
    A plain subprocess with the same resource limits, a clean environment and a fresh temporary
    working directory. It isolates nothing: use it only where bwrap cannot run (a laptop), and
    say so.

Paths in the command
    Inside bwrap the host paths are not where the files are. ``command`` is therefore either a
    plain list of strings (used verbatim) or a callable that receives a function
    ``path(host_path) -> str`` and returns the list; ``path`` maps a host path to where the child
    sees it (``/submission`` for the submission, the chosen destination for ``extra_ro_binds``, the
    same path for the Python installation) and raises :class:`ValueError` for a path the child
    cannot see. In ``"none"`` mode ``path`` is the identity (made absolute). Example::

        plan_launch(lambda path: [sys.executable, "-I", path(worker_dir / "main.py"),
                                  path(submission)],
                    submission_dir=submission, extra_ro_binds=[(worker_dir, "/opt/worker")])

The caller's jobs
    Pass ``start_new_session=True`` to Popen (so a timeout can kill the process group), enforce a
    wall-clock timeout (RLIMIT_CPU does not stop a sleeping child), call ``Launch.cleanup()``
    after the child has been waited for, and give each concurrent job its own ``slot`` (RLIMIT_NPROC
    counts per uid): hold a lease on it (:mod:`grader.isolation.leases`), or ``plan_launch``
    leases it for the launch, waiting while another process on the machine holds it.
    ``--die-with-parent`` kills the sandbox when the *thread* that started it exits, so start
    sandboxes from a thread that outlives them (the main thread or a pool thread).

Where the parts live
    This module decides and assembles; the bwrap argument list is :mod:`grader.isolation.bwrap`,
    the per-launch cgroups :mod:`grader.isolation.cgroups`, the :class:`Limits` and the rlimits
    the child sets :mod:`grader.isolation.limits`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.isolation import bwrap, leases
from grader.isolation.bwrap import (  # noqa: F401  (re-exported: callers import them from here)
    HIDDEN_PACKAGES,
    SANDBOX_HOME,
    SANDBOX_SUBMISSION,
    Command,
    PathFn,
)
from grader.isolation.cgroups import Cgroups, remove_cgroup, setup_cgroups
from grader.isolation.limits import Limits, make_preexec, rlimits
from grader.shared import seccomp

BASE_UID = leases.BASE_UID
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
# Set on some machines for correct OpenBLAS kernels: keep them if the parent has them.
PASSTHROUGH_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
class IsolationUnavailable(RuntimeError):
    """Raised by :func:`plan_launch` with ``isolation="bwrap"`` when bwrap cannot be used here."""


@dataclass
class Launch:
    """Everything needed to start the worker: ``Popen(argv, env=env, cwd=cwd, preexec_fn=...)``.

    ``cwd`` is a fresh per-launch host directory, the child's HOME and working directory (inside
    bwrap it is mounted at ``/home/student``), so the caller can read what the child wrote there
    before calling ``cleanup``.
    """

    argv: list[str]
    env: dict[str, str]
    cwd: str
    preexec_fn: Callable[[], None] | None
    isolation: str
    description: str
    cleanup: Callable[[], None]
    # Descriptors the child must inherit (``Popen(..., pass_fds=launch.pass_fds)``): bwrap reads
    # its arguments and its seccomp filter from them. One Launch serves one Popen.
    pass_fds: tuple[int, ...] = ()

    def popen_kwargs(self) -> dict:
        """The keyword arguments of :class:`subprocess.Popen` that this launch needs."""
        return {"env": self.env, "cwd": self.cwd, "preexec_fn": self.preexec_fn,
                "pass_fds": self.pass_fds, "start_new_session": True}


# ----------------------------------------------------------------------------- availability


@functools.cache
def isolation_available() -> tuple[bool, str]:
    """Whether bwrap isolation works here, and why not if it does not.

    Really runs a tiny sandbox once (same namespaces, then ``setpriv`` to an unprivileged uid) and
    caches the answer for the life of the process.
    """
    if not sys.platform.startswith("linux"):
        return False, f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap_bin, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if bwrap_bin is None:
        return False, "bwrap (Debian package bubblewrap) is not installed"
    if setpriv is None:
        return False, "setpriv (util-linux) is not installed"
    if os.geteuid() != 0:
        # Without root the only way in is a user namespace, and setpriv cannot switch to a
        # per-slot uid there; we do not pretend that is the same isolation.
        return False, "not running as root (needed to drop to a per-job uid inside bwrap)"
    true = shutil.which("true") or "/usr/bin/true"
    argv = [
        bwrap_bin,
        *bwrap.core_flags(),
        *bwrap.system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/",
        "--",
        *bwrap.setpriv_argv(BASE_UID),
        true,
    ]
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=20, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"trial bwrap run failed: {exc}"
    if proc.returncode != 0:
        err = " ".join(proc.stderr.split())[:200]
        return False, f"trial bwrap run exited {proc.returncode}: {err}"
    return True, ""


# ----------------------------------------------------------------------------- environment


def _child_env(
    home: str, tmp: str, user: str, threads: int, extra: Mapping[str, str] | None
) -> dict[str, str]:
    # Built from nothing: the grader's environment may hold tokens, paths to the reference, etc.
    py_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join([py_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home,
        "TMPDIR": tmp,
        "USER": user,  # getpass.getuser() (used by torch caches) reads these before passwd
        "LOGNAME": user,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    # Oversubscribed BLAS/OpenMP threads are catastrophic with concurrent workers (DESIGN.md).
    env.update({var: str(threads) for var in THREAD_ENV_VARS})
    env.update({var: os.environ[var] for var in PASSTHROUGH_ENV_VARS if var in os.environ})
    if extra:
        env.update(extra)
    return env


def worker_env(threads: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a sandboxed worker (as it sees its home and /tmp), built from
    nothing: what a pooled worker is given, exactly as a fresh one in bwrap mode."""
    return _child_env(SANDBOX_HOME, "/tmp", "student", threads, extra)


def _memfd(name: str, data: bytes) -> int:
    """A close-on-exec in-memory file holding ``data``, positioned at its start."""
    fd = os.memfd_create(name)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _identity_files(workdir: str, uid: int) -> None:
    """``workdir/etc/passwd`` and ``group`` naming the sandbox uid, so pwd.getpwuid()/whoami
    work; nothing of the host's."""
    os.mkdir(os.path.join(workdir, "etc"), 0o755)
    Path(workdir, "etc", "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"student:x:{uid}:{uid}:student:{SANDBOX_HOME}:/bin/sh\n"
    )
    Path(workdir, "etc", "group").write_text(f"root:x:0:\nstudent:x:{uid}:\n")


def _options_by_fd(argv: list[str]) -> tuple[list[str], int]:
    """``bwrap --args FD -- <command>`` and FD: bwrap's own argv is pid 1's /proc/1/cmdline,
    readable inside, so its options (host paths) go through a descriptor and the command names
    only paths as the child sees them."""
    cut = argv.index("--")
    options = b"".join(x.encode() + b"\0" for x in argv[1:cut])
    fd = _memfd("grader-bwrap-args", options)
    return [argv[0], "--args", str(fd), *argv[cut:]], fd


# ----------------------------------------------------------------------------- public


def _close_all(fds: list[int]) -> None:
    """Close (and forget) the descriptors a launch opened for bwrap, errors ignored."""
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


def plan_launch(
    command: Command,
    *,
    submission_dir: Path,
    extra_ro_binds: Sequence[tuple[Path, str]] = (),
    isolation: str = "auto",
    limits: Limits = Limits(),  # noqa: B008  (frozen: one shared default is safe)
    slot: int | None = None,
    threads: int = 1,
    env: Mapping[str, str] | None = None,
    lease_wait: float = 600.0,
    lease: leases.SlotLease | None = None,
    pinned: Mapping[str, tuple[int, str]] | None = None,
) -> Launch:
    """Plan how to run ``command`` on ``submission_dir`` under the strongest isolation available.
    ``pinned``: folders among the binds that the caller holds open (host path -> (O_PATH fd,
    the path it holds)): bubblewrap binds them through the descriptor (the caller closes it).

    ``command``: a list of strings, or a callable ``(path) -> list`` where ``path(host_path)``
    gives the path the child sees (see the module docstring). ``extra_ro_binds``: (host path,
    absolute sandbox path) pairs mounted read-only in bwrap mode (ignored in "none" mode, where the
    child sees the host). ``isolation``: "auto" (bwrap if it works here, else "none"), "bwrap"
    (raise :class:`IsolationUnavailable` if it does not) or "none". ``slot``: index of the
    concurrent job, giving uid ``60000 + slot`` and its cgroup (None: any free slot, leased for
    the launch); unless this process already holds
    a lease on it (``lease``, or a registered one: :func:`leases.held`), the launch leases it
    host-wide for its own life (waiting up to ``lease_wait`` seconds), so no two sandboxes on
    the machine share a uid.
    ``threads``: BLAS/OpenMP threads of the child. ``env``: extra environment on top of the
    clean one.

    Creates a per-launch temporary directory (and cgroups where writable): call
    ``Launch.cleanup()`` when the child has exited, even if the launch failed.
    """
    if isolation not in ("auto", "bwrap", "none"):
        raise ValueError(f"isolation must be 'auto', 'bwrap' or 'none', not {isolation!r}")
    if (slot is not None and slot < 0) or threads < 1:
        raise ValueError("slot must be >= 0 and threads >= 1")
    submission_dir = Path(submission_dir)
    if not submission_dir.is_dir():
        raise ValueError(f"submission directory not found: {submission_dir}")
    real_submission = os.path.realpath(submission_dir)
    if any(bwrap.inside(real_submission, p) for p in bwrap.package_paths()):
        # e.g. a submission folder that is a symlink into reference/: it would be bound as is.
        raise ValueError(
            f"submission directory lies inside the grader or reference: {real_submission}"
        )
    ok, why = isolation_available()
    if isolation == "bwrap" and not ok:
        raise IsolationUnavailable(why)
    use_bwrap = isolation == "bwrap" or (isolation == "auto" and ok)

    # The uid and cgroup of a slot are one job's alone only while its lease is held: take one for
    # this launch unless the caller (the worker client, a batch) holds it already.
    given = lease is not None and lease.active and (slot is None or lease.slot == slot)
    if given:
        slot = lease.slot
    own_lease = None if given or (slot is not None and leases.held(slot)) else \
        leases.acquire_slot(slot, wait=lease_wait, register=False)
    if own_lease is not None:
        slot = own_lease.slot
    try:
        workdir = tempfile.mkdtemp(prefix=f"grader-sandbox-{slot}-")
    except BaseException:
        if own_lease is not None:
            own_lease.release()
        raise
    groups: Cgroups | None = None
    opened: list[int] = []

    def cleanup() -> None:
        _close_all(opened)
        if groups is not None:
            for d in reversed(groups.dirs):
                remove_cgroup(d)
            groups.dirs.clear()
        shutil.rmtree(workdir, ignore_errors=True)
        if own_lease is not None:
            own_lease.release()  # last: the slot's cgroup is gone before another job may take it

    try:
        home = os.path.join(workdir, "home")
        os.mkdir(home, 0o700)
        groups = setup_cgroups(leases.cgroup_name(slot), limits, threads)
        if use_bwrap:
            uid = leases.uid_for(slot)
            os.chown(home, uid, uid)  # the dropped uid owns its home and nothing else
            _identity_files(workdir, uid)
            filter_fd = _memfd("grader-seccomp", seccomp.sandbox_filter()) \
                if seccomp.supported() else None
            fds = [filter_fd] if filter_fd is not None else []
            argv = bwrap.plan_bwrap(command, submission_dir, extra_ro_binds, limits, uid, workdir,
                                    home, filter_fd, pinned)
            argv, args_fd = _options_by_fd(argv)
            fds.append(args_fd)
            opened.extend(fds)
            fds = fds + [fd for fd, _ in (pinned or {}).values()]  # the caller's, not closed here
            child_env = worker_env(threads, env)
            # RLIMIT_NPROC survives bwrap (root, unaffected) and applies once setpriv drops to uid.
            preexec = make_preexec(rlimits(limits, with_nproc=True), groups.join_files)
            description = (
                "bubblewrap: no network, pid/ipc/uts namespaces, read-only root, private /tmp, "
                f"uid {uid}, "
                + ("seccomp (no keyrings, no new namespaces)" if filter_fd is not None
                   else "no seccomp filter (unknown architecture)")
                + f"; {groups.summary}"
            )
            return Launch(argv, child_env, home, preexec, "bwrap", description, cleanup,
                          tuple(fds))

        tmp = os.path.join(workdir, "tmp")
        os.mkdir(tmp, 0o700)
        cmd = command(lambda p: os.path.abspath(p)) if callable(command) else command
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or "student"
        child_env = _child_env(home, tmp, user, threads, env)
        # No RLIMIT_NPROC here: it would count every process of the user running the grader (a
        # browser alone has hundreds of threads), so it would either break the worker or mean
        # nothing. The pids cgroup, where writable, is the bound.
        preexec = make_preexec(rlimits(limits, with_nproc=False), groups.join_files)
        reason = f"no isolation available: {why}" if why else "isolation not requested"
        description = f"none: plain subprocess with resource limits ({reason}); {groups.summary}"
        return Launch([str(x) for x in cmd], child_env, home, preexec, "none", description, cleanup)
    except BaseException:
        cleanup()
        raise


# What the zygote of a warm pool (grader.worker.zygote) keeps, to build each job's sandbox
# itself: new namespaces and mounts (SYS_ADMIN), the switch to the job's uid (SETUID, SETGID),
# emptying the bounding set (SETPCAP), the job's loopback (NET_ADMIN). Nothing else: no
# DAC_OVERRIDE, no KILL, no PTRACE. Every job drops all of them before its first instruction.
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_NET_ADMIN")
# The zygote's own /tmp and /dev/shm: each job unmounts them and mounts its own.
_ZYGOTE_TMPFS = Limits(tmpfs_bytes=16 * 2**20)


def plan_zygote(
    command: Command,
    *,
    uid: int,
    extra_ro_binds: Sequence[tuple[Path, str]] = (),
    mount_points: Sequence[str] = (),
    threads: int = 1,
    env: Mapping[str, str] | None = None,
) -> Launch:
    """The bubblewrap launch of a warm pool's zygote (see ``grader.isolation.pool``).

    The zygote's root is exactly a worker sandbox's (:func:`grader.isolation.bwrap.plan_bwrap`:
    the same allow-list, masks and passwd naming ``uid``; no network), with empty read-only
    directories at ``/submission``, the home and each of ``mount_points`` for its jobs to mount
    over, the caller's ``extra_ro_binds``, and no ``setpriv``: it stays root keeping
    :data:`ZYGOTE_CAPS` only, and no seccomp filter (it must mount and unshare; each job installs
    the sandbox filter on itself). ``command`` is as for :func:`plan_launch`; its environment is
    a worker's (``threads`` BLAS threads), since what torch reads at import is decided here.
    No cgroup and no rlimits: the zygote runs trusted code only, and each job gets its own.

    Raises :class:`IsolationUnavailable` where bwrap cannot run. Call ``Launch.cleanup()`` after
    the zygote has exited.
    """
    ok, why = isolation_available()
    if not ok:
        raise IsolationUnavailable(why)
    if threads < 1:
        raise ValueError("threads must be >= 1")
    workdir = tempfile.mkdtemp(prefix=f"grader-zygote-{uid}-")
    opened: list[int] = []

    def cleanup() -> None:
        _close_all(opened)
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        # Root-owned and 0555: the zygote (root without CAP_DAC_OVERRIDE) cannot write in them.
        empty = os.path.join(workdir, "empty")
        home = os.path.join(workdir, "home")
        for d in (empty, home):
            os.mkdir(d)
            os.chmod(d, 0o555)
        _identity_files(workdir, uid)
        binds = [*extra_ro_binds, *((Path(empty), point) for point in mount_points)]
        argv = bwrap.plan_bwrap(command, Path(empty), binds, _ZYGOTE_TMPFS, uid, workdir, home)
        cut = argv.index("--")
        drop = bwrap.setpriv_argv(uid)
        if argv[cut + 1:cut + 1 + len(drop)] != drop:
            raise RuntimeError("the bwrap plan does not end in setpriv: cannot plan a zygote")
        caps = ["--cap-drop", "ALL", *(x for c in ZYGOTE_CAPS for x in ("--cap-add", c))]
        argv = [*argv[:cut], *caps, "--", *argv[cut + 1 + len(drop):]]
        argv, args_fd = _options_by_fd(argv)
        opened.append(args_fd)
        child_env = worker_env(threads, env)
        description = f"bubblewrap zygote for uid {uid}: root with {', '.join(ZYGOTE_CAPS)}"
        return Launch(argv, child_env, home, None, "bwrap", description, cleanup, (args_fd,))
    except BaseException:
        cleanup()
        raise


def plan_judge(
    command: Sequence[str],
    *,
    uid: int,
    work_area: Path,
    ro_paths: Sequence[Path] = (),
    threads: int = 1,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    rw_paths: Sequence[Path] = (),
) -> Launch:
    """The bubblewrap launch of an unprivileged judging process (``grader.isolation.launcher``).

    The judge sees the system, the Python installation and ``ro_paths`` read-only at their own
    paths, ``work_area`` (owned by ``uid``) writable at its own path, nothing else of the host
    (no ``/root``, no ``/run``, no other job's folder); it has no network and runs as ``uid``
    with no capabilities and ``no_new_privs``. ``command`` names host paths (they are the same
    inside). Its environment is built from nothing: ``HOME`` and ``TMPDIR`` in the work area,
    so every file it makes for a worker is where the launcher accepts it. ``rw_paths``: more
    folders writable at their own paths (a warm judge's pool slot folder). Raises
    :class:`IsolationUnavailable` where bwrap cannot run.
    """
    ok, why = isolation_available()
    if not ok:
        raise IsolationUnavailable(why)
    workdir = tempfile.mkdtemp(prefix="grader-judge-plan-")

    def cleanup() -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        os.mkdir(os.path.join(workdir, "etc"), 0o755)
        Path(workdir, "etc", "passwd").write_text(
            f"root:x:0:0:root:/root:/usr/sbin/nologin\njudge:x:{uid}:{uid}:judge:"
            f"{work_area}/home:/usr/sbin/nologin\n")
        Path(workdir, "etc", "group").write_text(f"root:x:0:\njudge:x:{uid}:\n")
        argv = bwrap.plan_judge_bwrap([str(x) for x in command], uid, workdir, str(work_area),
                                      [str(p) for p in ro_paths], 256 * 2**20,
                                      [str(p) for p in rw_paths])
        child_env = _child_env(f"{work_area}/home", f"{work_area}/tmp", "judge", threads, env)
        description = f"unprivileged uid {uid} in a sandbox (no capabilities, no network)"
        return Launch(argv, child_env, str(work_area), None, "bwrap", description, cleanup,
                      tuple(pass_fds))
    except BaseException:
        cleanup()
        raise
