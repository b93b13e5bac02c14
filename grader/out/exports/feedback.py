"""Feedback release: each student's report, named so that an LMS bulk upload takes it.

``grader export feedback GRADEBOOK --out DIR`` writes, per student with a grading, the HTML
and Markdown reports (:func:`grader.out.reports.write_reports`) for the audience asked for
(``student`` by default: hidden checks show their name and points only), in one of three
namings:

* ``plain``: ``DIR/<student id>/report.html`` and ``report.md``;
* ``canvas``: flat files ``DIR/<sortable name>_<canvas user id>_<submission id>_report.html``,
  the naming of Canvas's "Download Submissions" that its bulk re-upload of feedback files
  (as submission comments) recognises by the user id;
* ``moodle``: folders ``DIR/<Full Name>_<participant id>_assignsubmission_file_/report.html``,
  the naming of Moodle's "Download all submissions" that its "Upload multiple feedback files
  in a zip" recognises by the participant id.

With ``zip_each``, each student's files go into one ``<name>.zip`` instead of a folder (flat
Canvas files are zipped together into ``feedback.zip``: Canvas takes one zip). A student whose
LMS id is unknown falls back to the plain naming, and is reported. Deterministic: fixed zip
timestamps, sorted members.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from collections.abc import Sequence
from pathlib import Path

from grader.out.exports.tables import CANVAS_ID_KEYS, Entry
from grader.out.reports import write_reports

NAMINGS = ("plain", "canvas", "moodle")
_EPOCH = (2020, 1, 1, 0, 0, 0)
MOODLE_ID_KEYS = ("moodle participant id", "participant id", "moodle id")


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


def safe_name(text: str) -> str:
    """A file or folder name from untrusted text: no path separators, no leading dots."""
    text = re.sub(r"[^\w .,@()+-]", "_", str(text)).strip().lstrip(".")
    return text[:120] or "student"


def sortable(name: str) -> str:
    """Canvas's sortable name in file names: "Liddell, Alice" -> "liddellalice"."""
    if "," in name:
        last, first = name.split(",", 1)
    else:
        parts = name.split()
        last, first = (parts[-1], " ".join(parts[:-1])) if len(parts) > 1 else (name, "")
    return re.sub(r"[^a-z0-9]", "", _ascii(last + first).lower()) or "student"


def _display(name: str) -> str:
    if "," in name:
        last, first = name.split(",", 1)
        return f"{first.strip()} {last.strip()}"
    return name


def target(e: Entry, naming: str) -> tuple[str, bool]:
    """``(name, is_prefix)`` for a student's feedback: a folder name, or (Canvas) a file-name
    prefix; the plain naming when the LMS id is unknown."""
    if naming == "canvas":
        uid = next((e.extra[k] for k in CANVAS_ID_KEYS if e.extra.get(k)), "") or (
            str(e.lms.get("lms_user_id", "")) if e.lms.get("layout") == "canvas" else "")
        if uid:
            subs = e.lms.get("lms_submission_ids") or ["0"]
            return f"{sortable(e.name or e.student_id)}_{safe_name(uid)}_{safe_name(subs[-1])}_", \
                True
    elif naming == "moodle":
        pid = next((e.extra[k] for k in MOODLE_ID_KEYS if e.extra.get(k)), "") or (
            str(e.lms.get("lms_user_id", "")) if e.lms.get("layout") == "moodle" else "")
        if pid:
            full = safe_name(_display(e.name or e.student_id))
            return f"{full}_{safe_name(pid)}_assignsubmission_file_", False
    return safe_name(e.student_id), False


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    zf.writestr(info, data)


def release(rows: Sequence[Entry], out: Path | str, *, audience: str = "student",
            naming: str = "plain", zip_each: bool = False) -> tuple[list[Path], dict[str, str]]:
    """Write every student's feedback under ``out``; returns the paths written and the students
    who fell back to the plain naming (id -> why)."""
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    fallback: dict[str, str] = {}
    flat: list[tuple[str, bytes]] = []  # Canvas files, zipped together with zip_each
    seen: set[str] = set()
    for e in rows:
        name, prefix = target(e, naming)
        if naming != "plain" and name == safe_name(e.student_id) and not prefix:
            fallback[e.student_id] = f"no {naming} id for this student: named by student id"
        if name in seen:  # two students with the same safe name: keep both
            name = f"{name}{safe_name(e.student_id)}_"
        seen.add(name)
        with tempfile.TemporaryDirectory() as tmp:
            files = write_reports(e.result, tmp, audience=audience)
            blobs = {p.name: p.read_bytes() for p in files}
        if prefix:
            for fname, data in sorted(blobs.items()):
                if zip_each:
                    flat.append((name + fname, data))
                else:
                    path = out / (name + fname)
                    path.write_bytes(data)
                    written.append(path)
        elif zip_each:
            path = out / f"{name}.zip"
            with zipfile.ZipFile(path, "w") as zf:
                for fname, data in sorted(blobs.items()):
                    _add(zf, f"{name}/{fname}", data)
            written.append(path)
        else:
            folder = out / name
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            for fname, data in sorted(blobs.items()):
                (folder / fname).write_bytes(data)
                written.append(folder / fname)
    if flat:
        path = out / "feedback.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for fname, data in sorted(flat):
                _add(zf, fname, data)
        written.append(path)
    return written, fallback
