"""Differential scenarios: the same functions, written once against the official StateFun 3.3
API, run by the official SDK (to record) and by statefun_wsgi.v3 (tests/test_v3_functions.py).

``scenarios(sf, pb)`` takes the API module (``statefun`` or ``statefun_wsgi.v3``) and the
request-reply protobuf module of that side, and returns ``{name: (functions, request bytes)}``.
Record the official replies with the official package's virtualenv (see
record_official_api.py)::

    /tmp/sf33venv/bin/python tests/data/v3/scenarios.py > tests/data/v3/differential.json
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any, Dict, List, Optional, Tuple

from google.protobuf.wrappers_pb2 import StringValue

TARGET = "example/fn"


def request(
    pb: Any,
    states: List[Tuple[str, Optional[Tuple[str, bytes]]]],
    arguments: List[Tuple[Optional[str], str, bytes]],
    id: str = "alice",
) -> bytes:
    """A ToFunction to example/fn: states as (name, None | (typename, bytes)), invocations as
    (caller typename/id or None, argument typename, argument bytes)."""
    to = pb.ToFunction()
    batch = to.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "example", "fn", id
    for name, value in states:
        state = batch.state.add()
        state.state_name = name
        if value is not None:
            state.state_value.typename, state.state_value.value = value
            state.state_value.has_value = True
    for caller, typename, value in arguments:
        invocation = batch.invocations.add()
        if caller is not None:
            namespace, _, rest = caller.partition("/")
            name, _, cid = rest.partition("/")
            invocation.caller.namespace, invocation.caller.type, invocation.caller.id = namespace, name, cid
        invocation.argument.typename = typename
        invocation.argument.has_value = True
        invocation.argument.value = value
    return to.SerializeToString()


def scenarios(sf: Any, pb: Any) -> Dict[str, Tuple[Any, bytes]]:
    out: Dict[str, Tuple[Any, bytes]] = {}
    ser = {
        t.typename: t.serializer().serialize
        for t in (sf.BoolType, sf.IntType, sf.LongType, sf.FloatType, sf.DoubleType, sf.StringType)
    }
    UserType = sf.make_json_type("com.example/User")
    ProtoType = sf.make_protobuf_type(StringValue)
    PairType = sf.simple_type(
        "com.example/Pair",
        serialize_fn=lambda v: f"{v[0]},{v[1]}".encode(),
        deserialize_fn=lambda b: tuple(b.decode().split(",")),
    )

    # 1. every built-in message type read back, echoed to egress as strings
    functions = sf.StatefulFunctions()

    @functions.bind(TARGET)
    def reader(context: Any, message: Any) -> None:
        kinds = [k for k in ("int", "bool", "long", "string", "float", "double") if getattr(message, "is_" + k)()]
        value = getattr(message, "as_" + kinds[0])() if kinds else message.raw_value()
        text = f"{kinds}:{value!r}:{message.value_typename()}:{message.target_typename}:{message.target_id}"
        text += f":{message.is_type(UserType)}:{context.caller}:{context.address}"
        context.send_egress(sf.egress_message_builder("example/out", text, sf.StringType))

    arguments = [
        (None, t, ser[t](v))
        for t, v in (
            ("io.statefun.types/int", -7),
            ("io.statefun.types/bool", True),
            ("io.statefun.types/long", 2**40),
            ("io.statefun.types/string", "héllo"),
            ("io.statefun.types/float", 1.5),
            ("io.statefun.types/double", 0.1),
            ("io.statefun.types/int", 0),
        )
    ]
    arguments.append(("example/caller/bob", "com.example/User", b'{"a": 1}'))
    out["read_builtin_messages"] = (functions, request(pb, [], arguments))

    # 2. every way to send
    functions = sf.StatefulFunctions()

    @functions.bind(TARGET)
    def sender(context: Any, message: Any) -> None:
        context.send(sf.message_builder("example/a", "1", int_value=5))
        context.send(sf.message_builder("example/a", "2", long_value=-5))
        context.send(sf.message_builder("example/a", "3", float_value=2.5))
        context.send(sf.message_builder("example/a", "4", double_value=-0.25))
        context.send(sf.message_builder("example/a", "5", str_value="x"))
        context.send(sf.message_builder("example/a", "6", bool_value=False))
        context.send(sf.message_builder("example/a", "7", value={"b": [1, "ü"]}, value_type=UserType))
        context.send(sf.message_builder("example/a", "8", value=StringValue(value="p"), value_type=ProtoType))
        context.send(sf.message_builder("example/a", "9", value=("l", "r"), value_type=PairType))
        context.send_after(timedelta(seconds=1.5), sf.message_builder("example/b", "1", str_value="later"))
        context.send_after(timedelta(minutes=2), sf.message_builder("example/b", "2", int_value=1), "token-1")
        context.send_after(
            timedelta(0), sf.message_builder("example/b", "3", int_value=2), cancellation_token="token-2"
        )
        context.cancel_delayed_message("token-0")
        context.send_egress(sf.egress_message_builder("example/out", {"k": 1}, UserType))
        context.send_egress(sf.kafka_egress_message("example/kafka", "topic", "text", key="key"))
        context.send_egress(sf.kafka_egress_message("example/kafka", "topic", b"\x00\x01"))
        context.send_egress(sf.kafka_egress_message("example/kafka", "topic", 258))
        context.send_egress(sf.kafka_egress_message("example/kafka", "topic", 0.5, key=""))
        context.send_egress(sf.kafka_egress_message("example/kafka", "topic", 9, value_type=sf.LongType))
        context.send_egress(sf.kinesis_egress_message("example/kinesis", "stream", "v", "pk"))
        context.send_egress(sf.kinesis_egress_message("example/kinesis", "stream", b"v", "pk", explicit_hash_key="h"))
        context.send_egress(sf.kinesis_egress_message("example/kinesis", "stream", {"j": 1}, "pk", value_type=UserType))

    out["send_everything"] = (functions, request(pb, [], [(None, "io.statefun.types/string", b"")]))

    # 3. states of every kind: declared, read, written, deleted
    specs = [
        sf.ValueSpec("b", sf.BoolType),
        sf.ValueSpec("i", sf.IntType),
        sf.ValueSpec("l", sf.LongType),
        sf.ValueSpec("f", sf.FloatType),
        sf.ValueSpec("d", sf.DoubleType),
        sf.ValueSpec("s", sf.StringType),
        sf.ValueSpec("u", UserType, expire_after_call=timedelta(seconds=30)),
        sf.ValueSpec("p", ProtoType, expire_after_write=timedelta(days=1)),
        sf.ValueSpec("gone", sf.IntType),
    ]

    def stateful() -> Any:
        functions = sf.StatefulFunctions()

        @functions.bind(TARGET, specs=specs)
        def keeper(context: Any, message: Any) -> None:
            st = context.storage
            seen = [st.b, st.i, st.l, st.f, st.d, st.s, st.u, None if st.p is None else st.p.value, st.gone]
            st.b = not st.b
            st.i = (st.i or 0) + message.as_int()
            st.l = (st.l or 0) - 2**40
            st.f = 0.5
            st.d = (st.d or 0.0) + 0.25
            st.s = (st.s or "") + "+"
            st.u = {"n": len((st.u or {}).get("list", [])), "list": [1, 2]}
            st.p = StringValue(value="proto")
            del st.gone
            try:
                st.nope
            except AttributeError as exc:
                seen.append(str(exc))
            context.send_egress(sf.egress_message_builder("example/out", repr(seen), sf.StringType))

        return functions

    out["states_declared"] = (
        stateful(),
        request(pb, [("b", None)], [(None, "io.statefun.types/int", ser["io.statefun.types/int"](1))]),
    )
    all_empty = [(spec.name, None) for spec in specs]
    out["states_empty"] = (
        stateful(),
        request(pb, all_empty, [(None, "io.statefun.types/int", ser["io.statefun.types/int"](1))] * 3),
    )
    full = [
        ("b", ("io.statefun.types/bool", ser["io.statefun.types/bool"](True))),
        ("i", ("io.statefun.types/int", ser["io.statefun.types/int"](0))),
        ("l", ("io.statefun.types/long", ser["io.statefun.types/long"](7))),
        ("f", ("io.statefun.types/float", ser["io.statefun.types/float"](1.0))),
        ("d", ("io.statefun.types/double", ser["io.statefun.types/double"](2.0))),
        ("s", ("io.statefun.types/string", ser["io.statefun.types/string"]("a"))),
        ("u", ("com.example/User", b'{"list": [1]}')),
        ("p", (ProtoType.typename, StringValue(value="q").SerializeToString())),
        ("gone", ("io.statefun.types/int", ser["io.statefun.types/int"](3))),
    ]
    out["states_full"] = (
        stateful(),
        request(pb, full, [("example/c/1", "io.statefun.types/int", ser["io.statefun.types/int"](4))] * 2),
    )
    return out


def run_official() -> Dict[str, Dict[str, str]]:
    import statefun
    from statefun import request_reply_pb2

    recorded = {}
    for name, (functions, data) in scenarios(statefun, request_reply_pb2).items():
        reply = statefun.RequestReplyHandler(functions).handle_sync(data)
        recorded[name] = {"request": data.hex(), "reply": reply.hex()}
    return recorded


if __name__ == "__main__":
    json.dump(run_official(), sys.stdout, indent=1, sort_keys=True)
    print()
