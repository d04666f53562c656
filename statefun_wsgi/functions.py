"""The function registry: bind Python callables to StateFun function types.

Usage::

    from google.protobuf.wrappers_pb2 import StringValue
    from statefun_wsgi import StatefulFunctions

    functions = StatefulFunctions()

    @functions.bind("example/greeter", states=["seen_count"])
    def greet(context, message: StringValue):
        ...

The annotation of the second parameter selects how the ``google.protobuf.Any``
argument reaches the function: a protobuf message class unpacks it into that
class, ``Union[A, B]`` (or ``A | B``) unpacks it into whichever class its type URL
names, and no annotation (or ``Any`` itself) passes the ``Any`` as it came.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Any as TypingAny
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, TypeVar

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from .errors import ConfigurationError, UnexpectedMessageTypeError

__all__ = ["StatefulFunction", "StatefulFunctions", "split_typename"]

F = TypeVar("F", bound=Callable[..., TypingAny])

#: Turns the ``Any`` argument into what the function's annotation asks for.
Unpacker = Callable[[Any], TypingAny]

_UNION_TYPES: tuple[TypingAny, ...] = (typing.Union,)
if hasattr(types, "UnionType"):  # ``A | B`` on Python 3.10+
    _UNION_TYPES += (types.UnionType,)


@functools.lru_cache(maxsize=4096)
def split_typename(typename: str) -> Tuple[str, str]:
    """Split ``"namespace/name"`` at its last slash, validating both parts.

    >>> split_typename("com.example.fns/greeter")
    ('com.example.fns', 'greeter')
    """
    if not isinstance(typename, str):
        raise TypeError(f"a function type must be a str like 'namespace/name', not {type(typename).__name__}")
    namespace, slash, name = typename.rpartition("/")
    if not slash:
        raise ValueError(f"function type {typename!r} has no '/': write it as 'namespace/name'")
    if not namespace:
        raise ValueError(f"function type {typename!r} has an empty namespace: write it as 'namespace/name'")
    if not name:
        raise ValueError(f"function type {typename!r} has an empty name: write it as 'namespace/name'")
    return namespace, name


def type_name_of_url(type_url: str) -> str:
    """The full message name in an ``Any`` type URL (what follows the last ``/``)."""
    return type_url[type_url.rfind("/") + 1 :]


def _callees(func: Callable[..., TypingAny]) -> Tuple[TypingAny, ...]:
    """What runs when ``func`` is called: itself, and for an object (not a class, whose call
    runs ``__init__``) its ``__call__`` too."""
    if inspect.isroutine(func) or inspect.isclass(func):
        return (func,)
    return (func, getattr(func, "__call__", None))


class StatefulFunction:
    """One bound function: its type, the callable, and how its argument is unpacked.

    Built by :meth:`StatefulFunctions.bind`; read by the request-reply handlers.
    """

    __slots__ = ("namespace", "name", "typename", "func", "states", "message_types", "unpack", "is_coroutine")

    def __init__(self, typename: str, func: Callable[..., TypingAny], states: Optional[Iterable[str]] = None) -> None:
        try:
            self.namespace, self.name = split_typename(typename)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        if not callable(func):
            raise ConfigurationError(f"cannot bind {typename}: {func!r} is not callable")
        if any(inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f) for f in _callees(func)):
            raise ConfigurationError(
                f"cannot bind {typename}: {getattr(func, '__qualname__', func)!r} is a generator function "
                "(it yields), so calling it would not run its body"
            )
        self.typename = typename
        self.func = func
        self.states = _validate_states(typename, states)
        annotation = _message_annotation(typename, func)
        self.message_types = _message_types(typename, annotation)
        self.unpack = _make_unpacker(typename, self.message_types)
        self.is_coroutine = any(inspect.iscoroutinefunction(f) for f in _callees(func))

    def __repr__(self) -> str:
        return f"<StatefulFunction {self.typename} -> {getattr(self.func, '__qualname__', self.func)!r}>"


class StatefulFunctions:
    """A registry of stateful functions, keyed by function type (``"namespace/name"``).

    Fill it at import time with :meth:`bind` or :meth:`register`, then hand it to a
    :class:`~statefun_wsgi.RequestReplyHandler` or a middleware. Every mistake
    (a malformed type, a second binding of the same type, a callable that does not
    take ``(context, message)``, an annotation that is not a protobuf message class)
    raises :class:`~statefun_wsgi.errors.ConfigurationError` at bind time.

    ``states`` is an optional extension of the 2.x API: the state names a function
    uses. They let the CLI generate and check ``module.yaml``, and turn a state the
    runtime did not send into an error that names the line to add.
    """

    def __init__(self) -> None:
        self._functions: dict[Tuple[str, str], StatefulFunction] = {}

    def register(
        self, typename: str, func: Callable[..., TypingAny], states: Optional[Iterable[str]] = None
    ) -> StatefulFunction:
        """Bind ``func`` to ``typename``; returns the registration."""
        function = StatefulFunction(typename, func, states)
        key = (function.namespace, function.name)
        if key in self._functions:
            raise ConfigurationError(
                f"function type {typename} is already bound to {self._functions[key].func!r}; "
                "each type can be bound once"
            )
        self._functions[key] = function
        return function

    def bind(self, typename: str, states: Optional[Iterable[str]] = None) -> Callable[[F], F]:
        """Decorator form of :meth:`register`; returns the function unchanged."""

        def decorator(func: F) -> F:
            self.register(typename, func, states)
            return func

        return decorator

    def for_type(self, namespace: str, name: str) -> Optional[StatefulFunction]:
        """The function bound to ``namespace/name``, or ``None``."""
        return self._functions.get((namespace, name))

    def __iter__(self) -> Iterator[StatefulFunction]:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    def __contains__(self, typename: object) -> bool:
        if not isinstance(typename, str):
            return False
        namespace, _, name = typename.rpartition("/")
        return (namespace, name) in self._functions

    @property
    def typenames(self) -> list[str]:
        """The bound function types, sorted."""
        return sorted(function.typename for function in self._functions.values())


def _validate_states(typename: str, states: Optional[Iterable[str]]) -> Optional[Tuple[str, ...]]:
    if states is None:
        return None
    if isinstance(states, str):
        raise ConfigurationError(f"cannot bind {typename}: states must be a list of names, not the string {states!r}")
    names = tuple(states)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"cannot bind {typename}: state name {name!r} is not a non-empty string")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(f"cannot bind {typename}: state names repeated: {', '.join(duplicates)}")
    return names


def _message_annotation(typename: str, func: Callable[..., TypingAny]) -> TypingAny:
    """The annotation of the message parameter (``inspect.Parameter.empty`` if none)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot bind {typename}: cannot read the signature of {func!r}: {exc}") from None
    parameters = list(signature.parameters.values())
    positional = [
        p for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required_keyword = [
        p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    if len(positional) != 2 or variadic or required_keyword:
        shown = ", ".join(str(p) for p in parameters)
        raise ConfigurationError(
            f"cannot bind {typename}: a function takes exactly two positional parameters "
            f"(context, message), but {getattr(func, '__qualname__', func)!r} takes ({shown})"
        )
    message_parameter = positional[1]
    annotation = message_parameter.annotation
    if isinstance(annotation, str):
        # ``from __future__ import annotations`` or a quoted hint: resolve this one
        # alone, in the function's globals (the context's annotation may name a
        # type imported only under ``if TYPE_CHECKING:``).
        target = func if inspect.isroutine(func) else getattr(func, "__call__", func)
        holder = types.SimpleNamespace(__annotations__={message_parameter.name: annotation})
        try:
            annotation = typing.get_type_hints(
                holder, globalns=getattr(inspect.unwrap(target), "__globals__", None)
            )[message_parameter.name]
        except Exception as exc:
            raise ConfigurationError(
                f"cannot bind {typename}: cannot resolve the annotation {message_parameter.annotation!r} "
                f"of parameter {message_parameter.name!r}: {exc}"
            ) from None
    return annotation


def _message_types(typename: str, annotation: TypingAny) -> Optional[Tuple[type[Message], ...]]:
    """The protobuf classes the annotation names, or ``None`` for "pass the Any"."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    candidates: Sequence[TypingAny]
    if typing.get_origin(annotation) in _UNION_TYPES:
        candidates = typing.get_args(annotation)
    else:
        candidates = (annotation,)
    for candidate in candidates:
        if candidate is type(None):
            raise ConfigurationError(
                f"cannot bind {typename}: the message annotation {annotation!r} admits None, "
                "but a function is always called with a message"
            )
        if not (isinstance(candidate, type) and issubclass(candidate, Message)):
            raise ConfigurationError(
                f"cannot bind {typename}: the message annotation {candidate!r} is not a protobuf message class "
                "(annotate with a generated message class, a Union of them, or leave it out to get the Any)"
            )
        if candidate is Any and len(candidates) > 1:
            raise ConfigurationError(f"cannot bind {typename}: google.protobuf.Any cannot be part of a Union")
    return tuple(candidates)


def _make_unpacker(typename: str, message_types: Optional[Tuple[type[Message], ...]]) -> Optional[Unpacker]:
    """A dict lookup from the type URL's message name to the class to parse into."""
    if message_types is None:
        return None
    by_name: Mapping[str, type[Message]] = {cls.DESCRIPTOR.full_name: cls for cls in message_types}
    if len(by_name) != len(message_types):
        raise ConfigurationError(f"cannot bind {typename}: the message annotation names the same type twice")
    # The usual type URLs, looked up whole; any other prefix falls back to the name after the last '/'.
    by_url = {f"type.googleapis.com/{name}": cls for name, cls in by_name.items()}
    accepted = ", ".join(sorted(by_name))

    def unpack(argument: Any) -> Message:
        type_url = argument.type_url
        cls = by_url.get(type_url) or by_name.get(type_url[type_url.rfind("/") + 1 :])
        if cls is None:
            raise UnexpectedMessageTypeError(
                f"{typename} received a message of type {type_url!r}, but accepts only: {accepted}"
            )
        try:
            return cls.FromString(argument.value)
        except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf raises the latter
            raise UnexpectedMessageTypeError(
                f"{typename} received a {type_url!r} message whose bytes do not parse as {cls.DESCRIPTOR.full_name}: {exc}"
            ) from exc

    return unpack

