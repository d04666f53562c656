"""Record the public API of the official StateFun 3.3 Python SDK into official_api.json.

Run with the official package installed (its own virtualenv: Python 3.11, protobuf 3.20)::

    python3.11 -m venv /tmp/sf33venv && /tmp/sf33venv/bin/pip install apache-flink-statefun==3.3.0 'protobuf<4'
    /tmp/sf33venv/bin/python tests/data/v3/record_official_api.py > tests/data/v3/official_api.json

tests/test_v3_api.py compares statefun_wsgi.v3 with the file: every name, and for each
callable its parameters (names, kinds, defaults; annotations are left out, as they name
each package's own classes). The same function (``describe``) describes both sides.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from typing import Any, Dict, List, Optional

NAMES = [
    "StatefulFunctions",
    "ValueSpec",
    "Context",
    "Message",
    "SdkAddress",
    "EgressMessage",
    "Type",
    "TypeSerializer",
    "simple_type",
    "make_protobuf_type",
    "make_json_type",
    "BoolType",
    "IntType",
    "FloatType",
    "LongType",
    "DoubleType",
    "StringType",
    "message_builder",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "RequestReplyHandler",
]


def parameters(func: Any) -> Optional[List[List[Any]]]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    return [
        [p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default)]
        for p in signature.parameters.values()
    ]


def describe(value: Any) -> Dict[str, Any]:
    if inspect.isclass(value):
        members: Dict[str, Any] = {}
        for name in dir(value):
            if name.startswith("_") and name != "__init__":
                continue
            member = inspect.getattr_static(value, name)
            if isinstance(member, property):
                members[name] = "property"
            elif inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)):
                members[name] = parameters(getattr(value, name))
            elif name in getattr(value, "__dataclass_fields__", {}):
                members[name] = "field"
        return {"kind": "class", "members": members}
    if inspect.isfunction(value):
        return {"kind": "function", "parameters": parameters(value)}
    return {
        "kind": "instance",
        "class_members": describe(type(value))["members"],
        "typename": getattr(value, "typename", None),
    }


def record(module_name: str) -> Dict[str, Any]:
    module = importlib.import_module(module_name)
    return {name: describe(getattr(module, name)) for name in NAMES}


if __name__ == "__main__":
    json.dump(record(sys.argv[1] if len(sys.argv) > 1 else "statefun"), sys.stdout, indent=1, sort_keys=True)
    print()
