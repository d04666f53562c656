"""Tests for statefun_wsgi.local: the local runtime in process, on a virtual clock.

Every test drives real functions through LocalRuntime.for_functions (the handler is
called with the same ToFunction bytes the runtime would POST) and observes what the
functions saw and what the runtime kept: batches, states, delayed messages, egress.
"""

from __future__ import annotations

import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from examples.greeter import functions as greeter_module
from examples.greeter.messages_pb2 import GreetRequest, GreetResponse
from statefun_wsgi import (
    Address,
    ConfigurationError,
    StatefulFunctions,
    UnexpectedMessageTypeError,
    kafka_egress_record,
    kinesis_egress_record,
)
from statefun_wsgi._proto.request_reply_pb2 import FromFunction
from statefun_wsgi.handler import RequestReplyHandler
from statefun_wsgi.local import EgressRecord, FunctionCallFailedError, InProcessTransport, LocalRuntime, VirtualClock
from statefun_wsgi.module_yaml import FunctionSpec, StateSpec, parse_module_yaml


def text(value: str) -> StringValue:
    return StringValue(value=value)


def io_timeouts(value: str) -> str:
    """The connect, read and write timeouts, which the runtime needs no longer than a timeout under 10 s."""
    return "".join(f"{key}: {value}\n" for key in ("connectTimeout", "readTimeout", "writeTimeout"))


def module(functions: Dict[str, str], egresses: Tuple[str, ...] = (), egress_type: str = "kafka") -> object:
    """A format 2.0 ModuleSpec: ``functions`` maps each type to its spec lines (YAML);
    ``egresses`` are generic Kafka egresses (``egress_type="kinesis"``: Kinesis ones)."""
    lines = ['version: "2.0"', "module:", "  meta:", "    type: remote", "  spec:", "    functions:"]
    for typename, spec in functions.items():
        lines += ["      - function:", "          meta:", "            kind: http", f"            type: {typename}",
                  "          spec:", "            endpoint: http://localhost:8000/statefun"]
        lines += [" " * 12 + line for line in textwrap.dedent(spec).strip("\n").splitlines() if line.strip()]
    if egresses:
        lines.append("    egresses:")
        for egress in egresses:
            lines += ["      - egress:", "          meta:",
                      f"            type: statefun.{egress_type}.io/generic-egress",
                      f"            id: {egress}"]
    return parse_module_yaml("\n".join(lines) + "\n")


class Recorder:
    """A function that records every invocation, grouped by batch (one context per batch)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[object, str, Optional[Address]]] = []

    def __call__(self, context, message: StringValue) -> None:
        self.calls.append((context, message.value, context.caller))

    @property
    def values(self) -> List[str]:
        return [value for _, value, _ in self.calls]

    @property
    def batches(self) -> List[List[str]]:
        batches: List[List[str]] = []
        last = None
        for context, value, _ in self.calls:
            if context is not last:
                batches.append([])
                last = context
            batches[-1].append(value)
        return batches


def fan_out(count: int, target: str = "test/sink", id: str = "x"):
    """A function that sends ``count`` messages (m1..mN) to ``target``/``id``."""

    def send(context, message: StringValue) -> None:
        for number in range(1, count + 1):
            context.pack_and_send(target, id, text(f"m{number}"))

    return send


# -- batching --------------------------------------------------------------------------


def test_messages_arriving_while_in_flight_go_as_one_batch_in_arrival_order() -> None:
    sink = Recorder()
    functions = StatefulFunctions()
    functions.register("test/source", fan_out(3))
    functions.register("test/sink", sink)
    runtime = LocalRuntime.for_functions(functions)

    runtime.send("test/source", "s", text("go"))
    runtime.send("test/sink", "x", text("first"))
    runtime.run_until_idle()

    # "first" was in flight when the source's reply sent m1..m3: they waited and went together.
    assert sink.batches == [["first"], ["m1", "m2", "m3"]]
    assert runtime.batches_sent == 3  # source, sink, sink


def test_an_idle_address_gets_its_first_message_alone() -> None:
    sink = Recorder()
    functions = StatefulFunctions()
    functions.register("test/source", fan_out(5))
    functions.register("test/sink", sink)
    runtime = LocalRuntime.for_functions(functions)

    for number in range(1, 4):  # back to back, from the ingress
        runtime.send("test/sink", "a", text(f"a{number}"))
    runtime.send("test/source", "s", text("go"))  # five to an idle address, from one reply
    runtime.run_until_idle()

    by_address: Dict[str, List[List[str]]] = {}
    last = None
    for context, value, _ in sink.calls:
        if context is not last:
            by_address.setdefault(context.address.identity, []).append([])
            last = context
        by_address[context.address.identity][-1].append(value)
    assert by_address == {"a": [["a1"], ["a2", "a3"]], "x": [["m1"], ["m2", "m3", "m4", "m5"]]}


def test_max_num_batch_requests_is_a_backpressure_threshold_not_a_batch_size() -> None:
    sink = Recorder()
    functions = StatefulFunctions()
    functions.register("test/source", fan_out(5))
    functions.register("test/sink", sink)
    spec = module({"test/source": "", "test/sink": "maxNumBatchRequests: 2"})
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec)

    runtime.send("test/source", "s", text("go"))
    runtime.send("test/sink", "x", text("first"))
    runtime.run_until_idle()

    # m1..m5 come from one reply, inside the runtime: the threshold holds back only the
    # ingress, so they all join the backlog, and the backlog is the next batch.
    assert sink.batches == [["first"], ["m1", "m2", "m3", "m4", "m5"]]
    assert runtime.batches_sent == 3


@pytest.mark.parametrize(
    "threshold, batches",
    [(2, [1, 2, 2, 1]), (3, [1, 3, 2]), (0, [1, 5]), (-1, [1, 5]), (1000, [1, 5])],
    ids=["2", "3", "0-no-limit", "negative-no-limit", "default"],
)
def test_ingress_waits_while_a_backlog_is_at_its_threshold(threshold: int, batches: List[int]) -> None:
    sink = Recorder()
    functions = StatefulFunctions()
    functions.register("test/sink", sink)
    runtime = LocalRuntime(
        {"test/sink": FunctionSpec("test/sink", "in-process://", max_batch_size=threshold)},
        InProcessTransport(RequestReplyHandler(functions)),
    )
    for number in range(1, 7):
        runtime.send("test/sink", "x", text(f"m{number}"))
    runtime.run_until_idle()

    assert [len(batch) for batch in sink.batches] == batches
    assert sink.values == [f"m{number}" for number in range(1, 7)]


def test_ingress_waits_while_the_task_has_max_async_operations_in_flight() -> None:
    sink = Recorder()
    functions = StatefulFunctions()
    functions.register("test/sink", sink)
    runtime = LocalRuntime.for_functions(functions)
    runtime.max_async_operations = 2  # the runtime's statefun.async.max-per-task (1024 by default)
    for message in ("a1", "b1", "a2", "a3", "c1"):
        runtime.send("test/sink", message[0], text(message))
    runtime.run_until_idle()
    # a1 and b1 in flight: a2 waits at the ingress until they complete, then goes alone
    # (with the default, a2 and a3 would have gone together, behind a1).
    assert sink.batches == [["a1"], ["b1"], ["a2"], ["c1"], ["a3"]]


def test_batches_are_per_address() -> None:
    sink = Recorder()
    functions = StatefulFunctions()
    functions.register("test/sink", sink)
    runtime = LocalRuntime.for_functions(functions)
    for number in range(3):
        runtime.send("test/sink", "a", text(f"a{number}"))
        runtime.send("test/sink", "b", text(f"b{number}"))
    runtime.run_until_idle()

    by_address: Dict[str, List[str]] = {}
    for context, value, _ in sink.calls:
        by_address.setdefault(context.address.identity, []).append(value)
    assert by_address == {"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2"]}
    for batch in sink.batches:  # no batch mixes addresses
        assert len({value[0] for value in batch}) == 1


def test_a_function_can_message_itself() -> None:
    """A countdown that sends itself the next number: every step runs exactly once."""
    seen: List[int] = []
    functions = StatefulFunctions()

    @functions.bind("test/countdown", states=["steps"])
    def countdown(context, message: Int64Value) -> None:
        seen.append(message.value)
        steps = context.state("steps").unpack(Int64Value) or Int64Value()
        steps.value += 1
        context.state("steps").pack(steps)
        if message.value > 0:
            context.pack_and_send("test/countdown", context.address.identity, Int64Value(value=message.value - 1))

    runtime = LocalRuntime.for_functions(functions)
    runtime.send("test/countdown", "c", Int64Value(value=5))
    runtime.run_until_idle()
    assert seen == [5, 4, 3, 2, 1, 0]
    assert runtime.state("test/countdown", "c", "steps", Int64Value) == Int64Value(value=6)


# -- state -------------------------------------------------------------------------------


def counter_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("test/counter", states=["count"])
    def count(context, message: StringValue) -> None:
        current = context.state("count").unpack(Int64Value) or Int64Value()
        current.value += 1
        context.state("count").pack(current)
        context.pack_and_send_egress("test/out", Int64Value(value=current.value))

    return functions


def test_state_persists_across_batches() -> None:
    runtime = LocalRuntime.for_functions(counter_functions())
    assert runtime.state("test/counter", "a", "count") is None

    runtime.send("test/counter", "a", text("one"))
    runtime.run_until_idle()
    runtime.send("test/counter", "a", text("two"))
    runtime.send("test/counter", "b", text("one"))
    runtime.run_until_idle()
    runtime.send("test/counter", "a", text("three"))
    runtime.run_until_idle()

    assert runtime.state("test/counter", "a", "count", Int64Value) == Int64Value(value=3)
    assert runtime.state("test/counter", "b", "count", Int64Value) == Int64Value(value=1)
    stored = runtime.state("test/counter", "a", "count")
    assert isinstance(stored, Any) and stored.type_url.endswith("/google.protobuf.Int64Value")
    with pytest.raises(UnexpectedMessageTypeError):
        runtime.state("test/counter", "a", "count", StringValue)
    with pytest.raises(KeyError, match="no registered state 'other'"):
        runtime.state("test/counter", "a", "other")
    values = [record.unpack(Int64Value).value for record in runtime.egress("test/out")]
    assert sorted(values) == [1, 1, 2, 3]


def test_only_registered_states_are_sent() -> None:
    seen_states: List[List[str]] = []
    functions = StatefulFunctions()

    @functions.bind("test/reader")  # declares nothing: relies on module.yaml
    def reader(context, message: StringValue) -> None:
        seen_states.append(sorted(name for name in ("a", "b") if context.state(name).value is None))
        context.state(message.value).value  # noqa: B018 - reading it is the test

    spec = module({"test/reader": "states:\n  - name: a\n  - name: b\ntimeout: 1s\n" + io_timeouts("1s")})
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec)
    runtime.send("test/reader", "r", text("a"))
    runtime.run_until_idle()
    assert seen_states == [["a", "b"]]  # both sent, both absent

    runtime.send("test/reader", "r", text("unregistered"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert info.value.address == Address("test", "reader", "r")
    assert "'unregistered'" in info.value.reason
    assert "module.yaml" in info.value.reason


def test_a_declared_state_missing_from_module_yaml_names_the_line_to_add() -> None:
    functions = StatefulFunctions()
    functions.register("test/fn", lambda context, message: None, states=["kept", "forgotten"])
    spec = module({"test/fn": "states:\n  - name: kept\ntimeout: 1s\n" + io_timeouts("1s")})
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec)
    runtime.send("test/fn", "f", text("hi"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert "'forgotten'" in info.value.reason
    assert "add '- name: forgotten' under 'states:' of test/fn in module.yaml" in info.value.reason


def test_send_to_an_unknown_type_is_refused() -> None:
    runtime = LocalRuntime.for_functions(counter_functions())
    with pytest.raises(ConfigurationError, match="no function type test/nowhere"):
        runtime.send("test/nowhere", "a", text("x"))


# -- delayed messages ------------------------------------------------------------------------


def test_delayed_messages_fire_after_their_delay_in_due_order() -> None:
    clock = VirtualClock()
    fired: List[Tuple[str, float, Optional[Address]]] = []
    functions = StatefulFunctions()

    @functions.bind("test/timer")
    def timer(context, message: StringValue) -> None:
        context.pack_and_send_after(timedelta(seconds=3), "test/log", "l", text("late"))
        context.pack_and_send_after(timedelta(seconds=1), "test/log", "l", text("early"))
        context.pack_and_send_after(timedelta(seconds=1), "test/log", "l", text("early-second"))

    @functions.bind("test/log")
    def log(context, message: StringValue) -> None:
        fired.append((message.value, clock.now(), context.caller))

    runtime = LocalRuntime.for_functions(functions, clock=clock)
    runtime.send("test/timer", "t", text("start"))
    runtime.run_until_idle()
    assert fired == [] and runtime.pending_delayed == 3

    runtime.advance(timedelta(milliseconds=999))
    assert fired == []
    runtime.advance(timedelta(milliseconds=2))  # t = 1.001
    assert [(value, when) for value, when, _ in fired] == [("early", 1.0), ("early-second", 1.0)]
    assert runtime.pending_delayed == 1
    runtime.advance(timedelta(seconds=1.5))  # t = 2.501
    assert len(fired) == 2
    runtime.advance(timedelta(seconds=10))
    assert [(value, when) for value, when, _ in fired] == [("early", 1.0), ("early-second", 1.0), ("late", 3.0)]
    assert {caller for _, _, caller in fired} == {Address("test", "timer", "t")}
    assert runtime.pending_delayed == 0
    assert clock.now() == pytest.approx(12.501)


def test_advance_needs_a_virtual_clock() -> None:
    from statefun_wsgi.local import SystemClock

    runtime = LocalRuntime.for_functions(counter_functions(), clock=SystemClock())
    with pytest.raises(ConfigurationError, match="VirtualClock"):
        runtime.advance(timedelta(seconds=1))


# -- expiry ----------------------------------------------------------------------------------

EXPIRING = """
states:
  - name: written
    expireAfter: 10s
    expireMode: after-write
  - name: invoked
    expireAfter: 10s
    expireMode: after-invoke
  - name: kept
