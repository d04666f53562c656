"""The function registry of the official StateFun 3.3 Python API.

Usage::

    from statefun_wsgi.v3 import IntType, StatefulFunctions, ValueSpec

    functions = StatefulFunctions()

    @functions.bind("example/greeter", specs=[ValueSpec("seen", IntType)])
    def greet(context, message):          # or: async def greet(context, message)
        ...

    functions.register("example/other", other_function, specs=[...])

A :class:`StatefulFunctions` of this API is a :class:`statefun_wsgi.StatefulFunctions`
too, so everything that serves one serves it: :class:`~statefun_wsgi.StatefunMiddleware`,
the Django middleware (``STATEFUN_FUNCTIONS``), :class:`~statefun_wsgi.RequestReplyHandler`,
the CLI and the local runtime. Each function is registered there as a plain function that
builds this API's :class:`~statefun_wsgi.v3.Context` and :class:`~statefun_wsgi.v3.Message`
around the batch's context; its ValueSpecs become the states it declares (their type
names and expiry as the official SDK writes them).

An ``async def`` function runs, where no event loop runs (a WSGI worker thread), on an
event loop kept for that thread: made on its first such batch and reused by every later
one, never one per request (the official ``handle_sync`` makes and closes one per request).
Where a loop runs (``handle_async`` or :class:`~statefun_wsgi.AsyncRequestReplyHandler`),
it is awaited on that loop.

Differences from the official SDK, on purpose: binding a typename twice raises
:class:`~statefun_wsgi.errors.ConfigurationError` (the official one replaces the first
function silently), and a function must take its two parameters (context, message) by
position, as there.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from datetime import timedelta
from typing import Any as TypingAny
from typing import Callable, List, Optional, TypeVar

from ..functions import ANY_TYPE_URL, StatefulFunction, split_typename
from ..functions import StatefulFunctions as _Registry
from ..functions import ValueSpec as _CoreSpec
from .context import _Context, storage_class
from .messages import _Received
from .types import ValueSpec

__all__ = ["StatefulFunctions"]

F = TypeVar("F", bound=Callable[..., TypingAny])


class _TypedSpec(_CoreSpec):
    """A state declared under a v3 :class:`~statefun_wsgi.v3.Type`'s type name (not a protobuf class)."""

    __slots__ = ()

    def __init__(self, spec: ValueSpec) -> None:
        expiry = timedelta(milliseconds=spec.duration) if spec.duration > 0 else None
        super().__init__(
            spec.name,
            None,
            expire_after_write=expiry if spec.after_write else None,
            expire_after_call=expiry if spec.after_call else None,
        )
        if spec.type.typename != ANY_TYPE_URL:  # (the Any one is a core ValueSpec's default)
            self.type = spec.type  # type: ignore[assignment]  # not None: core counts the state as typed
            self.typename = spec.type.typename

    def __repr__(self) -> str:
        return f"<state {self.name!r} of type {self.typename}>"


class _LoopHolder:
    """A thread's event loop, closed when the thread ends (its thread-local goes)."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()


_THREAD = threading.local()


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for ``async def`` functions (made on first use, then kept)."""
    try:
        return _THREAD.holder.loop  # type: ignore[no-any-return]
    except AttributeError:
        _THREAD.holder = _LoopHolder()
        return _THREAD.holder.loop  # type: ignore[no-any-return]


def _as_is(argument: TypingAny) -> TypingAny:
    """A batch argument (3.x: the TypedValue view; 2.x: an Any), as it is."""
    return argument


def _adapter(typename: str, fun: Callable[..., TypingAny], specs: List[ValueSpec]) -> Callable[..., TypingAny]:
    storage = storage_class(typename, specs)
    if inspect.iscoroutinefunction(fun):
        get_running_loop = asyncio._get_running_loop

        def run_async(batch, argument):  # type: ignore[no-untyped-def]  # (no annotation: core passes the argument as is)
            coroutine = fun(_Context(batch, storage), _Received(typename, batch._target.id, argument))
            if get_running_loop() is not None:
                return coroutine  # an asyncio host: its handler awaits it
            thread_loop().run_until_complete(coroutine)
            return None

        run_async.__qualname__ = run_async.__name__ = getattr(fun, "__qualname__", "function")
        return run_async

    def run(batch, argument):  # type: ignore[no-untyped-def]  # (no annotation: core passes the argument as is)
        fun(_Context(batch, storage), _Received(typename, batch._target.id, argument))

    run.__qualname__ = run.__name__ = getattr(fun, "__qualname__", "function")
    return run


class StatefulFunctions(_Registry):
    """The functions of an endpoint, bound by typename: :meth:`bind` and :meth:`register`."""

    __slots__ = ("has_async",)

    def __init__(self) -> None:
        super().__init__()
        #: True when an ``async def`` function is bound.
        self.has_async = False

    def register(  # type: ignore[override]  # the official signature
        self, typename: str, fun: Callable[..., TypingAny], specs: Optional[List[ValueSpec]] = None
    ) -> None:
        """Bind ``fun(context, message)`` to ``typename`` (``"namespace/name"``), with the states ``specs``."""
        if fun is None:
            raise ValueError("function instance must be provided")
        if not typename:
            raise ValueError("function typename must be provided")
        arguments = inspect.getfullargspec(fun).args
        if inspect.ismethod(fun):
            arguments = arguments[1:]
        if len(arguments) != 2:
            raise ValueError(
                f"The registered function {typename} does not expect a context and a message but rather {arguments}."
            )
        specs = list(specs) if specs else []
        for spec in specs:
            if not isinstance(spec, ValueSpec):
                raise TypeError(f"cannot bind {typename}: specs are statefun_wsgi.v3.ValueSpec, got {spec!r}")
        function: StatefulFunction = super().register(
            typename, _adapter(typename, fun, specs), [_TypedSpec(spec) for spec in specs] or None
        )
        function.unpack = _as_is  # the argument reaches the adapter as the request holds it
        if inspect.iscoroutinefunction(fun):
            self.has_async = True

    def bind(self, typename: str, specs: Optional[List[ValueSpec]] = None) -> Callable[[F], F]:  # type: ignore[override]
        """A decorator: ``@functions.bind("example/greeter", specs=[ValueSpec("seen", IntType)])``."""

        def wrapper(function: F) -> F:
            self.register(typename, function, specs)
            return function

        return wrapper

    def for_typename(self, typename: str) -> StatefulFunction:
        """The registration of ``typename`` (``KeyError`` when none)."""
        namespace, name = split_typename(typename)
        function = self.for_type(namespace, name)
        if function is None:
            raise KeyError(f"no function is bound to {typename}")
        return function
