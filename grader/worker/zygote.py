"""The zygote of a warm worker pool: torch imported once, a fresh sandboxed worker forked per job.

Run as ``python -I .../grader/worker/zygote.py --control FD --uid UID`` inside one slot's
bubblewrap sandbox (see ``grader.isolation.pool``), as root keeping only ``CAP_SYS_ADMIN``,
``CAP_SETUID``, ``CAP_SETGID``, ``CAP_SETPCAP`` and ``CAP_NET_ADMIN``. It runs the code of
this package, ``grader.shared`` and torch only, and never imports a student's module: the first
student code runs in a great-grandchild that has lost every privilege. It holds no secret
either: every child starts as a copy of its memory.

Per job, on a "job" message carrying four descriptors (the request pipe's read end, the reply
pipe's write end, the log pipe's write end, and a status socket)::

    zygote ─fork─► reporter ─fork─► init (pid 1 of the job's pid namespace) ─fork─► worker (pid 2)

- the **reporter** unshares a pid namespace (so its child is pid 1 there), and later sends the
  job's exit status on the status socket;
- the **init** unshares mount, network, ipc and uts namespaces, mounts a fresh ``/proc``, fresh
  tmpfs on ``/tmp``, ``/dev/shm`` and the home, binds the job's submission and data read-only,
  unmounts the folder of all jobs, brings up the loopback, then sends its credentials on the
  status socket (the host learns its pid from them and moves it into the job's cgroup) and
  waits for "go"; it unshares a cgroup namespace, forks the worker, drops every capability,
  installs the seccomp filter and from then on only reaps children, like bubblewrap's own init.
  When the worker exits it exits too, and the kernel kills whatever is left in the namespace;
- the **worker** sets the job's rlimits, drops to the job's uid (no groups, no capabilities,
  bounding set empty), sets ``no_new_privs`` and the seccomp filter of every sandbox, keeps only
  descriptors 0, 1, 2 (requests, replies, log) and runs :func:`grader.worker.loop.main` exactly
  as a freshly started worker does.

Nothing of the setup is optional: any step that fails ends that process before student code
runs, and the host sees a crashed worker.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import struct
import sys
import time

if __name__ == "__main__":  # run as a file (python -I): make `grader.worker` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))

# Where things are inside the sandbox (the host side uses the same names).
# The folder of all jobs sits in the zygote's /tmp, which every job unmounts whole.
JOBS_DIR = "/tmp/grader-jobs"
SUBMISSION = "/submission"
DATA = "/opt/grader-data"
HOME = "/home/student"
WORKER_MAIN = "/opt/grader/grader/worker/__main__.py"

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2

PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 4, 24, 47, 4
PR_GET_SECUREBITS = 27
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

# bubblewrap's --proc covers these with read-only binds; so does the job's new /proc.
_PROC_COVERED = ("sys", "sysrq-trigger", "irq", "bus")
_JOB_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXIT_SETUP_FAILED = 71

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


class SetupError(RuntimeError):
    """A step of a job's isolation failed: the job must not run."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def unshare(flags: int) -> None:
    """unshare(2) (Python 3.11 has no os.unshare)."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {source} on {target}")


def umount(target: str) -> None:
    """Detach ``target`` (and everything below it) from this mount namespace."""
    _check(_libc.umount2(_b(target), MNT_DETACH), f"umount {target}")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    """prctl(2); raises on failure, returns the result otherwise."""
    ret = _libc.prctl(option, arg2, arg3, 0, 0)
    if ret < 0:
        err = ctypes.get_errno()
        raise SetupError(f"prctl({option}): {os.strerror(err)}")
    return ret


# --------------------------------------------------------------------------- the zygote


def warm(dynamo: bool = True) -> None:
    """Import what every worker imports, and (``dynamo``: for a batch that trains) what a first
    optimizer step would: imports only, no computation, so no thread pool is started before a
    fork. Without it a worker that does train imports dynamo itself, as a fresh one does."""
    import numpy  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch
    if dynamo:
        import torch._dynamo  # noqa: F401  (torch.optim imports it at the first step: ~1 s)

    import grader.shared.protocol  # noqa: F401
    import grader.worker.loop  # noqa: F401
    import grader.worker.registry  # noqa: F401

    del torch


def fork_hazards() -> list[str]:
    """What would make a fork unsafe or leaky: other threads (their locks would stay taken in
    the child) and writable shared mappings (a child could write into the zygote through
    them). Empty when the zygote may fork."""
    problems = []
    threads = os.listdir("/proc/self/task")
    if len(threads) != 1:
        problems.append(f"{len(threads)} threads")
    with open("/proc/self/maps") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) >= 2 and fields[1][1] == "w" and fields[1][3] == "s":
                problems.append(f"writable shared mapping {' '.join(fields[5:]) or fields[0]}")
    return problems


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(control: socket.socket, uid: int) -> int:
    """Answer "job" messages until the host closes the control socket."""
    while True:
        _reap()
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 8)
        except InterruptedError:
            continue
        if not msg:
            return 0
        try:
            job = json.loads(msg)
            if job.get("op") != "job" or len(fds) != 4:
                raise SetupError("a job message carries one JSON object and four descriptors")
            if not _JOB_NAME.match(str(job.get("dir", ""))):
                raise SetupError("bad job folder name")
            hazards = fork_hazards()
            if hazards:
                raise SetupError("the zygote may not fork: " + "; ".join(hazards))
        except (ValueError, SetupError) as exc:
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"ok": False, "error": str(exc)}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = _EXIT_SETUP_FAILED
            try:
                control.close()
                _reporter(job, fds, uid)
                code = 0
            except BaseException as exc:  # noqa: BLE001 - nothing may escape into the zygote
                _say(fds[3], {"error": f"{type(exc).__name__}: {exc}"})
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"ok": True}).encode())


def _say(fd: int, message: dict) -> None:
    try:
        os.write(fd, json.dumps(message).encode())
    except OSError:
        pass


# --------------------------------------------------------------------------- per job


def _reporter(job: dict, fds: list[int], uid: int) -> None:
    """The zygote's child: a pid namespace for the job, and the job's exit status at the end."""
    req, rep, err, status = fds
    unshare(CLONE_NEWPID)
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_r)
            _init(job, req, rep, err, status, report_w, uid)
        except BaseException as exc:  # noqa: BLE001
            _say(status, {"error": f"{type(exc).__name__}: {exc}"})
        os._exit(_EXIT_SETUP_FAILED)
    for fd in (req, rep, err, report_w):
        os.close(fd)
    keep = {status, report_r}
    for fd in _open_fds():
        if fd not in keep:
            _close(fd)
    _, own = os.waitpid(pid, 0)
    reported = b""
    while True:
        chunk = os.read(report_r, 64)
        if not chunk:
            break
        reported += chunk
    # The init writes the worker's wait status before it exits; if it died first (killed from
    # outside), its own status is the job's.
    try:
        code = os.waitstatus_to_exitcode(int(reported))
    except ValueError:
        code = os.waitstatus_to_exitcode(own)
    _say(status, {"exit": code})


def _open_fds() -> list[int]:
    return [int(n) for n in os.listdir("/proc/self/fd")]


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _below(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mounts_below(paths: tuple[str, ...]) -> list[str]:
    """Mount points strictly below any of ``paths`` (they would vanish with a fresh tmpfs),
    but for the jobs' folder (meant to)."""
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if any(_below(point, p) and point != p for p in paths) \
                    and not _below(point, JOBS_DIR):
                out.append(point)
    return out


