"""The judging process: a hang or a memory blow-up costs one submission's result, nothing more."""

from __future__ import annotations

import os
import sys
import time

import pytest

from grader.isolation.bounded import JudgeLimits, JudgingFailed, cut_strings, run_bounded

WRITE = "from grader.isolation.bounded import write_result; "


def test_a_result_comes_back_with_its_strings_cut():
    got = run_bounded(WRITE + "import sys; d = sys.stdin.read(); "
                      "write_result({'echo': d, 'log': 'L' * 300000, 'long': 'x' * 50000})",
                      b"hello")
    assert got["echo"] == "hello"
    assert len(got["long"]) < 20_100 and got["long"].endswith("cut by the grader]")
    assert 128 * 1024 <= len(got["log"]) < 128 * 1024 + 100


def test_a_hang_is_stopped_at_the_deadline():
    started = time.monotonic()
    with pytest.raises(JudgingFailed, match="longer than 2 s"):
        run_bounded("import time; time.sleep(60)", b"", JudgeLimits(timeout=2))
    assert time.monotonic() - started < 15


def test_a_memory_blow_up_is_a_recorded_failure_and_the_caller_lives():
    before = os.getpid()
    with pytest.raises(JudgingFailed, match="memory"):
        run_bounded("x = bytearray(3 * 2**30)", b"", JudgeLimits(memory_bytes=2**30))
    assert os.getpid() == before


def test_oversized_or_unreadable_results_are_failures():
    with pytest.raises(JudgingFailed, match="bytes of results"):
        run_bounded(WRITE + "write_result({'x': 'y' * 5000})", b"",
                    JudgeLimits(result_bytes=1000))
    with pytest.raises(JudgingFailed, match="unreadable"):
        run_bounded("import os; open(os.environ['GRADER_JUDGE_OUT'], 'w').write('[' * 10**5)",
                    b"")
    with pytest.raises(JudgingFailed, match="exited with code 3"):
        run_bounded("raise SystemExit(3)", b"")


def test_cut_strings_per_key():
    assert cut_strings({"a": "x" * 10, "b": ["y" * 10], "log": "z" * 10}, 5, {"log": 8}) == {
        "a": "xxxxx [... 5 more characters cut by the grader]",
        "b": ["yyyyy [... 5 more characters cut by the grader]"],
        "log": "zzzzzzzz [... 2 more characters cut by the grader]",
    }


def test_grade_bounded_records_every_check_as_an_error_when_judging_fails(tmp_path, monkeypatch):
    from grader import grading
    from grader.isolation import bounded

    def fail(*args, **kwargs):
        raise bounded.JudgingFailed("the judging process was killed by SIGKILL (out of memory?)")

    monkeypatch.setattr(bounded, "run_bounded", fail)
    result = grading.grade_bounded(tmp_path, grading.GradeOptions(assignments=["attention"]))
    checks = result.assignment("attention").checks
    assert checks and all(c.status.value == "error" for c in checks)
    assert "out of memory" in checks[0].message
    assert result.score == 0 and result.max_score > 0


def test_grade_bounded_grades_a_real_submission(tmp_path):
    from grader import grading
    from grader.isolation.client import WorkerSettings

    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text("def scaled_dot_product_attention(q, k, v, mask=None):\n"
                                      "    raise ValueError('nope')\n")
    result = grading.grade_bounded(sub, grading.GradeOptions(
        assignments=["attention"], worker=WorkerSettings(threads=1, call_timeout=60)))
    a = result.assignment("attention")
    assert a.checks and result.score < result.max_score
    assert any("nope" in c.message for c in a.checks)


def _need_judge():
    if os.geteuid() != 0:
        pytest.skip("the unprivileged judge needs root (to drop to its uid)")
    if not bounded_mod().judge_available("auto"):
        pytest.skip("bubblewrap does not work here")


def bounded_mod():
    from grader.isolation import bounded

    return bounded


def test_a_hanging_judge_is_a_recorded_error_result(tmp_path, monkeypatch):
    _need_judge()
    from grader import grading

    monkeypatch.setattr(grading, "JUDGE_ENTRY", "import time; time.sleep(600)")
    result = grading.grade_bounded(tmp_path, grading.GradeOptions(assignments=["attention"]),
                                   JudgeLimits(timeout=5), judge=True)
    checks = result.assignment("attention").checks
    assert checks and all(c.status.value == "error" for c in checks)
    assert "longer than 5 s" in checks[0].message


