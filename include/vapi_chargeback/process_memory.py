"""This process's memory as the Linux kernel counts it, for the steps that size their work
by it (publish's workbook workers) and the runner that reports it (mapped tasks)."""

from __future__ import annotations

from contextlib import suppress
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
