"""An HTTP ingress for development: send messages into the local runtime and read
what came out.

=======================================  ==============================================
``POST /ingress/<namespace>/<type>/<id>``  body: a serialized ``google.protobuf.Any``
                                          (``application/octet-stream``), or JSON
                                          ``{"@type": "pkg.Message", field: value, ...}``
``GET /egress/<namespace>/<name>``         the egress records so far, as JSON (404 for an
                                          egress module.yaml does not declare)
``GET /state/<namespace>/<type>/<id>/<state>``  a state's value, as JSON (``null`` if absent)
``GET /health``                             ``ok``
=======================================  ==============================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterable, Tuple

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError

from ..errors import ConfigurationError
from .records import any_to_json, json_to_any
from .runtime import LocalRuntime

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["IngressApp", "parse_address"]

MAX_INGRESS_BODY = 16 * 1024 * 1024


def parse_address(text: str) -> Tuple[str, str]:
    """``"ns/type/id"`` -> (``"ns/type"``, ``"id"``); the namespace may contain dots."""
    if not isinstance(text, str):  # e.g. {"to": 1} in a --send-file line
        raise ValueError(f"{text!r} is not an address like 'namespace/type/id'")
    parts = text.strip("/").rsplit("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{text!r} is not an address like 'namespace/type/id'")
    return f"{parts[0]}/{parts[1]}", parts[2]


class IngressApp:
    """The WSGI app of the development ingress, bound to one :class:`LocalRuntime`."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            if path == "/health":
                return _reply(start_response, 200, "ok")
            if path.startswith("/ingress/"):
                if method != "POST":
                    return _reply(start_response, 405, "POST a message here", [("Allow", "POST")])
                return self._ingress(environ, start_response, path[len("/ingress/") :])
            if path.startswith("/egress/") and method == "GET":
                egress_id = path[len("/egress/") :]
                declared = self.runtime.egress_ids
                if declared is not None and egress_id not in declared:
                    known = ", ".join(sorted(declared))
                    problem = f"no egress {egress_id} is declared (module.yaml declares {known})"
                    return _reply(start_response, 404, problem)
                records = [record.to_json() for record in self.runtime.egress(egress_id)]
                return _reply(start_response, 200, records)
            if path.startswith("/state/") and method == "GET":
                address, _, name = path[len("/state/") :].rpartition("/")
                typename, identity = parse_address(address)
                value = self.runtime.state(typename, identity, name)
                return _reply(start_response, 200, None if value is None else any_to_json(value))
            return _reply(start_response, 404, f"no such resource: {path}")
        except (ValueError, KeyError, ConfigurationError) as exc:
            # A KeyError's str() is its repr: use its message. One line, whatever the message.
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            return _reply(start_response, 400, " ".join(str(message).split()))

    def _ingress(self, environ: WSGIEnvironment, start_response: StartResponse, address: str) -> Iterable[bytes]:
        typename, identity = parse_address(address)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_INGRESS_BODY:
            return _reply(start_response, 413, f"a message is at most {MAX_INGRESS_BODY} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if content_type == "application/json" or body[:1] == b"{":
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise ValueError(f"the body is not JSON: {exc}") from None
            argument = json_to_any(document)
        else:
            try:
                argument = Any.FromString(body)
            except DecodeError as exc:
                raise ValueError(f"the body is not a serialized google.protobuf.Any: {exc}") from None
            if not argument.type_url:
                raise ValueError("the Any has no type_url")
        self.runtime.send(typename, identity, argument)
        return _reply(start_response, 202, {"accepted": f"{typename}/{identity}", "type": argument.type_url})


def _reply(start_response: StartResponse, status: int, payload: object, extra=()) -> Iterable[bytes]:  # type: ignore[no-untyped-def]
    from werkzeug.http import HTTP_STATUS_CODES

    if isinstance(payload, str):
        body, content_type = (payload + "\n").encode(), "text/plain; charset=utf-8"
    else:
        body, content_type = (json.dumps(payload) + "\n").encode(), "application/json"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    start_response(f"{status} {HTTP_STATUS_CODES[status]}", headers)
    return [body]
