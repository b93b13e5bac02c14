"""One batch job judged outside the batch's (root) process: in its pool slot's warm judge, or,
where no warm judge can serve it (``--no-warm-pool``, a Dask worker), in a fresh judging process
of its own (:func:`run_fresh`, :func:`grader.grading.grade_bounded`).

The root process then only launches sandboxes and reads bounded answers, as on ``grader run``'s
path: the checks read the worker's replies in a child of the slot's warm judge
(:mod:`grader.isolation.warm_judge`, the judge side in :mod:`grader.batch.judging`), which runs
as the judge uid in its own sandbox, with its own heap cap and deadline. A judging child that
hangs, blows its memory or crashes costs that submission's result (every check an error saying
why), never the batch.

For each job: the slot is checked out of the warm pool (its zygote forks the workers), the
submission copied, root-owned, into the judge's work area, and a root
:class:`~grader.isolation.launcher.Launcher` started for the child, forking from that slot. The
child's reference work goes to the run's caches on disk (made the judge uid's, bound into its
sandbox; in the judge's own folder where they cannot be), so the reference side of a run is
computed once, not once per student, and a resumed run reads it back.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
from pathlib import Path
from typing import Any

JUDGING = "in a warm judge's child: unprivileged uid {uid} in a sandbox, forked per submission"


Setup = tuple[int, tuple[str, ...], tuple[str, ...], bool]


def judge_setup(options: dict[str, Any]) -> Setup:
    """What a job's warm judge depends on: threads, the host paths it must read, the run's
    cache folders (reference outputs, checkpoints) it writes, and whether its gradings train
    (only then does it import ``torch._dynamo`` while it warms up)."""
    from grader import checks

    paths = [options.get("fixtures"), options.get("gpt2_weights")]
    caches = [options.get("reference_cache"), options.get("checkpoint_cache")]
    return (int(options["threads"]),
            tuple(str(Path(p).resolve()) for p in paths if p and Path(p).exists()),
            tuple(str(Path(c).resolve()) if c else "" for c in caches),
            checks.trains(options.get("assignments")))


def make_judge(slot_folder: Path, setup: Setup, starter: Any):
    """A warm judge (not started) writing in ``slot_folder`` and in the run's caches (made the
    judge uid's; a cache the judge cannot reach is replaced by one in its own folder, kept for
    the batch only), reading ``setup``'s paths."""
    from grader.batch.judging import ENTRY, ENTRY_NO_DYNAMO
    from grader.isolation import bounded
    from grader.isolation.warm_judge import WarmJudge

    threads, paths, caches, trains = setup
    usable = [c for c in caches if c and _judge_writable(Path(c))]
    setting = bounded.judge_setting(threads, [Path(p) for p in paths],
                                    [slot_folder, *(Path(c) for c in usable)])
    own = setting.work_area / "cache"
    _make_judges(own)
    chosen = [c if c in usable else str(own / name)
              for c, name in zip(caches, ("reference", "checkpoints"), strict=True)]
    for c in chosen:
        _make_judges(Path(c))
    judge = WarmJudge(ENTRY if trains else ENTRY_NO_DYNAMO, setting, starter=starter)
    judge.caches = {"reference_cache": chosen[0], "checkpoint_cache": chosen[1]}
    return judge


def _make_judges(folder: Path) -> None:
    """``folder`` (made if missing) and every folder in it owned by the judge uid: it adds
    entries; the files already there stay the root's, readable."""
    from grader.isolation.launcher import JUDGE_UID

    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    for dirpath, _dirs, _files in os.walk(folder):
        os.chown(dirpath, JUDGE_UID, JUDGE_UID)
        os.chmod(dirpath, 0o755)


def _judge_writable(folder: Path) -> bool:
    """Whether the run's cache ``folder`` can be made the judge's (it is bound into the judge's
    sandbox at its own path, so the folders above it need not be reachable by the judge)."""
    try:
        _make_judges(folder)
    except OSError:
        return False
    return True


