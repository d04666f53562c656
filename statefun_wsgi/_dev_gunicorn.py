"""gunicorn settings for ``statefun-wsgi dev`` (not for production: see gunicorn.conf.py).

``dev`` starts gunicorn as::

    python -m gunicorn -c python:statefun_wsgi._dev_gunicorn --bind 127.0.0.1:PORT --workers 2 APP

Naming a config module keeps gunicorn from loading whatever ``gunicorn.conf.py`` sits in
the current folder. Names that an older gunicorn does not know are ignored by it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Set

# Keep-alive connections, as the runtime uses them; a few threads per worker.
worker_class = "gthread"
threads = 4
keepalive = 75
# A batch may run until the function's timeout (1 minute by default).
timeout = 70
# Ctrl-C or the end of ``--until-idle`` should not wait for long.
graceful_timeout = 5
loglevel = "warning"
accesslog = None
errorlog = "-"
# gunicorn 25+ opens a control socket at one fixed path: two dev sessions would collide.
control_socket_disable = True


class _FirstOfEach(logging.Filter):
    """Pass a log record only the first time its message appears in this worker.

    The runtime retries a failed batch with backoff until the function's timeout: the
    same error, and its traceback, would be printed a dozen times.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: Set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        with self._lock:
            if message in self._seen:
                return False
            self._seen.add(message)
        return True


def post_fork(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Each worker prints each distinct error of the functions once."""
    logging.getLogger("statefun_wsgi").addFilter(_FirstOfEach())


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Stop when ``dev`` is gone, however it went (SIGKILL, a closed terminal's SIGHUP,
    which gunicorn takes as "reload"): an orphaned server would hold its port."""
    parent = int(os.environ.get("STATEFUN_DEV_PARENT") or 0)
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        server.log.warning("statefun-wsgi dev (pid %s) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="dev-parent-watch", daemon=True).start()
