"""The sandbox really isolates: real child processes, launched the way the grader launches them."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import resource
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from grader.isolation import bwrap, cgroups, sandbox
from grader.isolation.limits import rlimits
from grader.isolation.sandbox import IsolationUnavailable, Launch, Limits, plan_launch

BWRAP_OK, BWRAP_WHY = sandbox.isolation_available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap isolation unavailable: {BWRAP_WHY}")
MODES = ["none", pytest.param("bwrap", marks=needs_bwrap)]
REPO_FILE = Path(sandbox.__file__).resolve().parents[1] / "model" / "results.py"
if not REPO_FILE.exists():
    REPO_FILE = Path(sandbox.__file__).resolve()
# Tests that ask for a slot by number take it from the top of the range: automatic leases
# (every batch, and the warm pool each test process keeps) take the lowest free slots and may
# hold one for the whole session.
FIXED_SLOT = 203


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    """A class folder: alice's submission (the one graded) and bob's beside it."""
    alice = tmp_path / "class" / "alice"
    bob = tmp_path / "class" / "bob"
    alice.mkdir(parents=True)
    bob.mkdir()
    (alice / "attention.py").write_text("ANSWER = 42\n")
    (bob / "attention.py").write_text("BOB_SECRET = 'do not copy'\n")
    return alice


def python(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", textwrap.dedent(code)]


def run(launch: Launch, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launch.argv,
        **launch.popen_kwargs(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_json(code: str, submission: Path, **kwargs) -> dict:
    """Run ``code`` (printing one JSON object last) in a sandbox, clean up, return the object."""
    launch = plan_launch(python(code), submission_dir=submission, **kwargs)
    try:
        proc = run(launch)
    finally:
        launch.cleanup()
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- both modes


@pytest.mark.parametrize("mode", MODES)
def test_clean_env_with_thread_counts(mode, submission, monkeypatch):
    monkeypatch.setenv("GRADER_TEST_SECRET", "hunter2")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    env = run_json(
        "import json, os; print(json.dumps(dict(os.environ)))",
        submission,
        isolation=mode,
        threads=3,
        env={"GRADER_EXTRA": "yes"},
    )
    assert "GRADER_TEST_SECRET" not in env
    assert "hunter2" not in json.dumps(env)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert env[var] == "3"
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    assert env["GRADER_EXTRA"] == "yes"
    assert env["PYTHONHASHSEED"] == "0" and env["LANG"] == "C.UTF-8"


@pytest.mark.parametrize("mode", MODES)
def test_cwd_is_fresh_home_and_cleanup_removes_it(mode, submission):
    launch = plan_launch(
        python("import os; open('out.txt', 'w').write(os.environ['HOME'] + ' ' + os.getcwd())"),
        submission_dir=submission,
        isolation=mode,
    )
    assert launch.isolation == mode
    assert os.listdir(launch.cwd) == []
    proc = run(launch)
    assert proc.returncode == 0, proc.stderr
    home, cwd = (Path(launch.cwd) / "out.txt").read_text().split()
    assert home == cwd
    assert home == ("/home/student" if mode == "bwrap" else launch.cwd)
    launch.cleanup()
    assert not Path(launch.cwd).parent.exists()  # the whole per-launch dir, not just the home
    launch.cleanup()  # idempotent


@pytest.mark.parametrize("mode", MODES)
def test_rlimits_are_set(mode, submission):
    limits = Limits(memory_bytes=3 * 2**30, cpu_seconds=77, file_size_bytes=2**20, open_files=99)
    got = run_json(
        """
        import json, resource as r
        print(json.dumps({n: r.getrlimit(getattr(r, n))[0]
                          for n in ["RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE",
                                    "RLIMIT_NPROC", "RLIMIT_CORE"]}))
        """,
        submission,
        isolation=mode,
        limits=limits,
    )
    assert got["RLIMIT_DATA"] == 3 * 2**30
    assert got["RLIMIT_CPU"] == 77
    assert got["RLIMIT_FSIZE"] == 2**20
    assert got["RLIMIT_NOFILE"] == 99
    assert got["RLIMIT_CORE"] == 0
    if mode == "bwrap":
        assert got["RLIMIT_NPROC"] == limits.max_processes


def test_none_mode_uses_host_paths(submission):
    launch = plan_launch(
        lambda path: [
            *python("import sys; print(open(sys.argv[1]).read())"),
            path(submission / "attention.py"),
        ],
        submission_dir=submission,
        isolation="none",
    )
    try:
        proc = run(launch)
    finally:
        launch.cleanup()
    assert proc.stdout.strip() == "ANSWER = 42"
    assert launch.description.startswith("none: plain subprocess with resource limits")


def test_bwrap_required_but_unavailable(submission, monkeypatch):
    monkeypatch.setattr(sandbox, "isolation_available", lambda: (False, "no bwrap in this test"))
    with pytest.raises(IsolationUnavailable, match="no bwrap in this test"):
        plan_launch(["true"], submission_dir=submission, isolation="bwrap")
    launch = plan_launch(["true"], submission_dir=submission, isolation="auto")
    assert launch.isolation == "none" and "no bwrap in this test" in launch.description
    launch.cleanup()


# ----------------------------------------------------------------------------- bwrap only


@needs_bwrap
def test_bwrap_sees_only_its_submission(submission):
    other = submission.parent / "bob" / "attention.py"
    got = run_json(
        f"""
        import json, os
        def readable(p):
            try:
                open(p).read()
                return True
            except OSError:
                return False
        try:
            open("/submission/new.py", "w")
            sub_writable = True
        except OSError:
            sub_writable = False
        try:
            open("/evil", "w")
            root_writable = True
        except OSError:
            root_writable = False
        print(json.dumps({{
            "listing": sorted(os.listdir("/submission")),
            "answer": open("/submission/attention.py").read(),
            "repo": readable({str(REPO_FILE)!r}),
            "other": readable({str(other)!r}),
            "other_rel": readable("/submission/../bob/attention.py"),
            "work": os.path.exists("/work"),
            "root_home": os.listdir("/root"),
            "sub_writable": sub_writable,
            "root_writable": root_writable,
        }}))
        """,
        submission,
        isolation="bwrap",
    )
    assert got["listing"] == ["attention.py"]
    assert got["answer"] == "ANSWER = 42\n"
    assert not got["repo"] and not got["other"] and not got["other_rel"]
    assert not got["work"]
    # Only the path to the Python installation is there, nothing else of /root.
    assert set(got["root_home"]) <= {".pyenv"}
    assert not got["sub_writable"] and not got["root_writable"]


@needs_bwrap
def test_bwrap_has_no_network(submission):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # reachable from host
        got = run_json(
            f"""
            import json, socket
            def attempt(f):
                try:
                    f()
                    return "ok"
                except OSError as e:
                    return type(e).__name__
            print(json.dumps({{
                "tcp": attempt(lambda: socket.create_connection(("127.0.0.1", {port}), 2)),
                "dns": attempt(lambda: socket.getaddrinfo("example.com", 443)),
            }}))
            """,
            submission,
            isolation="bwrap",
        )
    finally:
        server.close()
    assert got["tcp"] != "ok"
    assert got["dns"] != "ok"


@needs_bwrap
def test_bwrap_drops_to_slot_uid(submission):
    got = run_json(
        """
        import json, os
        print(json.dumps([os.getuid(), os.geteuid(), os.getgid(), os.getgroups(),
                          open("/proc/self/status").read()]))
        """,
        submission,
        isolation="bwrap",
        slot=FIXED_SLOT,
    )
    uid, euid, gid, groups, status = got
    assert uid == euid == gid == 60000 + FIXED_SLOT
    assert set(groups) <= {60000 + FIXED_SLOT}
    assert "CapEff:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status


@needs_bwrap
def test_bwrap_tmp_is_private(submission):
    name = f"sandbox-probe-{uuid.uuid4().hex}"
    got = run_json(
        f"""
        import json, os
        open("/tmp/{name}", "w").write("x")
        print(json.dumps(os.path.exists("/tmp/{name}")))
        """,
        submission,
        isolation="bwrap",
    )
    assert got is True
    assert not Path("/tmp", name).exists()


@needs_bwrap
def test_bwrap_cannot_import_grader_or_reference(submission):
    assert importlib.util.find_spec("grader") is not None  # the host can
    got = run_json(
        """
        import json
        out = {}
        for name in ("grader", "reference"):
            try:
                __import__(name)
                out[name] = "imported"
            except ImportError:
                out[name] = "hidden"
        print(json.dumps(out))
        """,
        submission,
        isolation="bwrap",
    )
    assert got == {"grader": "hidden", "reference": "hidden"}


@needs_bwrap
def test_bwrap_withholds_the_oracles_the_checks_compare_against(submission):
    """tiktoken is what GPT2Tokenizer is compared with: a tokenizer that called it scored as
    its own. Its files are masked (no import hook, which student code could remove)."""
    assert importlib.util.find_spec("tiktoken") is not None  # the host has it
    got = run_json(
        """
        import json
        try:
            import tiktoken
            out = {"usable": hasattr(tiktoken, "get_encoding")}
        except ImportError:
            out = {"usable": False}
        print(json.dumps(out))
        """,
        submission,
        isolation="bwrap",
    )
    assert got == {"usable": False}


def test_a_submission_importing_tiktoken_is_told_why(tmp_path):
    from conftest import grade_folder, plant

    sub = plant(tmp_path, {"bpe": [("import regex\n", "import tiktoken\nimport regex\n")]})
    result = grade_folder(sub, ["bpe"])
    bpe = result.assignment("bpe")
    assert bpe.score == 0
    said = bpe.message + " ".join(c.message for c in bpe.checks)
    assert "tiktoken is not available to submissions" in said, said


@needs_bwrap
def test_bwrap_masks_grader_installed_in_site_packages(submission, tmp_path, monkeypatch):
    """As if grader were pip-installed (or editable-installed) into a site-packages dir."""
    fake_site = tmp_path / "site-packages"
    for pkg in ("grader", "reference", "harmless"):
        (fake_site / pkg).mkdir(parents=True)
        (fake_site / pkg / "__init__.py").write_text(f"NAME = {pkg!r}\n")
    repo = Path(sandbox.__file__).resolve().parents[2]
    (fake_site / "__editable__.grader-0.1.pth").write_text(f"{repo}\n")  # an editable install
    real_dirs = bwrap.python_dirs
    monkeypatch.setattr(bwrap, "python_dirs", lambda: [*real_dirs(), str(fake_site)])
    got = run_json(
        f"""
        import json, os, site, sys
        site.addsitedir({str(fake_site)!r})  # processes the .pth files too
        out = {{"path_has_repo": {str(repo)!r} in sys.path,
               "repo_visible": os.path.exists({str(repo)!r})}}
        for name in ("grader", "reference", "harmless"):
            sys.modules.pop(name, None)
            try:
                out[name] = __import__(name).NAME
            except (ImportError, AttributeError):
                out[name] = "hidden"
        print(json.dumps(out))
        """,
        submission,
        isolation="bwrap",
    )
    assert got["harmless"] == "harmless"  # the fake site dir is really mounted
    assert got["grader"] == "hidden" and got["reference"] == "hidden"
    assert not got["repo_visible"]


@needs_bwrap
def test_bwrap_path_mapping_and_extra_binds(submission, tmp_path):
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    (worker_dir / "main.py").write_text(
        "import sys, os\nprint(sys.argv[1], open(os.path.join(sys.argv[1], 'attention.py')).read())"
    )
    seen = {}

    def command(path):
        seen["worker"] = path(worker_dir / "main.py")
        seen["submission"] = path(submission)
        seen["python"] = path(sys.executable)
        with pytest.raises(ValueError):
            path(REPO_FILE)
        return [sys.executable, "-I", seen["worker"], seen["submission"]]

    launch = plan_launch(
        command, submission_dir=submission, extra_ro_binds=[(worker_dir, "/opt/worker")]
    )
    try:
        proc = run(launch)
    finally:
        launch.cleanup()
    assert seen == {
        "worker": "/opt/worker/main.py",
        "submission": "/submission",
        "python": sys.executable,
    }
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/submission", "ANSWER", "=", "42"]


def _host_processes_with(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.append(int(entry))
    return pids


@needs_bwrap
def test_bwrap_kills_double_forked_leftovers(submission):
    marker = f"{random.randint(100, 999)}.{random.randint(10**5, 10**6)}"  # unique sleep length
    launch = plan_launch(
        python(
            f"""
            import subprocess, sys
            subprocess.Popen(["sleep", "{marker}"], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print("started", flush=True)
            sys.stdin.read()  # wait for the test to look, then exit leaving sleep behind
            """
        ),
        submission_dir=submission,
    )
    proc = subprocess.Popen(
        launch.argv,
        **launch.popen_kwargs(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        assert _host_processes_with(marker), "the leftover sleep should be running by now"
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        deadline = time.monotonic() + 5
        while _host_processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _host_processes_with(marker)
    finally:
        proc.kill()
        proc.wait()
        launch.cleanup()


@needs_bwrap
def test_bwrap_joins_cgroups_and_cleanup_removes_them(submission):
    launch = plan_launch(
        python("import sys; print('up', flush=True); sys.stdin.read()"),
        submission_dir=submission,
        slot=FIXED_SLOT + 2,
    )
    if "cgroup limits" not in launch.description:
        launch.cleanup()
        pytest.skip(f"no writable cgroups here: {launch.description}")
    proc = subprocess.Popen(
        launch.argv,
        **launch.popen_kwargs(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    name = f"grader-slot-{FIXED_SLOT + 2}"
    try:
        assert proc.stdout.readline().strip() == "up"
        lines = Path("/proc", str(proc.pid), "cgroup").read_text().splitlines()
        joined = [line.split(":", 2) for line in lines if line.endswith("/" + name)]
        assert joined, lines
        # Where those groups live on the host, to check that cleanup removes them.
        dirs = []
        for _, controllers, cg_path in joined:
            for fstype, root, point, opts in cgroups.cgroup_mounts():
                if (controllers and fstype == "cgroup" and controllers in opts) or (
                    not controllers and fstype == "cgroup2"
                ):
                    dirs.append(cgroups.host_dir(root, point, cg_path))
        assert dirs and all(d is not None and d.is_dir() for d in dirs)
        proc.stdin.close()
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        launch.cleanup()
    assert not any(d.exists() for d in dirs)


@needs_bwrap
def test_bwrap_imports_torch(submission):
    got = run_json(
        """
        import json, numpy, safetensors, torch
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}))
        """,
        submission,
        isolation="bwrap",
        threads=1,
    )
    assert got["torch"] and got["threads"] == 1


def test_rlimit_data_not_as():
    """RLIMIT_AS breaks PyTorch: the memory cap must be RLIMIT_DATA (and stay so)."""
    names = {res for res, _ in rlimits(Limits(), with_nproc=True)}
    assert resource.RLIMIT_DATA in names and resource.RLIMIT_AS not in names


def test_submission_inside_grader_is_refused(tmp_path):
    link = tmp_path / "sneaky"
    link.symlink_to(Path(sandbox.__file__).resolve().parents[1])
    with pytest.raises(ValueError, match="inside the grader"):
        plan_launch(["true"], submission_dir=link, isolation="none")


@pytest.mark.parametrize("mode", MODES)
def test_memory_and_process_caps_bite(mode, submission):
    got = run_json(
        """
        import json, threading, time
        out = {}
        try:
            bytearray(600 * 2**20)
            out["alloc"] = "ok"
        except MemoryError:
            out["alloc"] = "MemoryError"
        threads = []
        try:
            for _ in range(200):
                t = threading.Thread(target=time.sleep, args=(0.5,))
                t.start()
                threads.append(t)
        except RuntimeError:
            pass
        out["threads"] = len(threads)
        print(json.dumps(out))
        """,
        submission,
        isolation=mode,
        limits=Limits(memory_bytes=400 * 2**20, max_processes=50),
    )
    assert got["alloc"] == "MemoryError"
    # In "none" mode only the pids cgroup bounds processes (RLIMIT_NPROC would count the user's).
    if mode == "bwrap" or "pids" in plan_description(submission):
        assert got["threads"] < 50


def plan_description(submission: Path) -> str:
    launch = plan_launch(["true"], submission_dir=submission, isolation="none")
    launch.cleanup()
    return launch.description


def test_path_maps_by_its_own_spelling_before_its_resolved_one(tmp_path):
    # A venv whose prefix is shorter than the base interpreter's: its bin/python is a symlink
    # into the base prefix. The mapping must keep the venv's spelling (issue 17), not jump to
    # the longer bind the resolved path lies under.
    base = tmp_path / "a-very-long-base-interpreter-prefix" / "versions" / "3.11"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "python3.11").write_text("")
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(base / "bin" / "python3.11")
    (venv / "lib").mkdir()
    b = bwrap.BwrapArgs()
    b.ro_bind(str(base), str(base))
    b.ro_bind(str(venv), str(venv))
    b.ro_bind(str(venv / "lib"), "/opt/site")  # an inner bind still wins over its parent
    assert b.to_sandbox(venv / "bin" / "python") == str(venv / "bin" / "python")
    assert b.to_sandbox(base / "bin" / "python3.11") == str(base / "bin" / "python3.11")
    assert b.to_sandbox(venv / "lib" / "x.py") == "/opt/site/x.py"
    # A path under no bind as spelled maps by where it resolves.
    link = tmp_path / "elsewhere"
    link.symlink_to(base)
    assert b.to_sandbox(link / "bin" / "python3.11") == str(base / "bin" / "python3.11")


@needs_bwrap
def test_bwrap_runs_a_venv_like_python_by_its_own_path(submission):
    import tempfile

    venv = Path(tempfile.mkdtemp(prefix="gv", dir="/tmp"))  # shorter than the base prefix
    try:
        (venv / "bin").mkdir()
        python_link = venv / "bin" / "python"
        python_link.symlink_to(os.path.realpath(sys.executable))
        seen = {}

        def command(path):
            seen["python"] = path(python_link)
            return [seen["python"], "-I", "-c", "import sys; print(sys.argv[0] or 'ok')"]

        launch = plan_launch(command, submission_dir=submission,
                             extra_ro_binds=[(venv, str(venv))])
        try:
            proc = run(launch)
        finally:
            launch.cleanup()
        assert seen["python"] == str(python_link)
        assert proc.returncode == 0, proc.stderr
    finally:
        import shutil

        shutil.rmtree(venv, ignore_errors=True)


@needs_bwrap
def test_a_venv_in_a_private_directory_keeps_its_own_packages(submission):
    # `mktemp -d` makes 0700 directories, and a bind keeps the mode: the dropped uid could not
    # read pyvenv.cfg, so the interpreter silently fell back to the base prefix and would have
    # imported the base's torch, or none. The venv's own site-packages must be what it sees.
    import shutil
    import tempfile

    venv = Path(tempfile.mkdtemp(prefix="gv", dir="/tmp"))
    assert venv.stat().st_mode & 0o777 == 0o700
    try:
        (venv / "bin").mkdir()
        python_link = venv / "bin" / "python"
        python_link.symlink_to(os.path.realpath(sys.executable))
        (venv / "pyvenv.cfg").write_text(
            f"home = {os.path.dirname(os.path.realpath(sys.executable))}\n"
            "include-system-site-packages = false\n")
        site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        (site / "site-packages").mkdir(parents=True)
        (site / "site-packages" / "only_in_this_venv.py").write_text("MARK = 42\n")
        code = "import sys, only_in_this_venv as m; print(sys.prefix, m.MARK)"
        launch = plan_launch(lambda path: [path(python_link), "-I", "-c", code],
                             submission_dir=submission, extra_ro_binds=[(venv, str(venv))])
        try:
            proc = run(launch)
        finally:
            launch.cleanup()
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [str(venv), "42"]
    finally:
        shutil.rmtree(venv, ignore_errors=True)
