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
names, and no annotation (or ``Any`` itself) passes the ``Any`` as it came. A 3.x
message (a ``TypedValue``) reaches the function as the ``Any`` it is equivalent to:
its type name is the type URL. The built-in types of the official 3.x SDKs are
recognised by their type names (see :mod:`statefun_wsgi.builtin_types`).

``states`` lists the states a function uses, as names or :class:`ValueSpec` (a
name with an expiry, which a 3.x runtime applies)::

    @functions.bind("example/greeter", states=["seen_count", ValueSpec("last", expire_after_write=timedelta(hours=1))])
"""

from __future__ import annotations

import builtins
import functools
import inspect
import types
import typing
from typing import Any as TypingAny
from datetime import timedelta
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from .builtin_types import BUILTIN_TYPENAMES
from .errors import ConfigurationError, UnexpectedMessageTypeError

__all__ = ["StatefulFunction", "StatefulFunctions", "ValueSpec", "split_typename", "type_url_of"]

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


#: What a message's full name follows in its type URL (``Any.type_url``) and, on 3.x, in
#: the type name of a protobuf value: ``TYPE_URL_PREFIX + "google.protobuf.Int64Value"``.
TYPE_URL_PREFIX = "type.googleapis.com/"
#: The type name of a state holding any Any (3.x).
ANY_TYPE_URL = TYPE_URL_PREFIX + "google.protobuf.Any"
#: class -> its type URL (``type.googleapis.com/<full name>``, or a built-in type's name).
_TYPE_URLS: Dict[type, str] = dict(BUILTIN_TYPENAMES)


class ValueSpec:
    """A state a function declares, with an optional type and expiry: an entry of
    ``bind(..., states=[...])``.

    :param name: the state name.
    :param type: the protobuf message class the state holds, for a 3.x runtime: the state is
        registered under that class's type name (``type.googleapis.com/<full name>``, or a
        built-in type's name such as ``io.statefun.types/int`` for ``IntWrapper``) and its
        value is the serialized message, as the official 3.x SDKs store it. ``None`` (the
        default): the state holds a ``google.protobuf.Any`` of any type (registered as
        ``type.googleapis.com/google.protobuf.Any``, its value byte for byte what 2.x stores).
        A 2.x runtime stores an ``Any`` either way.
    :param expire_after_write: the state expires this long after it was last written.
    :param expire_after_call: the state expires this long after the function was last
        called for its id (read or written). At most one of the two.

    A 3.x runtime learns a function's states from the function, and applies the type and
    expiry when it first registers the state (a later change of expiry is ignored; a change
    of type fails the job). A 2.x runtime takes states and their expiry from ``module.yaml``
    alone. A plain name in ``states`` is the same as ``ValueSpec(name)``.
    """

    __slots__ = ("name", "type", "typename", "expire_after_write", "expire_after_call")

    def __init__(
        self,
        name: str,
        type: Optional[type[Message]] = None,
        *,
        expire_after_write: Optional[timedelta] = None,
        expire_after_call: Optional[timedelta] = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a state name is a non-empty string, got {name!r}")
        if type is not None and not (isinstance(type, builtins.type) and issubclass(type, Message)) or type is Any:
            raise ConfigurationError(
                f"state {name!r}: type must be a protobuf message class other than Any (or None: any Any), got {type!r}"
            )
        if expire_after_write is not None and expire_after_call is not None:
            raise ConfigurationError(f"state {name!r}: give expire_after_write or expire_after_call, not both")
        for what, value in (("expire_after_write", expire_after_write), ("expire_after_call", expire_after_call)):
            if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
                raise ConfigurationError(f"state {name!r}: {what} must be a positive datetime.timedelta, got {value!r}")
        self.name = name
        self.type = type
        #: The type name a 3.x runtime registers the state under.
        self.typename = ANY_TYPE_URL if type is None else _TYPE_URLS.get(type) or TYPE_URL_PREFIX + type.DESCRIPTOR.full_name
        self.expire_after_write = expire_after_write
        self.expire_after_call = expire_after_call

    @property
    def expire_after_millis(self) -> int:
        """The expiry in whole milliseconds (0: none)."""
        delay = self.expire_after_write or self.expire_after_call
        return 0 if delay is None else delay // timedelta(milliseconds=1)

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.type, self.expire_after_write, self.expire_after_call)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueSpec) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        extra = "" if self.type is None else f", {self.type.__name__}"
        if self.expire_after_write is not None:
            extra += f", expire_after_write={self.expire_after_write!r}"
        elif self.expire_after_call is not None:
            extra += f", expire_after_call={self.expire_after_call!r}"
        return f"ValueSpec({self.name!r}{extra})"


#: What ``bind(..., states=...)`` takes: names and ValueSpecs.
StateDeclarations = Iterable[Union[str, ValueSpec]]




def type_url_of(message: Message) -> str:
    """``"type.googleapis.com/<full name>"`` for a message (cached per class); a built-in
    type's own type name (``io.statefun.types/int``, ...) for the classes of
    :mod:`statefun_wsgi.builtin_types`."""
    try:
        return _TYPE_URLS[type(message)]
    except KeyError:
        pass
    if isinstance(message, Any):
        raise TypeError("the message is already a google.protobuf.Any: use the method without 'pack_and_'")
    try:
        full_name = message.DESCRIPTOR.full_name
    except AttributeError:
        raise TypeError(f"expected a protobuf message, got {type(message).__name__}") from None
    type_url = _TYPE_URLS[type(message)] = TYPE_URL_PREFIX + full_name
    return type_url


def type_name_of_url(type_url: str) -> str:
    """The full message name in an ``Any`` type URL (what follows the last ``/``)."""
    return type_url[type_url.rfind("/") + 1 :]


def callees(func: Callable[..., TypingAny]) -> Tuple[TypingAny, ...]:
    """What runs when ``func`` is called: itself, and for an object (not a class, whose call
    runs ``__init__``) its ``__call__`` too. The endpoint and the registry both ask it
    whether a callable is a coroutine function::

        any(inspect.iscoroutinefunction(f) for f in callees(handler))
    """
    if inspect.isroutine(func) or inspect.isclass(func):
        return (func,)
    return (func, getattr(func, "__call__", None))


class StatefulFunction:
    """One bound function: its type, the callable, and how its argument is unpacked.

    Built by :meth:`StatefulFunctions.bind`; read by the request-reply handlers.
    """

    __slots__ = (
        "namespace",
        "name",
        "typename",
        "func",
        "states",
        "value_specs",
        "state_types",
        "message_types",
        "unpack",
        "is_coroutine",
    )

    def __init__(
        self, typename: str, func: Callable[..., TypingAny], states: Optional[StateDeclarations] = None
    ) -> None:
        try:
            self.namespace, self.name = split_typename(typename)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        if not callable(func):
            raise ConfigurationError(f"cannot bind {typename}: {func!r} is not callable")
        if any(inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f) for f in callees(func)):
            raise ConfigurationError(
                f"cannot bind {typename}: {getattr(func, '__qualname__', func)!r} is a generator function "
                "(it yields), so calling it would not run its body"
            )
        self.typename = typename
        self.func = func
        #: The declared state names (``None``: not declared), and each one's ValueSpec.
        self.value_specs = _validate_states(typename, states)
        self.states = None if self.value_specs is None else tuple(self.value_specs)
        #: The declared states of a type other than Any: name -> type name (``None``: none).
        self.state_types = {
            name: spec.typename for name, spec in (self.value_specs or {}).items() if spec.type is not None
        } or None
        annotation = _message_annotation(typename, func)
        self.message_types = _message_types(typename, annotation)
        self.unpack = _make_unpacker(typename, self.message_types)
        self.is_coroutine = any(inspect.iscoroutinefunction(f) for f in callees(func))

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
        #: The bound functions by ``(namespace, name)``: read it (the handlers look a
        #: batch's target up here, one dict lookup), bind with :meth:`bind` or :meth:`register`::
        #:
        #:     functions.by_type.get(("example", "greeter"))   # a StatefulFunction, or None
        self.by_type: dict[Tuple[str, str], StatefulFunction] = {}

    def register(
        self, typename: str, func: Callable[..., TypingAny], states: Optional[StateDeclarations] = None
    ) -> StatefulFunction:
        """Bind ``func`` to ``typename``; returns the registration."""
        function = StatefulFunction(typename, func, states)
        key = (function.namespace, function.name)
        if key in self.by_type:
            raise ConfigurationError(
                f"function type {typename} is already bound to {self.by_type[key].func!r}; "
                "each type can be bound once"
            )
        self.by_type[key] = function
        return function

    def bind(self, typename: str, states: Optional[StateDeclarations] = None) -> Callable[[F], F]:
        """Decorator form of :meth:`register`; returns the function unchanged."""

        def decorator(func: F) -> F:
            self.register(typename, func, states)
            return func

        return decorator

    def for_type(self, namespace: str, name: str) -> Optional[StatefulFunction]:
        """The function bound to ``namespace/name``, or ``None``."""
        return self.by_type.get((namespace, name))

    def __iter__(self) -> Iterator[StatefulFunction]:
        return iter(self.by_type.values())

    def __len__(self) -> int:
        return len(self.by_type)

    def __contains__(self, typename: object) -> bool:
        if not isinstance(typename, str):
            return False
        namespace, _, name = typename.rpartition("/")
        return (namespace, name) in self.by_type

    @property
    def typenames(self) -> list[str]:
        """The bound function types, sorted."""
        return sorted(function.typename for function in self.by_type.values())


def _validate_states(typename: str, states: Optional[StateDeclarations]) -> Optional[Dict[str, ValueSpec]]:
    if states is None:
        return None
    if isinstance(states, str):
        raise ConfigurationError(f"cannot bind {typename}: states must be a list of names, not the string {states!r}")
    if isinstance(states, ValueSpec):
        raise ConfigurationError(f"cannot bind {typename}: states must be a list, not the single {states!r}")
    specs = []
    for state in states:
        if isinstance(state, ValueSpec):
            specs.append(state)
        elif isinstance(state, str) and state:
            specs.append(ValueSpec(state))
        else:
            raise ConfigurationError(
                f"cannot bind {typename}: state name {state!r} is not a non-empty string (nor a ValueSpec)"
            )
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(f"cannot bind {typename}: state names repeated: {', '.join(duplicates)}")
    return {spec.name: spec for spec in specs}


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
    classes: Mapping[str, type[Message]] = {cls.DESCRIPTOR.full_name: cls for cls in message_types}
    if len(classes) != len(message_types):
        raise ConfigurationError(f"cannot bind {typename}: the message annotation names the same type twice")
    # The usual type URLs, looked up whole; any other prefix falls back to the name after the last '/'.
    # The built-in types are known by their own type names only.
    by_url = {BUILTIN_TYPENAMES.get(cls) or TYPE_URL_PREFIX + name: cls for name, cls in classes.items()}
    by_name = {name: cls for name, cls in classes.items() if cls not in BUILTIN_TYPENAMES}
    accepted = ", ".join(sorted(BUILTIN_TYPENAMES.get(cls) or cls.DESCRIPTOR.full_name for cls in message_types))

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

    if len(by_url) == 1:  # one class, sent with its usual type URL: one comparison
        ((only_url, only_cls),) = by_url.items()
        from_string = only_cls.FromString

        def unpack_one(argument: Any) -> Message:
            if argument.type_url == only_url:
                try:
                    return from_string(argument.value)
                except (DecodeError, UnicodeDecodeError):
                    pass  # unpack says why
            return unpack(argument)

        return unpack_one
    return unpack

