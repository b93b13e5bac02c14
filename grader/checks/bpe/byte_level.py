"""The checks of the byte-level BPE: ``train_bpe``, ``build_vocab``, ``encode``, ``decode``.

Merge tables and token ids are compared exactly (they are integers); on a mismatch the message
names the first differing merge or token, written as bytes, and the diagnosis reruns the same
computation on the reference with each known mistake planted.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.bpe import (
    ASSIGNMENT,
    MODULE,
    mistakes,  # noqa: F401  (registers the mistakes)
    texts,
)
from grader.checks.harness import CallResult, call_function, tup
from grader.diagnosis import Diagnosis, affecting

check = ASSIGNMENT.check
FIRST_ID = 256
# Every check compares every known mistake of the module (a variant that does not change what
# a check computes equals the reference there, so it can never be named by it).
BPE_MISTAKES = affecting("bpe")
# The quiz bank's BPE questions (tag "bpe"; e.g. bpe-first-merge, bpe-tokens-after of the Day 30
# checkpoint bank), where a training or encoding failure sends the student to practise.
QUIZ_IDS = ("bpe-first-merge", "bpe-tokens-after", "bpe-next-step", "merge-table")
PRACTICE = (" Practise the steps: `grader quiz practice --tags bpe` (e.g. the questions "
            "bpe-first-merge and bpe-tokens-after).")


def ref_bpe(ref: Any) -> Any:
    """The reference's (or a planted variant's) ``bpe`` module."""
    return importlib.import_module(f"{ref.__name__}.bpe")


def merges_arg(merges: list[tuple[int, int]]) -> list[dict[str, list[int]]]:
    """A merge table as the student's functions receive it: a list of tuples."""
    return [tup(int(a), int(b)) for a, b in merges]


def merges_of(t: torch.Tensor) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in t.reshape(-1, 2).tolist()]


def token_bytes(merges: list[tuple[int, int]]) -> dict[int, bytes]:
    """What each id stands for under the assignment's rule (merge i is id 256 + i), computed
    here to write a student's merges in a message; unknown ids are shown as ``<id>``."""
    table = {b: bytes([b]) for b in range(FIRST_ID)}
    for offset, (left, right) in enumerate(merges):
        table[FIRST_ID + offset] = (table.get(left, f"<{left}>".encode())
                                    + table.get(right, f"<{right}>".encode()))
    return table


def show_pair(pair: tuple[int, int], table: dict[int, bytes]) -> str:
    a, b = pair
    left, right = table.get(a, f"<{a}>".encode()), table.get(b, f"<{b}>".encode())
    return f"({a}, {b}) = {left!r} + {right!r}"


def _call(ctx: Context, function: str, *args: Any, what: str) -> CallResult:
    return call_function(ctx, MODULE, function, args=list(args), tensors={}, what=what)


# ------------------------------------------------------------------------------- training


def _train_inputs(ctx: Context) -> dict[str, str]:
    made = ctx.inputs("train_texts", lambda g: texts.pack(
        {name: texts.words_text(texts.seed_of(g), words, n) for name, words, n, _ in
         texts.TRAIN_CASES}))
    return {name: texts.unpack(made[name]) for name, *_ in texts.TRAIN_CASES}


def _compare_merges(ctx: Context, key: str, cases: dict[str, tuple[str, int]],
                    compared: tuple[str, ...]) -> None:
    """Train the student's and the reference's tables on each case (``name -> (text,
    vocab_size)``) and fail on the first difference, with a diagnosis over all cases."""
    def reference(ref):
        bpe = ref_bpe(ref)
        return {name: torch.tensor(bpe.train_bpe(text, size), dtype=torch.int64).reshape(-1, 2)
                for name, (text, size) in cases.items()}

    expected = ctx.expected(key, reference)
    mine = {}
    for name, (text, size) in cases.items():
        res = _call(ctx, "train_bpe", text, size, what=f"`train_bpe(<{name} text>, {size})`")
        mine[name] = res.output.int_rows(2)
    diagnosis = Diagnosis(ctx, key, reference, compared)
    for name, (text, size) in cases.items():
        exp = merges_of(expected[name])
        got = mine[name]
        if got == exp:
            continue
        ref_table, my_table = token_bytes(exp), token_bytes(got)
        first = next((i for i, (a, b) in enumerate(zip(got, exp, strict=False)) if a != b), None)
        if first is None:
            message = (f"train_bpe(<{name} text>, {size}) made {len(got)} merges, expected "
                       f"{len(exp)} (vocab_size - 256, unless no pair is left)")
        else:
            message = (f"train_bpe(<{name} text>, {size}): merge {first} "
                       f"(id {FIRST_ID + first}) is {show_pair(got[first], my_table)}, expected "
                       f"{show_pair(exp[first], ref_table)}; the first {first} merges agree")
        actual = {n: torch.tensor(m, dtype=torch.int64).reshape(-1, 2) for n, m in mine.items()}
        raise CheckFailed(
            message,
            hint="Count pairs inside each pre-token only, merge the most frequent (ties: the "
                 "smallest pair), and give merge i the id 256 + i; see train_bpe's docstring."
                 + PRACTICE,
            case=name, text_start=text[:80], first_difference=first,
            **diagnosis.details(actual, expected, atol=0.0, rtol=0.0))


