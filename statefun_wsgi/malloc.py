"""Fixed glibc malloc thresholds for a serving process, so that large states cost no page faults.

A batch carrying a 1 MiB state makes several 1 MiB buffers per request (the request body, the
function's ``Unpack`` and ``Pack``, the reply). glibc's default thresholds adapt as the process
runs: the mmap threshold rises to the largest mapped block freed so far, and the trim threshold to
twice that, so a process that has freed one 1 MiB block gives every megabyte above 2 MiB of
free heap back to the kernel, and the next request faults it in again (about 1,000 minor
faults per 1 MiB-state request; ``docs/hosting.md``, "Large states", has the measurements).
Setting the thresholds with ``mallopt`` fixes them (and turns the adaptation off), as the
``MALLOC_*_`` environment variables do at start-up.

It also caps the heaps (arenas) glibc makes for threads at 2 (:data:`ARENA_MAX`). Usage, in a
gunicorn configuration file (``gunicorn.conf.py`` does this)::

    from statefun_wsgi.malloc import tune_malloc

    def post_fork(server, worker):
        tune_malloc()

or anywhere early in a serving process. Where the C library is not glibc (musl, macOS) it does
nothing and says so at debug level. A parameter whose ``MALLOC_*`` environment variable is
set is left as that variable set it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Dict, Mapping, Optional

__all__ = ["ARENA_MAX", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "glibc_version", "tune_malloc"]

logger = logging.getLogger("statefun_wsgi")

#: Blocks below this come from the heap and are reused; larger ones are mapped and unmapped each
#: time. 32 MiB is as far as glibc's own adaptation goes on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX),
#: and the most that older glibc's mallopt accepts.
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of a heap that is kept for reuse rather than handed back to the kernel.
TRIM_THRESHOLD = 64 * 1024 * 1024
#: Heaps (arenas) one process may have. glibc gives each new thread one of its own (up to 8 per
#: core), and each keeps its own free memory: a gthread worker whose threads take turns with the
#: batches would keep a copy of its working set per thread (bench/results/large-state.md). Two
#: rather than one: threads that allocate outside the GIL (native code) have a second heap to go to.
ARENA_MAX: Optional[int] = 2

# mallopt parameter numbers (<malloc.h>).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_PARAMETERS = {  # name: (mallopt parameter, environment variable glibc reads at start-up)
    "mmap_threshold": (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
    "trim_threshold": (_M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
    "top_pad": (_M_TOP_PAD, "MALLOC_TOP_PAD_"),
    "arena_max": (_M_ARENA_MAX, "MALLOC_ARENA_MAX"),
}


def glibc_version() -> Optional[str]:
    """``"2.36"`` where this process runs on glibc, else ``None``."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None
    if not version or not version.startswith("glibc "):
        return None
    return version.split(" ", 1)[1]


def tune_malloc(
    *,
    mmap_threshold: Optional[int] = MMAP_THRESHOLD,
    trim_threshold: Optional[int] = TRIM_THRESHOLD,
    top_pad: Optional[int] = None,
    arena_max: Optional[int] = ARENA_MAX,
    environ: Optional[Mapping[str, str]] = None,
) -> Dict[str, int]:
    """Set glibc's malloc thresholds in this process; return what was set (``{}`` off glibc).

    :param mmap_threshold: blocks smaller than this come from the heap (32 MiB, glibc's most).
    :param trim_threshold: free memory kept at the top of a heap (64 MiB) rather than returned.
    :param top_pad: extra memory asked of the kernel each time a heap grows (``None``: glibc's).
    :param arena_max: the most heaps (2; ``None``: glibc's, 8 per core). Each thread that
        allocates may get a heap of its own, and each heap may keep ``trim_threshold`` free.
    :param environ: where to look for ``MALLOC_*_`` variables (``os.environ`` by default): a
        parameter whose variable is set is left alone, as glibc already applied it.

    Each worker keeps up to ``trim_threshold`` of freed memory per heap for the next request;
    that is the price. Call it once per process, early (a gunicorn ``post_fork`` hook). Raises
    ``ValueError`` for a value that is not a number of bytes a C ``int`` holds, or that glibc refuses.
    """
    environ = os.environ if environ is None else environ
    wanted = {"mmap_threshold": mmap_threshold, "trim_threshold": trim_threshold,
              "top_pad": top_pad, "arena_max": arena_max}
    for name, value in wanted.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31):
            raise ValueError(f"{name} must be a number from 0 to 2**31 - 1, got {value!r}")
    version = glibc_version()
    if version is None:
        logger.debug("malloc tuning skipped: the C library is not glibc")
        return {}
    mallopt = ctypes.CDLL(None, use_errno=True).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied: Dict[str, int] = {}
    for name, value in wanted.items():
        if value is None:
            continue
        parameter, variable = _PARAMETERS[name]
        if environ.get(variable):
            logger.debug("malloc tuning: %s left as %s=%s sets it", name, variable, environ[variable])
            continue
        if mallopt(parameter, value) != 1:
            raise ValueError(f"glibc {version} refused mallopt {name}={value}")
        applied[name] = value
    logger.debug("malloc tuning (glibc %s): %s", version, applied)
    return applied
