"""The one seam through which checks get their inputs and the reference's outputs.

On the instructor's side, :class:`LiveReference` makes inputs with the check's function and
computes expected outputs by calling ``reference/`` in the grader's own process (never in the
worker). A student bundle carries no reference code: there, :class:`StoredFixtures` reads the same
kind of inputs and outputs from a safetensors file written at release time by a
:class:`LiveReference` with ``record=True``.

**Seeds.** Every source has one ``seed``, and a check's inputs are drawn from a generator derived
from ``(seed, key)`` (:func:`derive_seed`). A release records its fixtures with the public seed
:data:`PUBLIC_SEED`; live grading draws a fresh secret seed per grading run (recorded in the
results' ``environment["seed"]``; ``grader run --seed N`` reproduces a verdict), so the bundle's
fixtures serve only the student's self-check and outputs looked up by input from them are worth
nothing when the instructor grades. One seed per run lets a whole batch share reference work:
outputs are cached per ``(seed, key)`` in the process and, with ``cache_dir``, on disk under a
fingerprint of the reference's and the checks' code (a changed check or reference never reads a
stale value).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

FIXTURE_FILE = "fixtures.safetensors"
_SEP = "::"
# The seed of the released fixtures: public by design (the bundle carries its inputs anyway).
PUBLIC_SEED = 0
_GRADER = Path(__file__).resolve().parents[1]  # the grader package: its checks and diagnosis


def new_secret_seed() -> int:
    """A fresh seed for one grading run: unpredictable, never the public one."""
    while True:
        seed = secrets.randbits(48)
        if seed != PUBLIC_SEED:
            return seed


def derive_seed(seed: int, key: str) -> int:
    """The seed of one check's inputs: a hash of the run's seed and the input's key, so that
    each key gets independent numbers and no check hard-codes a seed of its own."""
    digest = hashlib.sha256(f"{int(seed)}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, key: str) -> torch.Generator:
    """A CPU generator for ``key``'s inputs under ``seed``: the same numbers on every machine."""
    return torch.Generator().manual_seed(derive_seed(seed, key))


class FixtureMissing(LookupError):
    """The fixtures hold no entry for a key (the bundle is older than the grader, or the check
    is hidden and was never released)."""


