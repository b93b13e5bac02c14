"""The checks of ``GPT2Tokenizer`` on GPT-2's real files, against tiktoken's ``gpt2`` encoding.

The student's tokenizer is built in the worker from the files' contents (``encoder`` and
``bpe_merges``, sent as data: the worker reads no file of the grader's); the expected ids are
tiktoken's, computed here from the same files (:mod:`.oracle`), never downloaded.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import torch

from grader.checks.base import CheckFailed, Context, ok
from grader.checks.bpe import ASSIGNMENT, MODULE, oracle, texts
from grader.checks.bpe.byte_level import BPE_MISTAKES, ref_bpe
from grader.checks.harness import call_function, kept, new, text_arg
from grader.diagnosis import Diagnosis

check = ASSIGNMENT.check
CLASS = "GPT2Tokenizer"
NEEDS = (CLASS, "gpt2_tokenizer")


FILES = {"encoder.json": "gpt2.encoder_json", "vocab.bpe": "gpt2.vocab_bpe"}
# Built in the worker as gpt2_tokenizer(<encoder.json's text>, <vocab.bpe's text>): the files
# travel as uint8 tensors (1.5 MB, no JSON escaping) with every request.
# Built once per worker process ("$kept"): building it costs the student's code ~0.3 s.
TOKENIZER = kept(f"{MODULE}.gpt2_tokenizer/{oracle.SHA256['vocab.bpe'][:16]}",
                 new(MODULE, "gpt2_tokenizer", text_arg(FILES["encoder.json"]),
                     text_arg(FILES["vocab.bpe"])))


@functools.lru_cache(maxsize=1)
def _file_tensors() -> dict[str, torch.Tensor]:
    files = oracle.gpt2_files()
    return {key: torch.frombuffer(bytearray(files.raw[name]), dtype=torch.uint8)
            for name, key in FILES.items()}


def _method(ctx: Context, method: str, arg: Any, what: str, *, each: bool = False,
            timeout: float | None = None):
    """The output of the student's tokenizer's ``method(arg)`` (with ``each``, of one call per
    item of ``arg``, in one request: the tokenizer is built once per request)."""
    return call_function(ctx, MODULE, method, args=[arg], tensors=dict(_file_tensors()),
                         on=TOKENIZER, what=what, each=each, timeout=timeout).output


def _ints_each(out, n: int) -> list[list[int]]:
    return [out.item(i).ints() for i in range(n)]


@functools.lru_cache(maxsize=1)
def _reference_tokenizer(package: str) -> Any:
    files = oracle.gpt2_files()
    import importlib

    return ref_bpe(importlib.import_module(package)).GPT2Tokenizer(files.encoder, files.merges)


def _corpus(ctx: Context, key: str, corpus: dict[str, str], mixed: int = 0,
            prompt: int = 0) -> dict[str, str]:
    """The texts of ``corpus`` and, with ``mixed``, a seeded mix of that many fragments; with
    ``prompt``, a seeded prompt of that many plain words (:func:`~.texts.prompt_text`)."""
    def make(g):
        drawn = {}
        if mixed:
            drawn["random_mix"] = texts.mixed_text(texts.seed_of(g), mixed)
        if prompt:
            drawn["random_prompt"] = texts.prompt_text(texts.seed_of(g), prompt)
        return texts.pack({**corpus, **drawn})

    made = ctx.inputs(key, make)
    names = (list(corpus) + (["random_mix"] if mixed else [])
             + (["random_prompt"] if prompt else []))  # fixtures come back sorted
    return {name: texts.unpack(made[name]) for name in names}


def _tiktoken_ids(ctx: Context, key: str, corpus: dict[str, str]) -> dict[str, torch.Tensor]:
    """tiktoken's ids of every text (through the seam: fixtures hold them in a bundle)."""
    return ctx.expected(key, lambda ref: {
        name: texts.ids_tensor(oracle.encode_ordinary(text)) for name, text in corpus.items()})


def _gpt2_diagnosis(ctx: Context, key: str, corpus: dict[str, str]) -> Diagnosis:
    def variant(ref):
        files = oracle.gpt2_files()
        tok = ref_bpe(ref).GPT2Tokenizer(files.encoder, files.merges)
        return {name: texts.ids_tensor(tok.encode(text)) for name, text in corpus.items()}

    return Diagnosis(ctx, key, variant, BPE_MISTAKES)


def _piece(token: int) -> str:
    try:
        return repr(oracle.tiktoken_gpt2().decode_single_token_bytes(token))
    except Exception:  # noqa: BLE001 - an id outside the vocabulary, or no tiktoken (bundle)
        return "?"