def test_a_judge_over_its_memory_cap_is_a_recorded_error_result(tmp_path, monkeypatch):
    _need_judge()
    from grader import grading

    monkeypatch.setattr(grading, "JUDGE_ENTRY", "x = bytearray(3 * 2**30)")
    result = grading.grade_bounded(tmp_path, grading.GradeOptions(assignments=["attention"]),
                                   JudgeLimits(memory_bytes=2**30, timeout=60), judge=True)
    checks = result.assignment("attention").checks
    assert checks and all(c.status.value == "error" for c in checks)
    assert "memory" in checks[0].message


def test_the_correct_example_gets_the_same_verdicts_through_the_judge():
    _need_judge()
    from pathlib import Path

    from grader import grading
    from grader.isolation.client import WorkerSettings

    example = Path(__file__).resolve().parents[2] / "examples" / "correct"
    options = grading.GradeOptions(assignments=["attention"],
                                   worker=WorkerSettings(threads=1))
    judged = grading.grade_bounded(example, options, judge=True)
    direct = grading.grade(example, options)
    assert judged.environment["judging"].startswith("unprivileged uid 59999")

    def verdicts(r):
        return [(c.id, c.status.value, c.score) for a in r.assignments for c in a.checks]

    assert verdicts(judged) == verdicts(direct) and judged.score == judged.max_score > 0


def test_a_file_the_judge_cannot_read_is_named_not_a_judges_traceback(tmp_path):
    # safetensors writes 0600: fixtures or weights made by root that the judge's uid cannot read
    _need_judge()
    import subprocess
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    from grader import grading
    from grader.isolation import bounded

    fixtures = tmp_path / "fixtures"
    fixtures.mkdir(mode=0o755)
    secret = fixtures / "fixtures.safetensors"
    secret.write_bytes(b"{}")
    secret.chmod(0o600)
    assert bounded.unreadable_for_judge([fixtures]) == [secret]
    options = grading.GradeOptions(assignments=["attention"],
                                   source=SimpleNamespace(path=secret, kind="fixtures"))
    result = grading.grade_bounded(tmp_path, options, judge=True)
    checks = result.assignment("attention").checks
    assert checks and all(c.status.value == "error" for c in checks)
    assert f"cannot read {secret}" in checks[0].message and "chmod o+r" in checks[0].message

    example = Path(__file__).resolve().parents[2] / "examples" / "correct"
    done = subprocess.run([sys.executable, "-m", "grader", "run", str(example), "-a", "attention",
                           "--fixtures", str(fixtures), "--color", "never"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot read {secret}" in done.stderr + done.stdout
    secret.chmod(0o644)
    assert bounded.unreadable_for_judge([fixtures]) == []


def test_the_judge_reads_the_users_hugging_face_cache_and_names_it(tmp_path, monkeypatch):
    # Its own HOME is empty: the real gpt2 of the user's cache is bound read-only, and a check
    # that finds none names the user's cache, not a judge's temporary one.
    _need_judge()
    from grader.isolation import bounded
    from grader.isolation.client import WorkerSettings

    hub = tmp_path / "hub"
    snap = hub / "models--gpt2" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    for p in (tmp_path, hub, hub / "models--gpt2", snap.parent, snap):
        p.chmod(0o755)
    (snap / "config.json").chmod(0o644)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    judge = bounded.start_judge(WorkerSettings(threads=1))
    try:
        got = bounded.run_bounded(
            WRITE + "import os; h = os.environ['HF_HUB_CACHE']; write_result({'hub': h, "
            "'seen': open(os.path.join(h, 'models--gpt2/snapshots/abc/config.json')).read(), "
            "'other': sorted(os.listdir(h))})", b"", judge=judge)
    finally:
        judge.close()
    assert got == {"hub": str(hub.resolve()), "seen": "{}", "other": ["models--gpt2"]}


SMALL_CKPT = "ck.HFShape(n_positions=8, vocab_size=11, n_layer=1, n_head=2, n_embd=4)"


def test_the_judge_loads_the_users_checkpoint_cache_read_only_and_never_writes_it(
        tmp_path, monkeypatch):
    # The trusted side builds the cache; the judge reads a checkpoint that is there and builds
    # one that is not in a private folder (the cache, root's, stays exactly as it was).
    _need_judge()
    from grader.checks import checkpoints as ck
    from grader.isolation import bounded
    from grader.isolation.client import WorkerSettings

    tmp_path.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shape = ck.HFShape(n_positions=8, vocab_size=11, n_layer=1, n_head=2, n_embd=4)
    kept = ck.CheckpointStore(ck.user_cache_dir()).checkpoint(shape, seed=1)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in kept.parent.rglob("*"))
    judge = bounded.start_judge(WorkerSettings(threads=1))
    try:
        assert judge.checkpoint_cache == ck.user_cache_dir().resolve()
        got = bounded.run_bounded(
            WRITE + "import os, sys; from pathlib import Path; "
            "from grader.checks import checkpoints as ck; "
            "c = Path(sys.stdin.read()); "
            f"s = ck.CheckpointStore(c, fallback=True); shape = {SMALL_CKPT}; "
            "a = s.checkpoint(shape, seed=1); one = s.built_privately; "
            "b = s.checkpoint(shape, seed=2); "
            "write_result({'a': str(a), 'one': one, 'b_in_cache': c in b.parents,"
            " 'two': s.built_privately, 'uid': os.getuid()})",
            str(judge.checkpoint_cache).encode(), judge=judge)
    finally:
        judge.close()
    assert got["uid"] != 0
    assert got["a"] == str(kept.resolve()) and got["one"] is False
    assert got["b_in_cache"] is False and got["two"] is True
    assert sorted((p.name, p.stat().st_mtime_ns) for p in kept.parent.rglob("*")) == before


def test_a_judge_without_a_readable_cache_is_lent_none(tmp_path, monkeypatch):
    _need_judge()
    from grader.isolation import bounded

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "none"))
    assert bounded.judge_setting(1).checkpoint_cache is None
    cache = tmp_path / "private" / "grader" / "checkpoints"
    (cache / "ckpt-x").mkdir(parents=True)
    (cache / "ckpt-x" / "model.safetensors").write_bytes(b"")
    (cache / "ckpt-x" / "model.safetensors").chmod(0o600)  # another tool's strict umask
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "private"))
    assert bounded.judge_setting(1).checkpoint_cache is None
    (cache / "ckpt-x" / "model.safetensors").chmod(0o644)
    assert bounded.judge_setting(1).checkpoint_cache == cache.resolve()


