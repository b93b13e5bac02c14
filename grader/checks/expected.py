"""The one seam through which checks get their inputs and the reference's outputs.

On the instructor's side, :class:`LiveReference` makes inputs with the check's seeded function and
computes expected outputs by calling ``reference/`` in the grader's own process (never in the
worker). A student bundle carries no reference code: there, :class:`StoredFixtures` reads the same
inputs and outputs from a safetensors file written at release time by a :class:`LiveReference`
with ``record=True``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

FIXTURE_FILE = "fixtures.safetensors"
_SEP = "::"


class FixtureMissing(LookupError):
    """The fixtures hold no entry for a key (the bundle is older than the grader, or the check
    is hidden and was never released)."""


class ExpectedSource(Protocol):
    kind: str

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


class LiveReference:
    """Expected values from the reference implementation, computed now."""

    kind = "live"

    def __init__(self, package: str = "reference", record: bool = False):
        self._package_name = package
        self._package = None
        self._cache: dict[str, dict[str, torch.Tensor]] = {}
        self.record = record
        self.recorded: dict[str, torch.Tensor] = {}
        self._reads: dict[str, set[str]] = {}

    @property
    def package(self) -> Any:
        if self._package is None:
            self._package = importlib.import_module(self._package_name)
        return self._package

    def inputs(self, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return self._get("in/" + key, make)

    def expected(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return self._get("out/" + key, lambda: _with_reference_defaults(compute, self.package))

    def _get(self, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, torch.Tensor]:
        if key not in self._cache:
            self._cache[key] = _as_tensors(key, make())
            if self.record:
                for name, t in self._cache[key].items():
                    self.recorded[f"{key}{_SEP}{name}"] = t
        values = {k: v.clone() for k, v in self._cache[key].items()}
        return _Reads(values, self._reads.setdefault(key, set())) if self.record else values

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
        save_file(dict(sorted(kept.items())), str(path))
        return path


class StoredFixtures:
    """Expected values read from fixtures made at release time; never runs reference code."""

    kind = "fixtures"

    def __init__(self, directory: Path):
        from safetensors.torch import load_file

        self.path = Path(directory) / FIXTURE_FILE
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
