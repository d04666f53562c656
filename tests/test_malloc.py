"""Tests for statefun_wsgi.malloc and gunicorn.conf.py's post_fork hook: glibc's malloc
thresholds fixed in each real gunicorn worker, or left alone when the settings say so.

What a worker's heap does is observed, not assumed: ``tests/malloc_probe_app.py`` holds six
1 MiB blocks, frees them, and counts the page faults its request thread took, round after
round. Thresholds fixed: the memory is kept, and the rounds after the first take no faults.
Left adaptive: every round hands the memory back and faults it in again (a trimmed 1 MiB is
256 faults). The cap on heaps is read from glibc's ``malloc_info`` after six threads allocated.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import pytest
from servers import gunicorn

from statefun_wsgi.malloc import ARENA_MAX, MMAP_THRESHOLD, TRIM_THRESHOLD, glibc_version, tune_malloc

pytestmark = pytest.mark.skipif(glibc_version() is None, reason="the C library is not glibc")

MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")
#: One trimmed and re-faulted 1 MiB block; a round that kept its memory takes a handful at most.
MIB_OF_FAULTS = 256


@pytest.fixture(autouse=True)
def clean_environment() -> None:
    inherited = [name for name in (*MALLOC_VARIABLES, "STATEFUN_TUNE_MALLOC") if name in os.environ]
    if inherited:
        pytest.skip(f"{', '.join(inherited)} set in the test environment: the workers would inherit it")


def probe(env: Dict[str, str], path: str = "/") -> Any:
    """The probe's answer (for ``/``, its fault counts per round) from a fresh gthread worker of
    gunicorn.conf.py."""
    with gunicorn("tests.malloc_probe_app:app", "-c", "gunicorn.conf.py", "--workers", "1",
                  env={"STATEFUN_ACCESS_LOG": "off", **env}, ready_path="/nothing") as server:
        connection = server.connection(timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200
            answer = json.loads(response.read())
            return answer["faults"] if path == "/" else answer
        finally:
            connection.close()


@pytest.mark.parametrize("setting", [None, "1", "on"])
def test_the_recommended_configuration_fixes_the_thresholds_in_each_worker(setting: str) -> None:
    env = {} if setting is None else {"STATEFUN_TUNE_MALLOC": setting}
    faults = probe(env)
    assert max(faults[2:]) < MIB_OF_FAULTS // 4, faults  # the heap kept the blocks: no faults


@pytest.mark.parametrize("setting", ["0", "off", "False"])
def test_off_leaves_glibcs_adaptive_thresholds(setting: str) -> None:
    faults = probe({"STATEFUN_TUNE_MALLOC": setting})
    assert min(faults[2:]) >= 4 * MIB_OF_FAULTS, faults  # ~5 MiB handed back and faulted in, every round


def test_a_threshold_set_in_the_environment_wins() -> None:
    # glibc applied MALLOC_TRIM_THRESHOLD_ at start-up; post_fork sets the mmap threshold only,
    # so a small trim threshold still hands the memory back each round.
    # (How much goes back depends on which of the 2 heaps the request's thread got: measured
    # 1,504 faults a round on one, 173 on the other; kept memory takes none.)
    faults = probe({"MALLOC_TRIM_THRESHOLD_": str(128 * 1024)})
    assert min(faults[2:]) >= MIB_OF_FAULTS // 2, faults


@pytest.mark.parametrize(("env", "most", "least"), [
    pytest.param({}, ARENA_MAX, 1, id="on"),
    pytest.param({"MALLOC_ARENA_MAX": "3"}, 3, 3, id="environment-wins"),
    pytest.param({"STATEFUN_TUNE_MALLOC": "0"}, None, 4, id="off"),
])
def test_the_heaps_of_a_workers_threads_are_capped(env: Dict[str, str], most: Any, least: int) -> None:
    heaps = probe(env, "/heaps")["heaps"]  # after 6 threads allocated at once
    assert least <= heaps <= (most or 1000), heaps


def test_a_wrong_setting_stops_the_server() -> None:
    with pytest.raises(RuntimeError, match="STATEFUN_TUNE_MALLOC='maybe': expected on or off"):
        probe({"STATEFUN_TUNE_MALLOC": "maybe"})


# -- tune_malloc itself, in this process ---------------------------------------------------------


def test_tune_malloc_returns_what_it_set() -> None:
    assert tune_malloc(environ={}) == {
        "mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD, "arena_max": ARENA_MAX,
    }
    assert tune_malloc(mmap_threshold=None, trim_threshold=None, arena_max=None, environ={}) == {}


def test_tune_malloc_leaves_a_parameter_its_variable_set() -> None:
    applied = tune_malloc(environ={"MALLOC_MMAP_THRESHOLD_": "1048576"})
    assert applied == {"trim_threshold": TRIM_THRESHOLD, "arena_max": ARENA_MAX}


@pytest.mark.parametrize("value", [2**31, -1, 1.5, True, "32MiB"])
def test_a_value_no_c_int_holds_is_an_error(value: object) -> None:
    with pytest.raises(ValueError, match=r"^trim_threshold must be a number from 0 to 2\*\*31 - 1, got "):
        tune_malloc(trim_threshold=value, environ={})  # type: ignore[arg-type]
