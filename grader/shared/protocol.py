"""The wire format between the grader and its worker: JSON for data, safetensors for tensors.

A frame is ``MAGIC | u32 json length | u64 blob length | JSON (UTF-8) | safetensors blob``. Nothing
on either side ever unpickles or executes what it reads, so a hostile worker can at worst send
wrong numbers, which the trusted side then judges.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

MAGIC = b"GRW1"
_HEADER = struct.Struct("<4sIQ")
HEADER_SIZE = _HEADER.size


class ProtocolError(Exception):
    """A frame that is malformed or larger than allowed."""


def encode_tensors(tensors: dict[str, Any]) -> bytes:
    """Serialise a flat ``name -> tensor`` dict with safetensors (empty dict -> empty bytes)."""
    if not tensors:
        return b""
    from safetensors.torch import save

    # safetensors refuses shared or non-contiguous storage; a detached contiguous copy is the data.
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})


def decode_tensors(blob: bytes) -> dict[str, Any]:
    """The inverse of :func:`encode_tensors`."""
    if not blob:
        return {}
    from safetensors.torch import load

    try:
        return load(blob)
    except Exception as exc:  # safetensors raises its own error types for corrupt data
        raise ProtocolError(f"corrupt tensor payload: {exc}") from exc


def pack(message: dict[str, Any], tensors: dict[str, Any] | None = None) -> bytes:
    """One frame holding ``message`` (JSON-able) and ``tensors``."""
    body = json.dumps(message, allow_nan=True).encode()
    blob = encode_tensors(tensors or {})
    return _HEADER.pack(MAGIC, len(body), len(blob)) + body + blob


def parse_header(header: bytes, max_bytes: int) -> tuple[int, int]:
    """Lengths of the JSON and tensor parts announced by a header, checked against ``max_bytes``."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError("truncated frame header")
    magic, n_json, n_blob = _HEADER.unpack(header)
    if magic != MAGIC:
        raise ProtocolError("bad frame header (the worker's output channel was written to)")
    if n_json + n_blob > max_bytes:
        raise ProtocolError(
            f"reply of {n_json + n_blob:,} bytes exceeds the limit of {max_bytes:,} bytes"
        )
    return n_json, n_blob


def unpack_body(body: bytes, blob: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode the two parts of a frame."""
    try:
        message = json.loads(body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"corrupt JSON payload: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("a frame's JSON part must be an object")
    return message, decode_tensors(blob)


def read_frame(stream: IO[bytes], max_bytes: int = 2**31) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read one frame from a blocking binary stream (used inside the worker)."""
    header = _read_exactly(stream, HEADER_SIZE)
    n_json, n_blob = parse_header(header, max_bytes)
    return unpack_body(_read_exactly(stream, n_json), _read_exactly(stream, n_blob))


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("stream closed mid-frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
