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
"""

from __future__ import annotations

import functools
import importlib.util
import os
import resource
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.isolation import leases
from grader.shared import seccomp

SANDBOX_SUBMISSION = "/submission"
SANDBOX_HOME = "/home/student"
BASE_UID = leases.BASE_UID
# Packages that student code must never be able to import (the grader's checks, the solutions).
HIDDEN_PACKAGES = ("grader", "reference")
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
# Set on some machines for correct OpenBLAS kernels: keep them if the parent has them.
PASSTHROUGH_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The dynamic loader needs ld.so.cache; time.localtime the zone; /usr/bin links alternatives.
# Deliberately absent: resolv.conf/hosts (no network anyway), passwd/shadow (synthetic ones).
_ETC_ENTRIES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)

PathFn = Callable[["str | os.PathLike[str]"], str]
Command = Sequence[str] | Callable[[PathFn], Sequence[str]]


class IsolationUnavailable(RuntimeError):
    """Raised by :func:`plan_launch` with ``isolation="bwrap"`` when bwrap cannot be used here."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one worker (applied as rlimits, and as cgroup limits where writable)."""

    # RLIMIT_DATA, not RLIMIT_AS: PyTorch reserves huge virtual ranges and fails under RLIMIT_AS.
    memory_bytes: int = 6 * 2**30
    cpu_seconds: int = 900
    # RLIMIT_NPROC counts every process/thread of the uid: meaningful only with one uid per slot.
    max_processes: int = 256
    file_size_bytes: int = 256 * 2**20
    open_files: int = 1024
    # Size cap of each private tmpfs (/tmp, /dev/shm) in bwrap mode; tmpfs pages are also charged
    # to the memory cgroup.
    tmpfs_bytes: int = 1 * 2**30
    # CPU time per wall-clock second (cgroup cpu quota, where writable), in cores; None: the
    # launch's thread count. With one group per job, a job with many threads cannot starve the
    # jobs beside it.
    cpus: float | None = None


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


def _bwrap_core_flags() -> list[str]:
    # No --unshare-user: as root a user namespace maps us to "nobody" inside but root outside.
    return [
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]


def _system_binds() -> list[str]:
    args: list[str] = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            # /bin -> usr/bin on merged-/usr systems: recreate the link, the target is bound.
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


def _setpriv_argv(uid: int) -> list[str]:
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