@check("train_merges", "train_bpe: the reference's merges, in order", 4, needs=("train_bpe",))
def train_merges(ctx: Context):
    """``train_bpe(text, vocab_size)`` on seeded texts (English-like words, other scripts and
    emoji, long runs of one letter) returns the reference's merge table, order included."""
    inputs = _train_inputs(ctx)
    cases = {name: (inputs[name], size) for name, _, _, size in texts.TRAIN_CASES}
    _compare_merges(ctx, "train_merges", cases, BPE_MISTAKES)
    return ok(cases=len(cases))


@check("train_ties", "train_bpe: ties go to the smallest pair, as the docstring says", 2,
       hidden=True, needs=("train_bpe",))
def train_ties(ctx: Context):
    """On a text whose every merge is a tie, the table is the one the docstring's rule gives
    (the smallest pair), not the pair seen first nor the largest."""
    made = ctx.inputs("train_ties", lambda: texts.pack({"text": texts.TIE_TEXT}))
    _compare_merges(ctx, "train_ties", {"ties": (texts.unpack(made["text"]), texts.TIE_VOCAB)},
                    BPE_MISTAKES)
    return ok()


def _reference_merges(ctx: Context, name: str = "unicode") -> list[tuple[int, int]]:
    """The reference's merge table of one training case: the table the encode/decode checks
    give the student's functions (so they are graded even if ``train_bpe`` is wrong)."""
    inputs = _train_inputs(ctx)
    size = next(s for n, _, _, s in texts.TRAIN_CASES if n == name)
    exp = ctx.expected(f"table/{name}", lambda ref: {"merges": torch.tensor(
        ref_bpe(ref).train_bpe(inputs[name], size), dtype=torch.int64).reshape(-1, 2)})
    return merges_of(exp["merges"])


@check("build_vocab", "build_vocab: every id stands for the right bytes", 1,
       needs=("build_vocab",))
def build_vocab(ctx: Context):
    """``build_vocab(merges)`` maps the 256 bytes and each merge's id ``256 + i`` to the bytes
    it stands for (the vocabulary is 256 + len(merges) entries)."""
    merges = _reference_merges(ctx, "english")

    def as_tensors(table: dict[int, bytes]) -> dict[str, torch.Tensor]:
        ids = sorted(table)
        return {"ids": torch.tensor(ids, dtype=torch.int64),
                "bytes": torch.tensor([b for i in ids for b in table[i]], dtype=torch.int64),
                "lengths": torch.tensor([len(table[i]) for i in ids], dtype=torch.int64)}

    def reference(ref):
        return as_tensors(ref_bpe(ref).build_vocab(merges))

    exp = ctx.expected("build_vocab", reference)
    diagnosis = Diagnosis(ctx, "build_vocab", reference, BPE_MISTAKES)
    expected, start = {}, 0
    for i, n in zip(exp["ids"].tolist(), exp["lengths"].tolist(), strict=True):
        expected[i] = bytes(exp["bytes"][start:start + n].tolist())
        start += n
    res = _call(ctx, "build_vocab", merges_arg(merges), what="`build_vocab(merges)`")
    value = res.output.value()
    if not isinstance(value, dict) or not all(isinstance(v, bytes) for v in value.values()):
        raise CheckFailed("build_vocab(merges) must return a dict {id: bytes}, got "
                          f"{type(value).__name__}"
                          + (" (of other values)" if isinstance(value, dict) else ""))
    try:
        got = {int(k): v for k, v in value.items()}
    except ValueError:
        raise CheckFailed("build_vocab(merges) must be keyed by the int ids") from None
    if got == expected:
        return ok(entries=len(got))
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = [i for i in sorted(set(got) & set(expected)) if got[i] != expected[i]]
    parts = []
    if missing:
        parts.append(f"ids missing: {missing[:6]}")
    if extra:
        parts.append(f"ids that should not be there: {extra[:6]}")
    if wrong:
        i = wrong[0]
        parts.append(f"id {i} is {got[i]!r}, expected {expected[i]!r}"
                     + (f" (merge {i - FIRST_ID}: {show_pair(merges[i - FIRST_ID], expected)})"
                        if i >= FIRST_ID else ""))
    raise CheckFailed(
        f"build_vocab(merges) has {len(got)} entries, expected {len(expected)}; "
        + "; ".join(parts),
        hint="vocab[i] = bytes([i]) for the 256 bytes, then vocab[256 + i] = vocab[a] + vocab[b] "
             "for merge i = (a, b).",
        **diagnosis.details(as_tensors(got), exp, atol=0.0, rtol=0.0))


