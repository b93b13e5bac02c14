"""Where a class's submissions are: the input layouts an instructor really has.

- ``folders``: ``CLASS_DIR/<student>/attention.py ...`` (or notebooks, or files one folder down,
  as an unpacked zip often has them). The folder's name is the student's id.
- ``canvas``: a Canvas "Download Submissions" zip unpacked: one flat folder of files named
  ``<sortable name>[_late]_<user id>_<submission id>_<original name>``, e.g.
  ``smithjohn_12345_67890_attention.py`` or ``smithjohn_late_12345_67890_attention.py``. Canvas
  adds ``-1``, ``-2`` to the original name of a resubmitted file (``attention-1.py``); that
  suffix is removed again for the graded module names.
- ``moodle``: a Moodle "Download all submissions" zip unpacked: a folder per participant named
  ``<Full Name>_<participant id>_assignsubmission_file_`` holding the files (recent Moodle), or
  flat files ``<Full Name>_<participant id>_assignsubmission_file_<original name>`` (older
  Moodle, or "download submissions in folders" unticked). ``..._onlinetext_`` entries are
  ignored.
- ``nbgrader``: ``submitted/<student>/<assignment>/`` (``CLASS_DIR`` may be the course folder
  holding ``submitted/`` or ``submitted/`` itself); ``timestamp.txt`` gives the submission time.
- ``files``: one notebook (or, with a single assignment chosen, one ``.py``) per student:
  ``CLASS_DIR/<student>.ipynb``.

Files of the LMS layouts are *staged*: copied under the run folder into one folder per student
with their original names (zips are unpacked there, with caps), so that every layout ends as a
folder per student for :func:`grader.grading.grade`. :func:`find` returns one :class:`Entry`
per student.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LAYOUTS = ("auto", "folders", "canvas", "moodle", "nbgrader", "files")
IGNORED = {"__pycache__", ".ipynb_checkpoints", ".git", "__MACOSX", ".DS_Store"}
# Caps on a student's zip: it is unpacked by the trusted side, so it must not be a zip bomb.
ZIP_MAX_FILES = 500
ZIP_MAX_BYTES = 64 * 2**20

CANVAS_NAME = re.compile(r"^(?P<name>[a-z0-9]+?)(?P<late>_late)?_(?P<uid>\d+)_(?P<sid>\d+)_"
                         r"(?P<file>.+)$", re.IGNORECASE)
MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_(?P<kind>file|onlinetext)_"
                         r"(?P<file>.*)$")
CANVAS_RESUBMITTED = re.compile(r"^(?P<stem>.+)-(?P<n>\d+)(?P<suffix>\.[A-Za-z0-9]+)$")


class LayoutError(ValueError):
    """The class folder does not look like the layout asked for (or like any, for ``auto``)."""


@dataclass
class Entry:
    """One student's submission found in the class folder.

    ``student_id`` is the id found there (folder name, LMS user id...); the coordinator maps
    it to the roster with ``keys`` (other ways the roster may name the same student).
    ``path`` is the folder to grade; ``problem`` says why there is nothing gradable (an unsafe
    zip, no files) and the submission is then recorded as an error with that reason."""

    student_id: str
    name: str
    path: Path
    files: list[str]
    source: str
    layout: str
    received_at: str
    submitted_at: str | None = None
    late: bool | None = None
    keys: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def find(class_dir: Path, layout: str = "auto", *, staging: Path, modules: Sequence[str],
         nbgrader_assignment: str | None = None, exclude: Sequence[Path] = ()) -> list[Entry]:
    """Every student's submission in ``class_dir``, sorted by student id.

    ``staging``: where LMS files are copied into per-student folders. ``modules``: the graded
    module names (``attention``...). ``exclude``: folders inside ``class_dir`` that are not
    students (the run folder, when it was put inside the class folder)."""
    class_dir = Path(class_dir)
    if not class_dir.is_dir():
        raise LayoutError(f"class folder not found: {class_dir}")
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    excluded = {p.resolve() for p in exclude}
    if layout == "auto":
        layout = detect(class_dir, excluded)
    if layout == "folders":
        entries = _folders(class_dir, excluded)
    elif layout == "canvas":
        entries = _canvas(class_dir, staging, modules)
    elif layout == "moodle":
        entries = _moodle(class_dir, staging, modules, excluded)
    elif layout == "nbgrader":
        entries = _nbgrader(class_dir, nbgrader_assignment)
    else:
        entries = _files(class_dir, staging, modules)
    return sorted(entries, key=lambda e: e.student_id)


def detect(class_dir: Path, excluded: set[Path] = frozenset()) -> str:  # type: ignore[assignment]
    """Which layout ``class_dir`` has (see the module docstring), or :class:`LayoutError`."""
    names = [p for p in _listing(class_dir) if p.resolve() not in excluded]
    if class_dir.name == "submitted" and any(p.is_dir() for p in names) or \
            (class_dir / "submitted").is_dir():
        return "nbgrader"
    if any(MOODLE_NAME.match(p.name) for p in names):
        return "moodle"
    files = [p for p in names if p.is_file()]
    if files and sum(bool(CANVAS_NAME.match(p.name)) for p in files) >= max(1, len(files) // 2):
        return "canvas"
    if any(p.is_dir() for p in names):
        return "folders"
    if any(p.suffix in (".ipynb", ".py") for p in files):
        return "files"
    raise LayoutError(f"{class_dir} holds no student folders and no submission files")


# --------------------------------------------------------------------------- layouts


def _folders(class_dir: Path, excluded: set[Path]) -> list[Entry]:
    entries = []
    for d in _listing(class_dir):
        if not d.is_dir() or d.is_symlink() or d.resolve() in excluded:
            continue
        files = _relative_files(d)
        entries.append(Entry(student_id=d.name, name="", path=d, files=files, source=str(d),
                             layout="folders", received_at=_newest_time(d),
                             problem="" if files else "the student's folder is empty"))
    return entries


def _canvas(class_dir: Path, staging: Path, modules: Sequence[str]) -> list[Entry]:
    groups: dict[str, list[tuple[Path, re.Match]]] = {}
    ignored = []
    for p in _listing(class_dir):
        m = CANVAS_NAME.match(p.name) if p.is_file() else None
        if m is None:
            ignored.append(p.name)
            continue
        groups.setdefault(m["uid"], []).append((p, m))
    entries = []
    for uid, items in groups.items():
        first = items[0][1]
        sid = f"canvas-{uid}"
        target = staging / file_name(sid)
        originals = {}
        for p, m in items:
            originals[p.name] = _canvas_original(m["file"], modules)
        problem = _stage(target, [(p, originals[p.name]) for p, _ in items])
        entries.append(Entry(
            student_id=sid, name=first["name"], path=target, files=_relative_files(target),
            source=", ".join(sorted(originals)), layout="canvas",
            received_at=_newest_time_of([p for p, _ in items]),
            late=any(m["late"] for _, m in items),
            keys={"canvas_user_id": uid, "sortable_name": first["name"].lower()},
            metadata={"layout": "canvas", "lms_user_id": uid,
                      "lms_submission_ids": sorted({m["sid"] for _, m in items}),
                      "original_names": sorted(originals)},
            problem=problem))
    return entries


def _canvas_original(name: str, modules: Sequence[str]) -> str:
    m = CANVAS_RESUBMITTED.match(name)
    if m and (m["stem"] in modules or m["suffix"] == ".zip"):
        return m["stem"] + m["suffix"]
    return name


def _moodle(class_dir: Path, staging: Path, modules: Sequence[str],
            excluded: set[Path]) -> list[Entry]:
    groups: dict[str, list[tuple[Path, str]]] = {}
    names: dict[str, str] = {}
    for p in _listing(class_dir):
        if p.resolve() in excluded:
            continue
        m = MOODLE_NAME.match(p.name)
        if m is None or m["kind"] != "file":
            continue
        pid = m["pid"]
        names[pid] = m["name"]
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.is_symlink() and not _ignored(f.relative_to(p)):
                    groups.setdefault(pid, []).append((f, f.relative_to(p).as_posix()))
        elif p.is_file() and m["file"]:
            groups.setdefault(pid, []).append((p, m["file"]))
        else:
            groups.setdefault(pid, [])
    entries = []
    for pid, items in groups.items():
        sid = f"moodle-{pid}"
        target = staging / file_name(sid)
        problem = _stage(target, items) if items else "the submission holds no files"
        entries.append(Entry(
            student_id=sid, name=names[pid], path=target, files=_relative_files(target),
            source=", ".join(sorted({str(p.relative_to(class_dir).parts[0]) for p, _ in items})),
            layout="moodle", received_at=_newest_time_of([p for p, _ in items]),
            keys={"moodle_participant_id": pid, "name": names[pid]},
            metadata={"layout": "moodle", "lms_user_id": pid,
                      "original_names": sorted(rel for _, rel in items)},
            problem=problem))
    return entries


def _nbgrader(class_dir: Path, assignment: str | None) -> list[Entry]:
    root = class_dir if class_dir.name == "submitted" and not (class_dir / "submitted").is_dir() \
        else class_dir / "submitted"
    students = [d for d in _listing(root) if d.is_dir() and not d.is_symlink()]
    found = sorted({a.name for d in students for a in _listing(d) if a.is_dir()})
    if assignment is None:
        if len(found) > 1:
            raise LayoutError(f"{root} holds several nbgrader assignments ({', '.join(found)}): "
                              "choose one with --nbgrader-assignment NAME")
        assignment = found[0] if found else None
    entries = []
    for d in students:
        folder = d / assignment if assignment else d
        if not folder.is_dir():
            continue  # the student has not submitted this assignment: the roster says so
        stamp = _nbgrader_timestamp(folder / "timestamp.txt")
        files = [f for f in _relative_files(folder) if f != "timestamp.txt"]
        entries.append(Entry(
            student_id=d.name, name="", path=folder, files=files, source=str(folder),
            layout="nbgrader", received_at=_newest_time(folder), submitted_at=stamp,
            metadata={"layout": "nbgrader", "assignment": assignment},
            problem="" if files else "the submission folder is empty"))
    return entries


def _files(class_dir: Path, staging: Path, modules: Sequence[str]) -> list[Entry]:
    entries = []
    for p in _listing(class_dir):
        if not p.is_file() or p.suffix not in (".ipynb", ".py", ".zip"):
            continue
        sid = p.stem
        target = staging / file_name(sid)
        if p.suffix == ".py":
            if len(modules) != 1:
                raise LayoutError(f"{p.name}: one .py file per student is graded as one "
                                  "assignment's module; choose it with -a NAME")
            graded = f"{modules[0]}.py"
        else:
            graded = p.name
        problem = _stage(target, [(p, graded)])
        entries.append(Entry(student_id=sid, name="", path=target,
                             files=_relative_files(target), source=p.name, layout="files",
                             received_at=_newest_time_of([p]),
                             metadata={"layout": "files", "original_names": [p.name]},
                             problem=problem))
    return entries


# --------------------------------------------------------------------------- staging


def _stage(target: Path, items: Sequence[tuple[Path, str]]) -> str:
    """Copy ``(source file, name in the submission)`` pairs into a fresh ``target`` folder
    (unpacking zips); returns a problem ("" if none). File times are kept, so a restaged
    folder has the same content hash and times."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    os.chmod(target, 0o755)
    problems = []
    for source, name in items:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            problems.append(f"{name}: unsafe file name, ignored")
            continue
        dest = target / rel
        if rel.suffix == ".zip":
            problems.extend(_unzip(source, target))
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        os.chmod(dest, 0o644)
    for d in [target, *target.rglob("*")]:
        if d.is_dir():
            os.chmod(d, 0o755)
    if not any(p.is_file() for p in target.rglob("*")):
        problems.append("the submission holds no gradable files")
    return "; ".join(problems)


