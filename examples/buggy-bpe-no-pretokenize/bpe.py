"""Byte-level BPE: train a merge table on a text, encode and decode with it, and GPT-2's own
tokenizer built from its files ``encoder.json`` and ``vocab.bpe`` (reference solution).

"The merge table IS the tokenizer": training learns an ordered list of merges; encoding replays
them on new text, deterministically. Everything works on the UTF-8 BYTES of the text (256 base
tokens, ids 0-255), so any string can be encoded and nothing is ever "unknown". As in GPT-2, the
text is first split into pre-tokens (words with their leading space, numbers, punctuation,
whitespace) by ``GPT2_PATTERN``, and no merge ever crosses two pre-tokens.
"""

import json

import regex

# GPT-2's pre-tokenisation pattern (openai/gpt-2, src/encoder.py): contractions, a word with its
# optional leading space, a number, a run of other symbols, whitespace. Needs the `regex`
# package (Python's `re` has no \p{L}).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# The first id a merge gets: ids 0..255 are the bytes.
FIRST_MERGE_ID = 256


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2's pre-tokens, in order (``regex.findall(GPT2_PATTERN, text)``).

    ``"Hello world's 42!!"`` -> ``["Hello", " world", "'s", " 42", "!!"]``. The pieces joined
    give ``text`` back. BPE merges happen only inside a pre-token.
    """
    return [text] if text else []


def train_bpe(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """Learn a byte-level BPE merge table from ``text``.

    1. Split ``text`` with :func:`pretokenize`; each pre-token becomes the list of its UTF-8
       bytes (ids 0-255).
    2. Count every adjacent pair of ids inside each pre-token (never across two pre-tokens).
       Pairs overlap: ``[97, 97, 97]`` holds the pair ``(97, 97)`` twice.
    3. Merge the most frequent pair. **Ties** (several pairs with the same highest count) go to
       the SMALLEST pair, comparing the first id, then the second, as numbers: ``(32, 116)``
       before ``(101, 32)`` before ``(101, 114)``. Not the pair seen first, not a random one.
    4. Merge number ``i`` (0-based) creates the new id ``256 + i``: replace every occurrence of
       the pair in every pre-token by it, scanning left to right without overlap
       (``[97, 97, 97]`` -> ``[256, 97]``), and record the pair.
    5. Repeat from 2 until there are ``vocab_size - 256`` merges, or no pre-token has two ids
       left (then stop early: the table is shorter).

    Args:
        text: the training text (any ``str``).
        vocab_size: the size of the final vocabulary, ``>= 256`` (256 bytes + the merges).

    Returns:
        The merges in the order they were made: a list of pairs ``(a, b)`` of ids; the pair at
        index ``i`` produced the id ``256 + i``.

    Raises:
        ValueError: if ``vocab_size < 256``.
    """
    if vocab_size < FIRST_MERGE_ID:
        raise ValueError(f"vocab_size must be at least 256 (the bytes), got {vocab_size}")
    # Identical pre-tokens merge identically: keep each once, with how often it occurs.
    words: dict[tuple[int, ...], int] = {}
    for piece in pretokenize(text):
        key = tuple(piece.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    chunks = [(list(w), n) for w, n in words.items()]
    merges: list[tuple[int, int]] = []
    while len(merges) < vocab_size - FIRST_MERGE_ID:
        counts: dict[tuple[int, int], int] = {}
        for ids, n in chunks:
            for pair in zip(ids, ids[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + n
        if not counts:
            break
        # The highest count; among equal counts the smallest pair (hence the minus sign).
        pair = min(counts, key=lambda p: (-counts[p], p))
        new_id = FIRST_MERGE_ID + len(merges)
        chunks = [(merge(ids, pair, new_id), n) for ids, n in chunks]
        merges.append(pair)
    return merges


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` replaced by ``new_id``, left to right, without
    overlap: ``merge([97, 97, 97], (97, 97), 256) == [256, 97]``."""
    out: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def build_vocab(merges: list[tuple[int, int]]) -> dict[int, bytes]:
    """The vocabulary of a merge table: every id -> the bytes it stands for.

    Ids 0-255 are the single bytes (``vocab[32] == b" "``); merge ``i``, the pair ``(a, b)``,
    gives ``vocab[256 + i] == vocab[a] + vocab[b]``. So ``len(vocab) == 256 + len(merges)``.
    """
    vocab = {i: bytes([i]) for i in range(FIRST_MERGE_ID)}
    for i, (a, b) in enumerate(merges):
        vocab[FIRST_MERGE_ID + i] = vocab[a] + vocab[b]
    return vocab


def encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Encode ``text`` with a merge table made by :func:`train_bpe`.

    Split with :func:`pretokenize`; in each pre-token, start from its UTF-8 bytes and, while
    some adjacent pair is in the table, merge the pair that comes EARLIEST in the table (the
    lowest index, i.e. the first learned) everywhere in the pre-token, left to right, into its
    id ``256 + index``. This replays training's merges in their order. It is NOT "merge the
    pair most frequent in this text": the table's order decides, not the text's counts.

    Args:
        text: any ``str`` (``""`` gives ``[]``).
        merges: the merge table, as :func:`train_bpe` returns it.

    Returns:
        The token ids, a list of ints.
    """
    ranks = {tuple(pair): i for i, pair in enumerate(merges)}
    out: list[int] = []
    for piece in pretokenize(text):
        ids = list(piece.encode("utf-8"))
        while len(ids) >= 2:
            pairs = set(zip(ids, ids[1:], strict=False))
            best = min(pairs, key=lambda p: ranks.get(p, len(ranks)))
            if best not in ranks:
                break
            ids = merge(ids, best, FIRST_MERGE_ID + ranks[best])
        out.extend(ids)
    return out


def decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """The text of token ids: the bytes of every id (:func:`build_vocab`) joined, THEN decoded
    from UTF-8 once, for the whole sequence.

    A character may be split across tokens (an emoji is 4 bytes), so decode the joined bytes,
    never token by token. Bytes that are not valid UTF-8 (e.g. ids ``[255]`` or the first byte
    of "é" alone) become U+FFFD ("�"), exactly as ``bytes.decode("utf-8", errors="replace")``
    does. So ``decode(encode(s, m), m) == s`` for every ``str`` ``s``.

    Raises:
        ValueError: for an id that is not in the vocabulary.
    """
    vocab = build_vocab(merges)
    try:
        data = b"".join(vocab[i] for i in ids)
    except KeyError as exc:
        raise ValueError(f"unknown token id {exc.args[0]}") from None
    return data.decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------- GPT-2's files


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte to the character that stands for it in ``encoder.json``
    and ``vocab.bpe`` (given: it is GPT-2's own, ``openai/gpt-2`` ``src/encoder.py``).

    Printable bytes stand for themselves (``"a"`` is byte 97); the others, the space among them,
    are shifted to characters from 256 on, so that a file line never holds a space or a control
    character: byte 32 (space) is ``"Ġ"`` (U+0120), byte 10 (newline) is ``"Ċ"``. A token of the
    files such as ``"Ġthe"`` is therefore the bytes ``b" the"``.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


class GPT2Tokenizer:
    """GPT-2's byte-level BPE tokenizer, token for token (what ``tiktoken``'s ``gpt2`` encoding
    gives for ordinary text).

    Build it from GPT-2's two files (see :meth:`from_files`):

    - ``encoder``: ``encoder.json``, each token (written with :func:`bytes_to_unicode`'s
      characters, e.g. ``"Ġthe"``) -> its id (0 to 50256; 50256 is ``"<|endoftext|>"``);
    - ``bpe_merges``: the lines of ``vocab.bpe`` after its first (``#version``) line, each
      split into a pair of strings: ``[("Ġ", "t"), ("Ġ", "a"), ...]``, in rank order (rank 0
      is merged first).

    To encode: split the text with ``GPT2_PATTERN``; write each pre-token's UTF-8 bytes as
    :func:`bytes_to_unicode` characters; merge, while any adjacent pair is in ``bpe_merges``,
    the pair of LOWEST rank (everywhere in the pre-token, left to right); look each resulting
    string up in ``encoder``. Special tokens are not recognised in the text: ``"<|endoftext|>"``
    in a text is encoded as ordinary characters (like tiktoken's ``encode_ordinary``).
    """

    def __init__(self, encoder: dict[str, int], bpe_merges: list[tuple[str, str]]):
        self.encoder = dict(encoder)
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.bpe_ranks = {tuple(pair): i for i, pair in enumerate(bpe_merges)}
        self.cache: dict[str, list[str]] = {}

    @classmethod
    def from_files(cls, encoder_json: str, vocab_bpe: str) -> "GPT2Tokenizer":
        """The tokenizer of GPT-2's files ``encoder.json`` and ``vocab.bpe`` (paths). Given."""
        with open(encoder_json, encoding="utf-8") as f, open(vocab_bpe, encoding="utf-8") as g:
            return gpt2_tokenizer(f.read(), g.read())

    def encode(self, text: str) -> list[int]:
        """GPT-2's token ids of ``text`` (``""`` gives ``[]``)."""
        ids: list[int] = []
        for piece in pretokenize(text):
            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[token] for token in self._bpe(word))
        return ids

    def _bpe(self, word: str) -> list[str]:
        """The BPE pieces of one pre-token (written in bytes_to_unicode's characters)."""
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) >= 2:
            pairs = set(zip(parts, parts[1:], strict=False))
            best = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if best not in self.bpe_ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def decode(self, ids: list[int]) -> str:
        """The text of GPT-2 token ids: every token's bytes joined, then decoded from UTF-8 with
        ``errors="replace"`` (as :func:`decode`); ``50256`` is ``"<|endoftext|>"``."""
        text = "".join(self.decoder[i] for i in ids)
        return bytes(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace")


def gpt2_tokenizer(encoder_json: str, vocab_bpe: str) -> GPT2Tokenizer:
    """A :class:`GPT2Tokenizer` from the CONTENTS (the text) of GPT-2's ``encoder.json`` and
    ``vocab.bpe``. Given: this is how the grader builds your tokenizer."""
    encoder = json.loads(encoder_json)
    lines = vocab_bpe.split("\n")[1:]  # the first line is "#version: 0.2"
    return GPT2Tokenizer(encoder, [tuple(line.split()) for line in lines if line.strip()])
