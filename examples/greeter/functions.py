"""The greeter example's functions.

Flow for ``GreetRequest(name="alice")`` sent to ``example/greeter`` id ``alice``::

    example/greeter   seen_count += 1; sends FormatRequest to example/formatter id alice;
                      on the first visit, a Reminder to itself after REMINDER_DELAY
    example/formatter replies GreetResponse("Hello alice! ...") to its caller
    example/greeter   writes the greeting to the Kafka egress example/greets (topic "greetings")
                      and, when the Reminder fires, a reminder (topic "reminders")

Served by any of the apps in ``examples/`` or by the root ``app.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Union

from google.protobuf.wrappers_pb2 import Int64Value

from statefun_wsgi import StatefulFunctions, ValueSpec, kafka_egress_record

from .messages_pb2 import FormatRequest, GreetRequest, GreetResponse, Reminder

__all__ = ["GREETS_EGRESS", "REMINDER_DELAY", "SEEN_COUNT_EXPIRY", "functions"]

#: The Kafka egress id, as declared in deploy/module.yaml and deploy/statefun-3.3/module.yaml.
GREETS_EGRESS = "example/greets"
#: How long a user's visit count lives after their last visit. A StateFun 3.x runtime takes it
#: from here (the endpoint declares its states); 2.x from module.yaml (deploy/module.yaml says 1d).
SEEN_COUNT_EXPIRY = timedelta(days=1)
#: How long after a first visit the reminder fires (STATEFUN_REMINDER_DELAY_MS overrides it).
REMINDER_DELAY = timedelta(milliseconds=int(os.environ.get("STATEFUN_REMINDER_DELAY_MS", "5000")))

functions = StatefulFunctions()


@functions.bind("example/greeter", states=[ValueSpec("seen_count", expire_after_call=SEEN_COUNT_EXPIRY)])
def greeter(context, message: Union[GreetRequest, GreetResponse, Reminder]) -> None:
    """Count visits, ask for a greeting, publish it; remind first-time visitors."""
    if isinstance(message, GreetRequest):
        seen_count = context.state("seen_count").unpack(Int64Value) or Int64Value()
        seen_count.value += 1
        context.state("seen_count").pack(seen_count)
        name = context.address.identity
        context.pack_and_send("example/formatter", name, FormatRequest(name=name, visits=seen_count.value))
        if seen_count.value == 1:
            context.pack_and_send_after(REMINDER_DELAY, "example/greeter", name, Reminder(name=name))
    elif isinstance(message, GreetResponse):
        record = kafka_egress_record(topic="greetings", key=message.name, value=message.greeting)
        context.pack_and_send_egress(GREETS_EGRESS, record)
    else:
        text = f"Hi {message.name}, still there? Come back soon!"
        record = kafka_egress_record(topic="reminders", key=message.name, value=text)
        context.pack_and_send_egress(GREETS_EGRESS, record)


@functions.bind("example/formatter")
def formatter(context, message: FormatRequest) -> None:
    """Reply to the caller with the greeting for this visit."""
    if message.visits == 1:
        greeting = f"Hello {message.name}! Nice to meet you."
    else:
        greeting = f"Hello {message.name}! This is visit number {message.visits}."
    context.pack_and_reply(GreetResponse(name=message.name, greeting=greeting, visits=message.visits))