"""


def test_expire_after_write_versus_after_invoke() -> None:
    seen: List[Dict[str, Optional[str]]] = []
    functions = StatefulFunctions()

    @functions.bind("test/ttl")
    def ttl(context, message: StringValue) -> None:
        if message.value == "set":
            for name in ("written", "invoked", "kept"):
                context.state(name).pack(text(name))
        else:  # only reads
            seen.append({
                name: (None if context.state(name).value is None else context.state(name).unpack(StringValue).value)
                for name in ("written", "invoked", "kept")
            })

    runtime = LocalRuntime.for_functions(functions, module_yaml=module({"test/ttl": EXPIRING}))

    def value(name: str) -> Optional[str]:
        stored = runtime.state("test/ttl", "t", name, StringValue)
        return None if stored is None else stored.value

    runtime.send("test/ttl", "t", text("set"))  # t = 0: all written
    runtime.run_until_idle()
    runtime.advance(timedelta(seconds=8))
    runtime.send("test/ttl", "t", text("get"))  # t = 8: an invocation (no write)
    runtime.run_until_idle()
    assert seen[-1] == {"written": "written", "invoked": "invoked", "kept": "kept"}

    runtime.advance(timedelta(seconds=4))  # t = 12: 12 s after the write, 4 s after the invocation
    assert value("written") is None
    assert value("invoked") == "invoked"
    runtime.send("test/ttl", "t", text("get"))  # t = 12: the function sees the expired state absent
    runtime.run_until_idle()
    assert seen[-1] == {"written": None, "invoked": "invoked", "kept": "kept"}

    runtime.advance(timedelta(seconds=9))  # t = 21: 9 s after the last invocation
    assert value("invoked") == "invoked"
    runtime.advance(timedelta(seconds=2))  # t = 23: 11 s after it
    assert value("invoked") is None
    runtime.advance(timedelta(days=30))
    assert value("kept") == "kept"  # no expireAfter: never expires
    runtime.send("test/ttl", "t", text("get"))
    runtime.run_until_idle()
    assert seen[-1] == {"written": None, "invoked": None, "kept": "kept"}


def test_a_write_restarts_after_write_expiry() -> None:
    functions = StatefulFunctions()

    @functions.bind("test/ttl")
    def ttl(context, message: StringValue) -> None:
        context.state("written").pack(message)

    runtime = LocalRuntime.for_functions(functions, module_yaml=module({"test/ttl": EXPIRING}))
    runtime.send("test/ttl", "t", text("v1"))
    runtime.run_until_idle()
    runtime.advance(timedelta(seconds=9))
    runtime.send("test/ttl", "t", text("v2"))
    runtime.run_until_idle()
    runtime.advance(timedelta(seconds=9))  # 18 s after the first write, 9 after the second
    assert runtime.state("test/ttl", "t", "written", StringValue) == text("v2")
    runtime.advance(timedelta(seconds=2))
    assert runtime.state("test/ttl", "t", "written") is None


# -- egress -----------------------------------------------------------------------------------


def test_egress_records_are_kept_per_egress_and_decoded() -> None:
    functions = StatefulFunctions()

    @functions.bind("test/writer")
    def writer(context, message: StringValue) -> None:
        context.pack_and_send_egress("test/kafka", kafka_egress_record("greetings", "hello", key="alice"))
        context.pack_and_send_egress("test/kafka", kafka_egress_record("raw", b"\x00\xff"))
        context.pack_and_send_egress(
            "test/kinesis", kinesis_egress_record("stream-1", "hi", partition_key="p1", explicit_hash_key="42")
        )
        context.pack_and_send_egress("test/kinesis", kinesis_egress_record("stream-2", "yo", partition_key="p2"))
        context.pack_and_send_egress("test/plain", text("just a message"))

    runtime = LocalRuntime.for_functions(functions)
    runtime.send("test/writer", "w", text("go"))
    runtime.run_until_idle()

    kafka = runtime.egress("test/kafka")
    assert [type(record) for record in kafka] == [EgressRecord, EgressRecord]
    assert kafka[0].egress == "test/kafka"
    assert kafka[0].type_name == "org.apache.flink.statefun.flink.io.KafkaProducerRecord"
    assert (kafka[0].kafka.topic, kafka[0].kafka.key, kafka[0].kafka.value_bytes) == ("greetings", "alice", b"hello")
    assert kafka[0].kinesis is None
    assert kafka[0].to_json() == {
        "egress": "test/kafka", "kafka": {"topic": "greetings", "key": "alice", "value": "hello"}
    }
    assert kafka[1].to_json() == {
        "egress": "test/kafka", "kafka": {"topic": "raw", "key": None, "value_base64": "AP8="}
    }

    kinesis = runtime.egress("test/kinesis")
    assert kinesis[0].kafka is None
    assert (kinesis[0].kinesis.stream, kinesis[0].kinesis.partition_key) == ("stream-1", "p1")
    assert kinesis[0].to_json() == {
        "egress": "test/kinesis",
        "kinesis": {"stream": "stream-1", "partition_key": "p1", "explicit_hash_key": "42", "value": "hi"},
    }
    assert kinesis[1].to_json()["kinesis"]["explicit_hash_key"] is None

    plain = runtime.egress("test/plain")
    assert len(plain) == 1 and plain[0].kafka is None and plain[0].kinesis is None
    assert plain[0].unpack(StringValue) == text("just a message")
    assert plain[0].to_json() == {
        "egress": "test/plain",
        "message": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "just a message"},
    }
    with pytest.raises(UnexpectedMessageTypeError):
        plain[0].unpack(Int64Value)
    assert runtime.egress("test/none") == []


def test_egress_not_declared_in_module_yaml_fails_the_batch() -> None:
    spec = module({"test/counter": "states:\n  - name: count"}, egresses=("test/declared",))
    runtime = LocalRuntime.for_functions(counter_functions(), module_yaml=spec)
    runtime.send("test/counter", "a", text("x"))
    with pytest.raises(FunctionCallFailedError, match="egress test/out is not declared in module.yaml"):
        runtime.run_until_idle()
    assert runtime.state("test/counter", "a", "count") is None  # nothing of the reply applied


@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_a_generic_egress_takes_only_its_record_type(kind: str) -> None:
    functions = StatefulFunctions()

    @functions.bind("test/writer", states=["count"])
    def writer(context, message: StringValue) -> None:
        context.state("count").pack(Int64Value(value=1))
        if message.value == "record":
            record = kafka_egress_record("t", "v") if kind == "kafka" else kinesis_egress_record("s", "v", "p")
            context.pack_and_send_egress("test/out", record)
        else:
            context.pack_and_send_egress("test/out", message)

    spec = module({"test/writer": "states:\n  - name: count"}, egresses=("test/out",), egress_type=kind)
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec)
    runtime.send("test/writer", "ok", text("record"))
    runtime.run_until_idle()
    assert len(runtime.egress("test/out")) == 1

    runtime.send("test/writer", "bad", text("a StringValue"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    record = "KafkaProducerRecord" if kind == "kafka" else "KinesisEgressRecord"
    assert info.value.reason == (
        f"egress test/out is a statefun.{kind}.io/generic-egress: it takes only "
        f"org.apache.flink.statefun.flink.io.{record} records, not 'type.googleapis.com/google.protobuf.StringValue'"
    )
    assert len(runtime.egress("test/out")) == 1
    assert runtime.state("test/writer", "bad", "count") is None  # nothing of the reply applied


def test_an_egress_of_another_type_takes_any_record() -> None:
    functions = StatefulFunctions()
    functions.register("test/writer", lambda context, message: context.send_egress("test/out", message))
    runtime = LocalRuntime(
        {"test/writer": FunctionSpec("test/writer", "in-process://")},
        InProcessTransport(RequestReplyHandler(functions)),
        egresses={"test/out": "com.example/custom-egress"},
    )
    runtime.send("test/writer", "w", text("anything"))
    runtime.run_until_idle()
    assert [record.unpack(StringValue) for record in runtime.egress("test/out")] == [text("anything")]
    assert runtime.egress_ids == frozenset({"test/out"})


# -- replies ----------------------------------------------------------------------------------------


def counting_handler(functions: StatefulFunctions, edit) -> InProcessTransport:  # type: ignore[no-untyped-def]
    """An in-process transport whose replies pass through ``edit(reply_bytes) -> bytes``."""
    handler = RequestReplyHandler(functions)
    return InProcessTransport(lambda request: edit(handler(request)))


def test_an_empty_reply_body_has_no_effects_and_the_runtime_carries_on() -> None:
    functions = counter_functions()
    empty = {"on": True}
    runtime = LocalRuntime(
        {"test/counter": FunctionSpec("test/counter", "in-process://", (StateSpec("count"),))},
        counting_handler(functions, lambda reply: b"" if empty["on"] else reply),
    )
    runtime.send("test/counter", "a", text("x"))
    runtime.send("test/counter", "a", text("y"))
    runtime.run_until_idle()
    assert runtime.batches_sent == 2 and runtime.state("test/counter", "a", "count") is None
    empty["on"] = False
    runtime.send("test/counter", "a", text("z"))
    runtime.run_until_idle()
    assert runtime.state("test/counter", "a", "count", Int64Value) == Int64Value(value=1)


def test_a_state_mutation_of_an_unknown_type_is_ignored() -> None:
    def unknown_mutation(reply: bytes) -> bytes:
        response = FromFunction.FromString(reply)
        for mutation in response.invocation_result.state_mutations:
            mutation.mutation_type = 7  # neither MODIFY (1) nor DELETE (0)
        return response.SerializeToString()

    functions = counter_functions()
    spec = {"test/counter": FunctionSpec("test/counter", "in-process://", (StateSpec("count"),))}
    runtime = LocalRuntime(spec, InProcessTransport(RequestReplyHandler(functions)))
    runtime.send("test/counter", "a", text("x"))
    runtime.run_until_idle()
    runtime.transport = counting_handler(functions, unknown_mutation)
    runtime.send("test/counter", "a", text("y"))
    runtime.run_until_idle()
    # The reply wrote count=2 with type 7: ignored, the state is still 1 (not deleted either).
    assert [record.unpack(Int64Value).value for record in runtime.egress("test/out")] == [1, 2]
    assert runtime.state("test/counter", "a", "count", Int64Value) == Int64Value(value=1)


# -- callers and replies -------------------------------------------------------------------------


def test_reply_goes_to_the_caller_and_callers_are_seen() -> None:
    asker_calls: List[Tuple[str, Optional[Address]]] = []
    answerer_calls: List[Tuple[str, Optional[Address]]] = []
    functions = StatefulFunctions()

    @functions.bind("test/asker")
    def asker(context, message: StringValue) -> None:
        asker_calls.append((message.value, context.caller))
        if context.caller is None:
            context.pack_and_send("test/answerer", "a1", text("ping"))

    @functions.bind("test/answerer")
    def answerer(context, message: StringValue) -> None:
        answerer_calls.append((message.value, context.caller))
        context.pack_and_reply(text("pong"))

    runtime = LocalRuntime.for_functions(functions)
    runtime.send("test/asker", "q", text("start"))
    runtime.run_until_idle()
    assert answerer_calls == [("ping", Address("test", "asker", "q"))]
    assert asker_calls == [("start", None), ("pong", Address("test", "answerer", "a1"))]

    runtime.send("test/answerer", "a2", text("hello"), caller=Address("test", "asker", "other"))
    runtime.run_until_idle()
    assert answerer_calls[-1] == ("hello", Address("test", "asker", "other"))
    assert asker_calls[-1] == ("pong", Address("test", "answerer", "a2"))


# -- failures and retries ---------------------------------------------------------------------------


def test_retried_batch_counts_every_message_exactly_once() -> None:
    clock = VirtualClock()
    failures: List[float] = []
    functions = StatefulFunctions()

    @functions.bind("test/flaky", states=["count"])
    def flaky(context, message: StringValue) -> None:
        current = context.state("count").unpack(Int64Value) or Int64Value()
        current.value += 1
        context.state("count").pack(current)
        context.pack_and_send_egress("test/out", text(f"{message.value}:{current.value}"))
        context.pack_and_send("test/sink", message.value, text(message.value))
        if message.value == "m2" and len(failures) < 2:  # the batch fails after m1's effects were built
            failures.append(clock.now())
            raise RuntimeError("flaky")

    sink = Recorder()
    functions.register("test/sink", sink)
    runtime = LocalRuntime.for_functions(functions, clock=clock)
    for value in ("m1", "m2", "m3"):
        runtime.send("test/flaky", "f", text(value))
    runtime.run_until_idle()

    assert failures == [0.0, pytest.approx(0.010)]  # backoff from 10 ms, doubling
    assert clock.now() == pytest.approx(0.030)
    assert runtime.state("test/flaky", "f", "count", Int64Value) == Int64Value(value=3)
    assert [record.unpack(StringValue).value for record in runtime.egress("test/out")] == ["m1:1", "m2:2", "m3:3"]
    assert sorted(sink.values) == ["m1", "m2", "m3"]
    # [m1], then [m2, m3] three times, then one batch per sink address
    assert runtime.batches_sent == 1 + 3 + 3


def test_a_function_that_always_fails_fails_after_the_timeout() -> None:
    clock = VirtualClock()
    attempts: List[float] = []
    functions = StatefulFunctions()

    @functions.bind("test/broken", states=["count"])
    def broken(context, message: StringValue) -> None:
        context.state("count").pack(Int64Value(value=1))
        context.pack_and_send_egress("test/out", message)
        attempts.append(clock.now())
        raise RuntimeError("boom")

    spec = module({"test/broken": "states:\n  - name: count\ntimeout: 2s\n" + io_timeouts("2s")})
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec, clock=clock)
    runtime.send("test/broken", "b1", text("x"))
    started = time.monotonic()
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert time.monotonic() - started < 2.0  # virtual time: no real waiting

    error = info.value
    assert error.address == Address("test", "broken", "b1")
    assert error.reason.startswith("maximal request time has elapsed: 9 attempts over 2.00 s (timeout 2s); the last: ")
    assert "RuntimeError" in error.reason and "boom" in error.reason
    assert str(error).startswith("test/broken/b1: ")
    # Backoff from 10 ms doubling: 10, 20, ..., 640 ms (attempt 8 at 1.27 s), then the
    # 1.28 s backoff is cut to the 0.73 s left: attempt 9 at the deadline.
    assert len(attempts) == runtime.batches_sent == 9
    assert attempts[1:4] == [pytest.approx(0.010), pytest.approx(0.030), pytest.approx(0.070)]
    assert attempts[-2:] == [pytest.approx(1.27), pytest.approx(2.0)]
    assert runtime.egress("test/out") == []
    assert runtime.state("test/broken", "b1", "count") is None
    with pytest.raises(FunctionCallFailedError):  # the runtime stays failed, like a failed job
        runtime.run_until_idle()


def test_a_delayed_message_due_during_a_retry_backoff_arrives_on_time() -> None:
    clock = VirtualClock()
    seen: List[Tuple[str, float]] = []
    functions = StatefulFunctions()

    @functions.bind("test/both")
    def both(context, message: StringValue) -> None:
        seen.append((message.value, clock.now()))
        if message.value == "start":
            context.pack_and_send_after(timedelta(milliseconds=5), "test/both", "later", text("delayed"))
        elif message.value == "flaky" and len(seen) < 4:
            raise RuntimeError("once")

    runtime = LocalRuntime.for_functions(functions, clock=clock)
    runtime.send("test/both", "now", text("start"))
    runtime.send("test/both", "f", text("flaky"))
    runtime.run_until_idle(include_delayed=True)
    # flaky fails at 0, is retried at 10 ms; the delayed message, due at 5 ms, comes between.
    assert seen == [("start", 0.0), ("flaky", 0.0), ("delayed", pytest.approx(0.005)), ("flaky", pytest.approx(0.010))]


def test_the_default_timeout_makes_14_attempts_the_last_at_60_s() -> None:
    clock = VirtualClock()
    attempts: List[float] = []
    functions = StatefulFunctions()

    @functions.bind("test/down")
    def down(context, message: StringValue) -> None:
        attempts.append(clock.now())
        raise RuntimeError("down")

    runtime = LocalRuntime.for_functions(functions, clock=clock)
    runtime.send("test/down", "d", text("x"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert len(attempts) == 14
    assert attempts[-2:] == [pytest.approx(40.95), pytest.approx(60.0)]
    assert info.value.reason.startswith("maximal request time has elapsed: 14 attempts over 60.00 s (timeout 1min)")


def test_a_function_that_recovers_just_before_the_deadline_succeeds_on_the_last_attempt() -> None:
    clock = VirtualClock()
    attempts: List[float] = []
    functions = StatefulFunctions()

    @functions.bind("test/recovering", states=["count"])
    def recovering(context, message: StringValue) -> None:
        attempts.append(clock.now())
        if clock.now() < 2.75:
            raise RuntimeError("not yet")
        context.state("count").pack(Int64Value(value=1))

    spec = module({"test/recovering": "states:\n  - name: count\ntimeout: 3s\nconnectTimeout: 1s\n"
                                      "readTimeout: 3s\nwriteTimeout: 3s"})
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec, clock=clock)
    runtime.send("test/recovering", "r", text("x"))
    runtime.run_until_idle()
    assert len(attempts) == 10  # the 9th at 2.55 s, the 10th at the deadline
    assert attempts[-2:] == [pytest.approx(2.55), pytest.approx(3.0)]
    assert runtime.state("test/recovering", "r", "count", Int64Value) == Int64Value(value=1)


def test_an_in_process_call_slower_than_the_read_timeout_times_out_although_it_ran() -> None:
    clock = VirtualClock()
    ran: List[float] = []
    functions = StatefulFunctions()

    @functions.bind("test/slow", states=["count"])
    def slow(context, message: StringValue) -> None:
        ran.append(clock.now())
        context.state("count").pack(Int64Value(value=1))
        time.sleep(0.3)

    spec = FunctionSpec("test/slow", "in-process://", (StateSpec("count"),), timeout=timedelta(seconds=0.4),
                        read_timeout=timedelta(seconds=0.2))
    runtime = LocalRuntime({"test/slow": spec}, InProcessTransport(RequestReplyHandler(functions)), clock=clock)
    runtime.send("test/slow", "s", text("x"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    # Timed out at 0.2 s, again at 0.21 + 0.2 = 0.41 s: past the 0.4 s timeout, the end.
    assert ran == [0.0, pytest.approx(0.21)]
    assert info.value.reason == (
        "maximal request time has elapsed: 2 attempts over 0.41 s (timeout 400ms); the last: "
        "in-process: no reply within readTimeout 200ms (the function ran; its reply is lost)"
    )
    assert runtime.state("test/slow", "s", "count") is None


def test_a_reply_sending_to_an_undeclared_type_fails_at_once_with_none_of_its_effects() -> None:
    sink = Recorder()
    functions = StatefulFunctions()

    @functions.bind("test/sender", states=["count"])
    def sender(context, message: StringValue) -> None:
        context.state("count").pack(Int64Value(value=1))
        context.pack_and_send_egress("test/out", message)
        context.pack_and_send_after(timedelta(seconds=1), "test/sink", "later", message)
        context.pack_and_send("test/sink", "x", message)
        if message.value == "bad":
            context.pack_and_send("test/undeclared", "y", message)

    functions.register("test/sink", sink)
    clock = VirtualClock()
    runtime = LocalRuntime.for_functions(functions, clock=clock)
    runtime.send("test/sender", "s", text("bad"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert info.value.address == Address("test", "sender", "s")
    assert "test/undeclared" in info.value.reason
    assert runtime.batches_sent == 1 and clock.now() == 0.0  # no retry
    # All or nothing: not the egress, not the state, not the messages.
    assert runtime.egress("test/out") == []
    assert runtime.state("test/sender", "s", "count") is None
    assert runtime.pending_delayed == 0
    assert sink.calls == []


def test_after_a_failure_earlier_effects_stay_and_the_runtime_stays_failed() -> None:
    """What a test sees where the real job would restart from its last checkpoint."""
    functions = counter_functions()
    functions.register("test/bad", lambda context, message: context.send("test/undeclared", "y", message))
    runtime = LocalRuntime.for_functions(functions)
    runtime.send("test/counter", "a", text("x"))
    runtime.run_until_idle()
    runtime.send("test/bad", "b", text("x"))
    runtime.send("test/counter", "a", text("y"))  # in the same turn as the failing batch
    with pytest.raises(FunctionCallFailedError, match="^test/bad/b: the reply sends a message to test/undeclared"):
        runtime.run_until_idle()
    # The batches completed before the failure keep their effects (a restarted job would
    # roll them back to its checkpoint); nothing moves any more.
    assert [record.unpack(Int64Value).value for record in runtime.egress("test/out")] == [1]
    runtime.send("test/counter", "a", text("z"))
    for _ in range(2):
        with pytest.raises(FunctionCallFailedError):
            runtime.run_until_idle()
    assert runtime.state("test/counter", "a", "count", Int64Value) == Int64Value(value=1)


def test_the_same_reply_without_the_bad_target_applies_everything() -> None:
    sink = Recorder()
    functions = StatefulFunctions()

    @functions.bind("test/sender", states=["count"])
    def sender(context, message: StringValue) -> None:
        context.state("count").pack(Int64Value(value=1))
        context.pack_and_send_egress("test/out", message)
        context.pack_and_send_after(timedelta(seconds=1), "test/sink", "later", message)
        context.pack_and_send("test/sink", "x", message)

    functions.register("test/sink", sink)
    runtime = LocalRuntime.for_functions(functions)
    runtime.send("test/sender", "s", text("good"))
    runtime.run_until_idle()
    assert len(runtime.egress("test/out")) == 1
    assert runtime.state("test/sender", "s", "count", Int64Value) == Int64Value(value=1)
    assert sink.values == ["good"] and runtime.pending_delayed == 1
    runtime.advance(timedelta(seconds=1))
    assert sink.values == ["good", "good"]


def test_an_unknown_function_is_a_hard_failure_without_retry() -> None:
    functions = counter_functions()
    spec = module({"test/counter": "states:\n  - name: count", "test/unbound": ""})
    clock = VirtualClock()
    runtime = LocalRuntime.for_functions(functions, module_yaml=spec, clock=clock)
    runtime.send("test/unbound", "u", text("x"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert info.value.address == Address("test", "unbound", "u")
    assert info.value.reason.startswith("404: ")
    assert "no function is bound to test/unbound" in info.value.reason
    assert runtime.batches_sent == 1 and clock.now() == 0.0


def test_listener_sees_what_flows() -> None:
    events: List[Tuple[str, dict]] = []
    runtime = LocalRuntime.for_functions(
        counter_functions(), listener=lambda event, fields: events.append((event, fields))
    )
    runtime.send("test/counter", "a", text("x"))
    runtime.run_until_idle()
    kinds = [event for event, _ in events]
    assert kinds == ["message", "egress", "state"]
    assert events[0][1]["target"] == Address("test", "counter", "a") and events[0][1]["caller"] is None
    assert events[1][1]["record"].unpack(Int64Value) == Int64Value(value=1)
    assert events[2][1]["name"] == "count"


# -- the greeter example, end to end ------------------------------------------------------------------


def test_greeter_example_end_to_end(tmp_path: Path) -> None:
    events: List[Tuple[str, dict]] = []
    runtime = LocalRuntime.for_functions(
        greeter_module.functions, listener=lambda event, fields: events.append((event, fields))
    )
    for name in ("alice", "bob", "alice", "alice"):
        runtime.send("example/greeter", name, GreetRequest(name=name))
    runtime.run_until_idle()

    assert runtime.state("example/greeter", "alice", "seen_count", Int64Value) == Int64Value(value=3)
    assert runtime.state("example/greeter", "bob", "seen_count", Int64Value) == Int64Value(value=1)

    # The formatter replied to the greeter (its caller) with a GreetResponse.
    replies = [
        fields for event, fields in events
        if event == "message" and fields["caller"] is not None and fields["caller"].type == "formatter"
    ]
    assert {reply["target"] for reply in replies} == {Address("example", "greeter", "alice"),
                                                      Address("example", "greeter", "bob")}
    assert all(reply["argument"].type_url.endswith("/example.greeter.GreetResponse") for reply in replies)
    greeting = GreetResponse.FromString(replies[0]["argument"].value)
    assert greeting.greeting.startswith("Hello ")

    def greetings(topic: str) -> Dict[str, List[str]]:
        found: Dict[str, List[str]] = {}
        for record in runtime.egress(greeter_module.GREETS_EGRESS):
            assert record.kafka is not None
            if record.kafka.topic == topic:
                found.setdefault(record.kafka.key, []).append(record.kafka.value_bytes.decode())
        return found

    assert greetings("greetings") == {
        "alice": [
            "Hello alice! Nice to meet you.",
            "Hello alice! This is visit number 2.",
            "Hello alice! This is visit number 3.",
        ],
        "bob": ["Hello bob! Nice to meet you."],
    }
    assert greetings("reminders") == {}

    delay = greeter_module.REMINDER_DELAY
    runtime.advance(delay - timedelta(milliseconds=1))
    assert greetings("reminders") == {}
    runtime.advance(timedelta(milliseconds=1))
    assert greetings("reminders") == {  # one reminder per first visit
        "alice": ["Hi alice, still there? Come back soon!"],
        "bob": ["Hi bob, still there? Come back soon!"],
    }
    runtime.advance(delay * 10)
    assert sum(len(values) for values in greetings("reminders").values()) == 2
    assert len(runtime.egress(greeter_module.GREETS_EGRESS)) == 6


# -- StateFun 3.x -----------------------------------------------------------------------------------

from statefun_wsgi import IntWrapper, StringWrapper, ValueSpec  # noqa: E402
from statefun_wsgi._proto import request_reply_v3_pb2 as v3  # noqa: E402

V3_DATA = Path(__file__).resolve().parent / "data" / "v3"
ANY_TYPENAME = "type.googleapis.com/google.protobuf.Any"


def v3_vector(kind: str, n: int) -> bytes:
    return (V3_DATA / f"{kind}-{n}.bin").read_bytes()


def v3_module(functions: str = "example/*", extra: str = "", egresses: str = "") -> object:
    """A 3.x (kind:) ModuleSpec routing ``functions`` in process."""
    text = (f"kind: io.statefun.endpoints.v2/http\nspec:\n  functions: {functions}\n"
            f"  urlPathTemplate: http://localhost:8000/statefun\n" + textwrap.indent(extra, "  ") + egresses)
    return parse_module_yaml(text)


class RecordingHandler:
    """The real handler, with every request and reply kept (parsed as 3.x)."""

    def __init__(self, functions: StatefulFunctions) -> None:
        self.handler = RequestReplyHandler(functions, protocols="3.x")
        self.requests: List[v3.ToFunction] = []
        self.replies: List[v3.FromFunction] = []

    def __call__(self, request: bytes) -> bytes:
        self.requests.append(v3.ToFunction.FromString(request))
        reply = self.handler(request)
        self.replies.append(v3.FromFunction.FromString(reply))
        return reply


def v3_runtime(functions: StatefulFunctions, spec: object = None, **kwargs: object) -> Tuple[LocalRuntime,
                                                                                             RecordingHandler]:
    recorder = RecordingHandler(functions)
    module = spec if spec is not None else v3_module()
    egresses = {egress.id: egress.type for egress in module.egresses} or None  # type: ignore[attr-defined]
    runtime = LocalRuntime(dict(module.functions), InProcessTransport(recorder), egresses=egresses,  # type: ignore
                           **kwargs)
    return runtime, recorder


def vector_greeter(states: object) -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("example/greeter", states=states)
    def greeter(context, message):  # type: ignore[no-untyped-def]
        seen = context.state("seen").unpack(IntWrapper) or IntWrapper()
        seen.value += 1
        context.state("seen").pack(seen)
        previous = context.state("anystate").value
        context.state("anystate").pack(StringValue(value=f"n{seen.value}"))
        prev = previous.type_url if previous else None
        context.pack_and_send_egress(
            "e2e/out", StringWrapper(value=f"{context.address.identity}:{message.value.decode()}:{seen.value}:"
                                           f"prev={prev}"))

    return functions


def test_v3_requests_are_the_3_3_runtimes_bytes_for_the_golden_vectors() -> None:
    """The runtime's two requests (no states, then both registered without values) are byte for
    byte what the real 3.3.0 runtime sent, answered by the official SDK's recorded replies."""
    sent: List[bytes] = []

    def official_sdk(request: bytes) -> bytes:  # the recorded replies of the official 3.3 SDK
        sent.append(request)
        return v3_vector("reply", len(sent))

    runtime = LocalRuntime(dict(v3_module().functions), InProcessTransport(official_sdk))  # type: ignore
    assert runtime.protocol == "3.x"
    runtime.send("example/greeter", "zed", Any(type_url="io.statefun.types/string", value=b"hello"))
    runtime.run_until_idle()
    assert sent == [v3_vector("request", 1), v3_vector("request", 2)]
    assert runtime.state("example/greeter", "zed", "seen", IntWrapper) == IntWrapper(value=1)
    anystate = runtime.state("example/greeter", "zed", "anystate")
    assert isinstance(anystate, Any) and anystate.Unpack(StringValue()) and anystate.value == StringValue(
        value="n1").SerializeToString()
    record = runtime.egress("e2e/out")[0]
    assert record.argument.type_url == "io.statefun.types/string"
    assert StringWrapper.FromString(record.argument.value).value == "zed:hello:1:prev=None"


