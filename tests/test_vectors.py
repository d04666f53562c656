"""Golden request/reply vectors: our replies must decode to what the official SDK answered.

The vectors live in ``shared/vectors`` beside the clone (``../shared`` from the repo
root; see its README); ``STATEFUN_SHARED_DIR`` points elsewhere if needed. CI always
has them, so a missing directory fails the tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from builders import Delayed, Egress, Mutation, Reply, Sent, decode_reply
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi import AsyncRequestReplyHandler, RequestReplyHandler, StatefulFunctions
from statefun_wsgi._proto.request_reply_pb2 import ToFunction

ENV_VAR = "STATEFUN_SHARED_DIR"
VECTORS = (1, 2, 3)


def _vectors_dir() -> Path:
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "vectors"]
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / "vectors")
    for candidate in candidates:
        if (candidate / "request-1.bin").is_file():
            return candidate
    pytest.fail(
        "golden vectors not found: looked in "
        + ", ".join(str(c) for c in candidates)
        + f". Put the shared/ directory beside the clone, or set {ENV_VAR} to the shared/ directory.",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def vectors() -> Path:
    return _vectors_dir()


def load(vectors: Path, kind: str, n: int) -> bytes:
    path = vectors / f"{kind}-{n}.bin"
    if not path.is_file():
        pytest.fail(f"golden vector {path} is missing", pytrace=False)
    return path.read_bytes()


# The functions, as the vectors' README describes them.


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
