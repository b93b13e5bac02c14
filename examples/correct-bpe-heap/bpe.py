"""A second correct BPE, in another style: a heap of pair counts updated incrementally while
training, merges replayed in table order when encoding, GPT-2's BPE over a rank table of joined
strings. It must get full marks, like examples/correct/bpe.py."""

import heapq
import json
from collections import Counter, defaultdict

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PAT = regex.compile(GPT2_PATTERN)


def pretokenize(text):
    return _PAT.findall(text)


def _merge(ids, pair, new_id):
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text, vocab_size):
    if vocab_size < 256:
        raise ValueError("vocab_size must be >= 256")
    words = [[list(w), n] for w, n in Counter(p.encode() for p in pretokenize(text)).items()]
    counts = defaultdict(int)
    where = defaultdict(set)
    for wi, (ids, n) in enumerate(words):
        for p in zip(ids, ids[1:]):
            counts[p] += n
            where[p].add(wi)
    # (-count, pair): the most frequent first, and among equal counts the smallest pair.
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(merges) < vocab_size - 256:
        negative, pair = heapq.heappop(heap)
        current = counts.get(pair, 0)
        if current <= 0:
            continue
        if -negative != current:  # a stale entry: counts only fall for existing pairs
            heapq.heappush(heap, (-current, pair))
            continue
        new_id = 256 + len(merges)
        merges.append(pair)
        touched = set()
        for wi in list(where[pair]):
            ids, n = words[wi]
            for p in zip(ids, ids[1:]):
                counts[p] -= n
                touched.add(p)
            ids = _merge(ids, pair, new_id)
            words[wi][0] = ids
            for p in zip(ids, ids[1:]):
                counts[p] += n
                where[p].add(wi)
                touched.add(p)
        for p in touched:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
    return merges


def build_vocab(merges):
    table = [bytes([b]) for b in range(256)]
    for a, b in merges:
        table.append(table[a] + table[b])
    return dict(enumerate(table))


def encode(text, merges):
    out = []
    cache = {}
    for piece in pretokenize(text):
        if piece not in cache:
            ids = list(piece.encode())
            # Replaying the merges in table order is the same as always merging the
            # lowest-ranked pair present: a merge's new id only appears in later merges.
            for rank, pair in enumerate(merges):
                if len(ids) < 2:
                    break
                ids = _merge(ids, tuple(pair), 256 + rank)
            cache[piece] = ids
        out += cache[piece]
    return out


def decode(ids, merges):
    vocab = build_vocab(merges)
    buf = bytearray()
    for i in ids:
        if i not in vocab:
            raise ValueError(f"unknown id {i}")
        buf += vocab[i]
    return buf.decode("utf-8", errors="replace")


def bytes_to_unicode():
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    table = {b: chr(b) for b in printable}
    k = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + k)
            k += 1
    return table


class GPT2Tokenizer:
    def __init__(self, encoder, bpe_merges):
        self.encoder = encoder
        self.decoder = {i: s for s, i in encoder.items()}
        self.to_char = bytes_to_unicode()
        self.to_byte = {c: b for b, c in self.to_char.items()}
        # Rank by the pair's two strings joined with a space (they never hold a space).
        self.rank = {f"{a} {b}": r for r, (a, b) in enumerate(bpe_merges)}
        self.memo = {}

    @classmethod
    def from_files(cls, encoder_json, vocab_bpe):
        with open(encoder_json, encoding="utf-8") as f, open(vocab_bpe, encoding="utf-8") as g:
            return gpt2_tokenizer(f.read(), g.read())

    def _pieces(self, word):
        if word in self.memo:
            return self.memo[word]
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for i in range(len(parts) - 1):
                r = self.rank.get(parts[i] + " " + parts[i + 1])
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (parts[i], parts[i + 1]), r
            if best is None:
                break
            joined, i, out = best[0] + best[1], 0, []
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        self.memo[word] = parts
        return parts

    def encode(self, text):
        ids = []
        for piece in pretokenize(text):
            word = "".join(self.to_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[p] for p in self._pieces(word))
        return ids

    def decode(self, ids):
        data = bytearray()
        for i in ids:
            data.extend(self.to_byte[c] for c in self.decoder[i])
        return data.decode("utf-8", errors="replace")


def gpt2_tokenizer(encoder_json, vocab_bpe):
    encoder = json.loads(encoder_json)
    lines = vocab_bpe.split("\n")[1:]
    return GPT2Tokenizer(encoder, [tuple(line.split()) for line in lines if line.strip()])
