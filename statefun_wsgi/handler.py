"""The request-reply handlers: one serialized ``ToFunction`` in, one serialized
``FromFunction`` out. They know nothing of HTTP.

Usage::

    handler = RequestReplyHandler(functions)   # serves StateFun 2.x and 3.x requests
    reply_bytes = handler(request_bytes)       # raises a StatefunError on failure

    RequestReplyHandler(functions, protocols="3.x")   # 3.x only (see statefun_wsgi.protocols)

    async_handler = AsyncRequestReplyHandler(functions)
    reply_bytes = await async_handler(request_bytes)

A batch runs its invocations in order against one :class:`~statefun_wsgi.context.BatchContext`.
If any invocation raises, the whole batch fails with
:class:`~statefun_wsgi.errors.FunctionInvocationError` and no reply is produced: the
runtime retries the batch, and none of its effects were applied.

Each request is answered in the protocol it was sent in (2.x or 3.x, told from its
bytes by :mod:`statefun_wsgi.protocols`); the protocol's codec parses it and writes
the reply, and nothing else here depends on the version. On 3.x, a batch that needs
states the runtime has not registered yet (declared in ``bind(..., states=...)``, or
used by the function) answers only ``incomplete_invocation_context`` declaring them:
whatever the batch did is discarded, and the runtime sends the same invocations again
with the states.
"""

from __future__ import annotations

import inspect
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, Sequence, Tuple, Union

from .context import BatchContext, CodecContext
from .errors import FunctionInvocationError, MalformedRequestError, UnknownFunctionError
from .functions import StatefulFunctions
from .protocols import DEFAULT_PROTOCOLS, Protocols, ProtocolsSetting

if TYPE_CHECKING:
    from .functions import StatefulFunction

__all__ = ["AsyncRequestReplyHandler", "RequestReplyHandler"]

RequestBytes = Union[bytes, bytearray, memoryview]

# _NO_ITERATION: protobuf's repeated fields (upb) have no __iter__, so a for loop over one
# ends when indexing past the end raises IndexError, whose message is printf-formatted every
# time; looping over range(len(...)) skips that (about a microsecond per loop in a server).


def _open_batch(
    functions: StatefulFunctions, protocols: Protocols, request_bytes: RequestBytes
) -> Tuple[StatefulFunction, BatchContext, Sequence[Any], Any]:
    """Parse a request: the function it targets, a context holding its states, its invocations,
    and the first invocation (read here to tell the protocol; the caller runs it from this
    object rather than having upb build it again)."""
    if type(request_bytes) is not bytes:
        # upb on some Python versions (3.9) refuses a bytearray.
        request_bytes = bytes(request_bytes)
    codec = protocols.hint  # the protocol of the last request that showed one (see protocols)
    request: Any
    try:
        request = codec.from_string(request_bytes)
    except Exception:  # not this view: the codec's parse, or the other protocol, says why
        codec, request = protocols.resolve(request_bytes, codec, None)
    batch = request.invocation
    invocations = batch.invocations
    # What protocol: the first argument tells in the usual case (see statefun_wsgi.protocols).
    first = invocations[0] if invocations else None
    if first is None or not codec.proves(first.argument):
        codec, request = protocols.resolve(request_bytes, codec, request)
        batch = request.invocation
        invocations = batch.invocations
        first = invocations[0] if invocations else None
    if not invocations:
        if not request.HasField("invocation"):
            raise MalformedRequestError("the ToFunction carries no invocation batch (field 100)")
        raise MalformedRequestError("the invocation batch holds no invocations")
    target = batch.target
    function = functions.by_type.get((target.namespace, target.type))  # for_type(), one call less
    if function is None:
        bound = ", ".join(functions.typenames) or "none"
        raise UnknownFunctionError(f"no function is bound to {target.namespace}/{target.type} (bound: {bound})")
    collect = codec.states
    if collect is None:  # 2.x, inline
        states = {}
        sent = batch.state
        for index in range(len(sent)):  # by index: see _NO_ITERATION
            state = sent[index]
            states[state.state_name] = state
        context = BatchContext(target, states)
    else:
        read, states, types = collect(request_bytes, batch, function)
        if read is not batch:  # read again (states of other types)
            invocations = read.invocations
            first = invocations[0]
        context = CodecContext(target, states, codec, types)
    if function.states is not None:
        missing = [name for name in function.states if name not in states]
        if missing:  # 2.x: raises; 3.x: declares them (context._incomplete)
            codec.missing_declared(function, context, missing)
    return function, context, invocations, first


