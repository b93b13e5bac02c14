"""The worker protocol carries what a tokenizer returns (strings, bytes, long int lists, big
vocabularies) and the trusted side reads it (``Output.text/raw/ints/int_rows/value``), through
a real frame; the argument markers (``$tuple``, ``$bytes``, ``$text``, ``$kept``) decode to the
values the student's code expects."""

from __future__ import annotations

import uuid

import pytest
import torch

from grader.checks.base import CheckFailed
from grader.checks.harness import Output, kept, raw, text_arg, tup
from grader.shared import protocol
from grader.worker import values


def _through_the_wire(obj) -> Output:
    tensors: dict[str, torch.Tensor] = {}
    description = values.describe(obj, "out", tensors)
    frame = protocol.pack({"output": description}, tensors)
    n_json, n_blob = protocol.parse_header(frame[:protocol.HEADER_SIZE], 2**30)
    body = frame[protocol.HEADER_SIZE:protocol.HEADER_SIZE + n_json]
    message, got = protocol.unpack_body(body, frame[protocol.HEADER_SIZE + n_json:])
    return Output(message["output"], got, "`f`")


@pytest.mark.parametrize("text", ["", "héllo wörld", "🤖" * 100, "x\udcff", "a" * 100_000])
def test_strings_come_back_whole(text):
    out = _through_the_wire(text)
    assert out.description["kind"] == "str"
    assert out.text() == text and out.value() == text


def test_a_string_longer_than_the_bound_is_cut_and_refused():
    out = _through_the_wire("a" * (values.MAX_STR + 5))
    assert out.description["length"] == values.MAX_STR + 5
    assert len(out.description["value"]) == values.MAX_STR
    with pytest.raises(CheckFailed, match="longer than the grader reads"):
        out.text()


@pytest.mark.parametrize("data", [b"", b"\xff\x00\x80", bytes(range(256)) * 10,
                                  bytearray(b"ab")])
def test_bytes_come_back_whole(data):
    out = _through_the_wire(data)
    assert out.description["kind"] == "bytes"
    assert out.raw() == bytes(data)


@pytest.mark.parametrize("ids", [list(range(65)), [50256] * 10_000, tuple(range(100)),
                                 [-(2**63), 2**63 - 1] * 40])
def test_long_int_lists_come_back_as_ints(ids):
    out = _through_the_wire(ids)
    assert out.description["kind"] == "ints"
    assert out.description["container"] == ("tuple" if isinstance(ids, tuple) else "list")
    assert out.ints() == list(ids)


def test_short_int_lists_keep_their_old_description():
    out = _through_the_wire([1, 2, 3])
    assert out.description["kind"] == "list" and out.ints() == [1, 2, 3]
    assert _through_the_wire([]).ints() == []


def test_merge_tables_come_back_as_rows():
    merges = [(i, i + 1) for i in range(300)]
    out = _through_the_wire(merges)
    assert out.description["kind"] == "ints" and out.description["shape"] == [300, 2]
    assert out.description["inner"] == "tuple"
    assert out.int_rows(2) == merges and out.value() == merges
    assert _through_the_wire(merges[:5]).int_rows(2) == merges[:5]
    with pytest.raises(CheckFailed, match="expected a list of 3-int tuples"):
        out.int_rows(3)


def test_not_ints_are_not_taken_for_ints():
    assert _through_the_wire([True] * 70).description["kind"] == "list"  # bools: a flat list
    assert _through_the_wire([2**70] * 70).description["kind"] == "list"  # beyond int64
    ragged = [(1, 2)] * 69 + [(1, 2, 3)]
    assert _through_the_wire(ragged).description["kind"] == "other"
    with pytest.raises(CheckFailed, match="returned a list of 70 numbers|expected a list of ints"):
        _through_the_wire([1.5] * 70).ints()
    with pytest.raises(CheckFailed, match="returned a str, expected a list of ints"):
        _through_the_wire("abc").ints()


def test_a_vocabulary_comes_back_whole():
    vocab = {i: bytes([i % 256]) * (1 + i // 256) for i in range(50_257)}
    out = _through_the_wire(vocab)
    assert out.description["kind"] == "dict"
    assert {int(k): v for k, v in out.value().items()} == vocab


def test_too_large_or_too_deep_is_other_with_its_length():
    big = {i: "x" * (values.MAX_FLAT_ITEM + 1) for i in range(100)}
    assert _through_the_wire(big).description == {"kind": "other", "type": "dict",
                                                  "length": 100}
    with pytest.raises(CheckFailed, match="a dict, which the grader cannot read"):
        _through_the_wire(big).value()


def test_argument_markers_decode_to_what_the_student_expects():
    tensors = {"t": torch.frombuffer(bytearray("Ġthe ✓".encode()), dtype=torch.uint8)}
    built = []

    def new(spec):
        built.append(spec)
        return object()

    key = f"test-{uuid.uuid4()}"  # the worker's memo lives as long as its process
    args = [[tup("Ġ", "t"), tup(1, 2)], raw(b"\xff"), text_arg("t"),
            kept(key, {"$new": {"class": "X"}}), kept(key, {"$new": {"class": "X"}})]
    merges, data, text, first, second = values.decode(args, tensors, new)
    assert merges == [("Ġ", "t"), (1, 2)] and {merges[0]: 0}  # hashable
    assert data == b"\xff" and text == "Ġthe ✓"
    assert first is second and len(built) == 1  # built once per worker process
    assert values.decode(list(range(1000)), {}, new) == list(range(1000))
