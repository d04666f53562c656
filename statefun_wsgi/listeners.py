"""The listeners the StateFun runtime calls, and whether a request arrived on one of them.

The runtime cannot add a header or a token to its calls (no ``module.yaml`` format has a
place for one), so what sets its requests apart is where they arrive: a listening socket
(a TCP port, a Unix socket) that only the runtime can reach, beside the public one the
app's users reach. :class:`RuntimeListeners` holds those listeners, written as gunicorn's
``--bind`` takes them (and read by gunicorn's own parser), and tells from the socket the
server accepted a request's connection on whether it is one of them::

    listeners = RuntimeListeners(["0.0.0.0:9000", "unix:/run/app/statefun.sock"])
    listeners.admits(environ)   # True only for a connection accepted on one of them

    listeners_from_environment()    # what STATEFUN_RUNTIME_BIND says, or None when unset

Only the server's own socket object decides: ``environ["gunicorn.socket"]`` (gunicorn) or
``environ["werkzeug.socket"]`` (werkzeug's development server), whose ``getsockname()`` is
the local end of the connection: the listener's Unix path, or the local address and port.
Never ``Host``, ``SERVER_NAME``/``SERVER_PORT`` (gunicorn sets them from the client's
``Host`` header) or ``X-Forwarded-*``: any client can write those.

A listener on every address (``0.0.0.0:9000``, ``[::]:9000``, ``:9000``) matches any
connection accepted on its port, whatever the local address (a wildcard bind yields the
concrete one); one on a given address (``10.0.0.5:9000``, ``localhost:9000``, resolved
once) matches connections to that address and port only.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any, FrozenSet, Iterable, Mapping, NamedTuple, Optional, Sequence, Set, Tuple, Union

from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "Listener",
    "RuntimeListeners",
    "SOCKET_KEYS",
    "listeners_from_environment",
    "parse_listener",
    "runtime_listeners_from",
    "warn_every_listener",
]

logger = logging.getLogger("statefun_wsgi")

#: What names the runtime's listeners when the middleware is given none: what the
#: recommended gunicorn.conf.py binds for the runtime (and sets when unset).
ENVIRONMENT_VARIABLE = "STATEFUN_RUNTIME_BIND"

#: Where servers put the socket a request's connection was accepted on.
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")

#: The servers that give the socket, for messages.
SERVERS_WITH_A_SOCKET = "gunicorn (gunicorn.socket) or werkzeug's development server (werkzeug.socket)"

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class Listener(NamedTuple):
    """One listener the runtime calls: a Unix socket ``path``, or a TCP ``host`` and ``port``
    (``host`` is ``None`` for every address)."""

    text: str
    path: Optional[str]
    host: Optional[str]
    port: int


def parse_listener(text: str) -> Listener:
    """A listener from gunicorn's bind syntax: ``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT``,
    ``tcp://HOST:PORT``, ``unix:PATH`` or ``unix://PATH``. A relative Unix path is taken from
    the current directory, as gunicorn binds it. Raises ConfigurationError for what cannot be
    told apart from a connection's socket: ``fd://N`` (name the address it was bound to) and
    port 0 (a port chosen when binding)."""
    from gunicorn.util import parse_address

    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"a runtime listener is HOST:PORT or unix:PATH, got {text!r}")
    text = text.strip()
    try:
        address = parse_address(text)
    except (RuntimeError, ValueError) as exc:
        raise ConfigurationError(f"runtime listener {text!r} is not HOST:PORT or unix:PATH: {exc}") from None
    if isinstance(address, int):
        raise ConfigurationError(
            f"runtime listener {text!r}: a file descriptor cannot be matched; name the address it is bound to"
        )
    if isinstance(address, str):
        if not address:
            raise ConfigurationError(f"runtime listener {text!r} names no Unix socket path")
        return Listener(text, os.path.abspath(address), None, 0)
    host, port = address
    if not 0 < port < 65536:
        raise ConfigurationError(
            f"runtime listener {text!r}: port {port} cannot be matched (0 is a port chosen when binding); name the port"
        )
    host = host.strip("[]")
    return Listener(text, None, None if host in _WILDCARD_HOSTS else host, port)


def parse_listeners(value: Union[str, Iterable[str]], setting: str) -> Tuple[Listener, ...]:
    """Listeners from a string (split on commas and whitespace) or an iterable of strings.
    ``setting`` names where they came from, for the error message."""
    texts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    if not texts:
        raise ConfigurationError(f"{setting} names no listener: give HOST:PORT or unix:PATH")
    try:
        return tuple(parse_listener(text) for text in texts)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{setting}: {exc}") from None


def listeners_from_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """What ``STATEFUN_RUNTIME_BIND`` holds (``os.environ`` by default), or ``None`` when it is
    unset or blank."""
    value = (os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, "")
    return value if value.strip() else None


def _spellings(text: str) -> Tuple[str, ...]:
    """How a socket spells an IP address (``getsockname()``'s canonical text): an IPv4 one
    also as the IPv4-mapped IPv6 address a dual-stack socket reports, and the reverse."""
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 scope
    if isinstance(address, ipaddress.IPv4Address):
        return str(address), f"::ffff:{address}"
    if address.ipv4_mapped is not None:
        return str(address), str(address.ipv4_mapped)
    return (str(address),)


class RuntimeListeners:
    """The listeners the runtime calls; :meth:`admits` tells a request that came in on one.

    :param listeners: gunicorn bind strings (``"0.0.0.0:9000"``, ``"unix:/run/app/statefun.sock"``),
        as a list or one string split on commas and whitespace.
    :param setting: where they came from (``"runtime_listeners"``, ``"STATEFUN_RUNTIME_BIND"``),
        named in error messages and logs.

    A request whose environ holds no server socket (a server other than gunicorn or werkzeug's,
    a test client, ASGI) is never admitted, and the first one logs an error naming
    ``setting``: the runtime then gets the app's own answer (a 404, which fails its job at
    once) rather than a server that answers the functions on every listener.
    """

    def __init__(self, listeners: Union[str, Iterable[str]], *, setting: str = "runtime_listeners") -> None:
        self.setting = setting
        self.listeners = parse_listeners(listeners, setting)
        self.paths: FrozenSet[str] = frozenset(item.path for item in self.listeners if item.path is not None)
        self.any_address_ports: FrozenSet[int] = frozenset(
            item.port for item in self.listeners if item.path is None and item.host is None
        )
        self._addresses: Optional[FrozenSet[Tuple[str, int]]] = None  # resolved at first use
        self._lock = threading.Lock()
        self._logged: set = set()

    def __repr__(self) -> str:
        return f"RuntimeListeners({[item.text for item in self.listeners]!r})"

    def admits(self, environ: WSGIEnvironment) -> bool:
        """Whether the request's connection was accepted on one of the runtime's listeners."""
        sock = None
        for key in SOCKET_KEYS:
            sock = environ.get(key)
            if sock is not None:
                break
        if sock is None:
            self._log_once(
                "no-socket",
                "%s is set, but the server gives no socket (%s) to tell the listener a request came in on: "
                "the functions are answered on no listener of this server. Serve with %s, or unset %s",
                self.setting, " / ".join(SOCKET_KEYS), SERVERS_WITH_A_SOCKET, self.setting,
            )
            return False
        try:
            name: Any = sock.getsockname()
        except (OSError, AttributeError, ValueError):  # closed, or not a socket
            return False
        if isinstance(name, (str, bytes)):  # a Unix socket: its listener's path
            if isinstance(name, bytes):
                name = os.fsdecode(name)
            return bool(name) and os.path.abspath(name) in self.paths
        try:
            host, port = name[0], name[1]
        except (TypeError, IndexError):
            return False
        if port in self.any_address_ports:
            return True
        addresses = self._addresses if self._addresses is not None else self._resolve()
        if isinstance(host, str) and "%" in host:  # an IPv6 scope
            host = host.split("%", 1)[0]
        return (host, port) in addresses

    def _resolve(self) -> FrozenSet[Tuple[str, int]]:
        """The (address, port) pairs of the listeners on a given host, each address spelled as
        sockets spell it: an IP as written, a name resolved once (a name that does not resolve
        matches nothing, and says so)."""
        with self._lock:
            if self._addresses is not None:
                return self._addresses
            pairs: Set[Tuple[str, int]] = set()
            for item in self.listeners:
                if item.path is not None or item.host is None:
                    continue
                try:
                    pairs.update((spelling, item.port) for spelling in _spellings(item.host))
                    continue
                except ValueError:  # a name
                    pass
                try:
                    infos = socket.getaddrinfo(item.host, item.port, type=socket.SOCK_STREAM)
                except OSError as exc:
                    logger.error("%s: cannot resolve %r (%s): no request matches it", self.setting, item.text, exc)
                    continue
                for info in infos:
                    pairs.update((spelling, item.port) for spelling in _spellings(str(info[4][0])))
            self._addresses = frozenset(pairs)
            return self._addresses

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        logger.error(message, *args)


def runtime_listeners_from(value: Optional[Union[str, Sequence[str]]], setting: str) -> Optional[RuntimeListeners]:
    """The runtime's listeners: ``value`` when given (named ``setting`` in errors), else what
    ``STATEFUN_RUNTIME_BIND`` says, else ``None`` (every listener). Raises ConfigurationError
    for a listener that cannot be matched."""
    if value is not None:
        return RuntimeListeners(value, setting=setting)
    from_environment = listeners_from_environment()
    if from_environment is not None:
        return RuntimeListeners(from_environment, setting=ENVIRONMENT_VARIABLE)
    return None


def warn_every_listener(setting: str) -> None:
    """Log that the functions answer on every listener (a middleware does it at its first batch)."""
    logger.warning(
        "the functions answer on every listener of this server: anyone who reaches it can send batches that "
        "read and write their state. Name the listener the StateFun runtime calls (%s, or %s, which "
        "gunicorn.conf.py binds beside the public one); see docs/hosting.md, Security",
        setting, ENVIRONMENT_VARIABLE,
    )
