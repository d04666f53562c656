"""Tests for statefun_wsgi.functions: registration and type-hint dispatch.

This module deliberately does NOT use ``from __future__ import annotations``: the
functions bound here carry real class objects as annotations, and the string form
is tested separately (a source with the future import is compiled below, and the
other test modules use it throughout).
"""

import functools
import sys
import textwrap
import typing
from typing import Optional, Union

import pytest
from builders import Sent, bind, decode_reply, invoke, invoke_failure, pack, request
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import BoolValue, BytesValue, Int64Value, StringValue

import statefun_wsgi
from statefun_wsgi import (
    ConfigurationError,
    FunctionInvocationError,
    RequestReplyHandler,
    StatefulFunction,
    StatefulFunctions,
    UnexpectedMessageTypeError,
)
from statefun_wsgi.functions import split_typename


def two_args(context, message):
    pass


# -- registration ------------------------------------------------------------------------


def test_bind_returns_the_function_unchanged_and_registers_it():
    functions = StatefulFunctions()

    @functions.bind("example/greeter")
    def greet(context, message):
        pass

    assert greet.__name__ == "greet"
    assert callable(greet)
    assert len(functions) == 1
    assert "example/greeter" in functions
    assert "example/other" not in functions
    assert 42 not in functions
    registration = functions.for_type("example", "greeter")
    assert isinstance(registration, StatefulFunction)
    assert registration.func is greet
    assert (registration.namespace, registration.name, registration.typename) == ("example", "greeter", "example/greeter")
    assert registration.states is None
    assert registration.message_types is None
    assert registration.is_coroutine is False
    assert functions.for_type("example", "nope") is None
    assert list(functions) == [registration]


def test_register_returns_the_registration_with_its_states():
    functions = StatefulFunctions()
    registration = functions.register("example/counter", two_args, states=["count", "seen"])
    assert registration.func is two_args
    assert registration.states == ("count", "seen")
    assert functions.for_type("example", "counter") is registration


def test_typenames_are_sorted():
    functions = StatefulFunctions()
    for typename in ("b/two", "a/one", "a.b/zero"):
        functions.register(typename, two_args)
    assert functions.typenames == ["a.b/zero", "a/one", "b/two"]


@pytest.mark.parametrize(
    "typename, namespace, name",
    [
        ("example/greeter", "example", "greeter"),
        ("com.example.fns/greeter", "com.example.fns", "greeter"),
        ("com.example/fns/greeter", "com.example/fns", "greeter"),
        ("a/b/c/d", "a/b/c", "d"),
        ("ns/type-with.dots_and-dashes", "ns", "type-with.dots_and-dashes"),
    ],
    ids=["plain", "dotted-namespace", "namespace-with-slash", "many-slashes", "punctuated-name"],
)
def test_typename_is_split_at_the_last_slash(typename, namespace, name):
    assert split_typename(typename) == (namespace, name)
    functions = StatefulFunctions()
    seen = []
    registration = functions.register(typename, lambda context, message: seen.append(context.address))
    assert (registration.namespace, registration.name) == (namespace, name)
    assert typename in functions
    # A request whose target is (namespace, name) reaches it.
    reply = RequestReplyHandler(functions)(request(typename, "x", messages=[StringValue(value="hi")]))
    assert decode_reply(reply).empty
    assert seen == [(namespace, name, "x")]


def _star_args(context, *args):
    pass


def _args_after_two(context, message, *args):
    pass


def _required_keyword(context, message, *, extra):
    pass


def _one(context):
    pass


def _three(context, message, extra):
    pass


def _none():
    pass


class _CallableWithoutParameters:
    def __call__(self):
        pass


def _int_annotation(context, message: int):
    pass


def _str_annotation(context, message: str):
    pass


def _optional(context, message: Optional[StringValue]):
    pass


def _union_with_none(context, message: Union[StringValue, Int64Value, None]):
    pass


def _any_in_union(context, message: Union[Any, StringValue]):
    pass


def _typing_any(context, message: typing.Any):
    pass


def _unresolvable(context, message: "NoSuchMessage"):  # noqa: F821
    pass


def _union_of_str(context, message: Union[StringValue, str]):
    pass