def _bind_ro(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        import fcntl

        ifr = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, ifr)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _job_filesystem(job: dict, uid: int) -> None:
    """The job's own mount namespace: what a fresh sandbox's bubblewrap would have made."""
    fresh = ("/tmp", "/dev/shm", HOME, SUBMISSION, DATA)
    below = _mounts_below(fresh)
    if below:  # e.g. the Python installation under /tmp: a fresh tmpfs would hide it
        raise SetupError(f"mounts below the job's private folders: {below[:3]}")
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the zygote
    size = int(job["tmpfs_bytes"])
    folder = os.path.join(JOBS_DIR, job["dir"])
    for point, source in ((SUBMISSION, "submission"), (DATA, "data")):
        umount(point)  # the zygote's empty mount point
        _bind_ro(os.path.join(folder, source), point)
    # The zygote's /tmp goes whole, the folder of every job's files with it.
    for point in ("/proc", "/tmp", "/dev/shm", HOME):
        umount(point)
    for point in ("/tmp", "/dev/shm"):
        mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    mount("tmpfs", HOME, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={size},mode=0700,uid={uid},gid={uid}")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in _PROC_COVERED:
        path = f"/proc/{name}"
        if os.path.exists(path):
            _bind_ro(path, path)
    if os.path.exists(JOBS_DIR):
        raise SetupError("the folder of all jobs is still visible")


def _init(job: dict, req: int, rep: int, err: int, status: int, report_w: int,
          uid: int) -> None:
    """pid 1 of the job's pid namespace (see the module docstring)."""
    os.setsid()  # the host kills the job with killpg(this pid)
    unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
    _job_filesystem(job, uid)
    _loopback_up()
    # The host reads our pid from these credentials (the kernel gives it in the host's pid
    # namespace), moves us into the job's cgroup, and says "go".
    with socket.socket(fileno=os.dup(status)) as s:
        s.sendmsg([json.dumps({"init": True}).encode()],
                  [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                    struct.pack("iII", os.getpid(), os.getuid(), os.getgid()))])
        s.settimeout(float(job.get("go_timeout", 60)))
        if s.recv(16) != b"go":
            raise SetupError("the host did not let the job start")
    _close(status)  # the reporter keeps its own copy; from here on, failures go to the log
    try:
        _init_go(job, req, rep, err, report_w, uid)
    except BaseException as exc:  # noqa: BLE001 - the namespace dies with us: nothing runs on
        try:
            os.write(err, f"the pooled worker could not be set up: {exc}\n".encode())
        except OSError:
            pass
        os._exit(_EXIT_SETUP_FAILED)


