"""The texts the BPE checks use, carried through the expected-value seam as UTF-8 bytes
(fixtures hold tensors only).

The training texts are made from small word lists with the standard library's generator, seeded
from the grading run's seed (``ctx.inputs`` hands the checks a generator); the GPT-2 corpus
covers what a tokenizer gets wrong first: code, numbers, runs of whitespace, emoji (with skin
tones and flags: several code points, many bytes), contractions, other scripts, combining marks
and a special token written as text, plus a seeded mix of all of these.
"""

from __future__ import annotations

import random

import torch

ENGLISH = ["the", "then", "there", "these", "other", "hello", "world", "lower", "lowest",
           "newer", "newest", "widest", "token", "tokens", "merge", "merged", "merges", "table",
           "byte", "pair", "pairs", "encode", "encoding", "decoding", "don't", "it's", "we'll",
           "in", "ing", "tion", "nation", "station", "42", "2026", "3.14"]
UNICODE = ["café", "naïve", "résumé", "日本語", "中文", "Привет", "мир", "🤖", "👍🏽", "🎉🎉",
           "❤️", "e\u0301", "Ω", "ß", "straße", "ﬁ", "𝔘𝔫𝔦", "tschüß", "the", "a"]
RUNS = ["aaaa", "aaaaaaaa", "ab", "abab", "ababab", "0000", "1111", "zz", "  ", "a", "b"]
SEPARATORS = [" "] * 8 + [", ", ". ", "\n", "  ", "!\n", " - "]

# Between held-out words: no runs of spaces, so that a table learned with pre-tokens encodes the
# same with or without them (what the encode check grades is the order of the merges).
HELDOUT_SEPARATORS = [" "] * 8 + [", ", ". ", "\n", "!\n", " - "]

# (name, words, number of words, vocab_size): the training cases of train_merges; each text is
# drawn from the grading run's seed (ctx.inputs).
TRAIN_CASES = [
    ("english", ENGLISH, 160, 256 + 48),
    ("unicode", UNICODE, 90, 256 + 40),
    ("runs", RUNS, 120, 256 + 24),
]
# A text whose first merge is a tie of three pairs (each twice), where the pair seen first is
# not the smallest; later merges tie again. vocab_size leaves room for every merge it has.
TIE_TEXT = "ba ba ab ab cd dc cd dc"
TIE_VOCAB = 256 + 12

# Strings that decode(encode(s)) must give back exactly.
ROUNDTRIP_FIXED = {
    "empty": "",
    "long_a": "a" * 3000,
    "long_space": " " * 700,
    "long_e_acute": "é" * 400,
    "long_emoji": "🤖" * 150,
    "newlines": "\n\n\tx  \r\n y\u2028z",
    "special": "<|endoftext|>hello<|endoftext|>",
    "mixed": "naïve café 日本語 🤖👍🏽 don't 42",
}

# Token id sequences whose bytes are not valid UTF-8 (each is decoded as Python's
# bytes.decode("utf-8", errors="replace") does).
INVALID_IDS = {
    "byte_255": [255],
    "lone_lead_byte": [0xC3],
    "cut_three_byte": [0xE2, 0x82],
    "continuation_first": [0x80, 0x41],
    "overlong": [0xC0, 0xAF],
    "surrogate": [0xED, 0xA0, 0x80],
    "cut_emoji_in_text": [0x41, 0xF0, 0x9F, 0x98, 0x42],
    "empty": [],
}

# The GPT-2 corpus: what tiktoken's gpt2 encoding must be matched on, token for token.
GPT2_CORPUS = {
    "prose": "The quick brown fox jumps over the lazy dog. It's 5 o'clock somewhere!",
    "code": "def f(x):\n    return x**2  # square\n\n\nclass A(B):\n\tpass\n"
            "if (a != b) { c += 1; } // done\n",
    "numbers": "3.14159 1,000,000 2026-12-01 0x1F 1e-5 $42.50 12345678901 007 ½ ²³ ٣",
    "whitespace": "a  b   c\t\td \n\n\n e   \n  \r\n\r\n   \u00a0x\u3000y   ",
    "emoji": "🤖🎉👍🏽 ❤️ 🇫🇷 👨‍👩‍👧 a🙂b",
    "contractions": "don't I'm you'll we've they're she's it'd DON'T o'clock 'tis y'all '",
    "scripts": "中文字符 Привет мир العربية हिन्दी 日本語のテキスト 한국어 ελληνικά",
    "accents": "naïve café résumé e\u0301 Å ﬁ straße",
    "special": "<|endoftext|> is written here as ordinary text",
    "edges": "   leading and trailing   ",
}