def _unzip(source: Path, target: Path) -> list[str]:
    try:
        with zipfile.ZipFile(source) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > ZIP_MAX_FILES:
                return [f"{source.name}: more than {ZIP_MAX_FILES} files in the zip; not unpacked"]
            if sum(i.file_size for i in infos) > ZIP_MAX_BYTES:
                return [f"{source.name}: unpacks to more than {ZIP_MAX_BYTES // 2**20} MB; "
                        "not unpacked"]
            out = []
            for info in infos:
                rel = Path(info.filename)
                if rel.is_absolute() or ".." in rel.parts or _ignored(rel):
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    out.append(f"{info.filename}: a symbolic link in the zip, ignored")
                    continue
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                when = datetime(*info.date_time).timestamp()
                os.utime(dest, (when, when))
                os.chmod(dest, 0o644)
            return out
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return [f"{source.name}: not a readable zip ({exc})"]


# --------------------------------------------------------------------------- helpers


def _listing(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                      and p.name not in IGNORED)
    except OSError:
        return []


def _ignored(rel: Path) -> bool:
    return any(part in IGNORED or part.startswith(".") for part in rel.parts)


def _relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not _ignored(p.relative_to(folder)))


def _newest_time(folder: Path) -> str:
    return _newest_time_of([p for p in folder.rglob("*") if p.is_file()] or [folder])


def _newest_time_of(paths: Sequence[Path]) -> str:
    newest = max((p.stat().st_mtime for p in paths), default=0.0)
    return datetime.fromtimestamp(newest, UTC).replace(microsecond=0).isoformat()


def _nbgrader_timestamp(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    text = text.replace(" UTC", "").replace("Z", "")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S"):
        try:
            when = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return when.replace(microsecond=0).isoformat()
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "student"


def file_name(student_id: str) -> str:
    """The name of a student's files and folders in the run folder and the staging area: the
    id itself where it is already a plain file name, else a plain form of it with ``~`` and a
    hash of the id. One name per id: "a b", "a_b" and "a?b" once all became ``a_b``, so one
    student's results overwrote another's and one student was sent another's report. ``~`` is
    never in a plain id, so a hashed name cannot be another student's own."""
    import hashlib

    plain = _safe(student_id)
    if plain == student_id:
        return plain
    return f"{plain}~{hashlib.sha256(student_id.encode()).hexdigest()[:12]}"


def slug(name: str) -> str:
    """A student id made from a name (for LMS entries that are on no roster)."""
    return _safe(name.lower().replace(" ", "-"))