REGISTRATION_ERRORS = [
    ("noslash", two_args, None, r"'noslash' has no '/'"),
    ("", two_args, None, r"has no '/'"),
    ("/greeter", two_args, None, r"'/greeter' has an empty namespace"),
    ("example/", two_args, None, r"'example/' has an empty name"),
    ("/", two_args, None, r"empty namespace"),
    (42, two_args, None, r"a function type must be a str like 'namespace/name', not int"),
    ("example/fn", "not a function", None, r"'not a function' is not callable"),
    ("example/fn", None, None, r"None is not callable"),
    ("example/fn", _none, None, r"exactly two positional parameters \(context, message\).*_none"),
    ("example/fn", _one, None, r"exactly two positional parameters.*takes \(context\)"),
    ("example/fn", _three, None, r"exactly two positional parameters.*takes \(context, message, extra\)"),
    ("example/fn", _star_args, None, r"exactly two positional parameters.*\*args"),
    ("example/fn", _args_after_two, None, r"exactly two positional parameters.*\*args"),
    ("example/fn", _required_keyword, None, r"exactly two positional parameters.*extra"),
    ("example/fn", _CallableWithoutParameters(), None, r"exactly two positional parameters"),
    ("example/fn", _int_annotation, None, r"annotation <class 'int'> is not a protobuf message class"),
    ("example/fn", _str_annotation, None, r"annotation <class 'str'> is not a protobuf message class"),
    ("example/fn", _typing_any, None, r"annotation typing.Any is not a protobuf message class"),
    ("example/fn", _union_of_str, None, r"annotation <class 'str'> is not a protobuf message class"),
    ("example/fn", _optional, None, r"admits None, but a function is always called with a message"),
    ("example/fn", _union_with_none, None, r"admits None"),
    ("example/fn", _any_in_union, None, r"google.protobuf.Any cannot be part of a Union"),
    ("example/fn", _unresolvable, None, r"cannot resolve the annotation 'NoSuchMessage' of parameter 'message'"),
    ("example/fn", two_args, "count", r"states must be a list of names, not the string 'count'"),
    ("example/fn", two_args, ["count", ""], r"state name '' is not a non-empty string"),
    ("example/fn", two_args, ["count", 3], r"state name 3 is not a non-empty string"),
    ("example/fn", two_args, ["b", "a", "b", "a"], r"state names repeated: a, b"),
]


@pytest.mark.parametrize(
    "typename, func, states, message",
    REGISTRATION_ERRORS,
    ids=[
        "missing-slash",
        "empty-typename",
        "empty-namespace",
        "empty-name",
        "only-slash",
        "typename-not-str",
        "not-callable-str",
        "not-callable-none",
        "no-parameters",
        "one-parameter",
        "three-parameters",
        "star-args-instead-of-message",
        "star-args-after-message",
        "required-keyword-only",
        "callable-object-without-parameters",
        "annotation-int",
        "annotation-str",
        "annotation-typing-any",
        "union-with-non-message",
        "optional",
        "union-with-none",
        "any-in-union",
        "unresolvable-string-annotation",
        "states-as-string",
        "empty-state-name",
        "non-string-state-name",
        "repeated-state-names",
    ],
)
@pytest.mark.parametrize("how", ["register", "bind"])
def test_registration_errors_at_bind_time(how, typename, func, states, message):
    functions = StatefulFunctions()
    with pytest.raises(ConfigurationError, match=message) as info:
        if how == "register":
            functions.register(typename, func, states)
        else:
            functions.bind(typename, states=states)(func)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, statefun_wsgi.StatefunError)
    assert len(functions) == 0


def test_binding_the_same_typename_twice_is_an_error_and_keeps_the_first():
    functions = StatefulFunctions()

    @functions.bind("example/greeter")
    def first(context, message):
        pass

    def second(context, message):
        pass

    with pytest.raises(ConfigurationError, match=r"example/greeter is already bound to .*first.*bound once"):
        functions.bind("example/greeter")(second)
    assert functions.for_type("example", "greeter").func is first
    assert len(functions) == 1
    # The same name in another namespace is another type.
    functions.register("other/greeter", second)
    assert len(functions) == 2


def test_the_same_function_may_serve_two_types():
    functions = StatefulFunctions()
    functions.register("example/a", two_args)
    functions.register("example/b", two_args)
    assert functions.typenames == ["example/a", "example/b"]