def test_v3_state_discovery_resends_the_same_invocations_then_sends_every_state() -> None:
    functions = vector_greeter([ValueSpec("seen", IntWrapper),
                                ValueSpec("anystate", expire_after_write=timedelta(hours=1))])
    runtime, recorder = v3_runtime(functions)
    runtime.send("example/greeter", "zed", Any(type_url="io.statefun.types/string", value=b"hello"))
    runtime.run_until_idle()
    first, second = recorder.requests
    assert list(first.invocation.state) == []
    assert recorder.replies[0].HasField("incomplete_invocation_context")
    assert first.invocation.invocations == second.invocation.invocations
    assert [(s.state_name, s.HasField("state_value")) for s in second.invocation.state] == [
        ("anystate", False), ("seen", False)]  # the 3.3 runtime's HashMap order
    runtime.send("example/greeter", "amy", Any(type_url="io.statefun.types/string", value=b"hi"))
    runtime.run_until_idle()
    third = recorder.requests[2]  # another id: no discovery again, every registered state sent
    assert len(recorder.requests) == 3
    assert [(s.state_name, s.state_value.typename) for s in third.invocation.state] == [
        ("anystate", ""), ("seen", "")]
    runtime.send("example/greeter", "zed", Any(type_url="io.statefun.types/string", value=b"again"))
    runtime.run_until_idle()
    fourth = recorder.requests[3]
    assert [(s.state_name, s.state_value.typename, s.state_value.has_value) for s in fourth.invocation.state] == [
        ("anystate", ANY_TYPENAME, True), ("seen", "io.statefun.types/int", True)]
    assert runtime.state("example/greeter", "zed", "seen", IntWrapper) == IntWrapper(value=2)
    assert StringWrapper.FromString(runtime.egress("e2e/out")[-1].argument.value).value == (
        f"zed:again:2:prev={ANY_TYPENAME.replace('google.protobuf.Any', 'google.protobuf.StringValue')}")


