"""Per-launch cgroups: finding the hierarchies, making limited groups, removing them.

Each launch gets groups named after its slot (:func:`grader.isolation.leases.cgroup_name`) below
the grader's own cgroup, in cgroup v1 where the controller is mounted there (what the grading
machines have), else in the v2 unified hierarchy, wherever we may write. The child joins them in
its ``preexec_fn`` (:func:`grader.isolation.limits.make_preexec`); where no cgroup is writable
the rlimits are the only bound, and the launch's description says so.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from grader.isolation.limits import Limits


@dataclass
class Cgroups:
    """The groups made for one launch, as :func:`setup_cgroups` returns them."""

    dirs: list[Path]  # groups we created, removed by cleanup
    join_files: list[str]  # cgroup.procs files the child writes its pid into
    summary: str  # for Launch.description


_CPU_PERIOD = 100_000  # microseconds


def cgroup_mounts() -> list[tuple[str, str, str, set[str]]]:
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


def own_cgroup_paths() -> dict[str, str]:
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


def host_dir(mount_root: str, mount_point: str, cg_path: str) -> Path | None:
    """Where the group ``cg_path`` lies on the host, below a mount of its hierarchy (None: not
    below this mount)."""
    # Our group is mount_point + (cg_path relative to the root of the hierarchy mounted there).
    rel = os.path.relpath(cg_path, mount_root)
    if rel.startswith(".."):
        return None
    return Path(os.path.normpath(os.path.join(mount_point, rel)))


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def remove_cgroup(d: Path) -> None:
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


def setup_cgroups(name: str, limits: Limits, threads: int = 1) -> Cgroups:
    """Create ``name`` groups below our own cgroup with the memory and pids limits, where we can."""
    mounts, own = cgroup_mounts(), own_cgroup_paths()
    groups = Cgroups([], [], "")
    quota = max(1000, int((limits.cpus or threads) * _CPU_PERIOD))
    got: list[str] = []

    def make_group(parent: Path | None, writes: list[tuple[str, int | str, bool]]) -> bool:
        # writes: (file, value, required); a group missing a required limit is removed again.
        if parent is None:
            return False
        d = parent / name
        try:
            if d.exists():
                remove_cgroup(d)  # a stale group of ours (same pid and slot) from a crash
            d.mkdir()
        except OSError:
            return False
        for fname, value, required in writes:
            try:
                _write(d / fname, str(value))
            except OSError:
                if required:
                    remove_cgroup(d)
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
        if mount and ctrl in own and make_group(host_dir(mount[1], mount[2], own[ctrl]), writes):
            got.append(f"{ctrl} (v1)")

    # cgroup v2 (unified): one group for the controllers v1 did not give us.
    missing = [c for c in v1 if not any(g.startswith(c) for g in got)]
    v2 = next((m for m in mounts if m[0] == "cgroup2"), None)
    if missing and v2 and "" in own:
        parent = host_dir(v2[1], v2[2], own[""])
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
