"""The local runtime: StateFun's runtime behaviour on one machine, for development
and tests. The real Apache Flink StateFun runtime remains the engine in production.

Usage in a test::

    from statefun_wsgi.local import LocalRuntime

    runtime = LocalRuntime.for_functions(functions)             # in process, virtual clock
    runtime.send("example/greeter", "alice", GreetRequest(name="alice"))
    runtime.run_until_idle()
    assert runtime.egress("example/greets")[0].kafka.topic == "greetings"
    runtime.advance(timedelta(seconds=5))                      # fire delayed messages
    assert runtime.state("example/greeter", "alice", "seen_count", Int64Value).value == 1

Against served functions (gunicorn, or any URL in module.yaml)::

    runtime = LocalRuntime.from_module_yaml("deploy/module.yaml",
                                            endpoint="http://127.0.0.1:9000/statefun")
"""

from __future__ import annotations

from .records import EgressRecord, Envelope
from .runtime import FunctionCallFailedError, LocalRuntime, SystemClock, VirtualClock
from .transport import HttpTransport, InProcessTransport, TransportError

__all__ = [
    "EgressRecord",
    "Envelope",
    "FunctionCallFailedError",
    "HttpTransport",
    "InProcessTransport",
    "LocalRuntime",
    "SystemClock",
    "TransportError",
    "VirtualClock",
]