def test_v3_undeclared_states_are_discovered_when_first_used() -> None:
    """2.x code that declares no states: each state used is declared as an Any, one round trip each."""
    functions = StatefulFunctions()

    @functions.bind("example/counter")
    def counter(context, message: Int64Value):  # type: ignore[no-untyped-def]
        total = context.state("total").unpack(Int64Value) or Int64Value()
        total.value += message.value
        context.state("total").pack(total)
        context.state("last").pack(message)

    runtime, recorder = v3_runtime(functions)
    runtime.send("example/counter", "a", Int64Value(value=5))
    runtime.run_until_idle()
    assert len(recorder.requests) == 3  # total, then last, then the run
    assert runtime.state("example/counter", "a", "total", Int64Value) == Int64Value(value=5)
    assert runtime.state("example/counter", "a", "last", Int64Value) == Int64Value(value=5)


def test_v3_state_of_an_undeclared_name_is_unknown_to_state() -> None:
    functions = vector_greeter([ValueSpec("seen", IntWrapper), "anystate"])
    runtime, _ = v3_runtime(functions)
    with pytest.raises(KeyError, match="no registered state 'seen'"):
        runtime.state("example/greeter", "zed", "seen")


def _replying(reply: v3.FromFunction) -> Tuple[LocalRuntime, List[v3.ToFunction]]:
    """A runtime whose function always answers ``reply`` after declaring state ``s`` as an Any."""
    requests: List[v3.ToFunction] = []

    def function(request: bytes) -> bytes:
        requests.append(v3.ToFunction.FromString(request))
        if not requests[-1].invocation.state:
            declare = v3.FromFunction()
            declare.incomplete_invocation_context.missing_values.add(state_name="s", type_typename=ANY_TYPENAME)
            return declare.SerializeToString()
        return reply.SerializeToString()

    spec = v3_module(egresses="---\nkind: io.statefun.kafka.v1/egress\nspec:\n  id: example/out\n  address: k:9092\n")
    runtime = LocalRuntime(dict(spec.functions), InProcessTransport(function),  # type: ignore[attr-defined]
                           egresses={e.id: e.type for e in spec.egresses})  # type: ignore[attr-defined]
    return runtime, requests


