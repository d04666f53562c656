"""The request-reply handlers: one serialized ``ToFunction`` in, one serialized
``FromFunction`` out. They know nothing of HTTP.

Usage::

    handler = RequestReplyHandler(functions)
    reply_bytes = handler(request_bytes)       # raises a StatefunError on failure

    async_handler = AsyncRequestReplyHandler(functions)
    reply_bytes = await async_handler(request_bytes)

A batch runs its invocations in order against one :class:`~statefun_wsgi.context.BatchContext`.
If any invocation raises, the whole batch fails with
:class:`~statefun_wsgi.errors.FunctionInvocationError` and no reply is produced: the
runtime retries the batch, and none of its effects were applied.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Iterator, Union

from google.protobuf.message import DecodeError

from ._proto.request_reply_view_pb2 import ToFunction
from .context import BatchContext
from .errors import FunctionInvocationError, MalformedRequestError, MissingStateError, UnknownFunctionError
from .functions import StatefulFunctions

if TYPE_CHECKING:
    from .functions import StatefulFunction

__all__ = ["AsyncRequestReplyHandler", "RequestReplyHandler"]

RequestBytes = Union[bytes, bytearray, memoryview]


class _Batch:
    """One parsed request: the function to run, its context and its invocations."""

    __slots__ = ("function", "context", "invocations", "index")

    def __init__(self, functions: StatefulFunctions, request_bytes: RequestBytes) -> None:
        request = ToFunction()
        try:
            if type(request_bytes) is not bytes:
                # upb on some Python versions (3.9) refuses a bytearray.
                request_bytes = bytes(request_bytes)
            request.ParseFromString(request_bytes)
        except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
            raise MalformedRequestError(
                f"the body is not a serialized ToFunction (or a state value is not a serialized "
                f"google.protobuf.Any): {exc}"
            ) from None
        batch = request.invocation
        if not batch.invocations:
            if not request.HasField("invocation"):
                raise MalformedRequestError("the ToFunction carries no invocation batch (field 100)")
            raise MalformedRequestError("the invocation batch holds no invocations")
        target = batch.target
        function = functions.for_type(target.namespace, target.type)
        if function is None:
            bound = ", ".join(functions.typenames) or "none"
            raise UnknownFunctionError(
                f"no function is bound to {target.namespace}/{target.type} (bound: {bound})"
            )
        states = {}
        for state in batch.state:  # a plain loop: cheaper than a comprehension for a few states
            states[state.state_name] = state
        if function.states is not None:
            missing = [name for name in function.states if name not in states]
            if missing:
                raise FunctionInvocationError(
                    f"{function.typename} declares state {missing[0]!r} but the runtime did not send it; "
                    f"add '- {missing[0]}' under 'states:' of {function.typename} in module.yaml"
                ) from MissingStateError(missing[0])
        self.function: StatefulFunction = function
        self.context = BatchContext(target, states)
        self.invocations = batch.invocations
        self.index = 0

    def messages(self) -> Iterator[Any]:
        """Each invocation's message, as the function's annotation asks, in order;
        the context's caller is set for each before it is yielded."""
        context = self.context
        unpack = self.function.unpack
        for self.index, invocation in enumerate(self.invocations):
            if invocation.HasField("caller"):
                context._caller = invocation.caller
                context._caller_address = None
            elif context._caller is not None:
                context._caller = context._caller_address = None
            argument = invocation.argument
            yield argument if unpack is None else unpack(argument)

    def failure(self, exc: BaseException) -> FunctionInvocationError:
        target = self.context._target
        return FunctionInvocationError(
            f"{self.function.typename} (id {target.id!r}) raised {type(exc).__name__} "
            f"in invocation {self.index + 1} of {len(self.invocations)}: {exc}"
        )


class RequestReplyHandler:
    """Runs batches for the functions in ``functions``: ``handler(request_bytes) -> bytes``.

    Safe to share between threads: each call builds its own context. Raises
    :class:`~statefun_wsgi.errors.MalformedRequestError` (400),
    :class:`~statefun_wsgi.errors.UnknownFunctionError` (404) or
    :class:`~statefun_wsgi.errors.FunctionInvocationError` (500, the function's own
    exception chained as ``__cause__``).
    """

    def __init__(self, functions: StatefulFunctions) -> None:
        if not isinstance(functions, StatefulFunctions):
            raise TypeError(f"RequestReplyHandler takes a StatefulFunctions, got {type(functions).__name__}")
        self.functions = functions

    def __call__(self, request_bytes: RequestBytes) -> bytes:
        batch = _Batch(self.functions, request_bytes)
        function = batch.function
        if function.is_coroutine:
            raise FunctionInvocationError(
                f"{function.typename} is a coroutine function: serve it with AsyncRequestReplyHandler"
            )
        func = function.func
        context = batch.context
        try:
            for message in batch.messages():
                func(context, message)
        except Exception as exc:
            raise batch.failure(exc) from exc
        return context._finish().SerializeToString()


class AsyncRequestReplyHandler:
    """The awaitable twin of :class:`RequestReplyHandler`: ``await handler(request_bytes)``.

    Serves coroutine functions (each awaited before the next invocation starts)
    and plain functions alike.
    """

    def __init__(self, functions: StatefulFunctions) -> None:
        if not isinstance(functions, StatefulFunctions):
            raise TypeError(f"AsyncRequestReplyHandler takes a StatefulFunctions, got {type(functions).__name__}")
        self.functions = functions

    async def __call__(self, request_bytes: RequestBytes) -> bytes:
        batch = _Batch(self.functions, request_bytes)
        function = batch.function
        func = batch.function.func
        context = batch.context
        try:
            for message in batch.messages():
                result = func(context, message)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            raise batch.failure(exc) from exc
        return context._finish().SerializeToString()
