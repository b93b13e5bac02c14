"""The unprivileged judge and the root launcher: what the judge can and cannot do."""

from __future__ import annotations

import json
import os
import time

import pytest

from grader.isolation import bounded, launcher
from grader.isolation.client import WorkerSettings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITE = "from grader.isolation.bounded import write_result; "


def _need_judge():
    if os.geteuid() != 0:
        pytest.skip("the unprivileged judge needs root (to drop to its uid)")
    if not bounded.judge_available("auto"):
        pytest.skip("bubblewrap does not work here")


@pytest.fixture
def judge():
    _need_judge()
    j = bounded.start_judge(WorkerSettings(threads=1))
    yield j
    j.close()


def test_the_judge_has_its_own_uid_no_capabilities_and_no_new_privs(judge):
    got = bounded.run_bounded(WRITE + "import os; st = open('/proc/self/status').read(); "
                              "write_result({'ids': os.getresuid(), 'status': st})", b"",
                              judge=judge)
    assert got["ids"] == [launcher.JUDGE_UID] * 3
    fields = dict(line.split(":\t", 1) for line in got["status"].splitlines() if ":\t" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, cap
    assert fields["NoNewPrivs"].strip() == "1"


def test_the_judge_cannot_read_root_secrets_or_the_grader_state(judge):
    secret = judge.work_area / "secret"
    secret.write_text("s3cret")
    os.chmod(secret, 0o600)  # root's, 0600, even inside the judge's own folder
    got = bounded.run_bounded(WRITE + f"""
import os
def read(p):
    try:
        return open(p).read()
    except OSError as e:
        return type(e).__name__
write_result({{'secret': read({str(secret)!r}), 'slots': os.path.exists('/run/grader-slots'),
              'shadow': read('/etc/shadow'), 'root': sorted(os.listdir('/root')),
              'cache': [sorted(os.listdir(p)) for p in ('/root/.cache', '/root/.cache/grader')
                        if os.path.isdir(p)]}})
""", b"", judge=judge)
    assert got["secret"] == "PermissionError"
    assert got["slots"] is False and got["shadow"] == "FileNotFoundError"
    # The interpreter, opened up, and the grader's checkpoint cache when root has one (lent
    # read-only): nothing else of /root.
    lent = judge.checkpoint_cache is not None and str(judge.checkpoint_cache).startswith("/root/")
    assert got["root"] == ([".cache", ".pyenv"] if lent else [".pyenv"])
    assert got["cache"] == ([["grader"], ["checkpoints"]] if lent else [])


def test_the_judge_cannot_signal_or_trace_root_processes(judge):
    me = os.getpid()
    got = bounded.run_bounded(WRITE + f"""
import ctypes, os, signal
out = {{}}
for pid in (1, {me}):
    try:
        os.kill(pid, signal.SIGTERM); out[str(pid)] = 'sent'
    except OSError as e:
        out[str(pid)] = type(e).__name__
libc = ctypes.CDLL(None, use_errno=True)
out['ptrace'] = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to its sandbox's init
write_result(out)
""", b"", judge=judge)
    assert got[str(me)] in ("ProcessLookupError", "PermissionError")  # not even visible
    assert got["1"] == "PermissionError"  # the sandbox's init is root's
    assert got["ptrace"] == -1


def test_a_launch_outside_the_work_area_is_refused(judge, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    inside = judge.work_area / "tmp"
    got = bounded.run_bounded(WRITE + f"""
import os
from grader.isolation.launcher import LauncherProxy
from grader.isolation.limits import Limits
p = LauncherProxy.from_env()
out = {{}}
os.symlink('/root', {str(inside / 'link')!r})
for name, sub in (('outside', {str(outside)!r}), ('root', '/root'),
                  ('symlink', {str(inside / 'link')!r}), ('relative', 'tmp')):
    try:
        p.launch(sub, {str(inside)!r}, 1, Limits()); out[name] = 'launched'
    except OSError as e:
        out[name] = str(e)
write_result(out)
""", b"", judge=judge)
    assert all("outside the judge's work area" in got[k] for k in ("outside", "root", "symlink"))
    assert "not an absolute path" in got["relative"]


def test_limits_are_capped_at_the_launchers():
    from grader.isolation.limits import Limits

    cap = Limits(memory_bytes=2**30, max_processes=64)
    got = launcher.capped_limits({"memory_bytes": 2**40, "max_processes": True,
                                  "cpu_seconds": 10}, cap)
    assert got.memory_bytes == 2**30 and got.max_processes == 64 and got.cpu_seconds == 10


def test_a_judge_killed_mid_grade_leaves_no_worker(judge):
    # The judge starts a worker, reports its pid, then is killed at its deadline.
    sub = judge.work_area / "sub"
    sub.mkdir()
    os.chmod(sub, 0o755)
    entry = f"""
import os, time
from grader.isolation.launcher import LauncherProxy
from grader.isolation.limits import Limits
data = os.path.join({str(judge.work_area / 'tmp')!r}, 'data')
os.mkdir(data, 0o755)
proc = LauncherProxy.from_env().launch({str(sub)!r}, data, 1, Limits())
open(os.path.join({str(judge.work_area / 'tmp')!r}, 'pid'), 'w').write(str(proc.pid))
time.sleep(600)
"""
    with pytest.raises(bounded.JudgingFailed, match="longer than"):
        bounded.run_bounded(entry, b"", bounded.JudgeLimits(timeout=15), judge=judge)
    pid = int((judge.work_area / "tmp" / "pid").read_text())
    assert not judge.launcher.running
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}")


def test_the_cli_on_the_judge_path_writes_json_and_report(tmp_path):
    _need_judge()
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", "run",
                           os.path.join(ROOT, "examples", "correct"), "-a", "attention",
                           "--json", str(out / "r.json"), "--report", str(out / "rep")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "r.json").read_text())
    assert data["environment"]["judging"] == f"unprivileged uid {launcher.JUDGE_UID} in a sandbox"
    assert data["submission"].endswith("examples/correct")
    assert data["score"] == data["max_score"] > 0
    assert (out / "rep" / "report.html").is_file() and (out / "rep" / "report.md").is_file()