class ExpectedSource(Protocol):
    """Where inputs and expected values come from. ``seed`` is the run's seed; ``make`` may take
    one argument, a generator seeded from ``(seed, key)`` (:func:`generator`)."""

    kind: str
    seed: int

    def inputs(self, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]: ...

    def expected(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> dict[str, Any]: ...


def _as_tensors(key: str, values: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for name, v in values.items():
        if not isinstance(v, torch.Tensor):
            v = torch.tensor(v)
        # A private copy: tied weights must not share storage in a fixture file, and a check
        # must not be able to change a cached value in place.
        out[name] = v.detach().cpu().contiguous().clone()
    if any(_SEP in name for name in out):
        raise ValueError(f"fixture names may not contain {_SEP!r} ({key})")
    return out


class _Reads(dict):
    """The values of one key, noting which of them the checks read (while recording a release:
    a name that no check reads, of a key whose other names are read, is left out of the
    fixtures; e.g. gradients that only a hidden check compares). Anything that walks the whole
    dict (iteration, ``items()``, ``dict(d)``, ``{**d}``) counts as reading every name."""

    def __init__(self, values: dict[str, torch.Tensor], seen: set[str]):
        super().__init__(values)
        self._seen = seen

    def __getitem__(self, name: str) -> torch.Tensor:
        self._seen.add(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._seen.add(name)
        return super().get(name, default)

    def pop(self, name: str, *default: Any) -> Any:
        self._seen.add(name)
        return super().pop(name, *default)

    def _every(self) -> None:
        self._seen.update(dict.keys(self))

    def __iter__(self):
        self._every()
        return super().__iter__()

    def keys(self):
        self._every()
        return super().keys()

    def items(self):
        self._every()
        return super().items()

    def values(self):
        self._every()
        return super().values()

    def copy(self) -> dict[str, torch.Tensor]:
        self._every()
        return dict(dict.items(self))


class _Stored(dict):
    """The values of one stored key: a name that was not released is a missing fixture."""

    def __init__(self, values: dict[str, torch.Tensor], key: str, path: Path):
        super().__init__(values)
        self._key, self._path = key, path

    def __missing__(self, name: str) -> torch.Tensor:
        raise FixtureMissing(f"no fixture for {self._key!r} / {name!r} in {self._path}")


def _call_make(make: Callable[..., dict[str, Any]], seed: int, key: str) -> dict[str, Any]:
    """``make(generator)`` when ``make`` takes a required argument, else ``make()`` (inputs that
    need no randomness, or a check that seeds its own)."""
    import inspect

    try:
        params = inspect.signature(make).parameters.values()
    except (TypeError, ValueError):
        return make()
    required = [p for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return make(generator(seed, key)) if required else make()


def fingerprint(package: Any) -> str:
    """A hash of everything a cached reference output depends on: the reference package's
    sources, the grader's checks and diagnosis (which make the inputs and run the computation),
    and the torch version."""
    h = hashlib.sha256(torch.__version__.encode())
    roots = [Path(package.__file__).parent, _GRADER / "checks", _GRADER / "diagnosis"]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:24]


class LiveReference:
    """Expected values from the reference implementation, computed now.

    ``seed``: the run's seed (default: the public seed when recording a release, else a fresh
    secret one). ``cache_dir``: where reference outputs are also kept across processes (e.g. the
    judging processes of one batch), under ``<fingerprint>/<seed>/``."""

    kind = "live"

    def __init__(self, package: str = "reference", record: bool = False, *,
                 seed: int | None = None, cache_dir: Path | str | None = None):
        self._package_name = package
        self._package = None
        self._cache: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        self.record = record
        self.seed = int(seed) if seed is not None else (
            PUBLIC_SEED if record else new_secret_seed())
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._fingerprint: str | None = None
        self.recorded: dict[str, torch.Tensor] = {}
        self._reads: dict[str, set[str]] = {}
        self.disk_hits = 0

    def with_seed(self, seed: int) -> LiveReference:
        """The same reference with another seed, sharing this one's caches (entries are kept
        per (seed, key), so the two never mix)."""
        other = LiveReference(self._package_name, self.record, seed=seed, cache_dir=self.cache_dir)
        other._package, other._cache, other._fingerprint = (self._package, self._cache,
                                                             self._fingerprint)
        return other

    @property
    def package(self) -> Any:
        if self._package is None:
            self._package = importlib.import_module(self._package_name)
        return self._package

    def inputs(self, key: str, make: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        return self._get("in/" + key, lambda: _call_make(make, self.seed, key))

    def expected(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return self._get("out/" + key, lambda: _with_reference_defaults(compute, self.package),
                         disk=True)

    def _get(self, key: str, make: Callable[[], dict[str, Any]], disk: bool = False
             ) -> dict[str, torch.Tensor]:
        slot = (self.seed, key)
        if slot not in self._cache:
            stored = self._read_disk(key) if disk else None
            self._cache[slot] = stored if stored is not None else _as_tensors(key, make())
            if disk and stored is None:
                self._write_disk(key, self._cache[slot])
            if self.record:
                for name, t in self._cache[slot].items():
                    self.recorded[f"{key}{_SEP}{name}"] = t
        values = {k: v.clone() for k, v in self._cache[slot].items()}
        return _Reads(values, self._reads.setdefault(key, set())) if self.record else values

    def _disk_path(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.package)
        name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".safetensors"
        return self.cache_dir / self._fingerprint / str(self.seed) / name

    def _read_disk(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != key:
                    return None  # a hash collision or a foreign file: recompute
                values = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed, never trusted
            return None
        self.disk_hits += 1
        return values

    def _write_disk(self, key: str, values: dict[str, torch.Tensor]) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: concurrent judging processes never read half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file(values, tmp, metadata={"key": key})
            os.chmod(tmp, 0o644)  # safetensors writes 0600: other judging uids read it too
            os.replace(tmp, path)
        except Exception:  # noqa: BLE001 - the cache is an optimisation; grading goes on
            Path(tmp).unlink(missing_ok=True)

    def save(self, directory: Path) -> Path:
        """Write everything recorded so far as fixtures (used by the release tool). Of a key
        whose values were read in part, only the names read are written."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FIXTURE_FILE
        kept = {}
        for full, tensor in self.recorded.items():
            key, name = full.split(_SEP, 1)
            read = self._reads.get(key)
            if not read or name in read:
                kept[full] = tensor
        save_file(dict(sorted(kept.items())), str(path), metadata={"seed": str(self.seed)})
        os.chmod(path, 0o644)  # safetensors writes 0600; a bundle is read by students and judges
        return path


class StoredFixtures:
    """Expected values read from fixtures made at release time; never runs reference code."""

    kind = "fixtures"

    def __init__(self, directory: Path):
        from safetensors import safe_open
        from safetensors.torch import load_file

        self.path = Path(directory) / FIXTURE_FILE
        with safe_open(str(self.path), framework="pt") as f:
            self.seed = int((f.metadata() or {}).get("seed", PUBLIC_SEED))
        flat = load_file(str(self.path))
        self._entries: dict[str, dict[str, torch.Tensor]] = {}
        for full, tensor in flat.items():
            key, name = full.split(_SEP, 1)
            self._entries.setdefault(key, {})[name] = tensor

    def inputs(self, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return self._get("in/" + key)

    def expected(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return self._get("out/" + key)

    def _get(self, key: str) -> dict[str, torch.Tensor]:
        if key not in self._entries:
            raise FixtureMissing(f"no fixture for {key!r} in {self.path}")
        return _Stored({k: v.clone() for k, v in self._entries[key].items()}, key, self.path)


def _with_reference_defaults(compute: Callable[[Any], dict[str, Any]], package: Any):
    # The reference runs in the grader's process: make sure a check's computation cannot be
    # disturbed by global state, and never builds an autograd graph it does not ask for.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        return compute(package)
    finally:
        torch.set_default_dtype(previous)
