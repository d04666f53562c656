"""Functions that import the project's models at import time, as real ones do."""

from __future__ import annotations

from google.protobuf.wrappers_pb2 import StringValue

from modelsproject.models import Greeting
from statefun_wsgi import StatefulFunctions

functions = StatefulFunctions()


@functions.bind("test/greeter", states=["last"])
def greet(context, message: StringValue):  # type: ignore[no-untyped-def]
    context.state("last").pack(StringValue(value=f"{Greeting._meta.verbose_name}: {message.value}"))
