"""The ``statefun-wsgi`` command (also ``python -m statefun_wsgi``).

    statefun-wsgi dev app:wsgi --send-file examples/greeter/visits.jsonl --until-idle
    statefun-wsgi run --module deploy/module.yaml --endpoint http://127.0.0.1:9000/statefun \
        --import examples.greeter.messages_pb2
    statefun-wsgi send example/greeter/alice '{"@type": "example.greeter.GreetRequest", "name": "alice"}'
    statefun-wsgi module-yaml generate app:wsgi --endpoint http://app:9000/statefun
    statefun-wsgi module-yaml check deploy/module.yaml app:wsgi

Run any command with ``--help``. Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import ast
import collections
import errno
import importlib.util
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Sequence, Tuple

from ._loading import LoadError, load_object
from .errors import ConfigurationError
from .functions import StatefulFunctions

if TYPE_CHECKING:
    from .context import Address

__all__ = ["main"]

DEFAULT_INGRESS = "127.0.0.1:8090"


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1 (2 for usage)."""


# -- loading the user's app ---------------------------------------------------------


def load_target(reference: str) -> Any:
    """Import what ``reference`` names, from the current directory, as gunicorn reads it:
    ``"pkg.module:attr"``, a bare module, or an app factory called with literal
    arguments, ``"pkg.module:create_app()"`` / ``"pkg.module:create_app('prod', debug=False)"``.
    A dotted ``attr`` (``"pkg.module:obj.attr"``) is followed too (gunicorn does not). The
    rules are :func:`statefun_wsgi._loading.load_object`'s, shared with the Django settings."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return load_object(reference)
    except LoadError as exc:
        raise CommandError(str(exc)) from None


def _walk(start: Any) -> Optional[Tuple[StatefulFunctions, Optional[str]]]:
    """The registry behind ``start`` and the path the middleware around it serves
    (``None`` when no middleware was passed on the way), or ``None``."""
    from .middleware import StatefunMiddleware

    candidates: List[Tuple[Any, Optional[str]]] = [(start, None)]
    seen = set()
    while candidates:
        obj, path = candidates.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, StatefulFunctions):
            return obj, path
        if isinstance(obj, StatefunMiddleware):
            path = obj.path
        if "django.core.handlers.base" in sys.modules:  # a Django app whose middleware serves them
            from .django import functions_of_django_app

            found = functions_of_django_app(obj)
            if found is not None:
                from django.conf import settings

                django_path = getattr(settings, "STATEFUN_PATH", "/statefun")
                return (found if isinstance(found, StatefulFunctions) else found.functions), django_path
        for attribute in ("functions", "endpoint", "handler", "wsgi_app", "app", "application", "wsgi"):
            value = getattr(obj, attribute, None)
            if value is not None and not isinstance(value, (str, bytes, int, float)):
                candidates.append((value, path))
    return None


def _no_registry(reference: str) -> CommandError:
    return CommandError(
        f"found no StatefulFunctions behind {reference!r}: name the registry itself "
        "(e.g. myapp.functions:functions), or an app or middleware around it"
    )


def find_functions(reference: str) -> StatefulFunctions:
    """The registry behind ``reference``: a StatefulFunctions, a middleware around
    one, a Flask app whose ``wsgi_app`` is one, a Django app whose ``MIDDLEWARE`` serves
    the ``STATEFUN_FUNCTIONS`` one, or a module holding ``functions``."""
    found = _walk(load_target(reference))
    if found is None:
        raise _no_registry(reference)
    return found[0]


def find_served(reference: str) -> Tuple[StatefulFunctions, Optional[str]]:
    """Like :func:`find_functions`, with the path the app serves the functions on
    (``None`` when no StatefunMiddleware was found around the registry)."""
    found = _walk(load_target(reference))
    if found is None:
        raise _no_registry(reference)
    return found


def _apps_in(module: Any) -> List[str]:
    """The names in ``module`` of WSGI apps that serve a registry (for hints)."""
    names = []
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or isinstance(value, (type, types.ModuleType, types.FunctionType)):
            continue
        if callable(value) and not isinstance(value, StatefulFunctions) and _walk(value) is not None:
            names.append(name)
    return names


def _check_wsgi_app(reference: str, obj: Any) -> None:
    """Raise with what to pass instead when gunicorn could not serve ``reference``."""
    from .handler import AsyncRequestReplyHandler, RequestReplyHandler

    module_name, _, attribute = reference.partition(":")
    module = sys.modules.get(module_name)
    found = [f"{module_name}:{name}" for name in _apps_in(module)] if module is not None else []
    instead = f"pass one of: {', '.join(found)}" if found else "e.g. statefun-wsgi dev app:wsgi"
    if isinstance(obj, types.ModuleType):
        application = getattr(obj, "application", None)
        if callable(application) and not isinstance(application, StatefulFunctions):
            return  # gunicorn serves a module's 'application'
        raise CommandError(
            f"{reference!r} is a module, and gunicorn serves its 'application', which it does not have: "
            f"name the WSGI app as MODULE:NAME; {instead}"
        )
    wrap = "wrap it in a WSGI app (wsgi = StatefunMiddleware(None, functions)) and pass that, e.g. app:wsgi"
    if isinstance(obj, StatefulFunctions):
        hint = f"pass the app that serves it: {', '.join(found)}" if found else wrap
        raise CommandError(f"{reference} is a StatefulFunctions registry, not a WSGI app: {hint}")
    if isinstance(obj, (RequestReplyHandler, AsyncRequestReplyHandler)):
        raise CommandError(f"{reference} is a request-reply handler (bytes in, bytes out), not a WSGI app: {wrap}")
    if not callable(obj):
        raise CommandError(f"{reference} is a {type(obj).__name__}, not a WSGI app (gunicorn needs a callable); "
                           f"{instead}")
    if "." in attribute.split("(")[0]:
        raise CommandError(f"{reference}: gunicorn takes MODULE:NAME (or MODULE:factory()), not a dotted name")


# -- printing what flows ------------------------------------------------------------


def _address_text(address: Optional[Address]) -> Optional[str]:
    return None if address is None else address.text()


def print_event(event: str, fields: Dict[str, Any]) -> None:
    from .local.records import any_to_json

    line: Dict[str, Any] = {"event": event}
    if event in ("message", "delayed"):
        line.update(to=_address_text(fields["target"]), caller=_address_text(fields["caller"]))
        if "delay_ms" in fields:
            line["delay_ms"] = fields["delay_ms"]
        line["message"] = any_to_json(fields["argument"])
    elif event == "egress":
        line.update(fields["record"].to_json())
    elif event == "state":
        line.update(address=_address_text(fields["address"]), state=fields["name"])
        line["value"] = None if fields["value"] is None else any_to_json(fields["value"])
        if fields.get("expired"):
            line["expired"] = True
    elif event == "register":  # 3.x: a state the function declared
        line.update(address=_address_text(fields["address"]), state=fields["name"], type=fields["type"],
                    expire=fields["expire"])
    elif event == "cancelled":  # 3.x: a delayed message cancelled by its token
        line.update(token=fields["token"])
    print(json.dumps(line), flush=True)


# -- commands -----------------------------------------------------------------------


def _parse_host_port(text: str) -> Tuple[str, int]:
    """``"HOST:PORT"`` or ``"http://HOST:PORT[/]"`` -> (host, port); an empty host is 127.0.0.1."""
    bare = text.split("://", 1)[1] if text.startswith(("http://", "https://")) else text
    bare = bare.rstrip("/")
    host, _, port = bare.rpartition(":")
    if not port.isdigit() or "/" in host:
        raise CommandError(f"{text!r} is not HOST:PORT (or http://HOST:PORT)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _messages_from(args: argparse.Namespace) -> List[Tuple[str, str, Dict[str, Any]]]:
    from .local.ingress import parse_address

    messages = []
    for address, document in args.send or ():
        try:
            messages.append((*parse_address(address), _json_message(document)))
        except ValueError as exc:
            raise CommandError(f"--send {address}: {exc}") from None
    if args.send_file:
        path = Path(args.send_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                entry = json.loads(line)
                messages.append((*parse_address(entry["to"]), entry["message"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(
                    f'{path}:{number}: expected {{"to": "ns/type/id", "message": {{"@type": ...}}}}: {exc}'
                ) from None
    return messages


_JSON_FORM = '\'{"@type": "pkg.Message", "field": "value"}\''


def _json_message(text: str) -> Dict[str, Any]:
    """The JSON message argument, or a ValueError that says the JSON is at fault."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the JSON argument {text!r} is not JSON ({exc}); write it as {_JSON_FORM}") from None
    if not isinstance(document, dict) or "@type" not in document:
        raise ValueError(f"the JSON argument {text!r} is not a message: write it as {_JSON_FORM}")
    return document