def test_a_folder_renamed_after_the_check_is_refused_or_bound_as_checked(tmp_path):
    # The judge owns its work area and may rename in it while the launcher checks a folder:
    # the launcher holds the folder open (O_PATH) and bubblewrap binds that descriptor.
    _need_judge()
    import subprocess
    import sys

    from grader.isolation import sandbox
    from grader.isolation.limits import Limits

    tmp_path.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "b").mkdir(parents=True)
    (tmp_path / "a" / "b").mkdir(parents=True)
    real = (tmp_path / "a" / "b").resolve()
    # A component swapped for a symlink between the check and the open: refused.
    (tmp_path / "a").rename(tmp_path / "a-old")
    (tmp_path / "a").symlink_to(elsewhere)
    with pytest.raises(launcher.LaunchRefused, match="changed while"):
        launcher.hold_folder(real)
    with pytest.raises(launcher.LaunchRefused):
        launcher.hold_folder(tmp_path / "a")  # the last component a symlink: refused outright
    # Held, then renamed away and replaced: the sandbox sees the folder that was checked.
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "checked.txt").write_text("x")
    for p in (sub, sub / "checked.txt"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    checked = sub.resolve()
    fd = launcher.hold_folder(checked)
    try:
        sub.rename(tmp_path / "sub-old")
        (tmp_path / "sub").symlink_to("/root")
        code = ("import os, json; print(json.dumps([sorted(os.listdir('/submission')), "
                "sorted(os.listdir('/proc/self/fd'))]))")
        launch = sandbox.plan_launch([sys.executable, "-I", "-c", code], submission_dir=sub,
                                     isolation="bwrap", limits=Limits(),
                                     pinned={str(sub): (fd, str(checked))})
        try:
            out = subprocess.run(launch.argv, capture_output=True, text=True, timeout=60,
                                 **launch.popen_kwargs())
        finally:
            launch.cleanup()
    finally:
        os.close(fd)
    assert out.stdout, out.stderr
    seen, fds = json.loads(out.stdout)
    assert seen == ["checked.txt"], out.stderr
    # No descriptor of the host (the held folder's above all) reaches the sandboxed code:
    # only stdio and the one listdir had open.
    assert len(fds) <= 4 and {"0", "1", "2"} <= set(fds), fds


# ------------------------------------------------------------------ copying a judge's folder


def _tree(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "attention.py").write_text("A = 1\n")
    os.chmod(src / "attention.py", 0o600)
    (src / "pkg" / "util.py").write_text("B = 2\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("root's secret")
    os.symlink(secret, src / "link")
    os.mkfifo(src / "fifo")
    return src, secret


def test_copy_held_copies_files_and_folders_keeps_symlinks_as_links(tmp_path):
    src, secret = _tree(tmp_path)
    out = tmp_path / "out"
    launcher.copy_held(src.resolve(), out, 10_000)
    assert (out / "attention.py").read_text() == "A = 1\n"
    assert os.stat(out / "attention.py").st_mode & 0o444 == 0o444  # readable by the worker
    assert (out / "pkg" / "util.py").read_text() == "B = 2\n"
    assert os.path.islink(out / "link") and os.readlink(out / "link") == str(secret)
    assert not (out / "fifo").exists()  # a FIFO would block; a worker has no use for it
    assert sorted(os.listdir(out)) == ["attention.py", "link", "pkg"]


def test_copy_held_never_follows_a_folder_swapped_for_a_symlink(tmp_path, monkeypatch):
    """The race a judge that owns the source could run: ``pkg`` is listed as a folder, then
    replaced by a symlink to a secret folder before the copy descends into it."""
    import shutil

    src, secret = _tree(tmp_path)
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        got = real_stat(path, *args, **kwargs)
        if path == "pkg" and not (src / "pkg").is_symlink():  # checked: a folder; now swap
            shutil.rmtree(src / "pkg")
            os.symlink(secret, src / "pkg")
        return got

    monkeypatch.setattr(launcher.os, "stat", stat)
    out = tmp_path / "out"
    try:
        with pytest.raises(OSError):
            launcher.copy_held(src.resolve(), out, 10_000)
    finally:
        monkeypatch.setattr(launcher.os, "stat", real_stat)
    assert (src / "pkg").is_symlink()  # the swap did happen
    assert not out.exists()  # refused, and the partial copy is gone
    hits = [p for p in tmp_path.rglob("key") if p.parent != secret and not p.is_symlink()]
    assert hits == []


def test_copy_held_refuses_a_symlinked_top_and_stops_past_its_limit(tmp_path):
    src, _ = _tree(tmp_path)
    os.symlink(src, tmp_path / "alias")
    with pytest.raises(launcher.LaunchRefused):
        launcher.copy_held(tmp_path / "alias", tmp_path / "out1", 10_000)
    (src / "big.bin").write_bytes(b"x" * 5000)
    with pytest.raises(launcher.TooLarge):
        launcher.copy_held(src.resolve(), tmp_path / "out2", 4000)
    assert not (tmp_path / "out2").exists()


def test_binding_by_descriptor_is_used_only_where_bubblewrap_has_it(tmp_path, monkeypatch):
    from grader.isolation import bwrap

    for name, helptext, expected in (("old", "--ro-bind SRC DEST", False),
                                     ("new", "--ro-bind-fd FD DEST", True)):
        fake = tmp_path / name / "bwrap"
        fake.parent.mkdir()
        fake.write_text(f"#!/bin/sh\necho 'usage: bwrap'\necho '    {helptext}'\n")
        fake.chmod(0o755)
        monkeypatch.setattr(bwrap.shutil, "which", lambda _n, f=fake: str(f))
        assert bwrap.binds_by_descriptor() is expected, name


def test_copies_made_as_root_drop_setuid_and_setgid_bits(tmp_path):
    """The copies are root's: a judge's (or student's) setuid file would otherwise become a
    setuid-root file on the host."""
    from grader.isolation.client import _readable_copy

    src = tmp_path / "src"
    src.mkdir()
    (src / "tool").write_text("#!/bin/sh\n")
    os.chmod(src / "tool", 0o6755)
    os.chmod(src, 0o2755)
    launcher.copy_held(src.resolve(), tmp_path / "held", 10_000)
    (tmp_path / "plain").mkdir()
    _readable_copy(src, tmp_path / "plain")
    for out in (tmp_path / "held", tmp_path / "plain"):
        assert os.stat(out / "tool").st_mode & 0o7000 == 0, out
        assert os.stat(out).st_mode & 0o7000 == 0, out
        assert os.stat(out / "tool").st_mode & 0o777 == 0o755
