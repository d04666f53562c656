"""statefun_wsgi.v3 against the official StateFun 3.3 Python SDK's public API.

tests/data/v3/official_api.json was recorded from apache-flink-statefun 3.3.0 (its own
virtualenv; see tests/data/v3/record_official_api.py) by the same ``describe`` this test
applies to statefun_wsgi.v3: every official name must be here, of the same kind, with
every official member, and each callable with the official parameters (names, kinds,
defaults). Members we add (the registry's ``for_type``, ``typenames``) are allowed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Dict

import pytest

import statefun_wsgi.v3

DATA = Path(__file__).resolve().parent / "data" / "v3"
_spec = importlib.util.spec_from_file_location("record_official_api", DATA / "record_official_api.py")
assert _spec is not None and _spec.loader is not None
recorder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recorder)

OFFICIAL: Dict[str, Any] = json.loads((DATA / "official_api.json").read_text())
OURS: Dict[str, Any] = recorder.record("statefun_wsgi.v3")


def test_every_official_name_is_exported() -> None:
    assert sorted(OFFICIAL) == sorted(recorder.NAMES)
    assert set(OFFICIAL) <= set(statefun_wsgi.v3.__all__)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_same_kind_members_and_signatures(name: str) -> None:
    official, ours = OFFICIAL[name], OURS[name]
    assert ours["kind"] == official["kind"]
    if official["kind"] == "function":
        assert ours["parameters"] == official["parameters"]
        return
    key = "members" if official["kind"] == "class" else "class_members"
    for member, description in official[key].items():
        assert member in ours[key], f"{name}.{member} is missing"
        assert ours[key][member] == description, f"{name}.{member} differs"
    if official["kind"] == "instance":
        assert ours["typename"] == official["typename"]


def test_the_test_can_fail() -> None:
    changed = json.loads(json.dumps(OFFICIAL["Context"]))
    changed["members"]["send_after"][-1][2] = "None"
    assert changed["members"]["send_after"] != OURS["Context"]["members"]["send_after"]
