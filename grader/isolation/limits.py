"""The resource limits of one worker, and how the forked child applies them before exec.

:class:`Limits` is what a caller asks for; :func:`rlimits` turns it into setrlimit calls and
:func:`make_preexec` into the ``preexec_fn`` that also joins the cgroups made by
:mod:`grader.isolation.cgroups`.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass


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


def rlimits(limits: Limits, with_nproc: bool) -> list[tuple[int, int]]:
    """The (resource, value) pairs to set in the child, capped at this process's hard limits.

    ``with_nproc`` adds RLIMIT_NPROC, meaningful only when the child runs as a uid of its own.
    """
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


def make_preexec(rlimits: list[tuple[int, int]], join_files: list[str]) -> Callable[[], None]:
    """The ``preexec_fn`` that joins the cgroups (``cgroup.procs`` files) and sets ``rlimits``."""
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