def _init_go(job: dict, req: int, rep: int, err: int, report_w: int, uid: int) -> None:
    """The init after "go": the worker's fork, the init's own drop, then reaping forever."""
    try:
        unshare(CLONE_NEWCGROUP)  # /proc/self/cgroup reads "/" as in a fresh sandbox
    except SetupError:
        pass  # no cgroup namespaces on this kernel: bubblewrap's --unshare-cgroup-try too
    sync_r, sync_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _close(sync_w)
            _close(report_w)
            _worker(job, req, rep, err, sync_r, uid)
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(err, f"the pooled worker could not be set up: {exc}\n".encode())
            except OSError:
                pass
        os._exit(_EXIT_SETUP_FAILED)
    for fd in (req, rep, err, sync_r):
        _close(fd)
    _drop_capabilities(before_setuid=False)
    _install_seccomp()
    _close(sync_w)  # only now may the worker go on
    for fd in _open_fds():
        if fd != report_w:
            _close(fd)
    # As bubblewrap's init: no signal from inside the namespace reaches us (SIG_DFL at pid 1);
    # reap every orphan; leave with the worker, whose wait status the reporter passes on.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        try:
            child, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if child == pid:
            os.write(report_w, str(wstatus).encode())
            os._exit(0)


def _worker(job: dict, req: int, rep: int, err: int, sync_r: int, uid: int) -> None:
    """pid 2: drop everything, then become the worker (never returns)."""
    import resource

    for res, value in job["rlimits"]:
        resource.setrlimit(int(res), (int(value), int(value)))
    _drop_capabilities(before_setuid=True)
    if os.getpid() != 2:
        raise SetupError("the worker is not pid 2 of its namespace")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_DUMPABLE, 1)  # as after exec: the job's own processes may inspect it
    _require_no_privileges(uid)
    _install_seccomp()
    while os.read(sync_r, 1):  # until the init has dropped its own capabilities
        pass
    _close(sync_r)

    os.dup2(req, 0)
    os.dup2(rep, 1)
    os.dup2(err, 2)
    os.closerange(3, 1 << 20)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in job["env"].items()})
    os.chdir(HOME)
    os.environ["PWD"] = HOME  # as bubblewrap's --chdir sets it
    _reseed()
    if job.get("selftest"):
        _selftest()
        os._exit(0)
    sys.argv = [WORKER_MAIN, *job["argv"]]
    from grader.worker.loop import main

    sys.stdout.flush()
    os._exit(main(list(job["argv"])) or 0)


