"""Shared pytest setup for the unit tests.

The request builders and reply decoders live in ``tests/builders.py``; this makes
``import builders`` work whatever pytest's import mode is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture(params=["sync", "async"])
def run_async(request: pytest.FixtureRequest) -> bool:
    """Parametrises a test over RequestReplyHandler and AsyncRequestReplyHandler."""
    return request.param == "async"
