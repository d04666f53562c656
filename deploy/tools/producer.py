"""Feed the greeter: one GreetRequest a second to Kafka topic "names", key = the name.

The StateFun runtime's routable Kafka ingress (example/names in deploy/module.yaml) wraps
each record's value in an Any of type ``example.greeter.GreetRequest`` and sends it to
``example/greeter`` with the record key as the function id.

The message class is the project's own ``examples.greeter.messages_pb2.GreetRequest``:
the tools image installs the project and carries ``examples/`` (Dockerfile.tools), so no
copy of the generated code lives here.

Settings (environment): KAFKA_BOOTSTRAP (kafka:9092), NAMES_TOPIC (names),
NAMES (alice,bob,carol,dave), INTERVAL_SECONDS (1), COUNT (0: forever).
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from typing import Iterable, Iterator, Optional, Tuple

from examples.greeter.messages_pb2 import GreetRequest

TOPIC = "names"  # the topic of the ingress example/names in deploy/module.yaml
DEFAULT_NAMES = ("alice", "bob", "carol", "dave")
CONNECT_TIMEOUT = 120.0  # seconds to wait for the broker at start-up


def encode(name: str) -> bytes:
    """The record value for ``name``: a serialized GreetRequest."""
    return GreetRequest(name=name).SerializeToString()


def records(names: Iterable[str], count: int = 0) -> Iterator[Tuple[bytes, bytes]]:
    """(key, value) pairs cycling through ``names``; ``count`` 0 means without end."""
    cycle = itertools.cycle(list(names))
    if count:
        cycle = itertools.islice(cycle, count)
    for name in cycle:
        yield name.encode("utf-8"), encode(name)


def _stop(signum: int, frame: object) -> None:
    # As PID 1 in a container, Python would ignore SIGTERM without a handler.
    raise SystemExit(0)


def _connect(bootstrap: str):
    from kafka import KafkaProducer
    from kafka.errors import NoBrokersAvailable

    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            return KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)
        except NoBrokersAvailable:
            if time.monotonic() > deadline:
                raise
            print(f"waiting for Kafka at {bootstrap} ...", flush=True)
            time.sleep(2)


def main(argv: Optional[list] = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "kafka:9092")
    topic = os.environ.get("NAMES_TOPIC", TOPIC)
    names = [n.strip() for n in os.environ.get("NAMES", ",".join(DEFAULT_NAMES)).split(",") if n.strip()]
    interval = float(os.environ.get("INTERVAL_SECONDS", "1"))
    count = int(os.environ.get("COUNT", "0"))

    producer = _connect(bootstrap)
    try:
        for key, value in records(names, count):
            producer.send(topic, key=key, value=value).get(timeout=30)
            print(f"sent {key.decode()} to {topic}", flush=True)
            time.sleep(interval)
    finally:
        producer.close(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
