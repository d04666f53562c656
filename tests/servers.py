"""Real gunicorn servers for the tests: started on a free port, always stopped.

Usage::

    from servers import gunicorn

    with gunicorn("app:wsgi", "--worker-class", "gthread", "--threads", "4") as server:
        connection = server.connection()
        connection.request("POST", "/statefun", body=batch)

or, to boot several at once, :func:`start` each, then :meth:`Server.wait_ready`
each, and :meth:`Server.stop` each in a ``finally``.

Servers run from the repository root, as a user would type the command there, in
a process group of their own (so no worker can outlive a test). Every wait is
bounded; a server that exits or never answers fails the test with its log.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, List, Mapping, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent

#: Bounds on every wait, in seconds.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A gunicorn process: where it listens, where it logs, how to stop it."""

    def __init__(self, command: list, env: Mapping[str, str], host: str, port: int,
                 public_port: Optional[int] = None, cwd: Path = REPO) -> None:
        self.command = command
        self.host = host
        self.port = port  # where batches go: the runtime's listener when it has one
        self.public_port = port if public_port is None else public_port  # the app's users' listener
        self._directory = Path(tempfile.mkdtemp(prefix="statefun-gunicorn-"))
        self.log_path = self._directory / "gunicorn.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its workers stop with it
            )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.public_port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def wait_ready(self, path: str = "/", timeout: float = START_TIMEOUT) -> Server:
        """Return once ``GET path`` gets any HTTP answer; raise with the log otherwise."""
        deadline = time.monotonic() + timeout
        last_error: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}:\n{self.log()}")
            connection = self.connection(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
            try:
                connection.request("GET", path)
                connection.getresponse().read()
                return self
            except OSError as exc:  # refused until bound; reset or timed out while workers boot
                last_error = exc
            finally:
                connection.close()
            time.sleep(0.05)
        raise TimeoutError(f"{self.command} did not answer within {timeout} s ({last_error!r}):\n{self.log()}")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = START_TIMEOUT) -> str:
        """The log, once ``text`` appears in it ``count`` times (workers boot, and log, late)."""
        deadline = time.monotonic() + timeout
        while (log := self.log()).count(text) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not {count} times in the log within {timeout} s:\n{log}")
            time.sleep(0.05)
        return log

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM) without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Stop gracefully, within STOP_TIMEOUT; then kill whatever is left of its group."""
        self.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # The group this helper created, and nothing else: a master that was killed
        # (or hung) must not leave workers behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(self._directory, ignore_errors=True)


def _quiet_flags() -> Tuple[str, ...]:
    """Flags for what the tests do not want from newer gunicorns."""
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    # gunicorn 25+ opens a control socket at one fixed path in $HOME by default: the
    # servers of a test run would fight over it.
    return ("--no-control-socket",) if "control_socket_disable" in names else ()


def start(app: str, *args: str, env: Optional[Mapping[str, str]] = None, bind: bool = True,
          cwd: Path = REPO) -> Server:
    """Start ``gunicorn [args] app`` from the repository root (or ``cwd``); return at once.

    With ``bind`` (the default) ``--bind 127.0.0.1:<free port>`` is added, which
    replaces gunicorn.conf.py's binds: no runtime listener, the functions answer on that
    one (as when STATEFUN_RUNTIME_BIND names none). Without it the server binds where
    gunicorn.conf.py says: ``env["STATEFUN_BIND"]`` (pass ``f"127.0.0.1:{free_port()}"``,
    or ``""`` for none) and ``env["STATEFUN_RUNTIME_BIND"]`` (by default a free port on
    127.0.0.1); ``port`` is then the runtime's listener and ``public_port`` the other.
    """
    environment = dict(os.environ)
    environment.update(env or {})
    public_port = None
    if bind:
        if "STATEFUN_RUNTIME_BIND" not in (env or {}):
            environment.pop("STATEFUN_RUNTIME_BIND", None)  # whatever this process holds
        port = free_port()
        args = ("--bind", f"127.0.0.1:{port}", *args)
    else:
        environment.setdefault("STATEFUN_RUNTIME_BIND", f"127.0.0.1:{free_port()}")
        port = int(environment["STATEFUN_RUNTIME_BIND"].rsplit(":", 1)[1])
        if environment.get("STATEFUN_BIND"):
            public_port = int(environment["STATEFUN_BIND"].rsplit(":", 1)[1])
    # A short grace, so that stopping never waits for the production default (60 s).
    command = [sys.executable, "-m", "gunicorn", "--graceful-timeout", "3", *_quiet_flags(), *args, app]
    return Server(command, environment, "127.0.0.1", port, public_port, cwd)


@contextlib.contextmanager
def gunicorn(
    app: str,
    *args: str,
    env: Optional[Mapping[str, str]] = None,
    bind: bool = True,
    ready_path: str = "/",
    timeout: float = START_TIMEOUT,
) -> Iterator[Server]:
    """:func:`start` a server, wait until it answers, yield it, and always stop it."""
    server = start(app, *args, env=env, bind=bind)
    try:
        server.wait_ready(ready_path, timeout)
        yield server
    finally:
        server.stop()


def workers_of(master: int) -> List[int]:
    """The pids of the master's children (its workers), from pgrep."""
    result = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in result.stdout.split()]


class Killer(threading.Thread):
    """SIGKILLs a random worker of ``server`` every ``interval`` seconds, ``kills`` times
    (what the OOM killer or a failing node does), from a thread of its own::

        killer = Killer(server, kills=10, interval=0.4, seed=1)
        killer.start()
        ...
        killer.stop.set(); killer.join()
    """

    def __init__(self, server: Server, kills: int, interval: float, seed: int) -> None:
        super().__init__(name="worker-killer", daemon=True)
        self.server = server
        self.kills = kills
        self.interval = interval
        self.random = random.Random(seed)
        self.killed: List[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while len(self.killed) < self.kills and not self.stop.wait(self.interval):
            pids = [pid for pid in workers_of(self.server.process.pid) if pid not in self.killed]
            if not pids:
                continue
            pid = self.random.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed.append(pid)
