"""Golden request/reply vectors: our replies must decode to what the official SDK answered.

The vectors are committed under ``tests/data/`` (its README says what each file holds): each
``request-N.bin`` is a ``ToFunction`` as the runtime sends it, each ``reply-N.bin`` the
``FromFunction`` that the official Python SDK 2.2.2 answered. ``tests/data/v3/`` holds StateFun
3.x vectors; the last test here only checks that they read with our 2.x messages.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from builders import Delayed, Egress, Mutation, Reply, Sent, decode_reply
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi import AsyncRequestReplyHandler, RequestReplyHandler, StatefulFunctions
from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction

DATA = Path(__file__).resolve().parent / "data"
VECTORS = (1, 2, 3)


@pytest.fixture(scope="module")
def vectors() -> Path:
    return DATA


def load(vectors: Path, kind: str, n: int) -> bytes:
    path = vectors / f"{kind}-{n}.bin"
    if not path.is_file():
        pytest.fail(f"golden vector {path} is missing", pytrace=False)
    return path.read_bytes()


# The functions, as tests/data/README.md describes them.


def functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("example/counter")
    def counter(context, message: StringValue):
        count = context.state("count").unpack(Int64Value) or Int64Value(value=0)
        count.value += 1
        context.state("count").pack(count)
        context.pack_and_send_egress("example/out", count)

    @functions.bind("example/fanout")
    def fanout(context, message: Int64Value):
        for i in range(10):
            context.pack_and_send("example/counter", f"peer-{i}", Int64Value(value=message.value + i))
        context.pack_and_send_after(
            timedelta(seconds=5), context.address.typename(), context.address.identity, Int64Value(value=1)
        )
        s1 = context.state("s1").unpack(Int64Value) or Int64Value()
        context.state("s1").pack(Int64Value(value=s1.value + 1))
        context.state("s2").pack(StringValue(value="fanout-done"))
        context.state("s3").pack(Int64Value(value=message.value))

    return functions


def answer(data: bytes, run_async: bool) -> Reply:
    if run_async:
        return decode_reply(asyncio.run(AsyncRequestReplyHandler(functions())(data)))
    return decode_reply(RequestReplyHandler(functions())(data))


def type_urls(reply: Reply) -> dict:
    result = reply.raw.invocation_result
    return {
        "sent": [m.argument.type_url for m in result.outgoing_messages],
        "delayed": [m.argument.type_url for m in result.delayed_invocations],
        "egresses": [m.argument.type_url for m in result.outgoing_egresses],
    }


@pytest.mark.parametrize("n", VECTORS, ids=[f"vector-{n}" for n in VECTORS])
def test_reply_matches_the_official_sdk(vectors, n, run_async):
    golden = decode_reply(load(vectors, "reply", n))
    ours = answer(load(vectors, "request", n), run_async)
    assert ours.sent == golden.sent
    assert ours.delayed == golden.delayed
    assert ours.egresses == golden.egresses
    assert ours.mutations == golden.mutations  # by state name: order carries no meaning
    assert type_urls(ours) == type_urls(golden)


# What the golden replies hold, so that the comparison above cannot pass vacuously.

EXPECTED = {
    1: Reply(
        egresses=[Egress.to("example/out", Int64Value(value=42))],
        mutations={"count": Mutation.modify(Int64Value(value=42))},
    ),
    2: Reply(
        egresses=[Egress.to("example/out", Int64Value(value=v)) for v in range(42, 142)],
        mutations={"count": Mutation.modify(Int64Value(value=141))},
    ),
    3: Reply(
        sent=[Sent.to("example/counter", f"peer-{i}", Int64Value(value=10 + i)) for i in range(10)],
        delayed=[Delayed.to(5000, "example/fanout", "hub-1", Int64Value(value=1))],
        mutations={
            "s1": Mutation.modify(Int64Value(value=8)),
            "s2": Mutation.modify(StringValue(value="fanout-done")),
            "s3": Mutation.modify(Int64Value(value=10)),
        },
    ),
}


@pytest.mark.parametrize("n", VECTORS, ids=[f"vector-{n}" for n in VECTORS])
@pytest.mark.parametrize("which", ["golden", "ours"])
def test_reply_content_as_the_readme_describes(vectors, n, which):
    if which == "golden":
        reply = decode_reply(load(vectors, "reply", n))
    else:
        reply = answer(load(vectors, "request", n), run_async=False)
    expected = EXPECTED[n]
    assert reply.sent == expected.sent
    assert reply.delayed == expected.delayed
    assert reply.egresses == expected.egresses
    assert reply.mutations == expected.mutations


def test_vector_requests_are_what_the_readme_describes(vectors):
    first = ToFunction.FromString(load(vectors, "request", 1)).invocation
    assert (first.target.namespace, first.target.type, first.target.id) == ("example", "counter", "user-1")
    assert len(first.invocations) == 1 and not first.invocations[0].HasField("caller")
    second = ToFunction.FromString(load(vectors, "request", 2)).invocation
    assert len(second.invocations) == 100
    third = ToFunction.FromString(load(vectors, "request", 3)).invocation
    assert sorted(s.state_name for s in third.state) == ["s1", "s2", "s3"]
    caller = third.invocations[0].caller
    assert third.invocations[0].HasField("caller")
    assert (caller.namespace, caller.type, caller.id) == ("example", "counter", "user-1")


# tests/data/v3/: StateFun 3.x vectors, kept for the 3.x protocol. Their field numbers line up with
# the 2.x messages (a 3.x TypedValue's typename is field 1, as an Any's type_url), so they read
# with our 2.x classes; this checks that the copies are the files the README describes.


def test_v3_vectors_read_as_2x_messages():
    v3 = DATA / "v3"
    requests = [ToFunction.FromString((v3 / f"request-{n}.bin").read_bytes()).invocation for n in (1, 2)]
    for request in requests:
        target = request.target
        assert (target.namespace, target.type, target.id) == ("example", "greeter", "zed")
        assert [i.argument.type_url for i in request.invocations] == ["io.statefun.types/string"]
    assert [s.state_name for s in requests[0].state] == []
    assert sorted(s.state_name for s in requests[1].state) == ["anystate", "seen"]
    assert all(not s.state_value for s in requests[1].state)
    # reply-1 holds only the 3.x incomplete_invocation_context (field 101), unknown to 2.x.
    assert not FromFunction.FromString((v3 / "reply-1.bin").read_bytes()).HasField("invocation_result")
    second = FromFunction.FromString((v3 / "reply-2.bin").read_bytes()).invocation_result
    assert sorted(m.state_name for m in second.state_mutations) == ["anystate", "seen"]
    assert [(e.egress_namespace, e.egress_type) for e in second.outgoing_egresses] == [("e2e", "out")]