@pytest.mark.parametrize(
    "func",
    [
        pytest.param(lambda context, message: None, id="lambda"),
        pytest.param(lambda context, message, *, extra=1: None, id="optional-keyword-only"),
        pytest.param(lambda context, message, **kwargs: None, id="var-keyword"),
        pytest.param(functools.partial(_three, extra=1), id="partial"),
    ],
)
def test_accepted_callables(func):
    StatefulFunctions().register("example/fn", func)


def test_callable_object_with_annotated_call():
    calls = []

    class Greeter:
        def __call__(self, context, message: StringValue):
            calls.append((self, message))

    greeter = Greeter()
    reply = invoke(greeter, messages=[StringValue(value="hi")])
    assert reply.empty
    assert calls == [(greeter, StringValue(value="hi"))]


def test_bound_method():
    class Counter:
        def __init__(self):
            self.seen = []

        def handle(self, context, message: Int64Value):
            self.seen.append(message.value)

    counter = Counter()
    invoke(counter.handle, messages=[Int64Value(value=1), Int64Value(value=2)])
    assert counter.seen == [1, 2]


# -- type-hint dispatch ------------------------------------------------------------------


def test_message_class_annotation_unpacks_the_argument():
    seen = []

    def fn(context, message: StringValue):
        seen.append(message)

    registration = bind(fn).for_type("example", "fn")
    assert registration.message_types == (StringValue,)
    invoke(fn, messages=[StringValue(value="hello"), StringValue(value="")])
    assert [type(m) for m in seen] == [StringValue, StringValue]
    assert [m.value for m in seen] == ["hello", ""]


def test_union_dispatches_on_the_type_url():
    seen = []

    def fn(context, message: Union[StringValue, Int64Value, BoolValue]):
        seen.append(message)

    invoke(fn, messages=[Int64Value(value=7), StringValue(value="s"), BoolValue(value=True), Int64Value(value=8)])
    assert seen == [Int64Value(value=7), StringValue(value="s"), BoolValue(value=True), Int64Value(value=8)]
    assert [type(m) for m in seen] == [Int64Value, StringValue, BoolValue, Int64Value]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="`A | B` annotations need Python 3.10")
def test_pipe_union_dispatches_on_the_type_url():
    seen = []

    def fn(context, message: StringValue | Int64Value):  # noqa: UP007 (the point of the test)
        seen.append(message)

    assert set(bind(fn).for_type("example", "fn").message_types) == {StringValue, Int64Value}
    invoke(fn, messages=[Int64Value(value=7), StringValue(value="s")])
    assert seen == [Int64Value(value=7), StringValue(value="s")]
    assert [type(m) for m in seen] == [Int64Value, StringValue]


def test_no_annotation_passes_the_raw_any():
    seen = []

    def fn(context, message):
        seen.append(message)

    invoke(fn, messages=[StringValue(value="raw"), Int64Value(value=3)])
    assert [type(m) for m in seen] == [Any, Any]
    assert seen == [pack(StringValue(value="raw")), pack(Int64Value(value=3))]
    assert seen[0].type_url == "type.googleapis.com/google.protobuf.StringValue"


def test_any_annotation_passes_the_raw_any():
    seen = []

    def fn(context, message: Any):
        seen.append(message)

    assert bind(fn).for_type("example", "fn").message_types is None
    invoke(fn, messages=[BytesValue(value=b"\x00\x01")])
    assert seen == [pack(BytesValue(value=b"\x00\x01"))]
    assert type(seen[0]) is Any


def test_type_url_prefix_does_not_matter_only_the_full_name():
    seen = []

    def fn(context, message: StringValue):
        seen.append(message)

    odd = Any(type_url="com.googleapis/google.protobuf.StringValue", value=StringValue(value="x").SerializeToString())
    invoke(fn, messages=[odd])
    assert seen == [StringValue(value="x")]


def test_mismatched_type_names_the_type_url_and_the_accepted_types():
    def fn(context, message: StringValue):
        raise AssertionError("must not be called")

    cause = invoke_failure(
        fn,
        UnexpectedMessageTypeError,
        match=r"example/fn received a message of type 'type.googleapis.com/google.protobuf.Int64Value', "
        r"but accepts only: google.protobuf.StringValue$",
        messages=[Int64Value(value=1)],
    )
    assert isinstance(cause, TypeError)


