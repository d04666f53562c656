"""Pass-through cost: what StatefunMiddleware adds to a request for another path.

Calls the same tiny WSGI app directly and through the middleware, interleaved in
one process, and reports nanoseconds per call and the difference (target: about a
microsecond at most).

    python bench/bench_passthrough.py
"""

from __future__ import annotations

import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statefun_wsgi import StatefulFunctions, StatefunMiddleware  # noqa: E402

BODY = [b"hello"]


def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return BODY


def start_response(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
    return None


def main() -> int:
    wrapped = StatefunMiddleware(app, StatefulFunctions())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/products/42", "SCRIPT_NAME": ""}
    assert wrapped(environ, start_response) is BODY  # the app's own iterable comes back
    number, rounds = 200_000, 15
    direct, through = [], []
    for _ in range(rounds):
        direct.append(timeit.timeit(lambda: app(environ, start_response), number=number) / number * 1e9)
        through.append(timeit.timeit(lambda: wrapped(environ, start_response), number=number) / number * 1e9)
    d, t = statistics.median(direct), statistics.median(through)
    lines = [
        f"direct call:            {d:7.0f} ns",
        f"through the middleware: {t:7.0f} ns",
        f"added by the middleware:{t - d:7.0f} ns per request (target: about 1000 ns at most)",
    ]
    print("\n".join(lines))
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "passthrough.md").write_text(
        f"median of {rounds} interleaved rounds of {number:,} calls, Python {sys.version.split()[0]}\n\n"
        + "\n".join(f"    {line}" for line in lines) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
