"""Pairs of submissions whose code is alike: something for a human to look at, never a verdict.

Computed with ``copydetect`` (winnowed k-gram fingerprints of the tokenised code, the method of
MOSS): for every graded module (``attention.py``, ...), every pair of students who submitted it
is compared; the released stub of the module (``assignments/<module>``) is *boilerplate*, so
the starter code that everyone shares does not count. A pair is flagged when the share of
either file's tokens found in the other is at least ``threshold``. Short, tightly specified
functions are alike by nature: a flag is a reason to read both files, side by side, and no more.
"""

from __future__ import annotations

import html
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

K, WINDOW = 25, 1  # copydetect's defaults for its command line (noise threshold, guarantee)


@dataclass
class Pair:
    module: str
    a: str
    b: str
    similarity: float  # the larger of the two shares
    shares: tuple[float, float]
    tokens: int
    slices: tuple[list[tuple[int, int]], list[tuple[int, int]]] = field(repr=False,
                                                                         default=((), ()))
    code: tuple[str, str] = field(repr=False, default=("", ""))

    @property
    def page(self) -> str:
        return f"pairs/{_slug(self.module)}--{_slug(self.a)}--{_slug(self.b)}.html"


@dataclass
class Similarity:
    pairs: list[Pair]  # flagged, most alike first
    compared: dict[str, int]  # module -> number of files compared
    note: str = ""  # why nothing was computed, when so


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def available() -> bool:
    try:
        import copydetect  # noqa: F401
    except ImportError:
        return False
    return True


def compare(files: dict[str, dict[str, Path]], boilerplate: dict[str, Path], *,
            threshold: float = 0.6, min_tokens: int = 40) -> Similarity:
    """``files``: module -> student id -> the student's file; ``boilerplate``: module -> its
    released stub. Pairs sharing fewer than ``min_tokens`` tokens are never flagged."""
    if not available():
        return Similarity([], {}, "copydetect is not installed (pip install copydetect): no "
                                  "similarity was computed")
    from copydetect import CodeFingerprint, compare_files

    pairs: list[Pair] = []
    compared: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copydetect warns on empty overlaps
        for module in sorted(files):
            stub = boilerplate.get(module)
            base = []
            if stub is not None and stub.is_file():
                base = sorted(CodeFingerprint(str(stub), K, WINDOW, language="python").hashes)
            prints = {}
            for sid in sorted(files[module]):
                path = files[module][sid]
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                    prints[sid] = CodeFingerprint(str(path), K, WINDOW, boilerplate=base,
                                                  language="python", fp=io.StringIO(text))
                except Exception:  # noqa: BLE001 - an unreadable file is not compared
                    continue
            compared[module] = len(prints)
            ids = sorted(prints)
            for i, a in enumerate(ids):
                for b in ids[i + 1:]:
                    tokens, shares, slices = compare_files(prints[a], prints[b])
                    sim = max(float(shares[0]), float(shares[1]))
                    if tokens < min_tokens or sim < threshold:
                        continue
                    pairs.append(Pair(
                        module, a, b, round(sim, 4),
                        (round(float(shares[0]), 4), round(float(shares[1]), 4)), int(tokens),
                        (_spans(slices[0]), _spans(slices[1])),
                        (prints[a].raw_code, prints[b].raw_code)))
    pairs.sort(key=lambda p: (-p.similarity, p.module, p.a, p.b))
    return Similarity(pairs, compared)


def _spans(s) -> list[tuple[int, int]]:
    if getattr(s, "shape", (0,))[0] == 0 or len(s[0]) == 0:
        return []
    return sorted((int(a), int(b)) for a, b in zip(s[0], s[1], strict=True))


def highlighted(code: str, spans: list[tuple[int, int]]) -> str:
    """``code`` as escaped HTML with the shared spans in ``<mark>``."""
    out, pos = [], 0
    for start, end in spans:
        start, end = max(start, pos), max(end, pos)
        out.append(html.escape(code[pos:start]))
        out.append("<mark>" + html.escape(code[start:end]) + "</mark>")
        pos = end
    out.append(html.escape(code[pos:]))
    return "".join(out)


def find_files(student_ids: list[str], modules: dict[str, str], roots: list[Path],
               folders: dict[str, Path] | None = None) -> dict[str, dict[str, Path]]:
    """module -> student -> file: the student's own folder first (``folders``: where the batch
    found it), then ``<root>/<student>/<module file>`` in each root (the class folder, the
    run's staged copies)."""
    out: dict[str, dict[str, Path]] = {}
    folders = folders or {}
    for sid in student_ids:
        candidates = ([folders[sid]] if sid in folders else []) + [r / sid for r in roots]
        for module, source in modules.items():
            for folder in candidates:
                path = folder / source
                if path.is_file() and path.suffix == ".py":
                    out.setdefault(module, {})[sid] = path
                    break
    return out