def test_v3_a_write_of_another_type_than_registered_fails_naming_state_and_types() -> None:
    reply = v3.FromFunction()
    mutation = reply.invocation_result.state_mutations.add(state_name="s", mutation_type=1)
    mutation.state_value.typename = "io.statefun.types/int"
    mutation.state_value.has_value = True
    runtime, _ = _replying(reply)
    runtime.send("example/fn", "a", text("x"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert info.value.reason == (f"state 's' is registered with type '{ANY_TYPENAME}', and the reply writes a value "
                                 "of type 'io.statefun.types/int'")
    assert runtime.state("example/fn", "a", "s") is None


def test_v3_a_declaration_changing_a_registered_type_fails() -> None:
    calls: List[int] = []

    def function(request: bytes) -> bytes:
        calls.append(1)
        declare = v3.FromFunction()
        declare.incomplete_invocation_context.missing_values.add(
            state_name="s", type_typename=ANY_TYPENAME if len(calls) == 1 else "io.statefun.types/int")
        return declare.SerializeToString()

    runtime = LocalRuntime(dict(v3_module().functions), InProcessTransport(function))  # type: ignore
    runtime.send("example/fn", "a", text("x"))
    with pytest.raises(FunctionCallFailedError, match="registered with type .*Any', and the reply declares it again "
                                                      "with type 'io.statefun.types/int'"):
        runtime.run_until_idle()


def test_v3_cancellation_rules() -> None:
    reply = v3.FromFunction()
    delayed = reply.invocation_result.delayed_invocations.add(delay_in_ms=1000, cancellation_token="t")
    delayed.target.namespace, delayed.target.type, delayed.target.id = "example", "fn", "b"
    delayed.argument.typename, delayed.argument.has_value = "type.googleapis.com/google.protobuf.StringValue", True
    runtime, _ = _replying(reply)
    runtime.send("example/fn", "a", text("x"))
    runtime.run_until_idle()
    assert runtime.pending_delayed == 1
    runtime.send("example/fn", "a", text("y"))  # the same token while the first is pending
    with pytest.raises(FunctionCallFailedError, match="the cancellation token 't' names a delayed message still "
                                                      "pending"):
        runtime.run_until_idle()

    cancel = v3.FromFunction()
    cancel.invocation_result.delayed_invocations.add(is_cancellation_request=True)
    runtime, _ = _replying(cancel)
    runtime.send("example/fn", "a", text("x"))
    with pytest.raises(FunctionCallFailedError, match="cancellation has no cancellation token"):
        runtime.run_until_idle()


def test_v3_a_cancelled_delayed_message_never_arrives_and_its_token_is_free_again() -> None:
    functions = StatefulFunctions()
    seen: List[str] = []

    @functions.bind("example/fn")
    def fn(context, message: StringValue):  # type: ignore[no-untyped-def]
        seen.append(message.value)
        if message.value == "schedule":
            context.pack_and_send_after(timedelta(seconds=5), "example/fn", "b", text("late"), cancellation_token="t")
        elif message.value == "cancel":
            context.cancel_delayed_message("t")
        elif message.value == "again":
            context.pack_and_send_after(timedelta(seconds=1), "example/fn", "b", text("on time"),
                                        cancellation_token="t")

    runtime, _ = v3_runtime(functions, clock=VirtualClock())
    for value in ("schedule", "cancel", "again"):
        runtime.send("example/fn", "a", text(value))
        runtime.run_until_idle()
    assert runtime.pending_delayed == 1
    runtime.advance(timedelta(seconds=10))
    assert seen == ["schedule", "cancel", "again", "on time"]


def test_v3_typed_state_expires_as_declared() -> None:
    functions = StatefulFunctions()

    @functions.bind("example/fn", states=[ValueSpec("v", IntWrapper, expire_after_write=timedelta(seconds=10))])
    def fn(context, message: StringValue):  # type: ignore[no-untyped-def]
        if message.value == "write":
            context.state("v").pack(IntWrapper(value=7))

    runtime, _ = v3_runtime(functions, clock=VirtualClock())
    runtime.send("example/fn", "a", text("write"))
    runtime.run_until_idle()
    assert runtime.state("example/fn", "a", "v", IntWrapper) == IntWrapper(value=7)
    typed = runtime.state("example/fn", "a", "v")
    assert isinstance(typed, Any) and typed.type_url == "io.statefun.types/int"
    runtime.advance(timedelta(seconds=9))
    assert runtime.state("example/fn", "a", "v", IntWrapper) == IntWrapper(value=7)
    runtime.advance(timedelta(seconds=1))
    assert runtime.state("example/fn", "a", "v") is None


@pytest.mark.parametrize("record, ok", [
    ("type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord", True),
    ("type.googleapis.com/org.apache.flink.statefun.flink.io.KafkaProducerRecord", False),
])
def test_v3_kafka_egress_takes_only_the_3x_record_name(record: str, ok: bool) -> None:
    reply = v3.FromFunction()
    egress = reply.invocation_result.outgoing_egresses.add(egress_namespace="example", egress_type="out")
    egress.argument.typename, egress.argument.has_value = record, True
    runtime, _ = _replying(reply)
    runtime.send("example/fn", "a", text("x"))
    if ok:
        runtime.run_until_idle()
        assert [r.argument.type_url for r in runtime.egress("example/out")] == [record]
    else:
        with pytest.raises(FunctionCallFailedError, match="it takes only 'type.googleapis.com/io.statefun.sdk"):
            runtime.run_until_idle()


def test_v3_kafka_egress_record_written_by_a_function_reaches_the_3x_egress() -> None:
    functions = StatefulFunctions()

    @functions.bind("example/fn")
    def fn(context, message: StringValue):  # type: ignore[no-untyped-def]
        context.pack_and_send_egress("example/out", kafka_egress_record(topic="t", key="k", value=message))

    spec = v3_module(egresses="---\nkind: io.statefun.kafka.v1/egress\nspec:\n  id: example/out\n  address: k:9092\n")
    runtime, _ = v3_runtime(functions, spec)
    runtime.send("example/fn", "a", text("hello"))
    runtime.run_until_idle()
    record = runtime.egress("example/out")[0]
    assert record.kafka is not None and record.kafka.topic == "t" and record.kafka.key == "k"


def test_v3_max_num_batch_requests_is_the_backpressure_threshold() -> None:
    functions = StatefulFunctions()
    batches: List[int] = []

    @functions.bind("example/fn")
    def fn(context, message: StringValue):  # type: ignore[no-untyped-def]
        batches.append(len(batches))

    for extra, expected in (("maxNumBatchRequests: 2\n", [1, 2, 2]), ("", [1, 4])):
        runtime, recorder = v3_runtime(functions, v3_module(extra=extra))
        for index in range(5):
            runtime.send("example/fn", "a", text(str(index)))
        runtime.run_until_idle()
        # the first request declares nothing: the function declares no state
        assert [len(request.invocation.invocations) for request in recorder.requests] == expected


def test_v3_async_transport_retries_every_failure_until_its_call_timeout() -> None:
    """A 400 fails at once on okhttp (as 2.x) but is retried by async: 2 ms doubled per attempt."""
    from statefun_wsgi.errors import StatefunError

    class BadRequest(StatefunError):
        status = 400

    calls: List[float] = []
    clock = VirtualClock()

    def function(request: bytes) -> bytes:
        calls.append(clock.now())
        raise BadRequest("no")

    for transport, expected in (("okhttp", 1), ("async", None)):
        spec = v3_module(extra=f"transport:\n  type: io.statefun.transports.v1/{transport}\n  "
                               + ("timeouts:\n    call: 1s\n    connect: 1s\n    read: 1s\n    write: 1s\n"
                                  if transport == "okhttp" else "call: 1s\n"))
        calls.clear()
        runtime = LocalRuntime(dict(spec.functions), InProcessTransport(function), clock=clock)  # type: ignore
        runtime.send("example/fn", "a", text("x"))
        with pytest.raises(FunctionCallFailedError) as info:
            runtime.run_until_idle()
        if expected == 1:
            assert len(calls) == 1 and info.value.reason.startswith("400")
        else:
            # 4, 8, ..., 256 ms; the next backoff (512 ms) is cut to the 492 ms left, after which
            # the timer finds no budget: no attempt at the deadline
            gaps = [round((b - a) * 1000, 3) for a, b in zip(calls, calls[1:])]
            assert gaps == [4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
            assert info.value.reason.startswith("maximal request time has elapsed")


def test_v3_for_functions_protocol_and_module_must_agree() -> None:
    functions = vector_greeter(["seen", "anystate"])
    with pytest.raises(ConfigurationError, match="is a StateFun 3.x module.yaml"):
        LocalRuntime.for_functions(functions, module_yaml=v3_module(), protocol="2.x")  # type: ignore[arg-type]
    runtime = LocalRuntime.for_functions(functions, protocol="3.x")
    assert runtime.protocol == "3.x"
    runtime.send("example/greeter", "zed", Any(type_url="io.statefun.types/string", value=b"hello"))
    runtime.run_until_idle()
    assert runtime.batches_sent == 2
    assert runtime.state("example/greeter", "zed", "seen") is not None


def test_v3_a_mutation_of_an_unknown_type_fails_where_2x_ignores_it() -> None:
    reply = v3.FromFunction()
    mutation = reply.invocation_result.state_mutations.add(state_name="s", mutation_type=7)  # type: ignore[arg-type]
    mutation.state_value.typename = ANY_TYPENAME
    runtime, _ = _replying(reply)
    runtime.send("example/fn", "a", text("x"))
    with pytest.raises(FunctionCallFailedError, match="a mutation of unknown type 7"):
        runtime.run_until_idle()


def test_v3_a_write_to_a_state_never_declared_fails() -> None:
    reply = v3.FromFunction()
    mutation = reply.invocation_result.state_mutations.add(state_name="other", mutation_type=1)
    mutation.state_value.typename = ANY_TYPENAME
    runtime, _ = _replying(reply)
    runtime.send("example/fn", "a", text("x"))
    with pytest.raises(FunctionCallFailedError, match="changes state 'other', which the function has not declared"):
        runtime.run_until_idle()


def test_java_hash_map_order_matches_the_runtime() -> None:
    from statefun_wsgi.local.runtime import _java_hash_map_order

    assert _java_hash_map_order(["seen", "anystate"]) == ["anystate", "seen"]  # as in the golden request 2
    # 13 names make the table 32 buckets: "Aa" and "BB" collide (same String.hashCode) and keep insertion order
    names = ["BB", "Aa"] + [f"s{index}" for index in range(11)]
    ordered = _java_hash_map_order(names)
    assert ordered.index("BB") + 1 == ordered.index("Aa")


def test_v3_a_namespace_endpoint_calls_each_type_at_its_url() -> None:
    called: List[str] = []

    def transport(spec: FunctionSpec, request: bytes) -> bytes:
        called.append(spec.endpoint)
        return b""

    module = parse_module_yaml("kind: io.statefun.endpoints.v2/http\nspec:\n  functions: example/*\n"
                               "  urlPathTemplate: http://app:8000/fn/{function.name}\n")
    runtime = LocalRuntime(dict(module.functions), transport)
    runtime.send("example/greeter", "a", text("x"))
    runtime.send("example/formatter", "a", text("x"))
    runtime.run_until_idle()
    assert called == ["http://app:8000/fn/greeter", "http://app:8000/fn/formatter"]
    with pytest.raises(ConfigurationError, match="no function type other/fn here"):
        runtime.send("other/fn", "a", text("x"))


def test_v3_async_a_reply_over_payload_max_bytes_is_retried_until_the_call_timeout() -> None:
    functions = StatefulFunctions()

    @functions.bind("example/fn")
    def fn(context, message: StringValue):  # type: ignore[no-untyped-def]
        context.pack_and_send_egress("example/out", text("x" * 100))

    for limit, fails in ((64, True), (4096, False)):
        spec = v3_module(extra=f"transport:\n  call: 100ms\n  payload_max_bytes: {limit}\n")
        runtime, recorder = v3_runtime(functions, spec, clock=VirtualClock())
        runtime.send("example/fn", "a", text("go"))
        if fails:
            with pytest.raises(FunctionCallFailedError, match="exceed payload_max_bytes 64"):
                runtime.run_until_idle()
            assert len(recorder.requests) > 3  # retried
            assert runtime.egress("example/out") == []
        else:
            runtime.run_until_idle()
            assert len(runtime.egress("example/out")) == 1


def test_v3_after_a_restart_states_are_declared_again_and_keep_their_values() -> None:
    functions = vector_greeter([ValueSpec("seen", IntWrapper), "anystate"])
    runtime, recorder = v3_runtime(functions)
    hello = Any(type_url="io.statefun.types/string", value=b"hello")
    runtime.send("example/greeter", "zed", hello)
    runtime.run_until_idle()
    assert len(recorder.requests) == 2
    runtime.restart()
    with pytest.raises(KeyError):
        runtime.state("example/greeter", "zed", "seen")
    runtime.send("example/greeter", "zed", hello)
    runtime.run_until_idle()
    assert len(recorder.requests) == 4 and list(recorder.requests[2].invocation.state) == []
    assert recorder.replies[2].HasField("incomplete_invocation_context")
    assert runtime.state("example/greeter", "zed", "seen", IntWrapper) == IntWrapper(value=2)
    runtime.send("example/greeter", "zed", hello)
    with pytest.raises(ConfigurationError, match="needs an idle runtime"):
        runtime.restart()


def test_v3_async_in_process_call_is_bounded_by_the_call_timeout_alone() -> None:
    functions = StatefulFunctions()

    @functions.bind("example/fn")
    def fn(context, message: StringValue):  # type: ignore[no-untyped-def]
        time.sleep(0.06)

    runtime, recorder = v3_runtime(functions, v3_module(extra="transport:\n  call: 50ms\n"), clock=VirtualClock())
    runtime.send("example/fn", "a", text("go"))
    with pytest.raises(FunctionCallFailedError) as info:
        runtime.run_until_idle()
    assert info.value.reason.endswith("in-process: no reply within timeout 50ms (the function ran; its reply is "
                                      "lost)")
    assert len(recorder.requests) == 1  # the whole budget went on the first attempt


@pytest.mark.parametrize("record, ok", [
    ("type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord", True),
    ("type.googleapis.com/org.apache.flink.statefun.flink.io.KinesisEgressRecord", False),
])
def test_v3_kinesis_egress_takes_only_the_3x_record_name(record: str, ok: bool) -> None:
    reply = v3.FromFunction()
    egress = reply.invocation_result.outgoing_egresses.add(egress_namespace="example", egress_type="stream")
    egress.argument.typename, egress.argument.has_value = record, True
    spec = v3_module(egresses="---\nkind: io.statefun.kinesis.v1/egress\nspec:\n  id: example/stream\n")

    def function(request: bytes) -> bytes:
        if not v3.ToFunction.FromString(request).invocation.state:
            declare = v3.FromFunction()
            declare.incomplete_invocation_context.missing_values.add(state_name="s", type_typename=ANY_TYPENAME)
            return declare.SerializeToString()
        return reply.SerializeToString()

    runtime = LocalRuntime(dict(spec.functions), InProcessTransport(function),  # type: ignore[attr-defined]
                           egresses={e.id: e.type for e in spec.egresses})  # type: ignore[attr-defined]
    runtime.send("example/fn", "a", text("x"))
    if ok:
        runtime.run_until_idle()
        assert runtime.egress("example/stream")[0].kinesis is not None
    else:
        with pytest.raises(FunctionCallFailedError, match="it takes only 'type.googleapis.com/io.statefun.sdk"):
            runtime.run_until_idle()


@pytest.mark.parametrize("protocol", ["2.x", "3.x"])
def test_state_unpacks_a_builtin_type_held_in_an_any_state(protocol: str) -> None:
    """An Any state holding ``io.statefun.types/int``: ``state(..., IntWrapper)`` gives the
    IntWrapper (it used to raise UnexpectedMessageTypeError); another class is still refused."""
    functions = StatefulFunctions()

    @functions.bind("t/keeper", states=["n"])
    def keeper(context, message: Any) -> None:
        context.state("n").pack(IntWrapper(value=5))

    runtime = LocalRuntime.for_functions(functions, protocol=protocol)
    runtime.send("t/keeper", "a", StringValue(value="go"))
    runtime.run_until_idle()
    assert runtime.state("t/keeper", "a", "n").type_url == "io.statefun.types/int"
    assert runtime.state("t/keeper", "a", "n", IntWrapper) == IntWrapper(value=5)
    with pytest.raises(UnexpectedMessageTypeError, match="holds a 'io.statefun.types/int'"):
        runtime.state("t/keeper", "a", "n", StringWrapper)
    with pytest.raises(UnexpectedMessageTypeError, match="holds a 'io.statefun.types/int'"):
        runtime.state("t/keeper", "a", "n", Int64Value)


from statefun_wsgi.errors import RequestError  # noqa: E402


def test_v3_restart_after_a_failure_sends_the_failed_batch_again_with_states_declared_again() -> None:
    """As the 3.3 runtime restoring a checkpoint after a failed call: the runtime knows no
    state again (the first request after the restart carries none and the function declares
    it), the failed message is delivered again, and the count goes on exactly once."""
    functions = StatefulFunctions()
    failing = {"once": True}
    seen: List[int] = []

    @functions.bind("t/counter", states=["n"])
    def counter(context, message: StringValue) -> None:
        count = context.state("n").unpack(Int64Value) or Int64Value()
        count.value += 1
        context.state("n").pack(count)
        seen.append(count.value)

    handler = RequestReplyHandler(functions)
    requests: List[v3.ToFunction] = []

    def recording(body: bytes) -> bytes:
        request = v3.ToFunction.FromString(body)
        requests.append(request)
        if request.invocation.invocations[0].argument.value == b"\n\x04fail" and failing.pop("once", False):
            raise RequestError("failing once")  # a 400, which okhttp does not retry
        return handler(body)

    spec = FunctionSpec("t/counter", "in-process://", (), protocol="3.x")  # okhttp
    runtime = LocalRuntime({"t/counter": spec}, InProcessTransport(recording), protocol="3.x")
    runtime.send("t/counter", "a", StringValue(value="x"))
    runtime.run_until_idle()
    with pytest.raises(ConfigurationError, match="idle runtime"):
        runtime.send("t/counter", "a", StringValue(value="x"))
        runtime.restart()  # a message waiting: not idle
    runtime.run_until_idle()
    runtime.send("t/counter", "a", StringValue(value="fail"))
    with pytest.raises(FunctionCallFailedError, match="failing once"):
        runtime.run_until_idle()
    assert runtime.state("t/counter", "a", "n", Int64Value) == Int64Value(value=2)
    before = len(requests)
    runtime.restart()
    runtime.run_until_idle()
    runtime.send("t/counter", "a", StringValue(value="x"))
    runtime.run_until_idle()
    assert runtime.state("t/counter", "a", "n", Int64Value) == Int64Value(value=4)
    assert seen == [1, 2, 3, 4]
    after = requests[before:]
    assert [len(r.invocation.state) for r in after] == [0, 1, 1]  # declared again, then carried
    assert [i.argument.value for i in after[0].invocation.invocations] == [StringValue(value="fail").SerializeToString()]


def test_v3_after_restart_a_state_declared_with_another_type_fails() -> None:
    """As the 3.3 runtime after a restore: the checkpoint keeps each state's type, so a new
    app version declaring ``n`` (an Any before) as io.statefun.types/int fails the job
    (RemoteValueTypeMismatchException); the same type declared again is fine."""
    functions = StatefulFunctions()
    version = {"typed": False}

    @functions.bind("t/evolving", states=["n"])
    def old(context, message: StringValue) -> None:
        context.state("n").pack(Int64Value(value=1))

    newer = StatefulFunctions()

    @newer.bind("t/evolving", states=[ValueSpec("n", IntWrapper)])
    def new(context, message: StringValue) -> None:
        context.state("n").pack(IntWrapper(value=1))

    handlers = {False: RequestReplyHandler(functions), True: RequestReplyHandler(newer)}
    spec = FunctionSpec("t/evolving", "in-process://", (), protocol="3.x")
    runtime = LocalRuntime({"t/evolving": spec}, InProcessTransport(lambda body: handlers[version["typed"]](body)),
                           protocol="3.x")
    runtime.send("t/evolving", "a", StringValue(value="x"))
    runtime.run_until_idle()
    runtime.restart()
    runtime.send("t/evolving", "a", StringValue(value="x"))
    runtime.run_until_idle()  # the same type again: fine
    runtime.restart()
    version["typed"] = True
    runtime.send("t/evolving", "a", StringValue(value="x"))
    with pytest.raises(FunctionCallFailedError, match=(
            "state 'n' was restored with type 'type.googleapis.com/google.protobuf.Any', and the reply declares "
            "it with type 'io.statefun.types/int'")):
        runtime.run_until_idle()
