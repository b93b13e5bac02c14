"""The bubblewrap argument list of one launch: what the child sees, and where.

:func:`plan_bwrap` builds it: an empty read-only root into which an allow-list is bound (system
directories, a few files of ``/etc``, the Python installation, the submission, the caller's
extra binds), private tmpfs, a per-launch home, masks over the hidden packages, then setpriv.
:class:`BwrapArgs` keeps track of the binds so a host path can be mapped to the path the child
sees. :mod:`grader.isolation.sandbox` decides whether to use it and launches it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from grader.isolation.limits import Limits

SANDBOX_SUBMISSION = "/submission"
SANDBOX_HOME = "/home/student"
# Packages that student code must never be able to import (the grader's checks, the solutions).
HIDDEN_PACKAGES = ("grader", "reference")
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


def core_flags() -> list[str]:
    """The namespace and lifetime flags of every bwrap run (the trial one included)."""
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


_BIND_FD: dict[str, bool] = {}


def binds_by_descriptor() -> bool:
    """Whether this machine's bubblewrap has ``--ro-bind-fd`` (upstream since 0.10, and in some
    distributions' older builds): asked of ``bwrap --help`` once per process. Without it the
    launcher binds folders by name, as before (ARCHITECTURE, "Renames in the work area")."""
    import subprocess

    exe = shutil.which("bwrap") or ""
    if exe not in _BIND_FD:
        try:
            out = subprocess.run([exe, "--help"], capture_output=True, timeout=10,
                                 stdin=subprocess.DEVNULL)
            _BIND_FD[exe] = b"--ro-bind-fd" in out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            _BIND_FD[exe] = False
    return _BIND_FD[exe]


def system_binds() -> list[str]:
    """Read-only binds of ``/usr`` and the system directories (their symlinks recreated)."""
    args: list[str] = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            # /bin -> usr/bin on merged-/usr systems: recreate the link, the target is bound.
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


def setpriv_argv(uid: int) -> list[str]:
    """The setpriv prefix that drops to ``uid`` with no capabilities and no_new_privs."""
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


def python_dirs() -> list[str]:
    """Directories of the Python installation the child needs (prefixes and site-packages)."""
    dirs = [sys.base_prefix, sys.prefix]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # old virtualenv's site module
        pass
    return [os.path.abspath(d) for d in dirs if os.path.isdir(d)]


def package_paths() -> set[str]:
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


def hidden_paths(site_dirs: Sequence[str]) -> list[str]:
    """Real paths that must never be visible: our packages, the repo, and their install traces."""
    hidden = package_paths()
    repo = Path(__file__).resolve().parents[2]
    if not any(os.path.realpath(d) == str(repo) for d in site_dirs):  # repo, not site-packages
        hidden.add(str(repo))
    from grader.shared.withheld import WITHHELD

    for name in (*HIDDEN_PACKAGES, *WITHHELD):
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


def inside(path: str, parent: str) -> bool:
    """Whether ``path`` is ``parent`` or lies below it (both absolute, no resolving)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class BwrapArgs:
    """Builds the bwrap argument list; tracks visible binds for the path mapping and masking."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.binds: list[tuple[str, str, str]] = []  # (host as given, host real, sandbox dest)
        self._dirs: set[str] = {"/"}
        # host path as given -> (an O_PATH descriptor the child inherits, the path it holds)
        self.pinned: dict[str, tuple[int, str]] = {}

    def ensure_parents(self, dest: str) -> None:
        # bwrap would create missing parents with mode 0700 (unreadable for the dropped uid), so
        # create them ourselves with 0755 -- unless they already lie inside a bound directory.
        parents = []
        p = os.path.dirname(dest)
        while p not in self._dirs and not any(inside(p, b[2]) for b in self.binds):
            parents.append(p)
            p = os.path.dirname(p)
        for p in reversed(parents):
            self.args += ["--perms", "0755", "--dir", p]
            self._dirs.add(p)

    def ro_bind(self, host: str, dest: str) -> None:
        pinned = self.pinned.get(os.path.abspath(host))
        if pinned is not None:
            # A folder the caller holds open (O_PATH): bound through its descriptor. bwrap
            # mounts the path /proc/self/fd/N names and refuses it unless device and inode are
            # the descriptor's, so a rename or a symlink swapped in after the caller's check
            # fails the launch instead of redirecting the bind. (Its mode is its own.)
            fd, real = pinned
            self.ensure_parents(dest)
            self.args += ["--ro-bind-fd", str(fd), dest]
            self.binds.append((os.path.abspath(host), real, dest))
            self._dirs.add(dest)
            return
        real = os.path.realpath(host)
        if any(
            inside(dest, b[2])
            and inside(real, b[1])
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
            under = [b for b in self.binds if inside(path, b[side])]
            if under:
                inner = max(under, key=lambda b: len(b[side]))
                base, dest = inner[side], inner[2]
                rel = os.path.relpath(path, base)
                return dest if rel == "." else os.path.join(dest, rel)
        raise ValueError(f"{host} is not visible inside the sandbox (bind it via extra_ro_binds)")


def plan_bwrap(
    command: Command,
    submission_dir: Path,
    extra_ro_binds: Sequence[tuple[Path, str]],
    limits: Limits,
    uid: int,
    workdir: str,
    home: str,
    seccomp_fd: int | None = None,
    pinned: Mapping[str, tuple[int, str]] | None = None,
) -> list[str]:
    """The bwrap argv: allow-listed read-only binds, private tmpfs, masks, then setpriv.
    ``pinned``: binds held open by the caller (host path -> (O_PATH fd, its path)), bound by
    descriptor (``--ro-bind-fd``)."""
    b = BwrapArgs()
    b.pinned = {os.path.abspath(k): v for k, v in (pinned or {}).items()}
    a = b.args
    a += [shutil.which("bwrap") or "bwrap", *core_flags(), "--hostname", "sandbox"]
    a += system_binds()
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

    site_dirs = python_dirs()
    for d in sorted(set(site_dirs), key=len):
        real = os.path.realpath(d)
        b.ro_bind(real, real)
        if real != d and not any(inside(d, x[2]) for x in b.binds):
            b.ensure_parents(d)
            a += ["--symlink", real, d]  # e.g. a prefix reached through a symlink
            b.binds.append((d, real, real))
    setpriv = os.path.realpath(shutil.which("setpriv") or "/usr/bin/setpriv")
    if not any(inside(setpriv, x[1]) for x in b.binds):
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
    for hidden in hidden_paths(site_dirs):
        for _, real, dest in list(b.binds):
            if inside(hidden, real):
                target = os.path.normpath(os.path.join(dest, os.path.relpath(hidden, real)))
                if os.path.isdir(hidden):
                    a += ["--tmpfs", target, "--remount-ro", target]
                else:
                    a += ["--ro-bind", "/dev/null", target]

    a += ["--remount-ro", "/", "--chdir", SANDBOX_HOME]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    a += ["--"]
    a += setpriv_argv(uid)
    cmd = command(b.to_sandbox) if callable(command) else command
    a += [str(x) for x in cmd]
    return a


def plan_judge_bwrap(command: Sequence[str], uid: int, workdir: str, work_area: str,
                     ro_paths: Sequence[str], tmpfs_bytes: int,
                     rw_paths: Sequence[str] = ()) -> list[str]:
    """The bwrap argv of an unprivileged judging process: the system and the Python
    installation read-only as a worker's (non-traversable folders opened up), ``ro_paths`` (the
    grader's project, a fixtures folder...) read-only *at their own paths*, and ``work_area``
    writable at its own path, so every path the judge names means the same host path to the
    launcher. No network, its own pid/ipc/uts namespaces; setpriv drops to ``uid``."""
    b = BwrapArgs()
    a = b.args
    a += [shutil.which("bwrap") or "bwrap", *core_flags(), "--hostname", "judge"]
    a += system_binds()
    for d in _SYSTEM_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            b.binds.append((d, os.path.realpath(d), d))
            b._dirs.add(d)
    a += ["--proc", "/proc", "--dev", "/dev"]
    a += ["--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    a += ["--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
    b._dirs.update({"/proc", "/dev", "/tmp", "/dev/shm"})
    a += ["--perms", "0755", "--dir", "/etc"]
    b._dirs.add("/etc")
    for entry in _ETC_ENTRIES:
        if os.path.exists(entry):
            a += ["--ro-bind", entry, entry]
    for fname in ("passwd", "group"):
        a += ["--ro-bind", os.path.join(workdir, "etc", fname), f"/etc/{fname}"]
    for d in sorted(set(python_dirs()), key=len):
        real = os.path.realpath(d)
        b.ro_bind(real, real)
        if real != d and not any(inside(d, x[2]) for x in b.binds):
            b.ensure_parents(d)
            a += ["--symlink", real, d]
            b.binds.append((d, real, real))
    setpriv = os.path.realpath(shutil.which("setpriv") or "/usr/bin/setpriv")
    if not any(inside(setpriv, x[1]) for x in b.binds):
        b.ro_bind(setpriv, setpriv)
    for path in ro_paths:
        real = os.path.realpath(path)
        b.ro_bind(real, real)
    for path in (*rw_paths, work_area):
        real = os.path.realpath(path)
        b.ensure_parents(real)
        a += ["--bind", real, real]
        b.binds.append((real, real, real))
    a += ["--remount-ro", "/", "--chdir", real, "--", *setpriv_argv(uid), *command]
    return a
