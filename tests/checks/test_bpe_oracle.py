"""The BPE assignment's ground truth, in-process and offline: GPT-2's files are the real ones,
tiktoken is built from them without the network, the reference's GPT2Tokenizer equals tiktoken's
gpt2 encoding token for token, and the reference's training follows its docstring's rules."""

from __future__ import annotations

import random
import socket

import pytest

from grader.checks.bpe import oracle, texts
from reference import bpe

tiktoken = pytest.importorskip("tiktoken")


@pytest.fixture(scope="module")
def files():
    return oracle.gpt2_files()


@pytest.fixture(scope="module")
def reference_tokenizer(files):
    return bpe.GPT2Tokenizer(files.encoder, files.merges)


def test_the_files_are_gpt2s_own(files):
    assert len(files.encoder) == 50257 and len(files.merges) == 50000
    assert files.encoder["<|endoftext|>"] == 50256
    assert files.encoder["Ġthe"] == 262 and files.merges[0] == ("Ġ", "t")


def test_tiktoken_is_built_without_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the oracle tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(tiktoken, "get_encoding", no_network)  # never by name: that downloads
    oracle.gpt2_files.cache_clear()
    oracle.tiktoken_gpt2.cache_clear()
    try:
        assert oracle.encode_ordinary("Hello world") == [15496, 995]
    finally:
        oracle.gpt2_files.cache_clear()
        oracle.tiktoken_gpt2.cache_clear()


def test_byte_alphabet_is_gpt2s(files):
    assert oracle.byte_alphabet() == bpe.bytes_to_unicode()
    assert oracle.byte_alphabet()[32] == "Ġ" and oracle.byte_alphabet()[10] == "Ċ"


def _fuzz(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("ab AB\n\t  '’sdtmlrve1234567890.,!?-_()[]{}#\"é日🤖👍🏽\u0301\u00a0\u3000\r")
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def test_reference_equals_tiktoken_token_for_token(reference_tokenizer):
    corpus = (list(texts.GPT2_CORPUS.values()) + list(texts.DAY30_EXAMPLES.values())
              + list(texts.ROUNDTRIP_FIXED.values()) + _fuzz(7, 600)
              + [texts.unicode_text(11, 300), texts.speed_text(3, 500)])
    encoding = oracle.tiktoken_gpt2()
    for text in corpus:
        ids = reference_tokenizer.encode(text)
        assert ids == encoding.encode_ordinary(text), repr(text)
        assert reference_tokenizer.decode(ids) == text


def test_day30_counts_are_gpt2s():
    counts = {name: len(oracle.encode_ordinary(t)) for name, t in texts.DAY30_EXAMPLES.items()}
    assert counts["prompt_the"] == 2  # "The", " "
    assert counts["prompt_to_be"] == 4  # "To", " be", " or", " "
    assert counts["prompt_beginning"] == 4  # "In", " the", " beginning", " "


def _documented_train(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """train_bpe's docstring, step by step, written without the reference's shortcuts (no
    de-duplicated words): the rule the grader enforces."""
    pieces = [list(p.encode("utf-8")) for p in bpe.pretokenize(text)]
    merges = []
    while len(merges) < vocab_size - 256:
        counts: dict[tuple[int, int], int] = {}
        for ids in pieces:
            for i in range(len(ids) - 1):
                counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
        if not counts:
            break
        top = max(counts.values())
        pair = sorted(p for p, c in counts.items() if c == top)[0]  # ties: the smallest pair
        new = 256 + len(merges)
        for k, ids in enumerate(pieces):
            out, i = [], 0
            while i < len(ids):
                if tuple(ids[i:i + 2]) == pair:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            pieces[k] = out
        merges.append(pair)
    return merges


@pytest.mark.parametrize("seed", range(6))
def test_reference_training_follows_its_docstring(seed):
    rng = random.Random(seed)
    text = texts.words_text(seed, rng.choice([texts.ENGLISH, texts.UNICODE, texts.RUNS]), 60)
    assert bpe.train_bpe(text, 256 + 30) == _documented_train(text, 256 + 30)


def test_the_tie_text_ties_where_the_rules_disagree():
    merges = bpe.train_bpe(texts.TIE_TEXT, texts.TIE_VOCAB)
    assert merges[0] == (32, 97)  # ' a': the smallest of seven pairs seen twice
    # the pair seen first would be (98, 97) 'ba'; the largest (100, 99) 'dc'
    assert (98, 97) != merges[0] != (100, 99)


def test_reference_encode_decode_contract():
    merges = bpe.train_bpe(texts.words_text(5, texts.UNICODE, 80), 256 + 40)
    vocab = bpe.build_vocab(merges)
    assert len(vocab) == 256 + len(merges) and vocab[32] == b" "
    assert bpe.encode("", merges) == [] and bpe.decode([], merges) == ""
    for text in list(texts.ROUNDTRIP_FIXED.values()) + [texts.unicode_text(9, 500)]:
        assert bpe.decode(bpe.encode(text, merges), merges) == text
    for ids in texts.INVALID_IDS.values():
        assert bpe.decode(ids, merges) == bytes(ids).decode("utf-8", errors="replace")
    with pytest.raises(ValueError):
        bpe.decode([256 + len(merges)], merges)
    with pytest.raises(ValueError):
        bpe.train_bpe("abc", 255)
    assert bpe.merge([97, 97, 97], (97, 97), 256) == [256, 97]


def test_the_quiz_questions_the_hints_cite_exist_and_are_tagged_bpe():
    import yaml
    from conftest import ROOT

    from grader.checks.bpe.byte_level import QUIZ_IDS

    questions = {q["id"]: q for bank in (ROOT / "quizzes").glob("*.yaml")
                 for q in (yaml.safe_load(bank.read_text()) or {}).get("questions", [])}
    for qid in QUIZ_IDS:
        assert qid in questions and "bpe" in questions[qid]["tags"], qid