_GENERATORS = (GeneratorType, AsyncGeneratorType)


def _never_ran(result: object) -> TypeError:
    """The error for a function whose call returned its body unrun (a coroutine or a generator)
    rather than running it: answering 200 would lose the batch's effects without a word."""
    if isinstance(result, (CoroutineType, GeneratorType)):
        result.close()  # no "never awaited" warning on top of this error
    if isinstance(result, _GENERATORS):
        return TypeError(f"it returned a {type(result).__name__} whose body never ran: a function must not yield")
    return TypeError(
        f"it returned an awaitable ({type(result).__name__}) instead of running: an async function, decorated "
        "or not, needs AsyncRequestReplyHandler, which a WSGI server cannot serve"
    )


def _failure(
    function: StatefulFunction, context: BatchContext, number: int, count: int, exc: BaseException
) -> FunctionInvocationError:
    text = (
        f"{function.typename} (id {context._target.id!r}) raised {type(exc).__name__} "
        f"in invocation {number} of {count}: {exc}"
    )
    if isinstance(exc, AttributeError) and function.message_types is None:
        text += _unannotated_hint(function, exc)
    return FunctionInvocationError(text)


def _unannotated_hint(function: StatefulFunction, exc: AttributeError) -> str:
    """Why an attribute is missing when the function reads it off an ``Any``: its message
    parameter has no annotation, so the message came packed (built only on failure)."""
    from google.protobuf.any_pb2 import Any as AnyMessage

    name = getattr(function.func, "__name__", "f")
    if not hasattr(exc, "obj"):  # Python 3.9: which object lacked it is not known
        said = "if it was read off the message: the message is a google.protobuf.Any"
    elif isinstance(exc.obj, AnyMessage):  # Python 3.10+: the object it was read from
        where = exc.obj
        said = f"the message is a google.protobuf.Any (of {where.type_url or 'no type URL'})"
    else:
        return ""
    return (
        f" ({said}, because the function's message parameter has no annotation: annotate it with the message's "
        f"class, def {name}(context, message: MyMessage), to receive it unpacked, or call message.Unpack)"
    )


class RequestReplyHandler:
    """Runs batches for the functions in ``functions``: ``handler(request_bytes) -> bytes``.

    :param protocols: the protocol versions served, in order of preference (see
        :mod:`statefun_wsgi.protocols`): ``"2.x,3.x"`` (the default), ``"3.x,2.x"``,
        ``"2.x"`` or ``"3.x"``.

    Safe to share between threads: each call builds its own context. Raises
    :class:`~statefun_wsgi.errors.MalformedRequestError` (400),
    :class:`~statefun_wsgi.errors.UnknownFunctionError` (404),
    :class:`~statefun_wsgi.errors.ProtocolMismatchError` (415) or
    :class:`~statefun_wsgi.errors.FunctionInvocationError` (500, the function's own
    exception chained as ``__cause__``).
    """

    def __init__(self, functions: StatefulFunctions, *, protocols: ProtocolsSetting = DEFAULT_PROTOCOLS) -> None:
        if not isinstance(functions, StatefulFunctions):
            raise TypeError(f"RequestReplyHandler takes a StatefulFunctions, got {type(functions).__name__}")
        self.functions = functions
        self.protocols = Protocols(protocols)

    def __call__(self, request_bytes: RequestBytes) -> bytes:
        function, context, invocations, first = _open_batch(self.functions, self.protocols, request_bytes)
        return _run_batch(function, context, invocations, first)

    def answer(self, request_bytes: RequestBytes) -> Tuple[bytes, str, int]:
        """The reply, as ``handler(request_bytes)`` returns it, with the function type it ran
        (``"namespace/name"``) and how many invocations ran (0 for a 3.x reply that only
        declares states: the runtime sends the batch again). What the endpoint calls when it
        records metrics; raises as a call does::

            reply, function_type, invocations = handler.answer(request_bytes)
        """
        function, context, invocations, first = _open_batch(self.functions, self.protocols, request_bytes)
        reply = _run_batch(function, context, invocations, first)
        return reply, function.typename, 0 if context._incomplete is not None else len(invocations)


