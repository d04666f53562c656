"""Tests for statefun_wsgi._protocol2: what a 2.x request cannot carry is refused in
the function that asks for it (the rest of 2.x is tested through the handler and the
context: test_handler, test_context, test_wire, test_vectors)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import Delayed, bind, decode_reply, pack, request
from google.protobuf.empty_pb2 import Empty

from statefun_wsgi import RequestReplyHandler
from statefun_wsgi._protocol2 import CODEC


def handle(functions, data: bytes) -> bytes:
    return RequestReplyHandler(functions)(data)


def test_the_codec_is_named():
    assert repr(CODEC) == "<Codec StateFun 2.x>"
    assert CODEC.to_any is None and CODEC.state_value is None and CODEC.append_mutations is None and CODEC.states is None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.pack_and_send_after(timedelta(milliseconds=1), "example/fn", "me", Empty(), cancellation_token="t"),
        lambda c: c.send_after(timedelta(milliseconds=1), "example/fn", "me", pack(Empty()), cancellation_token="t"),
        lambda c: c.cancel_delayed_message("t"),
    ],
    ids=["pack_and_send_after", "send_after", "cancel_delayed_message"],
)
def test_on_a_2x_request_cancellation_is_refused_in_the_function(call):
    caught = []

    def fn(context, message):
        try:
            call(context)
        except ValueError as exc:
            caught.append(str(exc))
        context.pack_and_send_after(timedelta(milliseconds=1), "example/fn", "me", Empty())  # without a token: fine

    reply = decode_reply(handle(bind(fn), request(messages=[Empty()])))
    assert reply.delayed == [Delayed.to(1, "example/fn", "me", Empty())]
    assert len(caught) == 1
    assert caught[0].endswith(
        "this request came from a StateFun 2.x runtime, which has no delayed-message cancellation "
        "(StateFun 3.1 and later have it)"
    )