def test_mismatched_type_in_a_union_lists_every_accepted_type():
    def fn(context, message: Union[StringValue, Int64Value]):
        raise AssertionError("must not be called")

    invoke_failure(
        fn,
        UnexpectedMessageTypeError,
        match=r"received a message of type 'type.googleapis.com/google.protobuf.BoolValue', "
        r"but accepts only: google.protobuf.Int64Value, google.protobuf.StringValue$",
        messages=[BoolValue(value=True)],
    )


def test_undecodable_argument_bytes_are_a_type_error():
    def fn(context, message: StringValue):
        raise AssertionError("must not be called")

    garbage = Any(type_url="type.googleapis.com/google.protobuf.StringValue", value=b"\xff\xff\xff")
    invoke_failure(fn, UnexpectedMessageTypeError, match=r"do not parse as google.protobuf.StringValue", messages=[garbage])


def test_unpacker_is_a_lookup_independent_of_union_order():
    # Dispatch by name: a type listed last is found as well as the first.
    union = Union[BoolValue, BytesValue, Int64Value, StringValue]
    registration = StatefulFunction("example/fn", _annotated(union))
    for message in (StringValue(value="a"), BoolValue(value=True), BytesValue(value=b"b"), Int64Value(value=4)):
        unpacked = registration.unpack(pack(message))
        assert type(unpacked) is type(message)
        assert unpacked == message


def _annotated(annotation):
    def fn(context, message):
        pass

    fn.__annotations__ = {"message": annotation}
    return fn


FUTURE_SOURCE = textwrap.dedent(
    """
    from __future__ import annotations

    import functools
    import typing

    from google.protobuf.any_pb2 import Any
    from google.protobuf.wrappers_pb2 import Int64Value, StringValue

    if typing.TYPE_CHECKING:
        from statefun_wsgi import BatchContext

    seen = []

    def plain(context, message: StringValue):
        seen.append(message)

    def union(context, message: typing.Union[StringValue, Int64Value]):
        seen.append(message)

    def raw(context, message: Any):
        seen.append(message)

    def optional(context, message: typing.Optional[StringValue]):
        pass

    def typed_context(context: BatchContext, message: StringValue):
        seen.append(message)

    class Handler:
        def __call__(self, context: BatchContext, message: Int64Value):
            seen.append(message)

    def logged(func):
        @functools.wraps(func)
        def wrapper(*args):
            return func(*args)

        return wrapper

    @logged
    def decorated(context, message: Int64Value):
        seen.append(message)
    """
)


@pytest.fixture
def future_module():
    namespace = {"__name__": "future_annotated"}
    exec(compile(FUTURE_SOURCE, "<future_annotated>", "exec"), namespace)
    assert isinstance(namespace["plain"].__annotations__["message"], str)  # really string annotations
    return namespace


def test_string_annotations_from_future_import(future_module):
    functions = StatefulFunctions()
    plain = functions.register("example/plain", future_module["plain"])
    union = functions.register("example/union", future_module["union"])
    raw = functions.register("example/raw", future_module["raw"])
    assert plain.message_types == (StringValue,)
    assert set(union.message_types) == {StringValue, Int64Value}
    assert raw.message_types is None
    handler = RequestReplyHandler(functions)
    handler(request("example/plain", "a", messages=[StringValue(value="p")]))
    handler(request("example/union", "a", messages=[Int64Value(value=5), StringValue(value="u")]))
    handler(request("example/raw", "a", messages=[Int64Value(value=6)]))
    assert future_module["seen"] == [StringValue(value="p"), Int64Value(value=5), StringValue(value="u"), pack(Int64Value(value=6))]


def test_string_optional_annotation_is_still_an_error(future_module):
    with pytest.raises(ConfigurationError, match="admits None"):
        StatefulFunctions().register("example/optional", future_module["optional"])


def test_string_annotation_of_context_only_known_to_type_checkers(future_module):
    # ``if TYPE_CHECKING: from statefun_wsgi import BatchContext`` is the usual way to
    # annotate the context; only the message annotation has to resolve at run time.
    functions = StatefulFunctions()
    registration = functions.register("example/typed", future_module["typed_context"])
    assert registration.message_types == (StringValue,)
    RequestReplyHandler(functions)(request("example/typed", "a", messages=[StringValue(value="t")]))
    assert future_module["seen"] == [StringValue(value="t")]


