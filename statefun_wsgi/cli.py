"""The ``statefun-wsgi`` command (also ``python -m statefun_wsgi``).

    statefun-wsgi dev app:wsgi --send-file examples/greeter/visits.jsonl --until-idle
    statefun-wsgi run --module deploy/module.yaml --endpoint http://127.0.0.1:9000/statefun
    statefun-wsgi send example/greeter/alice '{"@type": "example.greeter.GreetRequest", "name": "alice"}'
    statefun-wsgi module-yaml generate app:wsgi --endpoint http://app:9000/statefun
    statefun-wsgi module-yaml check deploy/module.yaml app:wsgi

Run any command with ``--help``. Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigurationError
from .functions import StatefulFunctions

__all__ = ["main"]

DEFAULT_INGRESS = "127.0.0.1:8090"


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1 (2 for usage)."""


# -- loading the user's app ---------------------------------------------------------


def load_target(reference: str) -> Any:
    """Import ``"pkg.module:attr"`` (or a bare module) from the current directory."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attribute = reference.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from None
    for part in filter(None, attribute.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f"{module_name!r} has no attribute {attribute!r}") from None
    return obj


def find_functions(reference: str) -> StatefulFunctions:
    """The registry behind ``reference``: a StatefulFunctions, a middleware around
    one, a Flask app whose ``wsgi_app`` is one, a Django app whose ``MIDDLEWARE`` serves
    the ``STATEFUN_FUNCTIONS`` one, or a module holding ``functions``."""
    candidates = [load_target(reference)]
    seen = set()
    while candidates:
        obj = candidates.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, StatefulFunctions):
            return obj
        if "django.core.handlers.base" in sys.modules:  # a Django app whose middleware serves them
            from .django import functions_of_django_app

            found = functions_of_django_app(obj)
            if found is not None:
                return found if isinstance(found, StatefulFunctions) else found.functions
        for attribute in ("functions", "endpoint", "handler", "wsgi_app", "app", "application", "wsgi"):
            value = getattr(obj, attribute, None)
            if value is not None:
                candidates.append(value)
    raise CommandError(
        f"found no StatefulFunctions behind {reference!r}: name the registry itself "
        "(e.g. myapp.functions:functions), or an app or middleware around it"
    )


# -- printing what flows ------------------------------------------------------------


def _address(address: Any) -> Optional[str]:
    return None if address is None else f"{address.namespace}/{address.type}/{address.identity}"


def print_event(event: str, fields: Dict[str, Any]) -> None:
    from .local.records import any_to_json

    line: Dict[str, Any] = {"event": event}
    if event in ("message", "delayed"):
        line.update(to=_address(fields["target"]), caller=_address(fields["caller"]))
        if "delay_ms" in fields:
            line["delay_ms"] = fields["delay_ms"]
        line["message"] = any_to_json(fields["argument"])
    elif event == "egress":
        line.update(fields["record"].to_json())
    elif event == "state":
        line.update(address=_address(fields["address"]), state=fields["name"])
        line["value"] = None if fields["value"] is None else any_to_json(fields["value"])
        if fields.get("expired"):
            line["expired"] = True
    print(json.dumps(line), flush=True)


# -- commands -----------------------------------------------------------------------


def _parse_host_port(text: str) -> Tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise CommandError(f"{text!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


def _messages_from(args: argparse.Namespace) -> List[Tuple[str, str, Dict[str, Any]]]:
    from .local.ingress import parse_address

    messages = []
    for address, document in args.send or ():
        try:
            messages.append((*parse_address(address), json.loads(document)))
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


def _run_runtime(runtime: Any, args: argparse.Namespace) -> int:
    """Serve the ingress, send the initial messages, run until idle or until stopped."""
    from werkzeug.serving import make_server

    from .local.ingress import IngressApp
    from .local.records import json_to_any
    from .local.runtime import FunctionCallFailedError

    host, port = _parse_host_port(args.ingress)
    try:
        server = make_server(host, port, IngressApp(runtime), threaded=True)
    except OSError as exc:
        raise CommandError(f"cannot serve the ingress on {host}:{port}: {exc.strerror or exc}") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"# ingress on http://{host}:{server.server_port}/ingress/<namespace>/<type>/<id>", file=sys.stderr)
    stop = threading.Event()
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
    except FunctionCallFailedError as exc:
        raise CommandError(f"function call failed: {exc}") from None
    except TimeoutError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        runtime.close()
    return 0


def command_run(args: argparse.Namespace) -> int:
    from .local.runtime import LocalRuntime

    for module in args.imports or ():
        load_target(module)
    runtime = LocalRuntime.from_module_yaml(
        args.module, endpoint=args.endpoint, listener=None if args.quiet else print_event
    )
    return _run_runtime(runtime, args)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"gunicorn exited with status {process.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise CommandError(f"gunicorn did not listen on port {port} within {timeout:.0f} s")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def command_dev(args: argparse.Namespace) -> int:
    """gunicorn serves the app on two listeners, as gunicorn.conf.py does: the public one
    (``--port``) for the app's pages, and the runtime's (``--runtime-port``), the only one
    where the functions answer (STATEFUN_RUNTIME_BIND tells the middleware); the local
    runtime calls the latter."""
    from .local.runtime import LocalRuntime
    from .module_yaml import generate_module_yaml, load_module_yaml, parse_module_yaml

    functions = find_functions(args.app)  # also imports the message types for JSON
    port = args.port or _free_port()
    runtime_port = args.runtime_port or _free_port()
    while runtime_port == port:
        runtime_port = _free_port()
    public, internal = f"127.0.0.1:{port}", f"127.0.0.1:{runtime_port}"
    endpoint = f"http://{internal}{args.path}"
    if args.module:
        module = load_module_yaml(args.module)
    else:
        module = parse_module_yaml(generate_module_yaml(functions, endpoint), source=f"<generated from {args.app}>")
    command = [sys.executable, "-m", "gunicorn", args.app, "--bind", public, "--bind", internal, "--workers",
               str(args.workers), "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"]
    if Path("gunicorn.conf.py").exists():
        command[3:3] = ["-c", "gunicorn.conf.py"]
    environment = {name: value for name, value in os.environ.items() if not name.startswith("STATEFUN_RUNTIME_")}
    environment.update(STATEFUN_ACCESS_LOG="off", STATEFUN_BIND=public, STATEFUN_RUNTIME_BIND=internal,
                       STATEFUN_SERVE="both")
    print(f"# serving {args.app} with gunicorn: the app on http://{public}/, the functions on {endpoint} "
          "(the runtime's listener)", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped while starting: gunicorn is stopped too
    process = subprocess.Popen(command, env=environment)
    try:
        _wait_for_port(port, process, timeout=30)
        _wait_for_port(runtime_port, process, timeout=30)
        runtime = LocalRuntime.from_module_yaml(module, endpoint=endpoint, listener=None if args.quiet else print_event)
        return _run_runtime(runtime, args)
    except KeyboardInterrupt:
        return 0
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def command_send(args: argparse.Namespace) -> int:
    from .local.ingress import parse_address

    try:
        typename, identity = parse_address(args.address)
        json.loads(args.message)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    url = f"{args.ingress.rstrip('/')}/ingress/{typename}/{identity}"
    if "://" not in url:
        url = "http://" + url
    request = urllib.request.Request(url, data=args.message.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.read().decode().strip())
    except urllib.error.HTTPError as exc:
        raise CommandError(f"the ingress answered {exc.code}: {exc.read().decode().strip()}") from None
    except OSError as exc:
        raise CommandError(f"cannot reach the ingress at {url}: {exc}") from None
    return 0


def command_module_yaml(args: argparse.Namespace) -> int:
    from .module_yaml import check_module_yaml, generate_module_yaml, load_module_yaml

    if args.action == "generate":
        print(generate_module_yaml(find_functions(args.app), args.endpoint), end="")
        return 0
    problems = check_module_yaml(load_module_yaml(args.path), find_functions(args.app))
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{args.path}: agrees with {args.app}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statefun-wsgi",
        description="Host and run Apache Flink Stateful Functions (2.x) in WSGI apps.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_runtime_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--ingress", default=DEFAULT_INGRESS, metavar="HOST:PORT",
                             help=f"where the development ingress listens (default {DEFAULT_INGRESS}; port 0 = any)")
        command.add_argument("--send", nargs=2, action="append", metavar=("ADDRESS", "JSON"),
                             help='send a message first, e.g. example/greeter/alice \'{"@type": "pkg.Msg", ...}\'')
        command.add_argument("--send-file", metavar="FILE",
                             help='send the messages of a JSON-lines file: {"to": "ns/type/id", "message": {...}}')
        command.add_argument("--until-idle", action="store_true",
                             help="exit once every message (delayed ones too) was delivered")
        command.add_argument("--timeout", type=float, default=120.0, help="with --until-idle: give up after seconds")
        command.add_argument("--quiet", action="store_true", help="do not print what flows")

    dev = commands.add_parser("dev", help="serve an app with gunicorn and drive it with the local runtime",
                              description="Start gunicorn with APP on a public and a runtime listener, and the "
                                          "local runtime against the runtime's; print what flows as JSON lines.")
    dev.add_argument("app", metavar="APP", help="the WSGI app, e.g. app:wsgi")
    dev.add_argument("--module", metavar="MODULE_YAML",
                     help="module.yaml for states and limits (default: generated from the functions' states)")
    dev.add_argument("--port", type=int, default=0, help="the app's public port (default: a free one)")
    dev.add_argument("--runtime-port", type=int, default=0,
                     help="the port the local runtime calls, the only one where the functions answer: "
                          "STATEFUN_RUNTIME_BIND names it to the middleware (default: a free one)")
    dev.add_argument("--path", default="/statefun", help="the functions' path in APP (default /statefun)")
    dev.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    add_runtime_options(dev)
    dev.set_defaults(handler=command_dev)

    run = commands.add_parser("run", help="run the local runtime against the endpoints of a module.yaml",
                              description="Run the local runtime for MODULE_YAML's functions, over HTTP.")
    run.add_argument("--module", required=True, metavar="MODULE_YAML", help="the module.yaml to run")
    run.add_argument("--endpoint", metavar="URL", help="use this URL for every function instead of module.yaml's")
    run.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                     help="import a module (pkg.mod) so that its message types can be sent as JSON")
    add_runtime_options(run)
    run.set_defaults(handler=command_run)

    send = commands.add_parser("send", help="send a message to a running local runtime's ingress",
                               description="POST a JSON message to a running runtime's ingress.")
    send.add_argument("address", metavar="ADDRESS", help="namespace/type/id")
    send.add_argument("message", metavar="JSON", help='{"@type": "pkg.Message", field: value, ...}')
    send.add_argument("--ingress", default=f"http://{DEFAULT_INGRESS}", metavar="URL", help="the ingress URL")
    send.set_defaults(handler=command_send)

    module_yaml = commands.add_parser("module-yaml", help="generate or check module.yaml against a registry",
                                      description="Generate or check module.yaml from the states functions declare.")
    actions = module_yaml.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = actions.add_parser("generate", help="print a module.yaml for APP's functions")
    generate.add_argument("app", metavar="APP", help="pkg.module:attr holding the StatefulFunctions (or an app)")
    generate.add_argument("--endpoint", required=True, metavar="URL", help="where the runtime reaches the functions")
    check = actions.add_parser("check", help="check a module.yaml against APP's functions")
    check.add_argument("path", metavar="MODULE_YAML")
    check.add_argument("app", metavar="APP")
    module_yaml.set_defaults(handler=command_module_yaml)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (CommandError, ConfigurationError) as exc:
        print(f"statefun-wsgi: error: {exc}", file=sys.stderr)
        return 1