def _run_batch(function: StatefulFunction, context: BatchContext, invocations: Sequence[Any], first: Any) -> bytes:
    """Run an opened batch's invocations with a plain function: the reply, or FunctionInvocationError."""
    if function.is_coroutine:
        raise FunctionInvocationError(
            f"{function.typename} is a coroutine function: serve it with AsyncRequestReplyHandler"
        )
    if context._incomplete is not None:  # 3.x: states to declare before anything runs
        return context._finish()
    func = function.func
    unpack = function.unpack
    if unpack is None:
        unpack = context._codec.to_any  # 3.x: the Any a TypedValue argument is equivalent to
    index = 0
    try:
        # The first invocation from the object _open_batch read, the others by index; each
        # one entered inline (context._enter, written out: once per invocation).
        if first.HasField("caller"):
            context._caller = first.caller
        argument = first.argument
        result = func(context, argument if unpack is None else unpack(argument))
        if result is not None and (hasattr(type(result), "__await__") or isinstance(result, _GENERATORS)):
            raise _never_ran(result)  # (not inspect.isawaitable: its ABC check costs ~300 ns a call)
        for index in range(1, len(invocations)):  # by index: see _NO_ITERATION
            invocation = invocations[index]
            if invocation.HasField("caller"):
                context._caller = invocation.caller
                context._caller_address = None
            elif context._caller is not None:
                context._caller = context._caller_address = None
            argument = invocation.argument
            result = func(context, argument if unpack is None else unpack(argument))
            if result is not None and (hasattr(type(result), "__await__") or isinstance(result, _GENERATORS)):
                raise _never_ran(result)
    except Exception as exc:
        if context._incomplete is not None:  # it used a state the runtime must register first
            return context._finish()
        raise _failure(function, context, index + 1, len(invocations), exc) from exc
    return context._finish()


class AsyncRequestReplyHandler:
    """The awaitable twin of :class:`RequestReplyHandler`: ``await handler(request_bytes)``.

    Serves coroutine functions (each awaited before the next invocation starts)
    and plain functions alike.
    """

    def __init__(self, functions: StatefulFunctions, *, protocols: ProtocolsSetting = DEFAULT_PROTOCOLS) -> None:
        if not isinstance(functions, StatefulFunctions):
            raise TypeError(f"AsyncRequestReplyHandler takes a StatefulFunctions, got {type(functions).__name__}")
        self.functions = functions
        self.protocols = Protocols(protocols)

    async def __call__(self, request_bytes: RequestBytes) -> bytes:
        function, context, invocations, _ = _open_batch(self.functions, self.protocols, request_bytes)
        if context._incomplete is not None:
            return context._finish()
        func = function.func
        unpack = function.unpack
        if unpack is None:
            unpack = context._codec.to_any
        index = 0
        try:
            for index in range(len(invocations)):  # by index: see _NO_ITERATION
                argument = context._enter(invocations[index])
                result = func(context, argument if unpack is None else unpack(argument))
                if result is not None:
                    if inspect.isawaitable(result):
                        await result
                    elif isinstance(result, _GENERATORS):
                        raise _never_ran(result)
        except Exception as exc:
            if context._incomplete is not None:
                return context._finish()
            raise _failure(function, context, index + 1, len(invocations), exc) from exc
        return context._finish()
