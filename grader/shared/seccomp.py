"""Seccomp filters as classic BPF programs, built here without a library.

Two filters:

:func:`sandbox_filter`
    Installed by bubblewrap (``--seccomp FD``) on everything in the sandbox. It denies the kernel
    keyring calls (``add_key``, ``request_key``, ``keyctl``): the keyrings are keyed by uid and
    are not namespaced, so without this a job could leave data for whichever job gets its uid
    next. It also denies the calls a grading job never needs and that only widen the kernel's
    attack surface (new namespaces, mounts, ``bpf``, ``perf_event_open``, ``userfaultfd``,
    ``ptrace``-free kernel loading...). ``clone3`` answers ENOSYS (its flags sit in memory a
    filter cannot read), so the C library falls back to ``clone``, whose flags are checked:
    ``CLONE_NEWUSER`` and the other namespace flags are denied.
:func:`no_process_filter`
    Installed by a notebook's kernel on itself before the first cell runs: on top of the above,
    ``execve``/``execveat``, ``fork``/``vfork`` and a ``clone`` without ``CLONE_THREAD`` fail
    with EPERM, so shell escapes, ``os.system``, ``subprocess`` and ``os.fork`` cannot start a
    process from a notebook cell; threads still work.

Unknown architectures get no filter (:func:`supported` is False) rather than a wrong one.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# BPF opcodes (linux/filter.h, linux/bpf_common.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

# struct seccomp_data: nr (u32), arch (u32), instruction_pointer (u64), args[6] (u64 each)
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LOW = 0, 4, 16

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_AUDIT_ARCH_I386 = 0x40000003
_X32_BIT = 0x40000000

# Syscall numbers per architecture (asm/unistd_64.h; arm64 uses the generic table).
_NR = {
    "x86_64": {
        "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
        "finit_module": 313, "open_by_handle_at": 304, "fsopen": 430, "fsmount": 432,
        "open_tree": 428, "move_mount": 429, "clone": 56, "clone3": 435, "fork": 57,
        "vfork": 58, "execve": 59, "execveat": 322,
    },
    "aarch64": {
        "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97, "setns": 268,
        "mount": 40, "umount2": 39, "pivot_root": 41, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "kexec_load": 104, "kexec_file_load": 294, "init_module": 105,
        "finit_module": 273, "open_by_handle_at": 265, "fsopen": 430, "fsmount": 432,
        "open_tree": 428, "move_mount": 429, "clone": 220, "clone3": 435, "execve": 221,
        "execveat": 281,
    },
}
# i386 numbers, for a 64-bit process entering through `int 0x80` (x86_64 only).
_NR_I386 = {"add_key": 286, "request_key": 287, "keyctl": 288}

KEYRING_CALLS = ("add_key", "request_key", "keyctl")
_SURFACE_CALLS = ("unshare", "setns", "mount", "umount2", "pivot_root", "bpf", "perf_event_open",
                  "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
                  "open_by_handle_at", "fsopen", "fsmount", "open_tree", "move_mount")
_PROCESS_CALLS = ("fork", "vfork", "execve", "execveat")

CLONE_THREAD = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 \
    | 0x40000000


def _arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def supported() -> bool:
    """Whether filters can be built for this machine's architecture."""
    return _arch() in _NR


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def _program(denied: list[str], *, forbid_processes: bool) -> bytes:
    arch = _arch()
    nr = _NR[arch]
    prog: list[list] = []  # [code, jt, jf, k]; jt/jf: 0 = next instruction, or a label
    labels: dict[str, int] = {}

    def emit(code: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        prog.append([code, jt, jf, k])

    emit(_LD_W_ABS, _OFF_ARCH)
    emit(_JEQ_K, _AUDIT_ARCH[arch], "native", 0)
    if arch == "x86_64":
        # A 64-bit process may enter through `int 0x80` with i386 numbers: deny the keyring
        # calls there too (and, for a process that must not fork, every call of that ABI).
        emit(_JEQ_K, _AUDIT_ARCH_I386, 0, "deny")
        emit(_LD_W_ABS, _OFF_NR)
        if forbid_processes:
            emit(_RET_K, _RET_ERRNO | errno.EPERM)
        for name in KEYRING_CALLS:
            emit(_JEQ_K, _NR_I386[name], "deny", 0)
        emit(_RET_K, _RET_ALLOW)
    else:
        emit(_RET_K, _RET_ERRNO | errno.EPERM)  # a foreign ABI: nothing of ours uses one
    labels["native"] = len(prog)
    emit(_LD_W_ABS, _OFF_NR)
    if arch == "x86_64":
        emit(_JGE_K, _X32_BIT, "deny", 0)  # the x32 ABI: not used by anything we run
    for name in denied:
        if name in nr:
            emit(_JEQ_K, nr[name], "deny", 0)
    emit(_JEQ_K, nr["clone3"], "enosys", 0)
    emit(_JEQ_K, nr["clone"], 0, "allow")
    emit(_LD_W_ABS, _OFF_ARG0_LOW)  # clone's flags: the low 32 bits of its first argument
    emit(_JSET_K, _CLONE_NAMESPACES, "deny", 0)
    if forbid_processes:
        emit(_JSET_K, CLONE_THREAD, "allow", "deny")
    labels["allow"] = len(prog)
    emit(_RET_K, _RET_ALLOW)
    labels["deny"] = len(prog)
    emit(_RET_K, _RET_ERRNO | errno.EPERM)
    labels["enosys"] = len(prog)
    emit(_RET_K, _RET_ERRNO | errno.ENOSYS)
    out = []
    for at, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - at - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - at - 1 if isinstance(jf, str) else jf
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise AssertionError("seccomp program too long for short jumps")
        out.append(_insn(code, jt, jf, k))
    return b"".join(out)


def sandbox_filter() -> bytes:
    """The filter of every sandbox, as the ``struct sock_filter`` array bwrap's --seccomp reads."""
    return _program(list(KEYRING_CALLS + _SURFACE_CALLS), forbid_processes=False)


def no_process_filter() -> bytes:
    """The sandbox filter plus: no new processes and no exec (threads allowed)."""
    return _program(list(KEYRING_CALLS + _SURFACE_CALLS + _PROCESS_CALLS), forbid_processes=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install ``program`` on the calling thread (and every thread and process it creates later;
    call it before starting threads). Needs no privileges: sets ``no_new_privs`` first."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program)
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    # seccomp(2) with SECCOMP_FILTER_FLAG_TSYNC puts the filter on every thread of the process
    # (torch's and the kernel's threads exist already); prctl only on the caller, as a fallback.
    nr = {"x86_64": 317, "aarch64": 277}.get(_arch())
    SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1
    if nr is not None and libc.syscall(nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC,
                                       ctypes.byref(prog)) == 0:
        return
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