def _reseed() -> None:
    # A fork copies the generators' state: every child would draw the same "random" numbers.
    # `random` reseeds itself after a fork; numpy does not.
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def _drop_capabilities(*, before_setuid: bool) -> None:
    """Empty the bounding, ambient and inheritable sets, and the permitted and effective ones
    too unless a setuid() is to follow (it needs CAP_SETUID and clears them itself)."""
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if prctl(PR_GET_SECUREBITS) != 0:
        raise SetupError("securebits are set: setuid() would keep capabilities")
    header = ctypes.create_string_buffer(struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0))
    data = ctypes.create_string_buffer(24)  # two struct __user_cap_data_struct
    if _libc.capget(header, data) != 0:
        raise SetupError("capget failed")
    eff0, prm0, _, eff1, prm1, _ = struct.unpack("6I", data.raw)
    kept = (eff0, prm0, 0, eff1, prm1, 0) if before_setuid else (0,) * 6
    if _libc.capset(header, ctypes.create_string_buffer(struct.pack("6I", *kept))) != 0:
        raise SetupError("capset failed")


def _install_seccomp() -> None:
    from grader.shared import seccomp

    if seccomp.supported():
        seccomp.install(seccomp.sandbox_filter())
    else:
        prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: at least that


def _status_fields() -> dict[str, str]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _require_no_privileges(uid: int) -> None:
    st = _status_fields()
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(st.get(key, "1"), 16) != 0:
            raise SetupError(f"{key} is {st.get(key)} after dropping privileges")
    ids = [int(x) for x in st["Uid"].split() + st["Gid"].split()]
    if any(x != uid for x in ids) or st.get("Groups", "") != "":
        raise SetupError("uid/gid/groups not fully dropped")


def _selftest() -> None:
    """Report what the worker would start with (checked by the host after a zygote starts)."""
    st = _status_fields()
    facts = {
        "pid": os.getpid(),
        "uid": [int(x) for x in st["Uid"].split()],
        "gid": [int(x) for x in st["Gid"].split()],
        "groups": st.get("Groups", ""),
        "caps": {k: st.get(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
        "no_new_privs": st.get("NoNewPrivs"),
        "seccomp": st.get("Seccomp"),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "jobs_visible": os.path.exists(JOBS_DIR),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "cwd": os.getcwd(),
        "home_mode": oct(os.stat(HOME).st_mode & 0o7777),
        "home_owner": os.stat(HOME).st_uid,
        "tmp": os.listdir("/tmp"),
        "root_writable": os.access("/", os.W_OK),
    }
    os.write(1, json.dumps(facts).encode())


# --------------------------------------------------------------------------- entry


def main(argv: list[str] | None = None) -> int:
    """The zygote's entry: warm up, prove it may fork, say "ready", serve jobs."""
    import argparse

    parser = argparse.ArgumentParser(prog="grader-zygote")
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--no-dynamo", action="store_true")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control)
    started = time.monotonic()
    warm(dynamo=not args.no_dynamo)
    # OpenBLAS starts its threads when it is loaded and stops them in a fork handler: one
    # throwaway fork leaves the zygote single-threaded for good (it never computes).
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    hazards = fork_hazards()
    import torch

    control.send(json.dumps({"ready": not hazards, "hazards": hazards,
                             "seconds": time.monotonic() - started,
                             "torch": torch.__version__}).encode())
    if hazards:
        return 1
    code = serve(control, args.uid)
    # As the worker does: skip the interpreter's teardown (torch's takes a second or more).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    from grader.worker.zygote import main as _main

    sys.exit(_main())
