"""Test-only pause points: a process stops at an exact step so that a test can kill it there.

Crash and concurrency tests must stop, say, a publisher between staging and swap, from
another process, without sleeps. With ``VAPI_CHARGEBACK_PAUSE_AT=<stage>:<point>`` and
``VAPI_CHARGEBACK_PAUSE_DIR=<folder>`` set, a process reaching
``pause_point(stage, point)`` writes ``<folder>/<stage>-<point>.paused`` (its pid, written
atomically) and waits until ``<folder>/<stage>-<point>.resume`` exists, at most
``PAUSE_TIMEOUT_SECONDS`` so that a forgotten variable cannot hang a worker for ever.
Unset, a pause point costs one ``os.environ`` lookup.

The points in use, in the order a publish reaches them (``vapi_chargeback.storage``):
``publish:rendered`` (files rendered, output untouched), ``publish:staging`` (first file
copied into the staging dir, lock held), ``publish:staged`` (whole set and manifest
staged, before the swap), ``publish:swapped`` (new set in place, old set not yet deleted);
and ``lock:waiting`` (a month's lock found held by another run, before waiting for it).

This lives apart from the code it instruments, so production modules carry only the calls.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

PAUSE_AT_ENV = "VAPI_CHARGEBACK_PAUSE_AT"
PAUSE_DIR_ENV = "VAPI_CHARGEBACK_PAUSE_DIR"
PAUSE_TIMEOUT_SECONDS = 300.0
POLL_SECONDS = 0.02


def pause_point(stage: str, point: str) -> None:
    """Wait here while ``VAPI_CHARGEBACK_PAUSE_AT`` names ``<stage>:<point>``; else return at once."""
    wanted = os.environ.get(PAUSE_AT_ENV)
    if wanted != f"{stage}:{point}":
        return
    folder = os.environ.get(PAUSE_DIR_ENV)
    if not folder:
        raise RuntimeError(
            f"{PAUSE_AT_ENV}={wanted} needs {PAUSE_DIR_ENV}, the folder to signal in"
        )
    marker = Path(folder) / f"{stage}-{point}.paused"
    marker.with_suffix(".writing").write_text(str(os.getpid()))
    os.replace(marker.with_suffix(".writing"), marker)
    resume = Path(folder) / f"{stage}-{point}.resume"
    deadline = time.monotonic() + PAUSE_TIMEOUT_SECONDS
    log.warning("paused at %s:%s until %s exists (test pause point)", stage, point, resume)
    while not resume.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{resume} did not appear within {PAUSE_TIMEOUT_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)