# ------------------------------------------------------------------------------- encoding

# A table whose order disagrees with the text's counts: 'bc' was learned before 'ab', yet the
# text holds 'ab' far more often, so merging by frequency at encode time differs.
RANK_TABLE = [(98, 99), (97, 98), (257, 256)]
RANK_TEXT = "ababc ababc abab abc bcbc"


@check("encode_by_rank", "encode: merges applied in the table's order, not by frequency", 3,
       needs=("encode",))
def encode_by_rank(ctx: Context):
    """``encode(text, merges)`` equals the reference: on a table whose order disagrees with
    the text's pair counts, and on a held-out text with a trained table."""
    table = _reference_merges(ctx, "english")
    made = ctx.inputs("encode_texts", lambda g: texts.pack({
        "rank": RANK_TEXT, "heldout": texts.words_text(texts.seed_of(g), texts.ENGLISH, 80,
                                                       texts.HELDOUT_SEPARATORS)}))
    cases = {"rank": (texts.unpack(made["rank"]), RANK_TABLE),
             "heldout": (texts.unpack(made["heldout"]), table)}

    def reference(ref):
        bpe = ref_bpe(ref)
        return {name: texts.ids_tensor(bpe.encode(text, merges))
                for name, (text, merges) in cases.items()}

    expected = ctx.expected("encode_by_rank", reference)
    diagnosis = Diagnosis(ctx, "encode_by_rank", reference, BPE_MISTAKES)
    mine = {name: _call(ctx, "encode", text, merges_arg(merges),
                        what=f"`encode(<{name} text>, merges)`").output.ints()
            for name, (text, merges) in cases.items()}
    for name, (text, merges) in cases.items():
        exp = expected[name].tolist()
        if mine[name] == exp:
            continue
        raise CheckFailed(
            _token_difference(f"encode({text[:40]!r}..., merges)", mine[name], exp,
                              token_bytes(merges)),
            hint="Among the adjacent pairs of a pre-token that are in the table, merge the one "
                 "with the LOWEST index first (id 256 + index), and repeat; the text's own "
                 "pair counts play no part. The merge table IS the tokenizer (quiz question "
                 "merge-table: `grader quiz practice --tags bpe`).",
            case=name, **diagnosis.details(
                {n: texts.ids_tensor(ids) for n, ids in mine.items()}, expected,
                atol=0.0, rtol=0.0))
    return ok()


def _token_difference(what: str, got: list[int], exp: list[int], table: dict[int, bytes]
                      ) -> str:
    first = next((i for i, (a, b) in enumerate(zip(got, exp, strict=False)) if a != b),
                 min(len(got), len(exp)))

    def at(ids: list[int]) -> str:
        if first >= len(ids):
            return "nothing (the list ends)"
        return f"{ids[first]} = {table.get(ids[first], b'?')!r}"

    return (f"{what} gives {len(got)} tokens, expected {len(exp)}; token {first} is {at(got)}, "
            f"expected {at(exp)}")


# ------------------------------------------------------------------------------- decoding