@pytest.mark.slow
def test_a_judged_run_fills_the_cache_once_then_reuses_it(tmp_path, monkeypatch):
    # The 124M checkpoint: built privately by the first judged run, which then has the trusted
    # side build it into the user's cache; the second run's judge loads it and asks for nothing.
    _need_judge()
    from pathlib import Path

    from grader.cli import main
    from grader.cli import run as run_cmd

    tmp_path.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    builds = []
    real = run_cmd._build_checkpoint_cache
    monkeypatch.setattr(run_cmd, "_build_checkpoint_cache",
                        lambda: (builds.append(1), real()))
    example = Path(__file__).resolve().parents[2] / "examples" / "correct"
    out = tmp_path / "out.json"
    args = ["run", str(example), "-a", "gpt2_loading", "--json", str(out), "--color", "never"]
    assert main(args) == 0 and builds == [1]
    cached = list((tmp_path / "grader" / "checkpoints").glob("ckpt-*/model.safetensors"))
    assert len(cached) == 1 and cached[0].stat().st_size > 400e6
    first = out.read_text()
    assert main(args) == 0 and builds == [1]
    import json

    def verdicts(text):
        return [(c["id"], c["status"]) for a in json.loads(text)["assignments"]
                for c in a["checks"]]

    assert verdicts(out.read_text()) == verdicts(first)
    assert ("gpt2_124m", "passed") in verdicts(first)


PEEK = '''
def _mark(name):
    globals()[name] = 1


try:
    _mark("read_" + open("/opt/grader-lent/ckpt-x/config.json").read().strip())
except OSError as exc:
    _mark("read_failed_" + type(exc).__name__)
try:
    open("/opt/grader-lent/ckpt-x/planted", "w").write("x")
    _mark("wrote")
except OSError as exc:
    _mark("write_refused")
'''