def test_string_annotations_of_a_callable_object_and_a_decorated_function(future_module):
    functions = StatefulFunctions()
    assert functions.register("example/object", future_module["Handler"]()).message_types == (Int64Value,)
    assert functions.register("example/decorated", future_module["decorated"]).message_types == (Int64Value,)
    handler = RequestReplyHandler(functions)
    handler(request("example/object", "a", messages=[Int64Value(value=1)]))
    handler(request("example/decorated", "a", messages=[Int64Value(value=2)]))
    assert future_module["seen"] == [Int64Value(value=1), Int64Value(value=2)]


def test_dispatch_results_reach_the_reply():
    def fn(context, message: Union[StringValue, Int64Value]):
        context.pack_and_send("example/echo", type(message).__name__, message)

    reply = invoke(fn, messages=[StringValue(value="a"), Int64Value(value=1)])
    assert reply.sent == [
        Sent.to("example/echo", "StringValue", StringValue(value="a")),
        Sent.to("example/echo", "Int64Value", Int64Value(value=1)),
    ]



# -- ValueSpec: states with a type and an expiry -------------------------------------------------


def test_states_take_names_and_value_specs():
    from datetime import timedelta

    from statefun_wsgi import IntWrapper, ValueSpec

    functions = StatefulFunctions()
    spec = ValueSpec("b", IntWrapper, expire_after_call=timedelta(seconds=2))
    function = functions.register("example/fn", lambda context, message: None, ["a", spec])
    assert function.states == ("a", "b")  # what module.yaml and the CLI read
    assert function.value_specs == {"a": ValueSpec("a"), "b": spec}
    assert spec.typename == "io.statefun.types/int" and spec.expire_after_millis == 2000
    assert ValueSpec("a").typename == "type.googleapis.com/google.protobuf.Any"
    assert ValueSpec("c", Int64Value).typename == "type.googleapis.com/google.protobuf.Int64Value"
    assert repr(spec) == "ValueSpec('b', IntWrapper, expire_after_call=datetime.timedelta(seconds=2))"
    assert ValueSpec("a", expire_after_write=timedelta(hours=1)).expire_after_millis == 3_600_000
    assert functions.register("example/no", lambda context, message: None).value_specs is None


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("",), {}, r"a state name is a non-empty string, got ''"),
        ((3,), {}, r"a state name is a non-empty string, got 3"),
        (("s", Any), {}, r"state 's': type must be a protobuf message class other than Any"),
        (("s", int), {}, r"state 's': type must be a protobuf message class other than Any"),
        (("s",), {"expire_after_write": __import__("datetime").timedelta(0)}, r"expire_after_write must be a positive"),
        (("s",), {"expire_after_call": 5}, r"expire_after_call must be a positive datetime.timedelta, got 5"),
        (
            ("s",),
            {"expire_after_call": __import__("datetime").timedelta(1), "expire_after_write": __import__("datetime").timedelta(1)},
            r"give expire_after_write or expire_after_call, not both",
        ),
    ],
)
def test_a_bad_value_spec_is_a_configuration_error(args, kwargs, match):
    from statefun_wsgi import ValueSpec

    with pytest.raises(ConfigurationError, match=match):
        ValueSpec(*args, **kwargs)


def test_value_specs_in_states_are_checked_like_names():
    from statefun_wsgi import ValueSpec

    functions = StatefulFunctions()
    with pytest.raises(ConfigurationError, match=r"state names repeated: a"):
        functions.register("example/fn", lambda context, message: None, ["a", ValueSpec("a")])
    with pytest.raises(ConfigurationError, match=r"states must be a list, not the single ValueSpec\('a'\)"):
        functions.register("example/fn", lambda context, message: None, ValueSpec("a"))


def test_a_built_in_type_annotation_dispatches_on_its_type_name():
    from statefun_wsgi import IntWrapper, StringWrapper

    got = []

    def fn(context, message: Union[IntWrapper, StringWrapper]):
        got.append(message)

    functions = bind(fn)
    RequestReplyHandler(functions)(
        request(messages=[Any(type_url="io.statefun.types/int", value=b"\x0d\x07\x00\x00\x00"), StringWrapper(value="s")])
    )
    assert got == [IntWrapper(value=7), StringWrapper(value="s")]
    # only under its type name: the message's full name is not how it travels
    with pytest.raises(FunctionInvocationError, match=r"accepts only: io.statefun.types/int, io.statefun.types/string"):
        RequestReplyHandler(functions)(
            request(messages=[Any(type_url="type.googleapis.com/statefun_wsgi.types.IntWrapper", value=b"")])
        )