def _serve_ingress(runtime: Any, address: str) -> Any:
    """The ingress's server, listening (not yet serving); fails here when the port is taken."""
    from werkzeug.serving import make_server

    from .local.ingress import IngressApp

    host, port = _parse_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Bound here rather than by werkzeug, which prints its own message and exits on errors.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = (": is another statefun-wsgi dev or run up? pass --ingress 127.0.0.1:0 (any free port) "
                    "or another HOST:PORT")
        raise CommandError(f"cannot serve the ingress on {host}:{port}: {exc.strerror or exc}{hint}") from None
    try:
        return make_server(host, port, IngressApp(runtime), threaded=True, fd=listener.fileno())
    finally:
        listener.close()  # werkzeug serves a duplicate of it


def _configure_logging(dev: bool) -> None:
    """The local runtime's notes on stderr as ``# ...`` lines. Its final error is not
    logged here: the command prints it as its one error line. Under ``dev``, the
    failed attempts are reported by :class:`_DevTransport` instead (once each)."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return False
        return not (dev and str(record.msg).startswith("retrying"))

    logger = logging.getLogger("statefun_wsgi.local")
    for old in [handler for handler in logger.handlers if getattr(handler, "statefun_cli", False)]:
        logger.removeHandler(old)  # main() called again in one process
    handler = logging.StreamHandler(sys.stderr)
    handler.statefun_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("# %(message)s"))
    handler.addFilter(keep)
    logger.addHandler(handler)
    logger.propagate = False


def _run_runtime(
    runtime: Any, server: Any, args: argparse.Namespace, hint: Any = None, stop: Optional[threading.Event] = None,
    why_stopped: Any = None,
) -> int:
    """Serve the ingress, send the initial messages, run until idle or until stopped.

    ``hint(error)`` may add a suggestion to a failure's message. ``stop`` ends serving
    (SIGTERM sets it too); then ``why_stopped()`` may raise what stopped it."""
    from .local.records import json_to_any
    from .local.runtime import FunctionCallFailedError

    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"# ingress on http://{server.host}:{server.port}/ingress/<namespace>/<type>/<id>", file=sys.stderr)
    stop = stop if stop is not None else threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for typename, identity, document in _messages_from(args):
            try:
                runtime.send(typename, identity, json_to_any(document))
            except (ValueError, ConfigurationError) as exc:
                raise CommandError(f"cannot send to {typename}/{identity}: {exc}") from None
        if args.until_idle:
            runtime.run_until_idle(timeout=args.timeout, include_delayed=True)
        else:
            runtime.serve(stop)
            if why_stopped is not None:
                why_stopped()
    except FunctionCallFailedError as exc:
        raise CommandError(f"function call failed: {exc}{hint(exc) if hint else ''}") from None
    except TimeoutError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        runtime.close()
    return 0


def _check_endpoints_resolve(runtime: Any, source: str) -> None:
    """Fail at once, with the fix, when an endpoint's host has no address here
    (``greeter-app`` is a name inside docker compose or Kubernetes)."""
    from urllib.parse import urlsplit

    for endpoint in sorted({spec.endpoint for spec in runtime.functions.values()}):
        parts = urlsplit(endpoint)
        if parts.scheme.endswith("+unix") or not parts.hostname:
            continue
        try:
            socket.getaddrinfo(parts.hostname, parts.port or 80, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise CommandError(
                f"{source}: endpoint {endpoint}: cannot resolve {parts.hostname!r} ({exc.strerror or exc}); "
                f"to reach an app on this machine, pass --endpoint http://127.0.0.1:{parts.port or 80}{parts.path}"
            ) from None


def _connection_hint(error: Any) -> str:
    if any(name in error.reason for name in ("ConnectionRefusedError", "RemoteDisconnected", "timed out")):
        return ("; is the app serving there? start it (gunicorn -c python:statefun_wsgi.gunicorn_conf app:wsgi), "
                "or let statefun-wsgi dev serve it")
    return ""


def command_run(args: argparse.Namespace) -> int:
    from .local.runtime import LocalRuntime

    for module in args.imports or ():
        load_target(module)
    _configure_logging(dev=False)
    runtime = LocalRuntime.from_module_yaml(
        args.module, endpoint=args.endpoint, listener=None if args.quiet else print_event
    )
    _check_endpoints_resolve(runtime, args.module)
    server = _serve_ingress(runtime, args.ingress)
    return _run_runtime(runtime, server, args, hint=_connection_hint)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Gunicorn:
    """gunicorn serving the user's app for ``dev``: its stderr is passed on and its
    last lines kept, so that its reason can be told when it exits."""

    def __init__(self, app: str, port: int, runtime_port: int, workers: int) -> None:
        # Settings of our own (never a gunicorn.conf.py that happens to be in this folder), and two
        # listeners, as gunicorn.conf.py binds them: the app's public one, and the runtime's, the
        # only one where the functions answer (STATEFUN_RUNTIME_BIND tells the middleware).
        runtime_bind = f"127.0.0.1:{runtime_port}"
        command = [sys.executable, "-m", "gunicorn", "-c", "python:statefun_wsgi._dev_gunicorn",
                   "--bind", f"127.0.0.1:{port}", "--bind", runtime_bind, "--workers", str(workers), app]
        environment = {name: value for name, value in os.environ.items() if not name.startswith("STATEFUN_RUNTIME_")}
        environment.update(STATEFUN_ACCESS_LOG="off", STATEFUN_DEV_PARENT=str(os.getpid()),
                           STATEFUN_RUNTIME_BIND=runtime_bind)
        # Metrics for the summary printed at the end (summary()), when prometheus_client is there
        # and STATEFUN_METRICS does not say off: the workers' counts, added up in a directory of ours.
        self.workers = workers
        self.metrics_dir: Optional[str] = None
        if importlib.util.find_spec("prometheus_client") is not None and environment.get(
                "STATEFUN_METRICS", "1").strip().lower() not in ("0", "false", "no", "off"):
            self.metrics_dir = tempfile.mkdtemp(prefix="statefun-dev-metrics-")
            environment.update(STATEFUN_METRICS="1", PROMETHEUS_MULTIPROC_DIR=self.metrics_dir)
        self.port = port
        self.runtime_port = runtime_port
        self.tail: Deque[str] = collections.deque(maxlen=400)  # two workers' tracebacks fit
        self.process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                        text=True, errors="replace")
        self._reader = threading.Thread(target=self._pass_on, daemon=True)
        self._reader.start()

    def _pass_on(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.tail.append(line.rstrip("\n"))
            sys.stderr.write(line)
            sys.stderr.flush()

    def exited(self) -> Optional[str]:
        """``None`` while gunicorn runs; else how it ended (its reason: :meth:`reason`)."""
        if self.process.poll() is None:
            return None
        self._reader.join(timeout=5)
        status = self.process.returncode
        return f"gunicorn was killed by signal {-status}" if status < 0 else f"gunicorn exited with status {status}"

    def reason(self) -> str:
        """``": "`` and what gunicorn said last before exiting, or ``""``."""
        lines = [line for line in self.tail if line.strip()]
        # gunicorn's own reason ("App failed to load.") and the exception that caused it.
        reason = next((line.split("Reason:", 1)[1].strip().rstrip(".") for line in reversed(lines)
                       if "Reason:" in line), "")
        if not reason:  # gunicorn halted while halting (two workers failed at once): its traceback says why
            reason = next((match.group(1).rstrip(".") for line in reversed(lines)
                           if (match := re.search(r"HaltServer '([^']+)'", line))), "")
        cause = next((line.strip() for line in reversed(lines)
                      if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line.strip())), "")
        if not cause:
            cause = next((line.split("] ", 2)[-1].strip() for line in reversed(lines)
                          if "[ERROR]" in line and "Reason:" not in line and "Shutting down" not in line), "")
        parts = [part for part in (reason, cause) if part]
        return f": {': '.join(parts)}" if parts else ""

    def wait_serving(self, path: str, timeout: float, *, runtime_listener: bool = False) -> int:
        """Wait until a worker answers ``GET path`` on the public listener (or the runtime's);
        return the status it answered."""
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = self.exited()
            if exited is not None:
                raise CommandError(f"{exited} before serving{self.reason()}")
            port = self.runtime_port if runtime_listener else self.port
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                connection.request("GET", path)
                return connection.getresponse().status
            except OSError:
                time.sleep(0.05)
            finally:
                connection.close()
        raise CommandError(f"gunicorn did not answer on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)

    def summary(self) -> List[str]:
        """Once stopped: a line per function type of what the workers answered (batches by
        status, invocations, p50/p99 time), from the metrics the app recorded; none when it
        recorded none (``metrics=False``, or no prometheus_client)."""
        if self.metrics_dir is None:
            return []
        try:
            from .metrics import summarize

            functions = summarize(self.metrics_dir)
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if not functions:
            return []
        return [f"what the functions answered ({self.workers} gunicorn workers, p50/p99: time to answer a batch):",
                *(f"  {function.line()}" for function in functions)]


# Errors a function raises the same way on every retry of the same batch: under dev the
# runtime's retries (with backoff, until the function's timeout) would only delay the news.
_RAISED = re.compile(r"(?P<typename>\S+) \(id .*?\) raised (?P<error>\w+) in invocation \d+ of \d+: (?P<text>.*)")
_MISSING_STATE = re.compile(r"state (?P<name>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") was not sent by the runtime")
_DETERMINISTIC = ("MissingStateError", "UnexpectedMessageTypeError")


class _DevTransport:
    """The HTTP transport, for ``dev``: shows each distinct failure at once, stops at
    once on errors that every retry would repeat (with the fix), and stops when
    gunicorn exits. Retries otherwise go on as the runtime's do."""

    def __init__(self, functions: StatefulFunctions, module_source: Optional[str]) -> None:
        from .local.transport import HttpTransport

        self.inner = HttpTransport()
        self.functions = functions
        self.module_source = module_source  # None: the module.yaml was generated from the registry
        self.server: Optional[_Gunicorn] = None
        self._shown: set = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.inner.close()

    def __call__(self, spec: Any, request: bytes) -> bytes:
        from .local.transport import TransportError
        from .module_yaml import format_duration

        try:
            return self.inner(spec, request)
        except TransportError as error:
            server = self.server
            exited = server.exited() if server is not None else None
            if server is not None and exited is not None:
                raise TransportError(f"{exited}{server.reason()}", retryable=False) from error
            if not error.retryable:
                raise
            raised = _RAISED.search(error.reason)
            if raised and raised.group("error") in _DETERMINISTIC:
                raise TransportError(self._with_fix(raised, raised.group(0)), retryable=False) from error
            with self._lock:
                first = error.reason not in self._shown
                self._shown.add(error.reason)
            if first:
                print(f"# {_target_of(request)} failed: {error.reason} (retrying as the runtime does, "
                      f"with backoff until the function's timeout of {format_duration(spec.timeout)}; shown once)",
                      file=sys.stderr, flush=True)
            raise

    def _with_fix(self, raised: Any, reason: str) -> str:
        typename = raised.group("typename")
        again = "every retry fails the same way, so dev stops here"
        if raised.group("error") != "MissingStateError":
            received = re.search(r"received a message of type '(?:[^']*/)?([^'/]*)', but accepts only", reason)
            if received:
                return (f"{reason}; send one of those, or add {received.group(1)} to the message annotation "
                        f"of {typename}'s function, e.g. message: Union[...] ({again})")
            return f"{reason} ({again})"
        missing = _MISSING_STATE.search(raised.group("text"))
        name = ast.literal_eval(missing.group("name")) if missing else "..."
        reason = reason.split("; register it in module.yaml", 1)[0]
        if self.module_source is None:
            declared = [state for function in self.functions if function.typename == typename
                        for state in function.states or ()]
            states = ", ".join(json.dumps(state) for state in [*declared, name])
            return (f"{reason}; dev generates module.yaml from the states functions declare: declare it, "
                    f"@functions.bind({json.dumps(typename)}, states=[{states}]) ({again})")
        return (f"{reason}; register it in {self.module_source}: '- name: {name}' under 'states:' of {typename}, "
                f"and declare it with bind(..., states=[...]) so that dev checks the file at start ({again})")


def _target_of(request: bytes) -> str:
    from ._proto.request_reply_pb2 import ToFunction
    from .context import Address

    target = ToFunction.FromString(request).invocation.target
    return Address(target.namespace, target.type, target.id).text()


def _callable_without_arguments(function: Any) -> bool:
    return all(parameter.default is not parameter.empty or parameter.kind in (parameter.VAR_POSITIONAL,
               parameter.VAR_KEYWORD) for parameter in inspect.signature(function).parameters.values())


def _choose_path(args: argparse.Namespace, served: Optional[str]) -> str:
    if args.path is not None and not args.path.startswith("/"):
        raise CommandError(f"--path {args.path!r}: a path starts with '/', e.g. --path /{args.path}")
    if served is not None and args.path is not None and args.path != served:
        raise CommandError(f"{args.app} serves its functions on {served}, not {args.path}: "
                           f"drop --path (dev reads it from the app)")
    return args.path or served or "/statefun"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def command_dev(args: argparse.Namespace) -> int:
    """gunicorn serves the app on two listeners, as gunicorn.conf.py does: the public one
    (``--port``) for the app's pages, and the runtime's (``--runtime-port``), the only one
    where the functions answer (STATEFUN_RUNTIME_BIND tells the middleware); the local
    runtime calls the latter."""
    from .local.runtime import LocalRuntime
    from .module_yaml import (check_module_yaml, default_protocol, generate_module_yaml, load_module_yaml,
                              parse_module_yaml)

    target = load_target(args.app)  # also imports the message types for JSON
    _check_wsgi_app(args.app, target)
    found = _walk(target)
    if found is None:
        if isinstance(target, types.FunctionType) and _callable_without_arguments(target):
            raise CommandError(f"{args.app} is a function that takes no arguments, an app factory? "
                               f"gunicorn calls it when written '{args.app}()'")
        raise _no_registry(args.app)
    functions, served = found
    path = _choose_path(args, served)
    port = args.port or _free_port()
    runtime_port = args.runtime_port or _free_port()
    while runtime_port == port:
        runtime_port = _free_port()
    endpoint = f"http://127.0.0.1:{runtime_port}{path}"
    if args.module:
        module = load_module_yaml(args.module)
        if args.protocol is not None and args.protocol != module.protocol:
            raise CommandError(f"--protocol {args.protocol}, but {args.module} is a StateFun {module.protocol} "
                               "module.yaml (the runtime speaks the protocol of its file)")
        # The file's endpoints do not matter here (dev replaces them); what would fail a call does.
        problems = check_module_yaml(module, functions)
        warnings = ("extra-state", "expiry", "ignored")  # what does not fail a call
        for problem in problems:
            if problem.kind in warnings:
                print(f"# warning: {problem}", file=sys.stderr)
        fatal = [problem.split(": ", 1)[1] for problem in problems if problem.kind not in warnings]
        if fatal:
            raise CommandError(f"{args.module} does not agree with {args.app}: {'; '.join(fatal)} "
                               "(statefun-wsgi module-yaml check lists the same)")
    else:
        protocol = args.protocol or default_protocol(functions)
        module = parse_module_yaml(generate_module_yaml(functions, endpoint, protocol=protocol),
                                   source=f"<generated from {args.app}>")
    _configure_logging(dev=True)
    transport = _DevTransport(functions, args.module)
    runtime = LocalRuntime.from_module_yaml(module, endpoint=endpoint, transport=transport,
                                            listener=None if args.quiet else print_event)
    try:
        server = _serve_ingress(runtime, args.ingress)  # before gunicorn: a taken port fails at once
    except CommandError:
        runtime.close()
        raise
    print(f"# serving {args.app} with gunicorn: the app on http://127.0.0.1:{port}/, the functions on {endpoint} "
          "(the runtime's listener)", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped while starting: gunicorn is stopped too
    gunicorn = _Gunicorn(args.app, port, runtime_port, args.workers)
    try:
        try:
            # Any page shows that a worker serves; the functions' path only when not read from the
            # app (a GET there is an error the app logs).
            status = gunicorn.wait_serving("/" if served else path, timeout=30, runtime_listener=not served)
            if not served and status == 404:
                raise CommandError(f"{args.app} answers 404 on {path}: pass the path its StatefunMiddleware serves "
                                   "(--path)")
        except CommandError:
            server.server_close()
            runtime.close()
            raise
        transport.server = gunicorn
        stop = threading.Event()

        def watch() -> None:  # gunicorn gone while serving: stop, and say why
            gunicorn.process.wait()
            stop.set()

        def why_stopped() -> None:
            exited = gunicorn.exited()
            if exited is not None and gunicorn.process.returncode:
                raise CommandError(f"{exited}{gunicorn.reason()}")
            if exited is not None:  # stopped by a signal it handles (Ctrl-C reaches both of us)
                print("# gunicorn stopped", file=sys.stderr)

        threading.Thread(target=watch, daemon=True).start()
        return _run_runtime(runtime, server, args, stop=stop, why_stopped=why_stopped)
    finally:
        gunicorn.stop()
        for line in gunicorn.summary():
            print(f"# {line}", file=sys.stderr, flush=True)


def command_send(args: argparse.Namespace) -> int:
    from .local.ingress import parse_address

    try:
        typename, identity = parse_address(args.address)
        _json_message(args.message)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    host, port = _parse_host_port(args.ingress)
    scheme = "https" if args.ingress.startswith("https://") else "http"
    url = f"{scheme}://{host}:{port}/ingress/{typename}/{identity}"
    request = urllib.request.Request(url, data=args.message.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            print(response.read().decode().strip())
    except urllib.error.HTTPError as exc:
        raise CommandError(f"the ingress answered {exc.code}: {exc.read().decode().strip()}") from None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(
            f"cannot reach the ingress at {url}: {reason}; is statefun-wsgi dev APP or "
            f"statefun-wsgi run --module MODULE_YAML running (its --ingress, {DEFAULT_INGRESS} by default)?"
        ) from None
    return 0


def command_module_yaml(args: argparse.Namespace) -> int:
    from .module_yaml import check_module_yaml, generate_module_yaml, load_module_yaml

    if args.action == "generate":
        try:
            protocol = {"2.0": "2.x", "kind": "3.x", "3.0": "3.0", None: None}[args.format]
            transport = f"io.statefun.transports.v1/{args.transport}"
            text = generate_module_yaml(find_functions(args.app), args.endpoint, protocol=protocol, transport=transport)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        print(text, end="")
        return 0
    if not Path(args.path).exists() and Path(args.app).is_file() and ":" in args.path:
        raise CommandError(f"{args.path!r} is not a file and {args.app!r} is: the module.yaml comes first, "
                           f"statefun-wsgi module-yaml check {args.app} {args.path}")
    module = load_module_yaml(args.path)
    functions, served = find_served(args.app)
    problems = check_module_yaml(module, functions, path=served, notes=True)
    for problem in problems:
        print(problem)
    if any(problem.kind != "unchecked" for problem in problems):
        return 1
    print(f"{args.path}: agrees with {args.app}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="statefun-wsgi",
        description="Host and run Apache Flink Stateful Functions (2.x) in WSGI apps.",
    )
    parser.add_argument("--version", action="version", version=f"statefun-wsgi {__version__} (StateFun 2.x)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_runtime_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--ingress", default=DEFAULT_INGRESS, metavar="HOST:PORT",
                             help="where the development ingress listens, HOST:PORT or http://HOST:PORT "
                                  f"(default {DEFAULT_INGRESS}; port 0: any free one)")
        command.add_argument("--send", nargs=2, action="append", metavar=("ADDRESS", "JSON"),
                             help='send a message first, e.g. example/greeter/alice \'{"@type": "pkg.Msg", ...}\'')
        command.add_argument("--send-file", metavar="FILE",
                             help='send the messages of a JSON-lines file: {"to": "ns/type/id", "message": {...}}')
        command.add_argument("--until-idle", action="store_true",
                             help="exit once every message (delayed ones too) was delivered")
        command.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                             help="with --until-idle: give up after this many seconds (default 120)")
        command.add_argument("--quiet", action="store_true", help="do not print what flows")

    dev = commands.add_parser("dev", help="serve an app with gunicorn and drive it with the local runtime",
                              description="Start gunicorn with APP (with settings of its own, not ./gunicorn.conf.py) "
                                          "on a public and a runtime listener, and the local runtime against the "
                                          "runtime's; print what flows as JSON lines. "
                                          "A failure that every retry would repeat stops it at once, with the fix.")
    dev.add_argument("app", metavar="APP",
                     help="the WSGI app, as gunicorn takes it: pkg.module:app or pkg.module:create_app()")
    dev.add_argument("--module", metavar="MODULE_YAML",
                     help="module.yaml for states and limits, checked against APP's functions first "
                          "(default: generated from the functions' states)")
    dev.add_argument("--port", type=int, default=0, help="the app's public port (default: a free one)")
    dev.add_argument("--runtime-port", type=int, default=0,
                     help="the port the local runtime calls, the only one where the functions answer: "
                          "STATEFUN_RUNTIME_BIND names it to the middleware (default: a free one)")
    dev.add_argument("--path", default=None,
                     help="the functions' path in APP (default: the one its StatefunMiddleware serves)")
    dev.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    dev.add_argument("--protocol", choices=("2.x", "3.x"), default=None,
                     help="the StateFun protocol the local runtime speaks (default: the --module file's, else 3.x "
                          "for a statefun_wsgi.v3 registry, else 2.x)")
    add_runtime_options(dev)
    dev.set_defaults(handler=command_dev)

    run = commands.add_parser("run", help="run the local runtime against the endpoints of a module.yaml",
                              description="Run the local runtime for MODULE_YAML's functions, over HTTP, against "
                                          "an app you serve yourself.")
    run.add_argument("--module", required=True, metavar="MODULE_YAML", help="the module.yaml to run")
    run.add_argument("--endpoint", metavar="URL",
                     help="use this URL for every function instead of module.yaml's, "
                          "e.g. http://127.0.0.1:8000/statefun")
    run.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                     help="import a module (pkg.mod) so that its message types can be sent as JSON, "
                          "e.g. examples.greeter.messages_pb2")
    add_runtime_options(run)
    run.set_defaults(handler=command_run)

    send = commands.add_parser("send", help="send a message to a running local runtime's ingress",
                               description="POST a JSON message to the ingress of a running statefun-wsgi dev or run.")
    send.add_argument("address", metavar="ADDRESS", help="namespace/type/id, e.g. example/greeter/alice")
    send.add_argument("message", metavar="JSON", help='the message: \'{"@type": "pkg.Message", "field": "value"}\'')
    send.add_argument("--ingress", default=DEFAULT_INGRESS, metavar="HOST:PORT",
                      help=f"the ingress, HOST:PORT or http://HOST:PORT (default {DEFAULT_INGRESS})")
    send.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                      help="give up after this many seconds (default 10)")
    send.set_defaults(handler=command_send)

    module_yaml = commands.add_parser("module-yaml", help="generate or check module.yaml against a registry",
                                      description="Generate or check module.yaml from the states functions declare.")
    actions = module_yaml.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate", help="print a module.yaml for APP's functions",
        description="Print a module.yaml (format 2.0 unless --format; kind for a statefun_wsgi.v3 registry) "
                    "with every function of APP, the states each declares with bind(..., states=[...]) (2.0 only: "
                    "3.x functions declare them at run time, a statefun_wsgi.v3 function from its ValueSpecs), "
                    "and ENDPOINT as where the runtime reaches them.")
    generate.add_argument("app", metavar="APP",
                          help="the registry, or an app around it: pkg.module:functions, pkg.module:app")
    generate.add_argument("--endpoint", required=True, metavar="URL",
                          help="where the runtime reaches the functions, e.g. http://greeter-app:8000/statefun")
    generate.add_argument("--format", choices=("2.0", "kind", "3.0"), default=None,
                          help="2.0: StateFun 2.2 (with states; the default, but kind for a statefun_wsgi.v3 "
                               "registry); kind: StateFun 3.1+ (io.statefun.endpoints.v2/http documents, no "
                               "states); 3.0: StateFun 3.0's version \"3.0\" document")
    generate.add_argument("--transport", choices=("async", "okhttp"), default="async",
                          help="with --format kind: the runtime's HTTP transport (default async, as 3.2+)")
    check = actions.add_parser(
        "check", help="check a module.yaml against APP's functions",
        description="Report function types APP does not bind, bound functions the file lacks, states missing "
                    "or extra, and endpoints whose path APP does not serve: exit status 1 if any. Notes (states "
                    "registered for a function that declares none, which cannot be checked) do not count.")
    check.add_argument("path", metavar="MODULE_YAML", help="the module.yaml to check, e.g. deploy/module.yaml")
    check.add_argument("app", metavar="APP",
                       help="the registry, or an app around it: pkg.module:functions, app:wsgi")
    module_yaml.set_defaults(handler=command_module_yaml)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (CommandError, ConfigurationError) as exc:
        print(f"statefun-wsgi: error: {exc}", file=sys.stderr)
        return 1
