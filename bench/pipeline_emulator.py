"""The bench's emulator process and the ``/proc`` figures it reads, for ``bench/pipeline.py``
and ``bench/shards.py``: the emulator serves the cached calls in a process of its own, so
its memory is not the pipeline's, and its access log is the server's count of requests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

API_KEY = "bench-pipeline-key"
EMULATOR_START_TIMEOUT_S = 120.0
EMULATOR_THREADS = 1
"""DuckDB threads of the benchmark's emulator. It shares the machine's cores with the
pipeline's workers and answers their requests side by side, one per worker: a thread per
query does the same work for less (the 5M month's 117 requests, two at a time, 26.4 against
28.5 server CPU-s with a thread per core, the bodies identical)."""


def proc_status(pid: int | str, field: str) -> int | None:
    """A memory figure of ``/proc/<pid>/status`` (``VmHWM`` = peak RSS) in bytes."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter of this process, so each step gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


_RAISED_CAP = (
    "import sys, vapi_emulator.engine as engine; engine.MAX_RESULT_ROWS = int(sys.argv[1]); "
    "from vapi_emulator.cli import main; sys.exit(main(sys.argv[2:]))"
)


@dataclass
class Emulator:
    url: str
    pid: int
    log: Path
    loaded_rss: int | None = None
    peak_rss: int | None = None


@contextmanager
def emulator(
    calls: Path, log: Path, max_rows: int | None, threads: int = EMULATOR_THREADS
) -> Iterator[Emulator]:
    """``vapi-emulator serve`` in its own process (``localrun``'s launcher), logging each request."""
    from vapi_chargeback import localrun

    launcher = () if max_rows is None else (sys.executable, "-c", _RAISED_CAP, str(max_rows))
    with localrun.emulator_process(
        [calls],
        API_KEY,
        log=log,
        extra_args=["--log-level", "info", "--threads", str(threads)],
        launcher=launcher,
        start_timeout=EMULATOR_START_TIMEOUT_S,
    ) as process:
        running = Emulator(process.url, process.pid, log)
        running.loaded_rss = proc_status(process.pid, "VmRSS")
        try:
            yield running
        finally:
            running.peak_rss = proc_status(process.pid, "VmHWM")


ANALYTICS_ROUTE = "POST /analytics"
ASSISTANTS_ROUTE = "GET /assistant"
ROUTES = (ANALYTICS_ROUTE, ASSISTANTS_ROUTE)
"""What the pipeline asks the API: the plan's batches, and the assistants' names."""


def requests_logged(log: Path) -> dict[str, int]:
    """Access-log lines per route of :data:`ROUTES`: the server's own counts."""
    lines = log.read_text(errors="replace").splitlines()
    return {
        route: sum(f'"{route} ' in line or f'"{route}?' in line for line in lines)
        for route in ROUTES
    }
