"""Tiny classes made from examples/ for the batch tests (attention only: fast)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from grader.isolation.launcher import JUDGE_UID
from grader.isolation.pool import processes_of_uid
from grader.isolation.sandbox import isolation_available

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CORRECT_ATTENTION = (EXAMPLES / "correct" / "attention.py").read_text()
NO_SCALE_ATTENTION = (EXAMPLES / "buggy-attention-no-scale" / "attention.py").read_text()
NO_SCALE_FAILS = {"sdpa_values", "sdpa_gradients", "mha_values", "mha_gradients"}

# Hostile members: each attacks at import time, so one import timeout (not seven call
# timeouts) is what it costs the test.
HOSTILE = {
    "loop": "while True:\n    pass\n",
    "forkbomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                "        pass\n",
    "exit": "import os\nos._exit(0)\n",
    "flood": "import sys\nfor _ in range(400):\n    print('x' * 50_000)\n" + CORRECT_ATTENTION,
}

# What the tests pass to every batch: one assignment, short limits, a fixed seed (so that two
# gradebooks of the same class can be compared message for message).
FAST = {"assignments": ["attention"], "call_timeout": 30.0, "import_timeout": 5.0,
        "total_timeout": 120.0, "seed": 20261201, "quiet": True}


def need_sandbox() -> None:
    ok, why = isolation_available()
    if not ok:
        pytest.skip(f"bubblewrap sandbox not available: {why}")


def student(class_dir: Path, name: str, attention: str) -> Path:
    d = class_dir / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "attention.py").write_text(attention)
    return d


def roster(path: Path, ids: list[str]) -> Path:
    lines = ["id,name,email,section"] + [f"{i},{i.title()} Student,{i}@uni.edu,S1" for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (bwrap names the host folder
    it mounts; an unsandboxed worker names its submission)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (p / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            out.append(int(p.name))
    return out


def copy_class(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _descends_from_us(pid: int) -> bool:
    """Whether ``pid`` was started (at any depth) by this test process: the judges of other
    test processes running at the same time (same judge uid) are not this test's."""
    me = os.getpid()
    for _ in range(64):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == me:
            return True
        if pid <= 1:
            return False
    return False


def our_judges() -> list[int]:
    """The processes of the judge uid that this test process started."""
    return [pid for pid in processes_of_uid(JUDGE_UID) if _descends_from_us(pid)]


def no_judge_processes() -> bool:
    """Whether every judge process this test process started has ended."""
    # A killed judge sandbox's processes die with it, a moment later.
    deadline = time.monotonic() + 10
    while our_judges() and time.monotonic() < deadline:
        time.sleep(0.05)
    return our_judges() == []
