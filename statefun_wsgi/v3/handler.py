"""The request-reply handler of the official StateFun 3.3 Python API.

Usage::

    handler = RequestReplyHandler(functions)
    reply_bytes = handler.handle_sync(request_bytes)          # any thread, a running loop or not
    reply_bytes = await handler.handle_async(request_bytes)   # an asyncio host (aiohttp)

It is a :class:`statefun_wsgi.RequestReplyHandler` serving StateFun 3.x requests only
(as the official one; a 2.x request raises
:class:`~statefun_wsgi.errors.ProtocolMismatchError`), so
``StatefunMiddleware(app, handler)`` serves it too; rather pass the registry there.

Differences from the official handler, on purpose:

- ``handle_sync`` runs plain functions with no event loop at all, and ``async def`` ones on
  an event loop kept per thread; the official one makes an event loop per request, and
  fails when called from a thread whose event loop is running. Here it works there too:
  the batch then runs on a helper thread when the registry has ``async def`` functions
  (a sync call blocks its caller either way).
- Errors are this package's (:mod:`statefun_wsgi.errors`): a function that raises gives
  :class:`~statefun_wsgi.errors.FunctionInvocationError` with the exception as its
  ``__cause__``, an unknown function :class:`~statefun_wsgi.errors.UnknownFunctionError`.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Union

from ..handler import AsyncRequestReplyHandler
from ..handler import RequestReplyHandler as _SyncHandler
from .functions import StatefulFunctions

__all__ = ["RequestReplyHandler"]

_HELPERS: Optional[ThreadPoolExecutor] = None
_HELPERS_LOCK = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    global _HELPERS
    with _HELPERS_LOCK:
        if _HELPERS is None:
            _HELPERS = ThreadPoolExecutor(thread_name_prefix="statefun-v3-sync")
        return _HELPERS


def _bytes(request_bytes: Union[str, bytes, bytearray]) -> Union[bytes, bytearray]:
    if isinstance(request_bytes, str):  # (in the official signature, but never a serialized request)
        raise TypeError("a request is bytes (the HTTP body as it came), not str")
    return request_bytes


class RequestReplyHandler(_SyncHandler):
    """Answers StateFun 3.x batches for ``functions``: :meth:`handle_sync`, :meth:`handle_async`."""

    def __init__(self, functions: StatefulFunctions) -> None:
        if functions is None:
            raise ValueError("functions must be provided.")
        super().__init__(functions, protocols="3.x")
        self._async = AsyncRequestReplyHandler(functions, protocols="3.x")
        self._async.protocols = self.protocols  # one protocol memory for both

    def handle_sync(self, request_bytes: Union[str, bytes, bytearray]) -> bytes:
        """The reply to ``request_bytes``, computed in this thread (see the module docstring)."""
        if type(request_bytes) is not bytes:
            request_bytes = _bytes(request_bytes)
        if getattr(self.functions, "has_async", False) and asyncio._get_running_loop() is not None:
            return _helpers().submit(self, request_bytes).result()
        return self(request_bytes)

    async def handle_async(self, request_bytes: Union[str, bytes, bytearray]) -> bytes:
        """The reply to ``request_bytes``; ``async def`` functions are awaited on the running loop."""
        return await self._async(_bytes(request_bytes))