# The Day 30 capstone's generation prompts (Part 1.2, "adjust for your tokenizer": each
# character a token there) and Q6's explanation of BPE, as GPT-2 counts them.
DAY30_EXAMPLES = {
    "prompt_the": "The ",
    "prompt_to_be": "To be or ",
    "prompt_beginning": "In the beginning ",
    "q6": "Each merge reduces total token count. The resulting vocabulary contains common "
          "subwords (ing, tion, the, etc.) that balance between character-level (too many "
          "tokens per word) and word-level (too many rare words) tokenization.",
}


def seed_of(g: torch.Generator) -> int:
    """A seed for the standard library's generator, drawn from the run's torch generator (the
    texts are made with ``random.Random``: the same on every machine and Python)."""
    return int(torch.randint(0, 2**62, (1,), generator=g))


def words_text(seed: int, words: list[str], n: int, separators: list[str] = SEPARATORS) -> str:
    """``n`` words drawn from ``words`` with separators, by a generator seeded with ``seed``."""
    rng = random.Random(seed)
    return "".join(rng.choice(words) + rng.choice(separators) for _ in range(n))


def unicode_text(seed: int, n: int) -> str:
    """``n`` code points from several planes (ASCII, Latin, Greek, Cyrillic, CJK, emoji,
    combining marks, whitespace); never a surrogate, which no UTF-8 text can hold."""
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x300, 0x36F),
              (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0x10000, 0x1007F), (0x9, 0xD)]
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(n))


def mixed_text(seed: int, n: int) -> str:
    """``n`` fragments of the GPT-2 corpus's kinds, cut at random places and glued with random
    whitespace and punctuation: boundaries no fixed text has."""
    rng = random.Random(seed)
    pool = list(GPT2_CORPUS.values()) + UNICODE + ENGLISH
    glue = [" ", "  ", "\n", "\t", "", "'", "'s ", "...", " 1", "\u00a0", "\r\n", "🤖"]
    out = []
    for _ in range(n):
        piece = rng.choice(pool)
        start = rng.randrange(len(piece))
        out.append(piece[start:start + rng.randint(1, 24)] + rng.choice(glue))
    return "".join(out)


def prompt_text(seed: int, n_words: int) -> str:
    """A Day 30-like prompt drawn from ``seed``: plain words of the course's examples and
    English sentences, one space between them and one after the last, as "To be or " has."""
    rng = random.Random(seed)
    words = [w for w in " ".join([*DAY30_EXAMPLES.values(), *ENGLISH]).split()
             if w.isascii() and w.isprintable()]
    return " ".join(rng.choice(words) for _ in range(n_words)) + " "


def speed_text(seed: int, n_words: int) -> str:
    """A long text for the speed note: prose-like words of the GPT-2 corpus, shuffled."""
    rng = random.Random(seed)
    words = " ".join(GPT2_CORPUS.values()).split(" ") + ENGLISH
    return " ".join(rng.choice(words) for _ in range(n_words))


def pack(texts: dict[str, str]) -> dict[str, torch.Tensor]:
    """Texts as uint8 tensors of their UTF-8 bytes (what fixtures can hold)."""
    return {name: torch.tensor(list(s.encode("utf-8")), dtype=torch.uint8)
            for name, s in texts.items()}


def unpack(tensor: torch.Tensor) -> str:
    """The inverse of :func:`pack` for one text."""
    return bytes(tensor.to(torch.uint8).tolist()).decode("utf-8")


def ids_tensor(ids: list[int]) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.int64).reshape(-1)


def codepoints(text: str) -> torch.Tensor:
    """A text as the int64 tensor of its code points (how the diagnosis compares texts)."""
    return torch.tensor([ord(c) for c in text], dtype=torch.int64)