def _compare_ids(what: str, name: str, text: str, got: list[int], exp: list[int]) -> str:
    first = next((i for i, (a, b) in enumerate(zip(got, exp, strict=False)) if a != b),
                 min(len(got), len(exp)))
    yours = f"{got[first]} ({_piece(got[first])})" if first < len(got) else "the end"
    theirs = f"{exp[first]} ({_piece(exp[first])})" if first < len(exp) else "the end"
    return (f"{what} on the {name} text differs from tiktoken's gpt2 encoding at token {first} "
            f"of {len(exp)}: yours {yours}, tiktoken's {theirs} (you gave {len(got)} tokens; the "
            f"text begins {text[:60]!r})")


@check("gpt2_tiktoken", "GPT2Tokenizer: equals tiktoken's GPT-2 encoding, token for token", 4,
       needs=NEEDS)
def gpt2_tiktoken(ctx: Context):
    """Built from GPT-2's real ``encoder.json`` and ``vocab.bpe``, ``encode`` gives exactly
    tiktoken's ``gpt2`` ids on prose, code, numbers, runs of whitespace, emoji, contractions,
    other scripts, accents, special-token text, leading/trailing spaces, and a seeded mix of
    fragments of all of these glued at random places."""
    corpus = _corpus(ctx, "gpt2_mixed", texts.GPT2_CORPUS, mixed=120)
    expected = _tiktoken_ids(ctx, "gpt2_mixed", corpus)
    diagnosis = _gpt2_diagnosis(ctx, "gpt2_mixed", corpus)
    out = _method(ctx, "encode", list(corpus.values()), f"`{CLASS}.encode`", each=True)
    mine = dict(zip(corpus, _ints_each(out, len(corpus)), strict=True))
    for name, text in corpus.items():
        exp = expected[name].tolist()
        if mine[name] != exp:
            raise CheckFailed(
                _compare_ids("encode", name, text, mine[name], exp),
                hint="Split with GPT2_PATTERN, write each pre-token's UTF-8 BYTES with "
                     "bytes_to_unicode's characters, merge the lowest-ranked pair of vocab.bpe "
                     "first, then look the pieces up in encoder.json.",
                case=name, **diagnosis.details(
                    {n: texts.ids_tensor(ids) for n, ids in mine.items()}, expected,
                    atol=0.0, rtol=0.0))
    return ok(texts=len(corpus), tokens=sum(len(v) for v in mine.values()))


@check("gpt2_decode", "GPT2Tokenizer: decode gives the text back, cut characters as U+FFFD", 1,
       needs=NEEDS)
def gpt2_decode(ctx: Context):
    """``decode`` of tiktoken's ids of the corpus (and of a seeded mix of its fragments) gives
    the texts back exactly, and ids that cut an emoji in half decode with U+FFFD, as
    ``errors="replace"`` does."""
    corpus = _corpus(ctx, "gpt2_corpus", texts.GPT2_CORPUS, mixed=60)
    expected = _tiktoken_ids(ctx, "gpt2_corpus", corpus)
    emoji = expected["emoji"].tolist()
    cases = {"corpus": [i for name in corpus for i in expected[name].tolist() + [NEWLINE]][:-1],
             "cut_emoji": emoji[:_first_cut(emoji)]}
    want = ctx.expected("gpt2_decode", lambda ref: {
        name: texts.codepoints(oracle.tiktoken_gpt2().decode(ids, errors="replace"))
        for name, ids in cases.items()})

    def variant(ref):
        files = oracle.gpt2_files()
        tok = ref_bpe(ref).GPT2Tokenizer(files.encoder, files.merges)
        return {name: texts.codepoints(tok.decode(ids)) for name, ids in cases.items()}

    diagnosis = Diagnosis(ctx, "gpt2_decode", variant, BPE_MISTAKES)
    out = _method(ctx, "decode", list(cases.values()), f"`{CLASS}.decode`", each=True)
    mine = {name: out.item(i).text() for i, name in enumerate(cases)}
    for name, ids in cases.items():
        got = mine[name]
        exp = "".join(map(chr, want[name].tolist()))
        if got == exp:
            continue
        first = next((k for k, (a, b) in enumerate(zip(got, exp, strict=False)) if a != b),
                     min(len(got), len(exp)))
        raise CheckFailed(
            f"decode(<{len(ids)} ids: {name.replace('_', ' ')}>) differs from the text at "
            f"character {first}: yours {got[first:first + 12]!r}, expected "
            f"{exp[first:first + 12]!r}",
            hint="Join the encoder strings of the ids, map each character back to its byte "
                 "(the inverse of bytes_to_unicode), then decode the bytes once with "
                 "errors='replace'.", case=name,
            **diagnosis.details({n: texts.codepoints(t) for n, t in mine.items()}, want,
                                atol=0.0, rtol=0.0))
    return ok()


NEWLINE = 198  # GPT-2's id of "\n"