def run_judged(job: Any, folder: Path, options: dict[str, Any], expiry: Any, scope: Any,
               pool: Any, judges: Any) -> Any:
    """Grade ``folder`` (the job's submission on this machine) in its slot's warm judge and
    return the :class:`~grader.model.results.SubmissionResult`, or None where no warm judge can
    serve it (the caller grades it in this process, as without one)."""
    from grader.batch.jobs import grade_options
    from grader.grading import failed_result
    from grader.isolation.bounded import JudgeLimits, JudgingFailed
    from grader.isolation.launcher import JUDGE_UID, Launcher, copy_submission
    from grader.isolation.pool import PoolUnavailable
    from grader.isolation.warm_judge import JudgeUnavailable
    from grader.model.results import SubmissionResult

    settings = grade_options(options, job.seed).worker
    try:
        slot = pool.checkout(settings.start_timeout)
    except PoolUnavailable:
        return None
    area: Path | None = None
    launcher = None
    handle = _Abort()
    try:
        try:
            judge = judges.for_slot(slot, judge_setup(options))
        except JudgeUnavailable:
            return None
        graded = grade_options({**options, **judge.caches}, job.seed)
        jobs = judge.work_area / "jobs"
        jobs.mkdir(mode=0o755, exist_ok=True)
        area = jobs / secrets.token_hex(8)
        area.mkdir(mode=0o755)
        copy = copy_submission(folder, area)
        launcher = Launcher(area, settings.limits, settings.threads, isolation="bwrap",
                            lease_wait=settings.start_timeout, pool_slot=slot,
                            start_timeout=settings.start_timeout).start()
        handle.judge = judge
        expiry.client = handle
        scope.add(handle)
        try:
            data = judge.judge(pickle.dumps((str(copy), graded)), launcher,
                               JudgeLimits(timeout=expiry.limit))
            result = SubmissionResult.from_dict(data)
        except (JudgingFailed, KeyError, TypeError, ValueError, AttributeError) as exc:
            why = (f"the submission used up the whole job's time limit of {expiry.limit:.0f} s"
                   if expiry.expired.is_set() else f"grading stopped before a result: {exc}")
            result = failed_result(folder, graded, why)
        finally:
            scope.discard(handle)
        result.environment["judging"] = JUDGING.format(uid=JUDGE_UID)
        if launcher.pool_refused:
            result.environment["pool"] = launcher.pool_refused
        return result
    finally:
        if launcher is not None:
            launcher.close()
        if area is not None:
            shutil.rmtree(area, ignore_errors=True)
        pool.checkin(slot)


FRESH = ("in a fresh judging process of its own ({how}), as no warm judge could serve it"
         "{why}")


def run_fresh(job: Any, folder: Path, options: dict[str, Any], expiry: Any, scope: Any,
              pid_dir: Path | None = None, why: str = "") -> Any:
    """Grade ``folder`` in a judging process of its own (:func:`grader.grading.grade_bounded`:
    the unprivileged judge where it can run, else a process with the batch's privileges), with
    the job's time limit as its deadline. Costs one more ``import torch`` than a warm judge,
    but a judging routine that hangs, blows its memory or crashes costs this submission's
    result only, as there. The run's caches are made the judge uid's so that the reference work
    is still shared; one it cannot write is left out (its outputs are then computed anew)."""
    from grader.batch.jobs import grade_options
    from grader.grading import grade_bounded
    from grader.isolation.bounded import JudgeLimits, judge_available

    judge = judge_available(options.get("isolation", "bwrap"))
    writable: list[Path] = []
    if judge:
        for name in ("reference_cache", "checkpoint_cache"):
            cache = options.get(name)
            if cache and _judge_writable(Path(cache)):
                writable.append(Path(cache).resolve())
            else:
                options = {**options, name: None}
    graded = grade_options(options, job.seed)
    handle = _Abort()

    def started(proc: Any) -> None:
        handle.proc = proc
        if pid_dir is not None:  # the batch's reaper kills it should the batch die
            try:
                (pid_dir / str(proc.pid)).write_text("judge")
            except OSError:
                pass
        if expiry.expired.is_set() or scope.cancelled.is_set():
            handle.abort()  # stopped while it was starting: an abort then found no process

    expiry.client = handle
    scope.add(handle)
    try:
        result = grade_bounded(folder, graded, JudgeLimits(timeout=expiry.limit), judge=judge,
                               writable=writable, started=started)
    finally:
        scope.discard(handle)
        if pid_dir is not None and handle.proc is not None:
            (pid_dir / str(handle.proc.pid)).unlink(missing_ok=True)
    if expiry.expired.is_set() or scope.cancelled.is_set():
        return result
    how = result.environment.get("judging", "")
    result.environment["judging"] = FRESH.format(how=how, why=f": {why}" if why else "")
    return result


class _Abort:
    """What the job's deadline and the batch's cancel scope stop: the judge's running child
    (and with it the judge sandbox, restarted for the next submission), or a fresh judging
    process (its whole process group)."""

    judge: Any = None
    proc: Any = None

    def abort(self) -> None:
        if self.judge is not None:
            self.judge.abort()
        if self.proc is not None and self.proc.poll() is None:
            from grader.isolation.client import kill_group

            kill_group(self.proc)