@functools.cache
def isolation_available() -> tuple[bool, str]:
    """Whether bwrap isolation works here, and why not if it does not.

    Really runs a tiny sandbox once (same namespaces, then ``setpriv`` to an unprivileged uid) and
    caches the answer for the life of the process.
    """
    if not sys.platform.startswith("linux"):
        return False, f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if bwrap is None:
        return False, "bwrap (Debian package bubblewrap) is not installed"
    if setpriv is None:
        return False, "setpriv (util-linux) is not installed"
    if os.geteuid() != 0:
        # Without root the only way in is a user namespace, and setpriv cannot switch to a
        # per-slot uid there; we do not pretend that is the same isolation.
        return False, "not running as root (needed to drop to a per-job uid inside bwrap)"
    true = shutil.which("true") or "/usr/bin/true"
    argv = [
        bwrap,
        *_bwrap_core_flags(),
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/",
        "--",
        *_setpriv_argv(BASE_UID),
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


# ----------------------------------------------------------------------------- cgroups


@dataclass
class _Cgroups:
    dirs: list[Path]  # groups we created, removed by cleanup
    join_files: list[str]  # cgroup.procs files the child writes its pid into
    summary: str  # for Launch.description


_CPU_PERIOD = 100_000  # microseconds


def _cgroup_mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of every cgroup mount we can see."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields, post_fields = pre.split(), post.split()
        if len(fields) < 5 or len(post_fields) < 3 or post_fields[0] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        out.append((post_fields[0], fields[3], point, set(post_fields[2].split(","))))
    return out


def _own_cgroup_paths() -> dict[str, str]:
    """Controller (or "" for the v2 hierarchy) -> our cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            out[""] = parts[2]
        for ctrl in parts[1].split(","):
            if ctrl:
                out[ctrl] = parts[2]
    return out


def _host_dir(mount_root: str, mount_point: str, cg_path: str) -> Path | None:
    # Our group is mount_point + (cg_path relative to the root of the hierarchy mounted there).
    rel = os.path.relpath(cg_path, mount_root)
    if rel.startswith(".."):
        return None
    return Path(os.path.normpath(os.path.join(mount_point, rel)))


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _remove_cgroup(d: Path) -> None:
    """Kill whatever is left in a group we created (only our child's descendants), then rmdir."""
    deadline = time.monotonic() + 3.0
    while d.exists():
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            d.rmdir()
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return  # leave it rather than hang; named per pid/slot so it cannot be confused
            time.sleep(0.02)


def _setup_cgroups(name: str, limits: Limits, threads: int = 1) -> _Cgroups:
    """Create ``name`` groups below our own cgroup with the memory and pids limits, where we can."""
    mounts, own = _cgroup_mounts(), _own_cgroup_paths()
    groups = _Cgroups([], [], "")
    quota = max(1000, int((limits.cpus or threads) * _CPU_PERIOD))
    got: list[str] = []

    def make_group(parent: Path | None, writes: list[tuple[str, int | str, bool]]) -> bool:
        # writes: (file, value, required); a group missing a required limit is removed again.
        if parent is None:
            return False
        d = parent / name
        try:
            if d.exists():
                _remove_cgroup(d)  # a stale group of ours (same pid and slot) from a crash
            d.mkdir()
        except OSError:
            return False
        for fname, value, required in writes:
            try:
                _write(d / fname, str(value))
            except OSError:
                if required:
                    _remove_cgroup(d)
                    return False
        groups.dirs.append(d)
        groups.join_files.append(str(d / "cgroup.procs"))
        return True

    # cgroup v1: one hierarchy per controller (what the grading machines have).
    v1 = {
        # memory+swap = memory, so swapping does not get around the limit (optional file).
        "memory": [
            ("memory.limit_in_bytes", limits.memory_bytes, True),
            ("memory.memsw.limit_in_bytes", limits.memory_bytes, False),
        ],
        "pids": [("pids.max", limits.max_processes, True)],
        "cpu": [
            ("cpu.cfs_period_us", _CPU_PERIOD, False),
            ("cpu.cfs_quota_us", quota, True),
        ],
    }
    for ctrl, writes in v1.items():
        mount = next((m for m in mounts if m[0] == "cgroup" and ctrl in m[3]), None)
        if mount and ctrl in own and make_group(_host_dir(mount[1], mount[2], own[ctrl]), writes):
            got.append(f"{ctrl} (v1)")

    # cgroup v2 (unified): one group for the controllers v1 did not give us.
    missing = [c for c in v1 if not any(g.startswith(c) for g in got)]
    v2 = next((m for m in mounts if m[0] == "cgroup2"), None)
    if missing and v2 and "" in own:
        parent = _host_dir(v2[1], v2[2], own[""])
        try:
            available = (parent / "cgroup.controllers").read_text().split() if parent else []
        except OSError:
            available = []
        usable = [c for c in missing if c in available]
        for c in usable:
            try:  # fails (EBUSY) while our own group holds processes: then v2 cannot be used
                _write(parent / "cgroup.subtree_control", f"+{c}")
            except OSError:
                pass
        writes = {
            "memory": [
                ("memory.max", limits.memory_bytes, True),
                ("memory.swap.max", 0, False),
            ],
            "pids": [("pids.max", limits.max_processes, True)],
            "cpu": [("cpu.max", f"{quota} {_CPU_PERIOD}", True)],
        }
        if usable and make_group(parent, [w for c in usable for w in writes[c]]):
            got += [f"{c} (v2)" for c in usable]

    if not got:
        groups.summary = "cgroups not writable here (rlimits only)"
    else:
        groups.summary = "cgroup limits: " + ", ".join(got)
        left = [c for c in v1 if not any(g.startswith(c) for g in got)]
        if left:
            groups.summary += f"; no writable {'/'.join(left)} cgroup"
    return groups


# ----------------------------------------------------------------------------- rlimits


def _rlimits(limits: Limits, with_nproc: bool) -> list[tuple[int, int]]:
    wanted = [
        (resource.RLIMIT_DATA, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),  # a core dump of a 6 GB worker fills the disk for nothing
    ]
    if with_nproc:
        wanted.append((resource.RLIMIT_NPROC, limits.max_processes))
    out = []
    for res, value in wanted:
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # an unprivileged parent cannot raise its hard limit
        out.append((res, value))
    return out


def _make_preexec(rlimits: list[tuple[int, int]], join_files: list[str]) -> Callable[[], None]:
    # Runs in the forked child before exec: keep it to plain syscalls. The cgroup is joined here so
    # that the whole tree (bwrap, setpriv, the worker and anything it forks) is accounted in it.
    def preexec() -> None:
        pid = str(os.getpid())
        for f in join_files:
            with open(f, "w") as fh:
                fh.write(pid)
        for res, value in rlimits:
            resource.setrlimit(res, (value, value))

    return preexec


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


# ----------------------------------------------------------------------------- bwrap plan


def _python_dirs() -> list[str]:
    """Directories of the Python installation the child needs (prefixes and site-packages)."""
    dirs = [sys.base_prefix, sys.prefix]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # old virtualenv's site module
        pass
    return [os.path.abspath(d) for d in dirs if os.path.isdir(d)]


def _package_paths() -> set[str]:
    """Real paths of the ``grader`` and ``reference`` packages as this process imports them."""
    paths = {str(Path(__file__).resolve().parent.parent)}
    for name in HIDDEN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            paths.update(os.path.realpath(loc) for loc in spec.submodule_search_locations or [])
            if spec.origin and os.path.isfile(spec.origin):
                paths.add(os.path.realpath(spec.origin))
    return paths


def _hidden_paths(site_dirs: Sequence[str]) -> list[str]:
    """Real paths that must never be visible: our packages, the repo, and their install traces."""
    hidden = _package_paths()
    repo = Path(__file__).resolve().parents[2]
    if not any(os.path.realpath(d) == str(repo) for d in site_dirs):  # repo, not site-packages
        hidden.add(str(repo))
    for name in HIDDEN_PACKAGES:
        for d in site_dirs:
            for pattern in (
                name,
                f"{name}.py",
                f"{name}-*.dist-info",
                f"{name}-*.egg-info",
                f"{name}.egg-link",
                f"__editable__*{name}*",
            ):
                hidden.update(os.path.realpath(p) for p in Path(d).glob(pattern))
    return sorted(hidden)


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class _BwrapArgs:
    """Builds the bwrap argument list; tracks visible binds for the path mapping and masking."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.binds: list[tuple[str, str, str]] = []  # (host as given, host real, sandbox dest)
        self._dirs: set[str] = {"/"}

    def ensure_parents(self, dest: str) -> None:
        # bwrap would create missing parents with mode 0700 (unreadable for the dropped uid), so
        # create them ourselves with 0755 -- unless they already lie inside a bound directory.
        parents = []
        p = os.path.dirname(dest)
        while p not in self._dirs and not any(_inside(p, b[2]) for b in self.binds):
            parents.append(p)
            p = os.path.dirname(p)
        for p in reversed(parents):
            self.args += ["--perms", "0755", "--dir", p]
            self._dirs.add(p)

    def ro_bind(self, host: str, dest: str) -> None:
        real = os.path.realpath(host)
        if any(
            _inside(dest, b[2])
            and _inside(real, b[1])
            and os.path.relpath(dest, b[2]) == os.path.relpath(real, b[1])
            for b in self.binds
        ):
            self.binds.append((os.path.abspath(host), real, dest))  # already visible there
            return
        self.ensure_parents(dest)
        if os.path.isdir(real) and os.stat(real).st_mode & 0o005 != 0o005:
            self._open_up(real, dest)
        else:
            self.args += ["--ro-bind", real, dest]
        self.binds.append((os.path.abspath(host), real, dest))
        self._dirs.add(dest)

    def _open_up(self, real: str, dest: str) -> None:
        # A bind keeps the host directory's mode, and the dropped uid cannot enter a 0700 one
        # (a venv made in `mktemp -d`): the interpreter would then silently fall back to the base
        # prefix and miss the venv's packages. Recreate the directory world-readable and bind
        # its entries one by one instead; the entries keep their own modes.
        self.args += ["--perms", "0755", "--dir", dest]
        self._dirs.add(dest)
        for entry in sorted(os.listdir(real)):
            src, target = os.path.join(real, entry), os.path.join(dest, entry)
            if os.path.islink(src):
                self.args += ["--symlink", os.readlink(src), target]
            elif os.path.isdir(src) and os.stat(src).st_mode & 0o005 != 0o005:
                self._open_up(src, target)
            else:
                self.args += ["--ro-bind", src, target]

    def to_sandbox(self, host: str | os.PathLike[str]) -> str:
        """Where the child sees ``host``: by the bind the path lies under as spelled (a venv's
        ``bin/python`` is the venv's, although it resolves into the base interpreter's prefix),
        and only when no bind holds that spelling, by its resolved path. Among the binds that
        hold it, the innermost (longest) wins, so site-packages inside a prefix is its own."""
        given, real = os.path.abspath(host), os.path.realpath(host)
        for path, side in ((given, 0), (real, 1)):
            under = [b for b in self.binds if _inside(path, b[side])]
            if under:
                inner = max(under, key=lambda b: len(b[side]))
                base, dest = inner[side], inner[2]
                rel = os.path.relpath(path, base)
                return dest if rel == "." else os.path.join(dest, rel)
        raise ValueError(f"{host} is not visible inside the sandbox (bind it via extra_ro_binds)")


def _plan_bwrap(
    command: Command,
    submission_dir: Path,
    extra_ro_binds: Sequence[tuple[Path, str]],
    limits: Limits,
    uid: int,
    workdir: str,
    home: str,
    seccomp_fd: int | None = None,
) -> list[str]:
    """The bwrap argv: allow-listed read-only binds, private tmpfs, masks, then setpriv."""
    b = _BwrapArgs()
    a = b.args
    a += [shutil.which("bwrap") or "bwrap", *_bwrap_core_flags(), "--hostname", "sandbox"]
    a += _system_binds()
    for d in _SYSTEM_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            b.binds.append((d, os.path.realpath(d), d))
            b._dirs.add(d)
    a += ["--proc", "/proc", "--dev", "/dev"]
    # Private, size-capped scratch space; mounted first so binds below /tmp (a venv there) stay
    # visible on top of it.
    a += ["--size", str(limits.tmpfs_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    a += ["--size", str(limits.tmpfs_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
    b._dirs.update({"/proc", "/dev", "/tmp", "/dev/shm"})

    a += ["--perms", "0755", "--dir", "/etc"]
    b._dirs.add("/etc")
    for entry in _ETC_ENTRIES:
        if os.path.exists(entry):
            a += ["--ro-bind", entry, entry]
    # A passwd naming the sandbox uid, so pwd.getpwuid()/whoami work; nothing of the host's.
    for fname in ("passwd", "group"):
        a += ["--ro-bind", os.path.join(workdir, "etc", fname), f"/etc/{fname}"]

    site_dirs = _python_dirs()
    for d in sorted(set(site_dirs), key=len):
        real = os.path.realpath(d)
        b.ro_bind(real, real)
        if real != d and not any(_inside(d, x[2]) for x in b.binds):
            b.ensure_parents(d)
            a += ["--symlink", real, d]  # e.g. a prefix reached through a symlink
            b.binds.append((d, real, real))
    setpriv = os.path.realpath(shutil.which("setpriv") or "/usr/bin/setpriv")
    if not any(_inside(setpriv, x[1]) for x in b.binds):
        b.ro_bind(setpriv, setpriv)

    b.ro_bind(str(submission_dir), SANDBOX_SUBMISSION)
    for host, dest in extra_ro_binds:
        if not os.path.isabs(dest):
            raise ValueError(f"sandbox path must be absolute: {dest!r}")
        b.ro_bind(str(host), dest)
    b.ensure_parents(SANDBOX_HOME)
    a += ["--bind", home, SANDBOX_HOME]
    b.binds.append((home, os.path.realpath(home), SANDBOX_HOME))

    # Mask hidden things that a bind made visible (e.g. grader installed into site-packages).
    # A bind whose source lies *inside* a hidden directory was asked for explicitly: leave it.
    for hidden in _hidden_paths(site_dirs):
        for _, real, dest in list(b.binds):
            if _inside(hidden, real):
                target = os.path.normpath(os.path.join(dest, os.path.relpath(hidden, real)))
                if os.path.isdir(hidden):
                    a += ["--tmpfs", target, "--remount-ro", target]
                else:
                    a += ["--ro-bind", "/dev/null", target]

    a += ["--remount-ro", "/", "--chdir", SANDBOX_HOME]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    a += ["--"]
    a += _setpriv_argv(uid)
    cmd = command(b.to_sandbox) if callable(command) else command
    a += [str(x) for x in cmd]
    return a


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


# ----------------------------------------------------------------------------- public


def plan_launch(
    command: Command,
    *,
    submission_dir: Path,
    extra_ro_binds: Sequence[tuple[Path, str]] = (),
    isolation: str = "auto",
    limits: Limits = Limits(),
    slot: int | None = None,
    threads: int = 1,
    env: Mapping[str, str] | None = None,
    lease_wait: float = 600.0,
    lease: leases.SlotLease | None = None,
) -> Launch:
    """Plan how to run ``command`` on ``submission_dir`` under the strongest isolation available.

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
    if any(_inside(real_submission, p) for p in _package_paths()):
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
    cgroups: _Cgroups | None = None
    opened: list[int] = []

    def cleanup() -> None:
        while opened:
            try:
                os.close(opened.pop())
            except OSError:
                pass
        if cgroups is not None:
            for d in reversed(cgroups.dirs):
                _remove_cgroup(d)
            cgroups.dirs.clear()
        shutil.rmtree(workdir, ignore_errors=True)
        if own_lease is not None:
            own_lease.release()  # last: the slot's cgroup is gone before another job may take it

    try:
        home = os.path.join(workdir, "home")
        os.mkdir(home, 0o700)
        cgroups = _setup_cgroups(leases.cgroup_name(slot), limits, threads)
        if use_bwrap:
            uid = leases.uid_for(slot)
            os.chown(home, uid, uid)  # the dropped uid owns its home and nothing else
            os.mkdir(os.path.join(workdir, "etc"), 0o755)
            Path(workdir, "etc", "passwd").write_text(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                f"student:x:{uid}:{uid}:student:{SANDBOX_HOME}:/bin/sh\n"
            )
            Path(workdir, "etc", "group").write_text(f"root:x:0:\nstudent:x:{uid}:\n")
            filter_fd = _memfd("grader-seccomp", seccomp.sandbox_filter()) \
                if seccomp.supported() else None
            fds = [filter_fd] if filter_fd is not None else []
            argv = _plan_bwrap(command, submission_dir, extra_ro_binds, limits, uid, workdir, home,
                               filter_fd)
            # bwrap's own argv is pid 1's /proc/1/cmdline, readable inside: pass its options
            # (host paths) through a descriptor, so it reads `bwrap --args N -- <command>`, and
            # the command names only paths as the child sees them.
            cut = argv.index("--")
            options = b"".join(x.encode() + b"\0" for x in argv[1:cut])
            args_fd = _memfd("grader-bwrap-args", options)
            fds.append(args_fd)
            argv = [argv[0], "--args", str(args_fd), *argv[cut:]]
            opened.extend(fds)
            child_env = _child_env(SANDBOX_HOME, "/tmp", "student", threads, env)
            # RLIMIT_NPROC survives bwrap (root, unaffected) and applies once setpriv drops to uid.
            preexec = _make_preexec(_rlimits(limits, with_nproc=True), cgroups.join_files)
            description = (
                "bubblewrap: no network, pid/ipc/uts namespaces, read-only root, private /tmp, "
                f"uid {uid}, "
                + ("seccomp (no keyrings, no new namespaces)" if filter_fd is not None
                   else "no seccomp filter (unknown architecture)")
                + f"; {cgroups.summary}"
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
        preexec = _make_preexec(_rlimits(limits, with_nproc=False), cgroups.join_files)
        reason = f"no isolation available: {why}" if why else "isolation not requested"
        description = f"none: plain subprocess with resource limits ({reason}); {cgroups.summary}"
        return Launch([str(x) for x in cmd], child_env, home, preexec, "none", description, cleanup)
    except BaseException:
        cleanup()
        raise
