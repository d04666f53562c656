"""Tests for statefun_wsgi.context: what a function can do with its context.

Every test runs a real batch through the handler and asserts the decoded reply.
(This module uses ``from __future__ import annotations``, so every function bound
here has string annotations: the handler resolves them.)
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import (
    EMPTY_CALLER,
    ID,
    Call,
    Delayed,
    Egress,
    Mutation,
    Sent,
    bind,
    decode_reply,
    invoke,
    invoke_failure,
    pack,
    request,
)
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import BoolValue, BytesValue, Int64Value, StringValue

from statefun_wsgi import (
    Address,
    BatchContext,
    MissingStateError,
    RequestReplyHandler,
    State,
    UnexpectedMessageTypeError,
)
from statefun_wsgi.errors import MalformedRequestError
from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction

HELLO = StringValue(value="hello")
CALLER = ("example", "caller", "c-7")


# -- send / pack_and_send ----------------------------------------------------------------


def test_send_an_any(run_async):
    def fn(context, message: StringValue):
        context.send("example/other", "id-2", pack(Int64Value(value=5)))

    reply = invoke(fn, messages=[HELLO], run_async=run_async)
    assert reply.sent == [Sent("example", "other", "id-2", Int64Value(value=5))]
    assert reply.delayed == [] and reply.egresses == [] and reply.mutations == {}
    argument = reply.raw.invocation_result.outgoing_messages[0].argument
    assert argument.type_url == "type.googleapis.com/google.protobuf.Int64Value"
    assert argument.value == Int64Value(value=5).SerializeToString()


def test_send_passes_the_any_through_unchanged():
    odd = Any(type_url="com.example/custom.Thing", value=b"\x01\x02raw")

    def fn(context, message):
        context.send("example/other", "x", odd)
        context.send("example/other", "y", message)  # forwarding the raw argument

    raw = RequestReplyHandler(bind(fn))(request(messages=[HELLO]))
    sent = FromFunction.FromString(raw).invocation_result.outgoing_messages
    assert [m.argument for m in sent] == [odd, pack(HELLO)]
    assert [(m.target.namespace, m.target.type, m.target.id) for m in sent] == [
        ("example", "other", "x"),
        ("example", "other", "y"),
    ]


def test_pack_and_send():
    def fn(context, message: StringValue):
        context.pack_and_send("example/greeter", "bob", StringValue(value=message.value + "!"))

    reply = invoke(fn, messages=[HELLO])
    assert reply.sent == [Sent.to("example/greeter", "bob", StringValue(value="hello!"))]


def test_send_splits_the_target_typename_at_the_last_slash():
    def fn(context, message):
        context.pack_and_send("com.example/fns/greeter", "id/with/slashes", HELLO)
        context.send("a.b.c/d", " ", pack(HELLO))

    reply = invoke(fn, messages=[HELLO])
    assert reply.sent == [
        Sent("com.example/fns", "greeter", "id/with/slashes", HELLO),
        Sent("a.b.c", "d", " ", HELLO),
    ]


SENDS = {
    "send": lambda c, id: c.send("example/other", id, pack(HELLO)),
    "pack_and_send": lambda c, id: c.pack_and_send("example/other", id, HELLO),
    "send_after": lambda c, id: c.send_after(timedelta(seconds=1), "example/other", id, pack(HELLO)),
    "pack_and_send_after": lambda c, id: c.pack_and_send_after(timedelta(seconds=1), "example/other", id, HELLO),
}


@pytest.mark.parametrize("method", list(SENDS))
def test_an_empty_id_is_refused_as_the_official_sdk_does(method):
    # The official SDK raises ValueError("missing id"); the whole batch fails (500), nothing is sent.
    def fn(context, message):
        context.pack_and_send("example/other", "first", HELLO)
        SENDS[method](context, "")

    invoke_failure(
        fn, ValueError, match=r"^missing id: a message to example/other needs a non-empty id$", messages=[HELLO]
    )


@pytest.mark.parametrize("method", list(SENDS))
def test_an_id_of_one_space_is_sent(method):
    def fn(context, message):
        SENDS[method](context, " ")

    reply = invoke(fn, messages=[HELLO])
    targets = [m.target for m in reply.raw.invocation_result.outgoing_messages]
    targets += [m.target for m in reply.raw.invocation_result.delayed_invocations]
    assert [(t.namespace, t.type, t.id) for t in targets] == [("example", "other", " ")]


@pytest.mark.parametrize("method", list(SENDS))
def test_a_none_id_is_still_a_type_error(method):
    def fn(context, message):
        SENDS[method](context, None)

    invoke_failure(fn, TypeError, match=r"^an id is a str, got NoneType$", messages=[HELLO])


@pytest.mark.parametrize(
    "typename, match",
    [("noslash", "has no '/'"), ("/x", "empty namespace"), ("x/", "empty name")],
    ids=["missing-slash", "empty-namespace", "empty-name"],
)
@pytest.mark.parametrize("method", ["send", "pack_and_send", "send_after", "pack_and_send_after", "send_egress", "pack_and_send_egress"])
def test_bad_typename_in_a_send_is_a_value_error(method, typename, match):
    def fn(context, message):
        payload = message if not method.startswith("pack_and_") else HELLO
        if method.endswith("send_after"):
            getattr(context, method)(timedelta(seconds=1), typename, "id", payload)
        elif method.endswith("send_egress"):
            getattr(context, method)(typename, payload)
        else:
            getattr(context, method)(typename, "id", payload)

    invoke_failure(fn, ValueError, match=match, messages=[HELLO])


NOT_ANY = [
    ("send", lambda c: c.send("example/other", "id", HELLO), "pack_and_send"),
    ("reply", lambda c: c.reply(HELLO), "pack_and_reply"),
    ("send_after", lambda c: c.send_after(timedelta(seconds=1), "example/other", "id", HELLO), "pack_and_send_after"),
    ("send_egress", lambda c: c.send_egress("example/out", HELLO), "pack_and_send_egress"),
    ("send-bytes", lambda c: c.send("example/other", "id", b"bytes"), "pack_and_send"),
    ("send-none", lambda c: c.send("example/other", "id", None), "pack_and_send"),
]


@pytest.mark.parametrize("call, hint", [(call, hint) for _, call, hint in NOT_ANY], ids=[n for n, _, _ in NOT_ANY])
def test_a_non_any_is_a_type_error_pointing_to_pack_and(call, hint):
    def fn(context, message):
        call(context)

    invoke_failure(
        fn, TypeError, match=rf"takes a google.protobuf.Any, got \w+: use {hint}\(\) to pack", messages=[Call(HELLO, CALLER)]
    )


PACK_AN_ANY = [
    ("pack_and_send", lambda c, a: c.pack_and_send("example/other", "id", a)),
    ("pack_and_reply", lambda c, a: c.pack_and_reply(a)),
    ("pack_and_send_after", lambda c, a: c.pack_and_send_after(timedelta(0), "example/other", "id", a)),
    ("pack_and_send_egress", lambda c, a: c.pack_and_send_egress("example/out", a)),
    ("state-pack", lambda c, a: c.state("s").pack(a)),
]


@pytest.mark.parametrize("call", [call for _, call in PACK_AN_ANY], ids=[n for n, _ in PACK_AN_ANY])
def test_packing_an_any_is_a_type_error_pointing_to_the_plain_method(call):
    def fn(context, message):
        call(context, message)

    invoke_failure(
        fn, TypeError, match=r"already a google.protobuf.Any: use the method without 'pack_and_'",
        messages=[Call(HELLO, CALLER)], state={"s": None},
    )


@pytest.mark.parametrize(
    "value, name", [(b"raw", "bytes"), ("text", "str"), (7, "int")], ids=["bytes", "str", "int"]
)
def test_pack_and_send_of_a_non_message_is_a_type_error(value, name):
    def fn(context, message):
        context.pack_and_send("example/other", "id", value)

    invoke_failure(fn, TypeError, match=rf"expected a protobuf message, got {name}", messages=[HELLO])


# -- reply / pack_and_reply --------------------------------------------------------------


def test_reply_goes_to_the_caller():
    def fn(context, message):
        context.reply(pack(StringValue(value="pong")))
        context.pack_and_reply(Int64Value(value=2))

    reply = invoke(fn, messages=[Call(HELLO, CALLER)])
    assert reply.sent == [
        Sent(*CALLER, StringValue(value="pong")),
        Sent(*CALLER, Int64Value(value=2)),
    ]


def test_reply_follows_each_invocations_own_caller():
    def fn(context, message: StringValue):
        context.pack_and_reply(StringValue(value="re:" + message.value))

    reply = invoke(
        fn,
        messages=[
            Call(StringValue(value="a"), ("example/one", "1")),
            Call(StringValue(value="b"), ("x.y/z/two", "2")),
            Call(StringValue(value="c"), ("example/one", "1")),
        ],
    )
    assert reply.sent == [
        Sent("example", "one", "1", StringValue(value="re:a")),
        Sent("x.y/z", "two", "2", StringValue(value="re:b")),
        Sent("example", "one", "1", StringValue(value="re:c")),
    ]


@pytest.mark.parametrize(
    "call",
    [lambda c: c.reply(pack(HELLO)), lambda c: c.pack_and_reply(HELLO)],
    ids=["reply", "pack_and_reply"],
)
def test_reply_without_a_caller_is_an_error_that_says_so(call):
    def fn(context, message):
        call(context)

    invoke_failure(fn, ValueError, match=r"cannot reply: the current message came from an ingress and has no caller", messages=[HELLO])


def test_reply_after_an_ingress_message_following_a_caller_message_fails():
    # The caller of invocation 1 must not leak into invocation 2.
    def fn(context, message):
        context.pack_and_reply(HELLO)

    invoke_failure(fn, ValueError, match="no caller", messages=[Call(HELLO, CALLER), Call(HELLO, None)])


@pytest.mark.parametrize(
    "call",
    [lambda c: c.reply(pack(HELLO)), lambda c: c.pack_and_reply(HELLO)],
    ids=["reply", "pack_and_reply"],
)
@pytest.mark.parametrize(
    "caller, shown",
    [(("example", "caller", ""), "example/caller"), (EMPTY_CALLER, "/")],
    ids=["empty-id", "all-fields-empty"],
)
def test_reply_to_a_caller_with_an_empty_id_is_refused(call, caller, shown):
    # The official SDK's reply() goes through send(), which raises "missing id".
    def fn(context, message):
        call(context)

    invoke_failure(
        fn,
        ValueError,
        match=rf"^missing id: cannot reply to the caller {shown}, whose id is empty$",
        messages=[Call(HELLO, caller)],
    )


def test_reply_to_a_caller_with_only_an_id():
    def fn(context, message):
        context.pack_and_reply(HELLO)

    reply = invoke(fn, messages=[Call(HELLO, ("", "", "c-1"))])
    assert reply.sent == [Sent("", "", "c-1", HELLO)]


# -- send_after / pack_and_send_after ----------------------------------------------------


DELAYS = [
    (timedelta(0), 0),
    (timedelta(microseconds=1), 0),
    (timedelta(microseconds=999), 0),
    (timedelta(milliseconds=1), 1),
    (timedelta(microseconds=1999), 1),
    (timedelta(milliseconds=1500), 1500),
    (timedelta(seconds=5), 5000),
    (timedelta(minutes=5, microseconds=999), 300_000),
    (timedelta(days=1, seconds=1, milliseconds=1), 86_401_001),
    (timedelta(days=400), 400 * 86_400_000),
]


@pytest.mark.parametrize("delay, ms", DELAYS, ids=[f"{d!s}->{ms}ms" for d, ms in DELAYS])
@pytest.mark.parametrize("packed", [False, True], ids=["send_after", "pack_and_send_after"])
def test_send_after_delay_in_whole_milliseconds_rounded_down(packed, delay, ms):
    def fn(context, message):
        if packed:
            context.pack_and_send_after(delay, "example/later", "id-9", Int64Value(value=9))
        else:
            context.send_after(delay, "example/later", "id-9", pack(Int64Value(value=9)))

    reply = invoke(fn, messages=[HELLO])
    assert reply.delayed == [Delayed(ms, "example", "later", "id-9", Int64Value(value=9))]
    assert reply.sent == [] and reply.egresses == []


BAD_DELAYS = [
    ("negative", timedelta(seconds=-1), ValueError, "a delay cannot be negative"),
    ("negative-microsecond", timedelta(microseconds=-1), ValueError, "a delay cannot be negative"),
    ("int", 5, TypeError, "a delay is a datetime.timedelta, got int"),
    ("float", 1.5, TypeError, "a delay is a datetime.timedelta, got float"),
    ("none", None, TypeError, "a delay is a datetime.timedelta, got NoneType"),
]


@pytest.mark.parametrize(
    "delay, error, match", [row[1:] for row in BAD_DELAYS], ids=[row[0] for row in BAD_DELAYS]
)
@pytest.mark.parametrize("packed", [False, True], ids=["send_after", "pack_and_send_after"])
def test_bad_delays_are_errors(packed, delay, error, match):
    def fn(context, message):
        if packed:
            context.pack_and_send_after(delay, "example/later", "id", HELLO)
        else:
            context.send_after(delay, "example/later", "id", pack(HELLO))

    invoke_failure(fn, error, match=match, messages=[HELLO])


# -- send_egress / pack_and_send_egress --------------------------------------------------


def test_send_egress_and_pack_and_send_egress():
    def fn(context, message: StringValue):
        context.send_egress("example/out", pack(message))
        context.pack_and_send_egress("com.example.io/kafka/greets", Int64Value(value=len(message.value)))

    reply = invoke(fn, messages=[HELLO])
    assert reply.egresses == [
        Egress("example", "out", HELLO),
        Egress("com.example.io/kafka", "greets", Int64Value(value=5)),
    ]
    assert reply.sent == [] and reply.delayed == [] and reply.mutations == {}


# -- ordering ----------------------------------------------------------------------------


def test_order_of_messages_is_preserved_within_and_across_invocations(run_async):
    def fn(context, message: Int64Value):
        n = message.value
        context.pack_and_send("example/b", f"{n}", Int64Value(value=n))
        context.pack_and_send_egress("example/e2", Int64Value(value=n))
        context.pack_and_send_after(timedelta(seconds=10 - n), "example/d", "x", Int64Value(value=n))
        context.pack_and_send("example/a", f"{n}", Int64Value(value=-n))
        context.pack_and_send_egress("example/e1", Int64Value(value=-n))
        context.send_after(timedelta(0), "example/d", "y", pack(Int64Value(value=-n)))

    reply = invoke(fn, messages=[Int64Value(value=n) for n in range(4)], run_async=run_async)
    assert reply.sent == [
        sent
        for n in range(4)
        for sent in (Sent("example", "b", f"{n}", Int64Value(value=n)), Sent("example", "a", f"{n}", Int64Value(value=-n)))
    ]
    assert reply.egresses == [
        egress
        for n in range(4)
        for egress in (Egress("example", "e2", Int64Value(value=n)), Egress("example", "e1", Int64Value(value=-n)))
    ]
    assert reply.delayed == [
        delayed
        for n in range(4)
        for delayed in (
            Delayed((10 - n) * 1000, "example", "d", "x", Int64Value(value=n)),
            Delayed(0, "example", "d", "y", Int64Value(value=-n)),
        )
    ]


def test_a_batch_that_does_nothing_replies_with_nothing_to_do():
    reply = invoke(lambda context, message: None, messages=[HELLO, HELLO], state={"s": Int64Value(value=1)})
    assert reply.empty


# -- addresses ---------------------------------------------------------------------------


def test_address():
    seen = []

    def fn(context, message):
        seen.append(context.address)

    invoke(fn, typename="com.example/fns/greeter", id="user/7", messages=[HELLO])
    (address,) = seen
    assert isinstance(address, Address)
    assert address.namespace == "com.example/fns"
    assert address.type == "greeter"
    assert address.identity == "user/7"
    assert address.typename() == "com.example/fns/greeter"
    assert address.text() == "com.example/fns/greeter/user/7"
    assert address == ("com.example/fns", "greeter", "user/7")


def test_caller_is_none_for_an_ingress_message_and_an_address_otherwise():
    seen = []

    def fn(context, message):
        seen.append(context.caller)

    invoke(
        fn,
        messages=[
            Call(HELLO, None),
            Call(HELLO, ("example/caller", "c-1")),
            Call(HELLO, None),
            Call(HELLO, ("a.b/c", "d", "e")),
            Call(HELLO, EMPTY_CALLER),
        ],
    )
    assert seen == [
        None,
        Address("example", "caller", "c-1"),
        None,
        Address("a.b/c", "d", "e"),
        Address("", "", ""),
    ]
    caller = seen[1]
    assert (caller.namespace, caller.type, caller.identity) == ("example", "caller", "c-1")
    assert caller.typename() == "example/caller"
    # An all-empty caller is still a caller: HasField, not truthiness.
    assert seen[4] is not None
    assert seen[4].typename() == "/"


def test_the_builder_really_sends_an_empty_but_present_caller():
    parsed = ToFunction.FromString(request(messages=[Call(HELLO, EMPTY_CALLER), Call(HELLO, None)]))
    first, second = parsed.invocation.invocations
    assert first.HasField("caller") and first.caller.namespace == ""
    assert not second.HasField("caller")


def test_context_types_and_repr():
    seen = []

    def fn(context, message):
        seen.append((type(context), type(context.state("s")), repr(context), repr(context.state("s"))))

    invoke(fn, typename="example/counter", id="u1", messages=[HELLO], state={"s": None})
    assert seen == [(BatchContext, State, "<BatchContext example/counter/u1>", "<State 's'>")]


# -- state: item access ------------------------------------------------------------------


def test_read_a_present_and_an_absent_state():
    seen = {}

    def fn(context, message):
        seen["count"] = context["count"]
        seen["empty"] = context["empty"]

    reply = invoke(fn, messages=[HELLO], state={"count": Int64Value(value=41), "empty": None})
    assert seen == {"count": pack(Int64Value(value=41)), "empty": None}
    assert type(seen["count"]) is Any
    assert reply.mutations == {}


def test_a_state_is_absent_only_when_its_value_is_empty():
    seen = {}

    def fn(context, message):
        seen.update({name: context[name] for name in ("no-bytes", "empty-fields", "only-value", "unknown-field")})

    invoke(fn, messages=[HELLO], state={
        "no-bytes": b"",
        "empty-fields": b"\x0a\x00\x12\x00",  # type_url and value present but empty
        "only-value": b"\x12\x01x",  # a value without a type URL
        "unknown-field": b"\x28\x01",  # nothing but a field Any does not define
    })
    assert seen["no-bytes"] is None and seen["empty-fields"] is None
    assert seen["only-value"] == Any(value=b"x")
    assert seen["unknown-field"] is not None and seen["unknown-field"].SerializeToString() == b"\x28\x01"


def test_set_state_modifies_it():
    def fn(context, message):
        context["count"] = pack(Int64Value(value=42))
        context["fresh"] = pack(StringValue(value="new"))

    reply = invoke(fn, messages=[HELLO], state={"count": Int64Value(value=41), "fresh": None})
    assert reply.mutations == {
        "count": Mutation.modify(Int64Value(value=42)),
        "fresh": Mutation.modify(StringValue(value="new")),
    }
    assert reply.sent == [] and reply.egresses == [] and reply.delayed == []


def test_mutation_value_is_the_serialized_any():
    value = pack(Int64Value(value=42))

    def fn(context, message):
        context["count"] = value

    reply = invoke(fn, messages=[HELLO], state={"count": None})
    (mutation,) = reply.raw.invocation_result.state_mutations
    assert mutation.state_name == "count"
    assert Any.FromString(mutation.state_value) == value


@pytest.mark.parametrize(
    "delete",
    [lambda c: c.__setitem__("count", None), lambda c: c.__delitem__("count")],
    ids=["set-none", "del"],
)
def test_delete_state(delete):
    seen = []

    def fn(context, message):
        delete(context)
        seen.append(context["count"])

    reply = invoke(fn, messages=[HELLO], state={"count": Int64Value(value=41)})
    assert seen == [None]
    assert reply.mutations == {"count": Mutation.delete()}


def test_deleting_an_absent_state_still_sends_a_delete():
    def fn(context, message):
        del context["count"]

    reply = invoke(fn, messages=[HELLO], state={"count": None})
    assert reply.mutations == {"count": Mutation.delete()}


@pytest.mark.parametrize(
    "value, name", [(Int64Value(value=1), "Int64Value"), (b"raw", "bytes"), (1, "int")], ids=["message", "bytes", "int"]
)
def test_setting_a_non_any_is_a_type_error(value, name):
    def fn(context, message):
        context["count"] = value

    invoke_failure(
        fn, TypeError, match=rf"state values are google.protobuf.Any \(or None to delete\), got {name}: "
        r"use context.state\('count'\).pack\(message\)",
        messages=[HELLO], state={"count": None},
    )


UNKNOWN_STATE = [
    ("get", lambda c: c["unknown"]),
    ("set", lambda c: c.__setitem__("unknown", pack(HELLO))),
    ("set-none", lambda c: c.__setitem__("unknown", None)),
    ("del", lambda c: c.__delitem__("unknown")),
    ("state", lambda c: c.state("unknown")),
]


@pytest.mark.parametrize("use", [use for _, use in UNKNOWN_STATE], ids=[n for n, _ in UNKNOWN_STATE])
def test_unknown_state_is_a_key_error_telling_to_register_it(use):
    def fn(context, message):
        use(context)

    cause = invoke_failure(
        fn,
        MissingStateError,
        match=r"state 'unknown' was not sent by the runtime for example/fn \(states sent: a, b\); "
        r"register it in module.yaml: '- name: unknown' under 'states:' of example/fn",
        messages=[HELLO],
        state={"b": None, "a": Int64Value(value=1)},
    )
    assert isinstance(cause, KeyError)
    assert "states:" in str(cause) and "module.yaml" in str(cause)


def test_unknown_state_with_no_states_sent_says_none():
    def fn(context, message):
        context["x"]

    invoke_failure(fn, MissingStateError, match=r"\(states sent: none\)", messages=[HELLO])


def test_user_code_can_catch_the_missing_state_as_a_key_error():
    def fn(context, message):
        try:
            context["unknown"]
        except KeyError as exc:
            context.pack_and_send_egress("example/errors", StringValue(value=str(exc)))

    reply = invoke(fn, messages=[HELLO])
    (egress,) = reply.egresses
    assert egress.message.value.startswith("state 'unknown' was not sent by the runtime")


def test_a_stored_value_that_is_not_an_any_makes_the_batch_malformed():
    # States are parsed with the request: a corrupt one is a 400, before any function runs.
    called = []

    def fn(context, message):
        called.append(context["broken"])

    body = request(messages=[HELLO], state={"broken": b"\xff\xff\xff"})
    with pytest.raises(MalformedRequestError, match=r"state value is not a serialized google.protobuf.Any"):
        RequestReplyHandler(bind(fn))(body)
    assert called == []


# -- state: context.state(name) ----------------------------------------------------------


def test_state_handle_value_get_set_del():
    seen = []

    def fn(context, message):
        handle = context.state("a")
        seen.append(handle.name)
        seen.append(handle.value)
        handle.value = pack(StringValue(value="set"))
        seen.append(context["a"])
        seen.append(context.state("b").value)
        del context.state("b").value
        seen.append(context.state("b").value)

    reply = invoke(fn, messages=[HELLO], state={"a": None, "b": Int64Value(value=3)})
    assert seen == ["a", None, pack(StringValue(value="set")), pack(Int64Value(value=3)), None]
    assert reply.mutations == {"a": Mutation.modify(StringValue(value="set")), "b": Mutation.delete()}


def test_state_handle_value_none_deletes():
    def fn(context, message):
        context.state("a").value = None

    reply = invoke(fn, messages=[HELLO], state={"a": Int64Value(value=1)})
    assert reply.mutations == {"a": Mutation.delete()}


def test_state_unpack_and_pack():
    seen = []

    def fn(context, message):
        count = context.state("count").unpack(Int64Value)
        seen.append(type(count))
        seen.append(count.value)
        seen.append(context.state("absent").unpack(Int64Value))
        count.value += 1
        context.state("count").pack(count)
        context.state("absent").pack(BoolValue(value=True))

    reply = invoke(fn, messages=[HELLO], state={"count": Int64Value(value=41), "absent": None})
    assert seen == [Int64Value, 41, None]
    assert reply.mutations == {"count": Mutation.modify(Int64Value(value=42)), "absent": Mutation.modify(BoolValue(value=True))}


def test_state_unpack_accepts_any_type_url_prefix():
    stored = Any(type_url="com.googleapis/google.protobuf.Int64Value", value=Int64Value(value=5).SerializeToString())
    seen = []

    def fn(context, message):
        seen.append(context.state("n").unpack(Int64Value))

    invoke(fn, messages=[HELLO], state={"n": stored})
    assert seen == [Int64Value(value=5)]


def test_state_unpack_of_another_stored_type_is_an_error():
    def fn(context, message):
        context.state("count").unpack(Int64Value)

    cause = invoke_failure(
        fn,
        UnexpectedMessageTypeError,
        match=r"state 'count' holds a 'type.googleapis.com/google.protobuf.StringValue', not a google.protobuf.Int64Value",
        messages=[HELLO],
        state={"count": StringValue(value="41")},
    )
    assert isinstance(cause, TypeError)


def test_state_unpack_of_undecodable_bytes_is_an_error():
    stored = Any(type_url="type.googleapis.com/google.protobuf.Int64Value", value=b"\xff\xff")

    def fn(context, message):
        context.state("count").unpack(Int64Value)

    invoke_failure(
        fn, UnexpectedMessageTypeError, match=r"state 'count' does not parse as google.protobuf.Int64Value",
        messages=[HELLO], state={"count": stored},
    )


def test_state_pack_of_a_non_message_is_a_type_error():
    def fn(context, message):
        context.state("count").pack(41)

    invoke_failure(fn, TypeError, match="expected a protobuf message, got int", messages=[HELLO], state={"count": None})


def test_state_handle_of_an_unknown_state_fails_on_creation():
    def fn(context, message):
        context.state("nope")

    invoke_failure(fn, MissingStateError, match=r"'- name: nope' under 'states:'", messages=[HELLO], state={"count": None})


# -- state across a batch ----------------------------------------------------------------


def test_each_invocation_sees_the_writes_of_the_ones_before_it(run_async):
    seen = []

    def fn(context, message: StringValue):
        count = context.state("count").unpack(Int64Value) or Int64Value()
        seen.append(count.value)
        count.value += 1
        context.state("count").pack(count)

    reply = invoke(fn, messages=[HELLO] * 5, state={"count": Int64Value(value=10)}, run_async=run_async)
    assert seen == [10, 11, 12, 13, 14]
    assert reply.mutations == {"count": Mutation.modify(Int64Value(value=15))}


def test_a_delete_is_seen_by_the_next_invocation():
    seen = []

    def fn(context, message: Int64Value):
        seen.append(context["s"])
        if message.value == 0:
            del context["s"]

    reply = invoke(fn, messages=[Int64Value(value=0), Int64Value(value=1)], state={"s": Int64Value(value=3)})
    assert seen == [pack(Int64Value(value=3)), None]
    assert reply.mutations == {"s": Mutation.delete()}


def test_only_changed_states_produce_mutations():
    def fn(context, message):
        context["read"]
        context.state("read_too").unpack(Int64Value)
        context.state("changed").pack(StringValue(value="x"))

    reply = invoke(
        fn,
        messages=[HELLO, HELLO],
        state={"read": Int64Value(value=1), "read_too": Int64Value(value=2), "changed": None, "untouched": BoolValue()},
    )
    assert reply.mutations == {"changed": Mutation.modify(StringValue(value="x"))}


def test_one_mutation_per_state_the_final_one():
    def fn(context, message: Int64Value):
        context.state("a").pack(Int64Value(value=message.value))
        context.state("a").pack(Int64Value(value=message.value * 10))
        context.state("b").pack(Int64Value(value=message.value))

    reply = invoke(fn, messages=[Int64Value(value=n) for n in (1, 2, 3)], state={"a": None, "b": None})
    assert reply.mutations == {"a": Mutation.modify(Int64Value(value=30)), "b": Mutation.modify(Int64Value(value=3))}
    assert len(reply.raw.invocation_result.state_mutations) == 2


@pytest.mark.parametrize(
    "steps, expected",
    [
        (["set", "delete"], Mutation.delete()),
        (["delete", "set"], Mutation.modify(StringValue(value="set"))),
        (["set", "delete", "set"], Mutation.modify(StringValue(value="set"))),
        (["delete", "delete"], Mutation.delete()),
        (["restore"], Mutation.modify(Int64Value(value=1))),
    ],
    ids=["set-then-delete", "delete-then-set", "set-delete-set", "delete-twice", "write-back-same-value"],
)
def test_final_mutation_across_invocations(steps, expected):
    def fn(context, message: StringValue):
        step = message.value
        if step == "set":
            context.state("s").pack(StringValue(value="set"))
        elif step == "delete":
            del context["s"]
        elif step == "restore":
            context["s"] = context["s"]

    reply = invoke(fn, messages=[StringValue(value=s) for s in steps], state={"s": Int64Value(value=1)})
    assert reply.mutations == {"s": expected}


def test_mutations_follow_the_order_states_were_first_changed():
    def fn(context, message):
        context.state("z").pack(HELLO)
        context.state("a").pack(HELLO)
        context.state("z").pack(HELLO)
        context.state("m").pack(HELLO)

    reply = invoke(fn, messages=[HELLO], state={"a": None, "m": None, "z": None})
    assert reply.mutation_order == ["z", "a", "m"]


def test_requests_do_not_share_state():
    seen = []

    def fn(context, message):
        seen.append(context.state("count").unpack(Int64Value))
        context.state("count").pack(Int64Value(value=100))
        context.pack_and_send("example/x", "1", HELLO)

    handler = RequestReplyHandler(bind(fn))
    first = decode_reply(handler(request(messages=[HELLO], state={"count": Int64Value(value=1)})))
    second = decode_reply(handler(request(messages=[HELLO], state={"count": Int64Value(value=2)})))
    third = decode_reply(handler(request(messages=[HELLO], state={"count": None})))
    assert seen == [Int64Value(value=1), Int64Value(value=2), None]
    for reply in (first, second, third):
        assert reply.mutations == {"count": Mutation.modify(Int64Value(value=100))}
        assert reply.sent == [Sent("example", "x", "1", HELLO)]  # one each, not accumulated


def test_large_state_round_trip():
    blob = bytes(range(256)) * 4096  # 1 MiB

    def fn(context, message):
        stored = context.state("blob").unpack(BytesValue)
        context.state("blob").pack(BytesValue(value=stored.value[::-1]))

    reply = invoke(fn, messages=[HELLO], state={"blob": BytesValue(value=blob)})
    assert reply.mutations == {"blob": Mutation.modify(BytesValue(value=blob[::-1]))}


def test_the_builder_id_default_is_used_as_identity():
    seen = []
    invoke(lambda context, message: seen.append(context.address.identity), messages=[HELLO])
    assert seen == [ID]


# -- delayed-message cancellation (3.x requests; 2.x refuses it: see test_protocol2) -----------


def _v3_delayed(fn) -> list:
    from builders import to_v3, v3
    from google.protobuf.empty_pb2 import Empty

    reply = v3.FromFunction.FromString(RequestReplyHandler(bind(fn))(to_v3(request(messages=[Empty()]))))
    return list(reply.invocation_result.delayed_invocations)


def test_a_token_pending_in_the_batch_cannot_be_reused_until_cancelled():
    caught = []

    def fn(context, message):
        from google.protobuf.empty_pb2 import Empty

        send = lambda: context.pack_and_send_after(timedelta(milliseconds=1), "example/fn", "me", Empty(), cancellation_token="t")  # noqa: E731
        send()
        try:
            send()
        except ValueError as exc:
            caught.append(str(exc))
        context.cancel_delayed_message("t")
        send()

    got = _v3_delayed(fn)
    assert [(d.is_cancellation_request, d.cancellation_token) for d in got] == [(False, "t"), (True, "t"), (False, "t")]
    assert caught == [
        "cancellation token 't' already names a delayed message of this batch (a pending token reused fails "
        "the job): use a token per message"
    ]