def test_the_workers_read_the_lent_cache_in_place_and_cannot_write_it(tmp_path, monkeypatch):
    # The 124M check's 0.5 GB file is read where the trusted side built it, not copied into
    # each worker's data folder; the worker (another uid, its own sandbox) cannot change it.
    _need_judge()
    from grader.isolation import bounded
    from grader.isolation.client import WorkerSettings

    tmp_path.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "grader" / "checkpoints" / "ckpt-x"
    folder.mkdir(parents=True)
    for p in (folder.parent.parent, folder.parent, folder):
        p.chmod(0o755)
    (folder / "config.json").write_text("abc\n")
    (folder / "config.json").chmod(0o644)
    judge = bounded.start_judge(WorkerSettings(threads=1))
    try:
        sub = judge.work_area / "sub"
        sub.mkdir()
        sub.chmod(0o755)
        (sub / "peek.py").write_text(PEEK)
        (sub / "peek.py").chmod(0o644)
        got = bounded.run_bounded(WRITE + f"""
from pathlib import Path
from grader.isolation.client import WorkerClient, WorkerSettings
from grader.isolation.launcher import LauncherProxy
w = WorkerClient(Path({str(sub)!r}), WorkerSettings(threads=1),
                 launcher=LauncherProxy.from_env())
with w:
    w.launch()
    names = w.request("import", {{"modules": ["peek"]}}).result["modules"]["peek"]["names"]
    write_result({{"names": names, "seen": w.seen_as(Path({str(folder)!r})),
                  "file": w.seen_as(Path({str(folder / 'config.json')!r})),
                  "outside": w.seen_as(Path({str(sub)!r}))}})
""", b"", judge=judge)
    finally:
        judge.close()
    assert got["seen"] == "/opt/grader-lent/ckpt-x"
    assert got["file"] == "/opt/grader-lent/ckpt-x/config.json"
    assert got["outside"] is None  # only what was lent is read in place
    assert "read_abc" in got["names"] and "write_refused" in got["names"], got["names"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
def test_a_fresh_worker_reads_a_lent_folder_in_place(tmp_path, isolation):
    # `grader run` without a judge lends the user's checkpoint cache the same way: in the
    # sandbox at /opt/grader-lent (read-only), without one at its own path.

    from grader.isolation.client import WorkerClient, WorkerSettings, sandbox_will_isolate

    if isolation == "bwrap" and not sandbox_will_isolate("auto"):
        pytest.skip("bubblewrap does not work here")
    lent = tmp_path / "lent"
    (lent / "ckpt-x").mkdir(parents=True)
    (lent / "ckpt-x" / "config.json").write_text("abc\n")
    for p in (tmp_path, lent, lent / "ckpt-x"):
        p.chmod(0o755)
    sub = tmp_path / "sub"
    sub.mkdir()
    sub.chmod(0o755)
    text = PEEK if isolation == "bwrap" else PEEK.replace("/opt/grader-lent", str(lent))
    (sub / "peek.py").write_text(text)
    with WorkerClient(sub, WorkerSettings(threads=1, isolation=isolation), lend=lent) as w:
        w.launch()
        names = w.request("import", {"modules": ["peek"]}).result["modules"]["peek"]["names"]
        seen = w.seen_as(lent / "ckpt-x" / "config.json")
        outside = w.seen_as(sub / "peek.py")
    assert "read_abc" in names
    if isolation == "bwrap":
        assert seen == "/opt/grader-lent/ckpt-x/config.json" and outside is None
        assert "write_refused" in names
        assert sorted(p.name for p in (lent / "ckpt-x").iterdir()) == ["config.json"]
    else:  # no sandbox: the worker reads host paths, and nothing stops it writing
        assert seen == str((lent / "ckpt-x" / "config.json").resolve())
        assert outside == str((sub / "peek.py").resolve())


# A module that, imported by mistake from the folder the grader was started in, says so.
PLANTED = ("import pathlib\n"
           "pathlib.Path(__file__).with_name('ran-as-the-grader').write_text('x')\n"
           "raise ImportError('the planted module was imported')\n")


def _plant(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / f"{name}.py").write_text(PLANTED)
    return folder / "ran-as-the-grader"


def test_trusted_children_never_import_from_the_folder_they_start_in(tmp_path, monkeypatch):
    """An instructor may start the grader inside a student's folder: the grader's own Python
    children (bounded judging, the checkpoint build, the batch's reaper) must not import that
    folder's ``torch.py`` or ``json.py`` in place of the real ones."""
    import subprocess

    from grader.isolation.bounded import trusted_python

    marker = _plant(tmp_path / "student", "torch", "json", "safetensors")
    monkeypatch.chdir(tmp_path / "student")
    for args in (["-c", "import json, torch, grader.grading"],
                 ["-m", "grader.batch.cleanup", "--help"]):
        argv, env = trusted_python(*args)
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
        assert not marker.exists(), args
    # What the old command line did, for contrast: the planted module ran.
    subprocess.run([sys.executable, "-c", "import json"], capture_output=True, timeout=60)
    assert marker.exists()


def test_a_bounded_grading_started_in_a_students_folder_imports_nothing_of_it(tmp_path,
                                                                             monkeypatch):
    from pathlib import Path

    from grader import grading
    from grader.isolation.client import WorkerSettings

    example = Path(__file__).resolve().parents[2] / "examples" / "correct"
    marker = _plant(tmp_path / "here", "torch", "json")
    monkeypatch.chdir(tmp_path / "here")
    result = grading.grade_bounded(example, grading.GradeOptions(
        assignments=["attention"], worker=WorkerSettings(threads=1)), judge=False)
    assert not marker.exists()
    assert result.score == result.max_score > 0
