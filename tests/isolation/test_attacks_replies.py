"""Hostile replies: the student's code rewrites the worker's reply encoder and sends crafted bytes.

Each attack must become a recorded protocol error for that request (never a traceback of the
grader), cost the grader no more than the bounds allow, and leave the next request working.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from grader.isolation import replies
from grader.isolation.client import StudentCodeError, WorkerClient, WorkerCrashed, WorkerSettings

HOSTILE = '''
import json, sys

def _body(kind, i):
    if kind == "long_int":
        return ('{"id": %d, "ok": true, "result": {"output": {"kind": "number", "value": 1%s}, '
                '"grads": []}}' % (i, "0" * 100_000)).encode()
    if kind == "deep":
        return ('{"id": %d, "ok": true, "result": {"output": %s1%s, "grads": []}}'
                % (i, "[" * 200_000, "]" * 200_000)).encode()
    if kind == "error_missing_field":
        return json.dumps({"id": i, "ok": False, "error": {"message": "no type"}}).encode()
    if kind == "huge":
        head = b'{"id": %d, "ok": true, "result": {"output": {"kind": "none"}, "grads": [], ' % i
        return head + b'"x": "' + b"a" * (200 * 2**20) + b'"}}'
    if kind == "big_error":
        return json.dumps({"id": i, "ok": False, "error": {
            "type": "ValueError", "message": "m" * (50 * 2**20), "where": "", "traceback": ""}}
        ).encode()
    if kind == "long_error":  # under the JSON bound: accepted, but cut
        return json.dumps({"id": i, "ok": False, "error": {
            "type": "ValueError", "message": "m" * (3 * 2**19), "where": "w" * 100_000,
            "traceback": "t" * (3 * 2**19)}}).encode()
    if kind == "bad_description":
        return json.dumps({"id": i, "ok": True, "result": {
            "output": {"kind": "tensor", "key": "out", "dtype": "float32", "shape": [2],
                       "requires_grad": False}, "grads": []}}).encode()
    if kind == "no_grads":  # a well-formed call reply without the gradients asked for
        return json.dumps({"id": i, "ok": True, "result": {"output": {"kind": "none"},
                                                           "grads": []}}).encode()
    if kind == "list_flood":
        return ('{"id": %d, "ok": true, "result": {"output": {"kind": "list", "items": [%s]}, '
                '"grads": []}}' % (i, ",".join(["0"] * 1_200_000))).encode()
    raise ValueError(kind)


def attack(kind):
    proto = sys.modules["grader.shared.protocol"]
    original = proto.pack

    def pack(message, tensors=None):  # the reply to this very request
        proto.pack = original
        body = _body(kind, message.get("id"))
        return proto._HEADER.pack(proto.MAGIC, len(body), 0) + body

    proto.pack = pack
    return 1


def honest():
    return 42
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    sub = tmp_path_factory.mktemp("hostile")
    sub.chmod(0o755)  # the sandbox's uid reads it
    (sub / "hostile.py").write_text(HOSTILE)
    with WorkerClient(sub, WorkerSettings(threads=1, call_timeout=60, max_restarts=50)) as c:
        yield c


def call(client, function, *args):
    return client.request("call", {"module": "hostile", "function": function, "args": list(args)})


def assert_honest_call_still_works(client):
    reply = call(client, "honest")
    assert reply.result["output"] == {"kind": "number", "value": 42.0}


@pytest.mark.parametrize("kind, words", [
    ("long_int", "integer of"),
    ("deep", "nested"),
    ("error_missing_field", "error.type is missing"),
    ("bad_description", "was not sent"),
    ("list_flood", "entries"),
])
def test_a_hostile_reply_is_a_protocol_error_not_a_traceback(client, kind, words):
    with pytest.raises(WorkerCrashed, match=words):
        call(client, "attack", kind)
    assert_honest_call_still_works(client)


def test_a_reply_short_of_what_its_request_asked_for_is_a_protocol_error(client):
    import torch

    x = torch.zeros(2)
    with pytest.raises(WorkerCrashed, match="the request asked for"):
        client.request("call", {"module": "hostile", "function": "attack", "args": ["no_grads"],
                                "requires_grad": ["x"], "grad_outputs": {"out": "g"}},
                       {"x": x, "g": x})
    assert_honest_call_still_works(client)


def test_a_huge_reply_is_refused_before_it_is_read(client):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(WorkerCrashed, match="JSON part is"):
        call(client, "attack", "huge")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 64 * 1024, f"the grader grew by {grown} KiB reading a refused reply"
    assert_honest_call_still_works(client)


def test_a_50_mb_error_message_is_refused_and_a_1_mb_one_is_cut(client):
    with pytest.raises(WorkerCrashed, match="JSON part is"):
        call(client, "attack", "big_error")
    with pytest.raises(StudentCodeError) as info:
        call(client, "attack", "long_error")
    error = info.value.error
    assert len(json.dumps(error)) < 20_000
    assert error["message"].endswith("more characters cut by the grader]")
    assert len(info.value.describe()) < 2100
    assert_honest_call_still_works(client)


def test_the_strict_reader_bounds_each_dimension():
    b = replies.Bounds(json_bytes=1000, depth=4, string_chars=10, int_digits=5, items=3, nodes=20)
    ok = b'{"id": 1, "ok": true, "result": {"a": [1, 2, 3]}}'
    assert replies.parse_json(ok, b)["result"] == {"a": [1, 2, 3]}
    for bad, words in [
        (b'{"a": "' + b"x" * 2000 + b'"}', "JSON part"),
        (b'{"a": [[[[[1]]]]]}', "nested"),
        (b'{"a": "abcdefghijkl"}', "string of"),
        (b'{"a": 1234567}', "integer of"),
        (b'{"a": [1, 2, 3, 4]}', "entries"),
        (b'{"a": ' + b"[1,2,3]," * 0 + b'[1e99999999999999999999999999999999999999999999999999999'
         b'999999999999999]}', "number literal"),
        (b'[1]', "must be an object"),
        (b'{"a": \xff}', "corrupt"),
    ]:
        with pytest.raises(replies.ReplyRejected, match=words):
            replies.parse_json(bad, b)


def test_an_error_reply_is_validated_and_filled():
    d = replies.read_reply({"id": 3, "ok": False, "error": {"type": "E", "message": "m"}},
                           "call", 3, {})
    assert d.error == {"type": "E", "message": "m", "where": "", "traceback": "",
                       "contract": False}
    for message in ({"id": 4, "ok": True, "result": {}}, {"id": 3, "ok": "yes"},
                    {"id": 3, "ok": False, "error": {"type": 1, "message": "m"}},
                    {"id": 3, "ok": True, "result": {"output": {"kind": "spooky"}, "grads": []}}):
        with pytest.raises(replies.ReplyRejected):
            replies.read_reply(message, "call", 3, {})


def test_results_stay_small_when_the_students_code_raises_a_huge_message(tmp_path):
    # Through the whole pipeline: a check whose call raises a 50 MB message is recorded as an
    # error, and the results JSON stays small.
    from grader.grading import GradeOptions, grade

    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text(
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    raise ValueError('x' * (50 * 2**20))\n")
    result = grade(sub, GradeOptions(assignments=["attention"],
                                     worker=WorkerSettings(threads=1, call_timeout=60)))
    text = json.dumps(result.to_dict()) if hasattr(result, "to_dict") else str(result)
    assert len(text) < 2 * 2**20
    checks = result.assignment("attention").checks
    assert any(c.status.value == "error" for c in checks)
    assert Path(sub).exists()


# A correct submission whose module, once imported, rewrites the worker's reply encoder: every
# reply whose result holds ``key`` goes out with ``junk`` there instead.
GARBLE = '''

import sys as _sys


def _garble(key, junk):
    proto = _sys.modules["grader.shared.protocol"]
    original = getattr(proto.pack, "__wrapped__", proto.pack)

    def pack(message, tensors=None):
        result = message.get("result")
        if isinstance(result, dict) and key in result:
            message = dict(message, result=dict(result, **{key: junk}))
        return original(message, tensors)

    pack.__wrapped__ = original
    proto.pack = pack
'''


@pytest.mark.parametrize("assignment, key, junk, garbled", [
    # generate_runs: the runs a check enumerates become a string
    ("kv_cache", "runs", "NaN", {"greedy", "one_token_per_step", "sampling",
                                 "sampling_reference"}),
    # training.get_lr: the types of the values become nested junk
    ("training", "types", [[["NaN"]]], {"lr_schedule", "lr_curve"}),
])
def test_garbage_for_a_later_task_is_an_error_of_its_checks_and_the_grade_completes(
        tmp_path, assignment, key, junk, garbled):
    from conftest import grade_folder, plant

    from grader.model.results import Status

    sub = plant(tmp_path, {})
    with open(sub / f"{assignment}.py", "a") as f:
        f.write(GARBLE + f"\n_garble({key!r}, {junk!r})\n")
    result = grade_folder(sub, [assignment])
    checks = {c.id: c for c in result.assignment(assignment).checks}
    assert garbled <= set(checks)
    for check_id, c in checks.items():
        if check_id in garbled:
            assert c.status is Status.ERROR, (check_id, c.status, c.message)
            assert "does not follow the protocol" in c.message, (check_id, c.message)
            assert "internal grader error" not in c.message
        else:  # the rest of the grade is the correct submission's
            assert c.status is Status.PASSED, (check_id, c.status, c.message)
