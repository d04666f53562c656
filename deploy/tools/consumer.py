"""Print what the greeter writes to Kafka: topics "greetings" and "reminders".

The runtime's egress example/greets is exactly-once: its records are committed with each
Flink checkpoint, so this reads with isolation_level=read_committed and sees a record only
once its checkpoint has completed (every 10 s, deploy/flink-conf.yaml).

Settings (environment): KAFKA_BOOTSTRAP (kafka:9092), TOPICS (greetings,reminders),
GROUP_ID (greeter-console).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Optional

TOPICS = ("greetings", "reminders")
CONNECT_TIMEOUT = 120.0  # seconds to wait for the broker at start-up


def render(topic: str, key: Optional[bytes], value: Optional[bytes]) -> str:
    """One output line for a record: topic, key and the UTF-8 text the greeter wrote."""
    key_text = key.decode("utf-8", "replace") if key else "-"
    value_text = value.decode("utf-8", "replace") if value is not None else ""
    return f"{topic:<9} {key_text}: {value_text}"


def _stop(signum: int, frame: object) -> None:
    # As PID 1 in a container, Python would ignore SIGTERM without a handler.
    raise SystemExit(0)


def _connect(bootstrap: str, topics: list, group_id: str):
    from kafka import KafkaConsumer
    from kafka.errors import NoBrokersAvailable

    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            return KafkaConsumer(
                *topics,
                bootstrap_servers=bootstrap,
                group_id=group_id,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
            )
        except NoBrokersAvailable:
            if time.monotonic() > deadline:
                raise
            print(f"waiting for Kafka at {bootstrap} ...", flush=True)
            time.sleep(2)


def main(argv: Optional[list] = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "kafka:9092")
    topics = [t.strip() for t in os.environ.get("TOPICS", ",".join(TOPICS)).split(",") if t.strip()]
    consumer = _connect(bootstrap, topics, os.environ.get("GROUP_ID", "greeter-console"))
    print(f"reading {', '.join(topics)} from {bootstrap} (read_committed)", flush=True)
    try:
        for record in consumer:
            print(render(record.topic, record.key, record.value), flush=True)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