def _first_cut(ids: list[int]) -> int:
    """The length of the shortest prefix of ``ids`` whose bytes end inside a character (the
    whole list if none does)."""
    encoding = oracle.tiktoken_gpt2()
    for k in range(1, len(ids)):
        try:
            encoding.decode_bytes(ids[:k]).decode("utf-8")
        except UnicodeDecodeError:
            return k
    return len(ids)


@check("gpt2_day30", "GPT2Tokenizer: the Day 30 examples have GPT-2's token counts", 1,
       needs=NEEDS)
def gpt2_day30(ctx: Context):
    """The capstone's generation prompts ("The ", "To be or ", "In the beginning ", encoded one
    character per token in Day 30) and Q6's explanation of BPE get GPT-2's tokens, and so its
    token counts (and so does a prompt of plain words drawn from the run's seed, which no
    table holds)."""
    # With a drawn prompt beside the course's fixed examples: their ids alone could be replayed.
    corpus = _corpus(ctx, "day30", texts.DAY30_EXAMPLES, prompt=12)
    expected = _tiktoken_ids(ctx, "day30", corpus)
    diagnosis = _gpt2_diagnosis(ctx, "day30", corpus)
    out = _method(ctx, "encode", list(corpus.values()), f"`{CLASS}.encode`", each=True)
    mine = dict(zip(corpus, _ints_each(out, len(corpus)), strict=True))
    counts = {name: {"characters": len(text), "tokens": len(mine[name]),
                     "gpt2": len(expected[name])} for name, text in corpus.items()}
    for name, text in corpus.items():
        got, exp = mine[name], expected[name].tolist()
        if got != exp:
            raise CheckFailed(
                f"{text[:40]!r} ({len(text)} characters) gives {len(got)} tokens {got[:8]}, "
                f"GPT-2 gives {len(exp)}: {exp[:8]}",
                hint="A word keeps its leading space (' be' is one token) and a trailing space "
                     "with no word after it is a token of its own (' ' = 220).",
                counts=counts, **diagnosis.details(
                    {n: texts.ids_tensor(ids) for n, ids in mine.items()}, expected,
                    atol=0.0, rtol=0.0))
    summary = ", ".join(f"{corpus[n][:20]!r}: {c['tokens']} tokens for {c['characters']} "
                        f"characters" for n, c in counts.items() if n in texts.DAY30_EXAMPLES)
    return ok(summary, counts=counts)


SPEED_WORDS = 4000
MEASURABLE = 0.01  # seconds: shorter encodes are lost in the noise of a request


@check("gpt2_speed", "GPT2Tokenizer: speed, tokens per second next to tiktoken's (a note)", 0,
       needs=NEEDS, timeout=20)
def gpt2_speed(ctx: Context):
    """Not scored: the tokens per second of ``encode`` on a text of some 25,000 characters,
    next to the reference's (plain Python, like yours) and tiktoken's (compiled): a slowdown
    of hundreds against the reference shows a quadratic encoder."""
    made = ctx.inputs("speed", lambda g: texts.pack(
        {"text": texts.speed_text(texts.seed_of(g), SPEED_WORDS)}))
    text = texts.unpack(made["text"])
    # A request's fixed cost (sending the files, building the tokenizer) is measured on an
    # empty text and taken off.
    start = time.perf_counter()
    _method(ctx, "encode", "", f"`{CLASS}.encode`")
    fixed = time.perf_counter() - start
    start = time.perf_counter()
    n = len(_method(ctx, "encode", text, f"`{CLASS}.encode`", timeout=20).ints())
    yours = time.perf_counter() - start - fixed
    if yours < MEASURABLE:  # below the noise of a request's own cost
        rates = {"yours": n / MEASURABLE}
        note = f"yours: {n:,} tokens in under {MEASURABLE * 1000:.0f} ms (over "
    else:
        rates = {"yours": n / yours}
        note = ""
    package = getattr(ctx.source, "package", None)  # live only: a bundle has no reference
    if package is not None:
        tokenizer = _reference_tokenizer(package.__name__)
        start = time.perf_counter()
        tokenizer.encode(text)
        rates["reference"] = n / max(time.perf_counter() - start, 1e-3)
    if oracle.tiktoken_available():
        encoding = oracle.tiktoken_gpt2()
        start = time.perf_counter()
        encoding.encode_ordinary(text)
        rates["tiktoken"] = n / max(time.perf_counter() - start, 1e-4)
    if note:
        note += f"{rates['yours']:,.0f} tokens/s); " + "; ".join(
            f"{k} {v:,.0f} tokens/s" for k, v in rates.items() if k != "yours")
    else:
        note = "; ".join(f"{k} {v:,.0f} tokens/s" for k, v in rates.items())
        if "reference" in rates:
            note += (f" (your encode takes {rates['reference'] / rates['yours']:.1f}x the "
                     f"reference's time)")
    return ok(note, tokens=n, rates={k: round(v) for k, v in rates.items()})
