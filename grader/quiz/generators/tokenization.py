"""Generators for BPE tokenisation: the first merge, the token count after it, vocabulary size."""

from __future__ import annotations

import random
from collections import Counter

from ..answers import format_number
from ..model import Mistake, Tolerance
from .registry import Generated, generator

_LETTERS = "abcdeghilnorstuw"


def _bpe_corpus(rng: random.Random) -> tuple[dict[str, int], tuple[str, str], int]:
    """A tiny corpus (word → count) whose most frequent adjacent pair is unique."""
    while True:
        alphabet = rng.sample(_LETTERS, rng.randint(4, 5))
        words: dict[str, int] = {}
        while len(words) < rng.randint(3, 5):
            length = rng.randint(2, 5)
            w = [rng.choice(alphabet)]
            while len(w) < length:
                c = rng.choice(alphabet)
                if c != w[-1]:  # no doubled letters: pair counts are then unambiguous
                    w.append(c)
            words.setdefault("".join(w), rng.randint(1, 7))
        pairs = bpe_pair_counts(words)
        (best, top), *rest = pairs.most_common()
        if not rest or rest[0][1] < top:
            return words, best, top


def bpe_pair_counts(words: dict[str, int]) -> Counter:
    """Adjacent symbol pairs of a corpus (word → count), weighted by the word counts."""
    pairs: Counter = Counter()
    for w, c in words.items():
        for a, b in zip(w, w[1:], strict=False):
            pairs[(a, b)] += c
    return pairs


def bpe_merge_word(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """One word's symbols after merging ``pair`` left to right."""
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def _show_corpus(words: dict[str, int]) -> str:
    return "\n".join(f"  {w} ×{c}" for w, c in words.items())


def _pair_steps(words: dict[str, int]) -> list[str]:
    pairs = bpe_pair_counts(words).most_common(3)
    return ["top pair counts: " + ", ".join(f"'{a}{b}' {n}" for (a, b), n in pairs)]


@generator("bpe_first_merge", kind="text", variables=("corpus", "count"))
def bpe_first_merge(rng: random.Random, opts: dict) -> Generated:
    """The first BPE merge of a random tiny corpus."""
    words, (a, b), top = _bpe_corpus(rng)
    return Generated(
        vars={"corpus": _show_corpus(words), "count": top},
        kind="text",
        accepted=[a + b, f"{a} {b}", f"{a} + {b}", f"{a}+{b}", f"({a}, {b})"],
        display=f"'{a}' + '{b}' → '{a}{b}' ({top} occurrences)",
        hint="Count every adjacent pair inside each word, weighting by how often the word occurs.",
        steps=_pair_steps(words) + [f"the most frequent pair is '{a}' + '{b}' ({top} times): "
                                    f"merge it into '{a}{b}'"],
    )


@generator("bpe_tokens_after_merge", kind="numeric",
           variables=("corpus", "before", "pair", "merged"))
def bpe_tokens_after_merge(rng: random.Random, opts: dict) -> Generated:
    """Total token count of a tiny corpus after its first BPE merge."""
    words, pair, top = _bpe_corpus(rng)
    before = sum(len(w) * c for w, c in words.items())
    after = sum(len(bpe_merge_word(list(w), pair)) * c for w, c in words.items())
    per_word = ", ".join(f"{w}: {len(bpe_merge_word(list(w), pair))} × {c}"
                         for w, c in words.items())
    return Generated(
        vars={"corpus": _show_corpus(words), "before": before, "pair": f"'{pair[0]}' + '{pair[1]}'",
              "merged": pair[0] + pair[1]},
        value=after,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=f"{after} tokens",
        mistakes=[Mistake(before, "That is the count before the merge: each merge of the pair "
                          "replaces two tokens by one.")],
        hint="Each occurrence of the merged pair turns two tokens into one.",
        steps=[f"before: {before} tokens", f"the pair occurs {top} times: {before} − {top} = "
               f"{before - top}", f"(word by word: {per_word}) = {after} tokens"],
    )


@generator("bpe_vocab_size", kind="numeric", variables=("base", "base_text", "merges", "special"))
def bpe_vocab_size(rng: random.Random, opts: dict) -> Generated:
    """Vocabulary size = base symbols + merges + special tokens."""
    base, base_text = rng.choice([(256, "the 256 byte values"), (65, "65 characters"),
                                  (100, "100 characters")])
    merges = rng.choice([1000, 5000, 10000, 30000, 32000, 50000, 100000])
    special = rng.choice([0, 1, 1, 2, 4])
    value = base + merges + special
    mistakes = [Mistake(merges, "The base symbols stay in the vocabulary: add them.")]
    if special:
        mistakes.append(Mistake(base + merges, "Count the special tokens too."))
    return Generated(
        vars={"base": base, "base_text": base_text, "merges": f"{merges:,}", "special": special},
        value=value,
        unit="count",
        tolerance=Tolerance(abs=0.5, rel=0),
        display=format_number(value),
        mistakes=mistakes,
        hint="Each merge adds one token; the starting symbols are never removed.",
        steps=[f"{base} base symbols + {merges:,} merges + {special} special = "
               f"{format_number(value)}"],
    )