def _roundtrip_inputs(ctx: Context) -> dict[str, str]:
    made = ctx.inputs("roundtrip", lambda g: texts.pack({
        **texts.ROUNDTRIP_FIXED, "random_unicode": texts.unicode_text(texts.seed_of(g), 400)}))
    names = [*texts.ROUNDTRIP_FIXED, "random_unicode"]  # fixtures come back sorted
    return {name: texts.unpack(made[name]) for name in names}


@check("roundtrip", "decode(encode(s)) == s: any Unicode, empty, long runs", 3,
       needs=("encode", "decode"))
def roundtrip(ctx: Context):
    """With a table learned on emoji and other scripts (so tokens cut characters in the middle),
    ``decode(encode(s))`` gives back ``s`` exactly: random code points from many scripts, the
    empty string, long runs of one character, newlines, special-token text."""
    merges = _reference_merges(ctx, "unicode")
    for name, text in _roundtrip_inputs(ctx).items():
        what = f"encode(<{name}>, merges)"
        ids = _call(ctx, "encode", text, merges_arg(merges), what=f"`{what}`").output.ints()
        back = _call(ctx, "decode", ids, merges_arg(merges),
                     what=f"`decode({what}, merges)`").output.text()
        if back == text:
            continue
        first = next((i for i, (a, b) in enumerate(zip(back, text, strict=False)) if a != b),
                     min(len(back), len(text)))
        raise CheckFailed(
            f"decode(encode(s)) is not s for the {name} text ({len(text)} characters): they "
            f"differ from character {first} on (yours {back[first:first + 12]!r}, expected "
            f"{text[first:first + 12]!r}); you got {len(back)} characters",
            hint="Encode the UTF-8 bytes of each pre-token (every string is bytes, nothing is "
                 "unknown) and decode the JOINED bytes of all the tokens once.",
            case=name)
    return ok()


@check("decode_invalid", "decode: bytes that are not UTF-8 become U+FFFD, as documented", 2,
       needs=("decode",))
def decode_invalid(ctx: Context):
    """``decode`` of ids whose joined bytes are not valid UTF-8 (a lone 255, a cut character,
    an overlong form, a surrogate) equals ``bytes.decode("utf-8", errors="replace")``; also a
    merged token that holds half of an emoji, and ``decode([]) == ""``."""
    merges = _reference_merges(ctx, "unicode")
    table = token_bytes(merges)
    cases = dict(texts.INVALID_IDS)
    # And bytes drawn from the run's seed, most of them outside ASCII: invalid sequences of
    # every kind at places no fixed case (and so no table of the bundle's outputs) has.
    soup = ctx.inputs("decode_invalid", lambda g: {"ids": torch.where(
        torch.rand(40, generator=g) < 0.7, torch.randint(128, 256, (40,), generator=g),
        torch.randint(32, 127, (40,), generator=g))})
    cases["random_bytes"] = soup["ids"].tolist()
    halves = [i for i in sorted(table) if i >= FIRST_ID and not _valid(table[i])]
    if halves:  # e.g. b"\xf0\x9f": the start of an emoji, merged into one token
        cases["merged_half_character"] = [ord("x"), halves[0], ord("y")]

    def reference(ref):
        bpe = ref_bpe(ref)
        return {name: texts.codepoints(bpe.decode(ids, merges)) for name, ids in cases.items()}

    expected = ctx.expected("decode_invalid", reference)
    diagnosis = Diagnosis(ctx, "decode_invalid", reference, BPE_MISTAKES)
    mine = {name: _call(ctx, "decode", ids, merges_arg(merges),
                        what=f"`decode({ids}, merges)`").output.text()
            for name, ids in cases.items()}
    for name, ids in cases.items():
        exp = "".join(map(chr, expected[name].tolist()))
        if mine[name] != exp:
            raise CheckFailed(
                f"decode({ids}, merges) is {mine[name]!r}, expected {exp!r} (the bytes "
                f"{b''.join(table.get(i, b'') for i in ids)!r} decoded with errors='replace')",
                hint="Join the bytes of all the ids, then .decode('utf-8', errors='replace') "
                     "once: each invalid sequence becomes one '\\ufffd'.",
                case=name, **diagnosis.details(
                    {n: texts.codepoints(s) for n, s in mine.items()}, expected,
                    atol=0.0, rtol=0.0))
    return ok(cases=len(cases))


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
