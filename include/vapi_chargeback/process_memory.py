"""This process's memory as the Linux kernel counts it, for the steps that size their work
by it (publish's workbook workers) and the runner that reports it (mapped tasks); and
Python's cyclic collector held off while a step makes millions of acyclic objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_STATUS = Path("/proc/self/status")


def status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` in bytes (``VmRSS`` now, ``VmHWM`` the peak);
    0 where ``/proc`` does not say (not Linux)."""
    try:
        status = _STATUS.read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def restart_peak() -> None:
    """Restart ``VmHWM`` at the current RSS (``clear_refs`` 5), so a peak read later is of
    what ran since; nothing where the kernel does not offer it."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Cyclic garbage collection paused while many acyclic objects are made (decoded rows,
    sums, cells, groups, lines), then resumed as it was; reference counting frees them as
    usual, and anything cyclic made meanwhile is collected after.

    Each collection the allocations set off scans every live container, and at 20,000
    assistants a shard or the merge holds millions (exact sums, lines, one cost center's
    groups): the collections were half the time spent making tables.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
