"""The exceptions statefun-wsgi raises, each carrying the HTTP status it maps to.

The tree::

    StatefunError                      base class; ``status`` is an HTTP status code
    ├── ConfigurationError             a mistake found at bind or start-up time (ValueError)
    ├── RequestError                   the request is wrong: a 4xx, never retried by the runtime
    │   ├── MalformedRequestError      400: the body is not a ToFunction invocation batch
    │   ├── UnknownFunctionError       404: no function is bound to the target type
    │   ├── MethodNotAllowedError      405: not a POST (carries the ``Allow`` header)
    │   ├── LengthRequiredError        411: the body's length cannot be known
    │   ├── RequestTooLargeError       413: the body is over the configured limit
    │   └── UnsupportedMediaTypeError  415: a Content-Type the runtime never sends
    │       └── ProtocolMismatchError  415: a request of a protocol version the endpoint is
    │                                  configured not to serve (the ``protocols`` setting)
    ├── FunctionInvocationError        500: a function raised (the runtime retries); the
    │                                  original exception is chained as ``__cause__``
    └── OverloadedError                503: the server cannot take the request now (retried)

Errors raised *inside* a function by misuse of the context are the usual Python
types, so that user code can catch them naturally: :class:`MissingStateError`
(a ``KeyError``), :class:`UnexpectedMessageTypeError` (a ``TypeError``) and
``ValueError`` for a bad argument. The handler wraps whatever a function raises in
:class:`FunctionInvocationError`.

Only the endpoint core (:mod:`statefun_wsgi.endpoint`) turns these into HTTP
replies: one line of text, the status below, never a traceback.
"""

from __future__ import annotations

from typing import ClassVar, Optional

__all__ = [
    "ConfigurationError",
    "FunctionInvocationError",
    "LengthRequiredError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "MissingStateError",
    "OverloadedError",
    "ProtocolMismatchError",
    "RequestError",
    "RequestTooLargeError",
    "StatefunError",
    "UnexpectedMessageTypeError",
    "UnknownFunctionError",
    "UnsupportedMediaTypeError",
]


class StatefunError(Exception):
    """Base class of every error statefun-wsgi raises on purpose."""

    #: The HTTP status this error is answered with.
    status: ClassVar[int] = 500


class ConfigurationError(StatefunError, ValueError):
    """A configuration mistake, reported when binding or starting, never per request.

    :param setting: the argument at fault, where one is (``"max_body_size"``, ``"protocols"``),
        so that an adapter with settings of its own names its own (the Django middleware:
        ``STATEFUN_MAX_BODY_SIZE``); ``None`` otherwise::

            ConfigurationError("max_body_size must be positive", setting="max_body_size")
    """

    def __init__(self, *args: object, setting: Optional[str] = None) -> None:
        super().__init__(*args)
        self.setting = setting


class RequestError(StatefunError):
    """The request itself is wrong. The runtime fails the job on these (no retry)."""

    status = 400


class MalformedRequestError(RequestError):
    """The body is not a serialized ``ToFunction`` carrying an invocation batch."""

    status = 400


class UnknownFunctionError(RequestError):
    """No function is bound to the request's target type."""

    status = 404


class MethodNotAllowedError(RequestError):
    """Only ``POST`` is served on the function path."""

    status = 405


class LengthRequiredError(RequestError):
    """The body has neither a ``Content-Length`` nor chunked transfer encoding."""

    status = 411


class RequestTooLargeError(RequestError):
    """The body is larger than the configured ``max_body_size``."""

    status = 413


class UnsupportedMediaTypeError(RequestError):
    """The ``Content-Type`` is not one the runtime sends."""

    status = 415


class ProtocolMismatchError(UnsupportedMediaTypeError):
    """The request's bytes show a protocol version (2.x or 3.x) that the endpoint is
    configured not to serve (``protocols``). A 4xx on purpose: the runtime fails the job
    at once, as a misconfiguration should, instead of retrying a request that cannot pass."""

    status = 415


class FunctionInvocationError(StatefunError):
    """A function raised; the runtime will retry the batch. See ``__cause__``."""

    status = 500


class OverloadedError(StatefunError):
    """The endpoint cannot take the request now; the runtime retries it.

    Raise it from a handler of your own (``bytes -> bytes``, served in place of the
    registry) to answer 503, e.g. to shed load::

        def handler(body):
            if not slots.acquire(blocking=False):
                raise OverloadedError("busy: 64 batches in flight")
            try:
                return functions_handler(body)
            finally:
                slots.release()

        wsgi = StatefunMiddleware(None, handler)
    """

    status = 503


class MissingStateError(KeyError):
    """A function used a state name the runtime did not send.

    The runtime sends exactly the states registered for the function type in
    ``module.yaml``; add the name under ``states:`` there.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnexpectedMessageTypeError(TypeError):
    """A message or state value is not of the type the function expects."""
