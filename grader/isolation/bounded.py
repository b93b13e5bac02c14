"""Run one submission's judging in its own process, bounded in memory and wall-clock time.

The judging process reads everything the worker sends (bounded by :mod:`grader.isolation.replies`)
and runs the trusted checks on it. If that still goes wrong -- a judging routine that is slow on
some legal input, a memory blow-up -- it must cost that submission's result, never the batch or
the machine. :func:`run_bounded` starts ``python -c <entry>`` with the payload on stdin,
``RLIMIT_DATA`` as its heap cap, its own process group (killed whole at the deadline), and reads
its answer from a file of bounded size; any failure is a :class:`JudgingFailed` naming why.

The trust decision (ARCHITECTURE.md, "Trust boundary"): where the grader is root and bubblewrap
works, :func:`start_judge` makes an unprivileged judge (``judge=``): the judging process then
runs as :data:`grader.isolation.launcher.JUDGE_UID` in a sandbox of its own, and asks a root
:class:`~grader.isolation.launcher.Launcher` for its worker sandboxes. Its answer comes back on
a descriptor the root side opened (no path the judge could point elsewhere). Without one, the
judging process keeps its parent's privileges (not root, or no sandbox to drop to).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.isolation import replies
from grader.isolation.client import WorkerSettings, kill_group

OUT_FD_ENV = "GRADER_JUDGE_OUT_FD"


class JudgingFailed(Exception):
    """The judging process did not produce a result: timed out, ran out of memory, crashed."""


@dataclass(frozen=True)
class JudgeLimits:
    """Bounds of one judging process."""

    memory_bytes: int = 8 * 2**30
    timeout: float = 3600.0
    result_bytes: int = 32 * 2**20
    # Strings of the results are cut to this many characters (the log to ``log_chars``) with a
    # note, so a results file stays small whatever the student's code printed or raised.
    string_chars: int = 20_000
    log_chars: int = 128 * 1024


@dataclass
class Judge:
    """An unprivileged judge's setting: its work area and the root launcher serving it. One
    judge serves one :func:`run_bounded`; :meth:`close` kills whatever it left running."""

    work_area: Path
    launcher: Any  # grader.isolation.launcher.Launcher (None: a warm judge's, one per child)
    ro_paths: list[Path]
    threads: int
    # Where the judge's Python finds this grader: the folder of the package the root side
    # imported (a checkout, a released bundle) and the caller's PYTHONPATH, so both sides run
    # the same code. Every entry is among ``ro_paths``.
    import_path: tuple[str, ...] = ()
    # More of the judge's environment: where the user's Hugging Face cache is.
    env: dict[str, str] = field(default_factory=dict)
    # Host folders the judge writes besides its work area, at their own paths (a warm judge's
    # pool slot folder, where its submissions' workers find their data).
    rw_paths: list[Path] = field(default_factory=list)
    # The user's checkpoint cache, lent read-only (None: there is none yet, or the judge could
    # not read it): the judge loads the 124M checkpoint from it instead of building its own.
    checkpoint_cache: Path | None = None

    @property
    def description(self) -> str:
        from grader.isolation.launcher import JUDGE_UID

        return f"unprivileged uid {JUDGE_UID} in a sandbox"

    def close(self) -> None:
        """Stop the launcher (every launch killed and released) and remove the work area."""
        from grader.isolation.launcher import remove_work_area

        if self.launcher is not None:
            self.launcher.close()
        remove_work_area(self.work_area)


def judge_available(isolation: str) -> bool:
    """Whether judging can run unprivileged here: root, bubblewrap working, and a worker that
    would be sandboxed (isolation not "none")."""
    from grader.isolation import sandbox

    return (isolation != "none" and os.geteuid() == 0
            and sandbox.isolation_available()[0])


def start_judge(settings: WorkerSettings, ro_paths: list[Path] | tuple = (),
                rw_paths: list[Path] | tuple = ()) -> Judge:
    """A work area and a started launcher whose caps are ``settings``' limits and threads.
    ``ro_paths``: host folders or files the judge reads besides the grader's project (fixtures,
    a weights file); they keep their own permissions. ``rw_paths``: folders it writes besides
    its work area (a batch's caches; they must be the judge uid's)."""
    from grader.isolation.launcher import Launcher

    setting = judge_setting(settings.threads, ro_paths, rw_paths)
    setting.launcher = Launcher(setting.work_area, settings.limits, settings.threads,
                                isolation="bwrap", lease_wait=settings.start_timeout,
                                lend=setting.checkpoint_cache).start()
    return setting


def judge_setting(threads: int, ro_paths: list[Path] | tuple = (),
                  rw_paths: list[Path] | tuple = ()) -> Judge:
    """A judge's setting without its launcher: a fresh work area, what it reads (the grader's
    project, ``ro_paths``, the user's real gpt2) and writes besides its work area
    (``rw_paths``, which must be the judge uid's). Raises :class:`JudgingFailed` naming a file
    the judge's uid could not read."""
    from grader.isolation.launcher import new_work_area

    project = Path(__file__).resolve().parents[2]  # the grader package and reference/
    import_path = _import_path(project)
    given = [Path(p).resolve() for p in ro_paths]
    hub = _user_hf_hub()
    # The real gpt2's folders of the user's cache, if any, read-only at their own paths; the
    # judge's own HOME is empty, and a check that finds nothing names the user's cache.
    gpt2 = [hub / r for r in ("models--gpt2", "models--openai-community--gpt2")
            if (hub / r).is_dir() and not unreadable_for_judge([hub / r])]
    # The grader's own checkpoint cache (root's, built by the trusted side only): read-only.
    cache = user_checkpoint_cache()
    lent = cache if cache.is_dir() and not _unreadable_tree(cache) else None
    hidden = unreadable_for_judge([Path(__file__).resolve().parents[1], *given])
    if hidden:
        raise JudgingFailed(
            f"the unprivileged judge (another user) cannot read {hidden[0]}"
            + (f" and {len(hidden) - 1} more" if len(hidden) > 1 else "")
            + ": make it readable by all (chmod o+r, and o+x on a folder)")
    area = new_work_area()
    paths = [project, *(Path(p) for p in import_path[1:]), *given, *gpt2,
             *([lent] if lent else [])]
    return Judge(area, None, paths, threads, import_path, {"HF_HUB_CACHE": str(hub)},
                 [Path(p).resolve() for p in rw_paths], lent)


def user_checkpoint_cache() -> Path:
    """The user's folder of checkpoints the grader builds (``$XDG_CACHE_HOME/grader/checkpoints``,
    else ``~/.cache/grader/checkpoints``), resolved: the convention of
    :func:`grader.checks.checkpoints.user_cache_dir`, which imports torch (the root side of a
    judged run never does)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return (Path(base) / "grader" / "checkpoints").resolve()


def _unreadable_tree(folder: Path) -> bool:
    """Whether the judge's uid could not read some folder or file of ``folder``'s checkpoint
    folders (one level down)."""
    try:
        children = [c for c in folder.iterdir() if c.is_dir()]
    except OSError:
        return True
    return bool(unreadable_for_judge([folder, *children]))


def _user_hf_hub() -> Path:
    # Hugging Face's own convention, as grader.checks.checkpoints.find_real_gpt2 reads it
    # (that module imports torch, which the root side of a judged run never does).
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser().resolve()
    if os.environ.get("HF_HOME"):
        return (Path(os.environ["HF_HOME"]).expanduser() / "hub").resolve()
    return (Path("~/.cache/huggingface/hub").expanduser()).resolve()


def unreadable_for_judge(paths: list[Path]) -> list[Path]:
    """Of ``paths`` (files, or folders with the files directly in them), those the judge's uid
    could not read: it is neither their owner nor in their group, so the "other" bits decide.
    Checked before judging so the instructor is told which file, not a judge's traceback."""
    import stat

    out: list[Path] = []
    for path in paths:
        try:
            mode = path.stat().st_mode
            if stat.S_ISDIR(mode):
                if mode & 0o005 != 0o005:
                    out.append(path)
                    continue
                children = [c for c in path.iterdir() if c.is_file()]
                out.extend(c for c in children if not c.stat().st_mode & stat.S_IROTH)
            elif not mode & stat.S_IROTH:
                out.append(path)
        except OSError:
            continue  # gone or odd: the judge's own error says so
    return out


def trusted_python(*args: str, env: dict[str, str] | None = None
                   ) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a trusted Python child of the grader (``"-c", code`` or
    ``"-m", module``). Why: ``-c`` and ``-m`` put the current folder first on the import path,
    and an instructor may well start the grader inside a student's folder, whose ``numpy.py``
    would then run as the grader (as root, even). ``-P`` keeps that folder off the path, and
    ``PYTHONPATH`` names this grader's project first, so the child imports the same grader
    wherever it starts."""
    project = Path(__file__).resolve().parents[2]
    child = dict(os.environ if env is None else env)
    child["PYTHONPATH"] = os.pathsep.join(_import_path(project))
    return [sys.executable, "-P", *args], child


def _import_path(project: Path) -> tuple[str, ...]:
    """``project`` first, then the existing folders of ``$PYTHONPATH`` (resolved, no repeats)."""
    out = [str(project)]
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and os.path.isdir(entry):
            resolved = str(Path(entry).resolve())
            if resolved not in out:
                out.append(resolved)
    return tuple(out)


def run_bounded(entry: str, payload: bytes, limits: JudgeLimits = JudgeLimits(),
                env: dict[str, str] | None = None, judge: Judge | None = None,
                started: Callable[[subprocess.Popen], None] | None = None) -> dict[str, Any]:
    """Run ``python -c entry`` with ``payload`` on stdin; the child writes one JSON object with
    :func:`write_result`. Returns that object, its strings cut to bounds. With ``judge``, the
    child is the unprivileged judge (its own sandbox, uid, work area; its launcher's socket on
    ``$GRADER_LAUNCHER_FD``). ``started`` is given the child as soon as it runs, leader of a
    process group of its own: a batch stops it from another thread (its deadline, a cancel),
    which ends this call with :class:`JudgingFailed`."""
    if judge is not None:
        return _run_judge(entry, payload, limits, env, judge, started)
    out = tempfile.NamedTemporaryFile(prefix="grader-judge-", suffix=".json", delete=False)
    out.close()

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # No RLIMIT_FSIZE: the sandboxes it starts inherit it, and the grader writes checkpoints
        # of hundreds of MB for them; the results file is size-checked instead.

    argv, child_env = trusted_python("-c", entry, env=env)
    child_env["GRADER_JUDGE_OUT"] = out.name
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=child_env, preexec_fn=preexec, start_new_session=True)
        if started is not None:
            started(proc)
        try:
            _, err = proc.communicate(payload, timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise JudgingFailed(f"judging this submission took longer than "
                                f"{limits.timeout:.0f} s and was stopped") from None
        finally:
            kill_group(proc)
        if proc.returncode != 0:
            raise JudgingFailed(_why(proc.returncode, err or b""))
        with open(out.name, "rb") as fh:
            return _read_result(fh.fileno(), limits)
    finally:
        try:
            os.unlink(out.name)
        except OSError:
            pass


def _run_judge(entry: str, payload: bytes, limits: JudgeLimits, env: dict[str, str] | None,
               judge: Judge, started: Callable[[subprocess.Popen], None] | None
               ) -> dict[str, Any]:
    from grader.isolation import sandbox
    from grader.isolation.launcher import JUDGE_UID, LAUNCHER_FD_ENV

    # The answer's file is the root side's, opened here: the judge writes to the descriptor and
    # cannot make the root side read anything else.
    with tempfile.TemporaryFile(prefix="grader-judge-") as out:
        sock = judge.launcher.judge_end.fileno()
        extra = {**judge.env, **(env or {}), LAUNCHER_FD_ENV: str(sock),
                 OUT_FD_ENV: str(out.fileno()),
                 "PYTHONPATH": os.pathsep.join(judge.import_path)}
        launch = sandbox.plan_judge([sys.executable, "-P", "-c", entry], uid=JUDGE_UID,
                                    work_area=judge.work_area, ro_paths=judge.ro_paths,
                                    rw_paths=judge.rw_paths, threads=judge.threads, env=extra,
                                    pass_fds=(sock, out.fileno()))
        try:
            proc = subprocess.Popen(launch.argv, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=launch.env, cwd=launch.cwd, pass_fds=launch.pass_fds,
                                    preexec_fn=_judge_preexec(limits), start_new_session=True)
        except OSError as exc:
            launch.cleanup()
            raise JudgingFailed(f"the judging process could not be started: {exc}") from None
        judge.launcher.judge_started()  # its exit now reads as a hang-up in the launcher
        if started is not None:
            started(proc)
        try:
            try:
                _, err = proc.communicate(payload, timeout=limits.timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                raise JudgingFailed(f"judging this submission took longer than "
                                    f"{limits.timeout:.0f} s and was stopped") from None
            finally:
                kill_group(proc)
                launch.cleanup()
            if proc.returncode != 0:
                raise JudgingFailed(_why(proc.returncode, err or b""))
            return _read_result(out.fileno(), limits)
        finally:
            judge.launcher.close()  # every worker of this judge killed and released


def _judge_preexec(limits: JudgeLimits):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return preexec


def _read_result(fd: int, limits: JudgeLimits) -> dict[str, Any]:
    """The judging process's answer, size-checked before it is read, parsed by the strict
    reader, its strings cut."""
    size = os.fstat(fd).st_size
    if size > limits.result_bytes:
        raise JudgingFailed(f"the judging process wrote {size:,} bytes of results (limit "
                            f"{limits.result_bytes:,})")
    data = os.pread(fd, size, 0)
    bounds = replies.Bounds(json_bytes=limits.result_bytes, depth=64,
                            string_chars=limits.result_bytes, items=1 << 20)
    try:
        value = replies.parse_json(data, bounds)
    except replies.ReplyRejected as exc:
        raise JudgingFailed(f"the judging process wrote unreadable results: {exc}") from None
    if not isinstance(value, dict):
        raise JudgingFailed("the judging process wrote results that are not an object")
    return cut_strings(value, limits.string_chars, {"log": limits.log_chars})


def cut_strings(value: Any, limit: int, per_key: dict[str, int] | None = None) -> Any:
    """A copy of a JSON value whose strings longer than ``limit`` (``per_key[k]`` under key
    ``k``) are cut with a note."""
    per_key = per_key or {}

    def walk(v: Any, cap: int) -> Any:
        if isinstance(v, str):
            return replies.cut(v, cap)
        if isinstance(v, list):
            return [walk(x, cap) for x in v]
        if isinstance(v, dict):
            return {k: walk(x, per_key.get(k, limit)) for k, x in v.items()}
        return v

    return walk(value, limit)


def write_result(value: dict[str, Any]) -> None:
    """In the judging process: write the answer where :func:`run_bounded` reads it."""
    if OUT_FD_ENV in os.environ:
        with os.fdopen(int(os.environ[OUT_FD_ENV]), "w") as fh:
            json.dump(value, fh, allow_nan=False)
        return
    with open(os.environ["GRADER_JUDGE_OUT"], "w") as fh:
        json.dump(value, fh, allow_nan=False)


def _why(code: int, err: bytes) -> str:
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        return f"the judging process was killed by {sig}" + (
            " (out of memory?)" if sig == "SIGKILL" else "")
    if "MemoryError" in err.decode(errors="replace"):
        return "the judging process ran out of memory (its limit was reached)"
    return f"the judging process exited with code {code}: {replies.cut(tail[0], 300)}"
