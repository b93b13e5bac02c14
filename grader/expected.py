"""The one seam through which checks get their inputs and the reference's outputs.

On the instructor's side, :class:`LiveReference` makes inputs with the check's seeded function and
computes expected outputs by calling ``reference/`` in the grader's own process (never in the
worker). A student bundle carries no reference code: there, :class:`StoredFixtures` reads the same
inputs and outputs from a safetensors file written at release time by a :class:`LiveReference`
with ``record=True``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Protocol

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


class LiveReference:
    """Expected values from the reference implementation, computed now."""

    kind = "live"

    def __init__(self, package: str = "reference", record: bool = False):
        self._package_name = package
        self._package = None
        self._cache: dict[str, dict[str, torch.Tensor]] = {}
        self.record = record
        self.recorded: dict[str, torch.Tensor] = {}

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
        return {k: v.clone() for k, v in self._cache[key].items()}

    def save(self, directory: Path) -> Path:
        """Write everything recorded so far as fixtures (used by the release tool)."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FIXTURE_FILE
        save_file(dict(sorted(self.recorded.items())), str(path))
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
        return {k: v.clone() for k, v in self._entries[key].items()}


def _with_reference_defaults(compute: Callable[[Any], dict[str, Any]], package: Any):
    # The reference runs in the grader's process: make sure a check's computation cannot be
    # disturbed by global state, and never builds an autograd graph it does not ask for.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        return compute(package)
    finally:
        torch.set_default_dtype(previous)
