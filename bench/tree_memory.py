"""Peak memory of a process *and its children*, sampled: what a task costs its worker when
it forks helpers (the publish step writes workbooks in forked processes).

The kernel's own peak (``VmHWM``) is per process, and adding children's RSS counts the
pages a fork shares with its parent twice. So a thread samples, every :data:`INTERVAL_S`,
the proportional set size (``Pss`` of ``/proc/<pid>/smaps_rollup``: each shared page
split between the processes that share it) of the process and every live descendant, and
keeps the largest sum. Sampling can miss a peak shorter than the interval; the report
shows this figure beside ``VmHWM``, never instead of it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

INTERVAL_S = 0.2
"""Reading ``smaps_rollup`` walks the page tables of a process (milliseconds for a 500 MiB
one), in the measured process's own thread: every 50 ms it cost the 5M month's publish step
6–10 CPU-s of system time (1 s without sampling), slowing what it measured. Memory moves
slowly against 0.2 s (a step peaks while it holds the month's data, for seconds)."""


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from every thread's ``children`` list."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found += [int(child) for child in text.split()]
    return found


def _pss_bytes(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_pss_bytes(pid: int) -> int:
    """Σ PSS of ``pid`` and all its live descendants, now; 0 while it has no children
    (its own peak is then ``VmHWM``, exact, and reading ``smaps_rollup`` of a large process
    every interval would slow what is measured)."""
    pending = _children(pid)
    if not pending:
        return 0
    total = _pss_bytes(pid)
    while pending:
        current = pending.pop()
        total += _pss_bytes(current)
        pending += _children(current)
    return total


class TreePeak:
    """Samples :func:`tree_pss_bytes` of this process in a thread while in use:
    ``with TreePeak() as peak: …`` then ``peak.bytes`` (0: no child was ever seen)."""

    def __init__(self, pid: int | None = None) -> None:
        self._pid = pid or os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-peak", daemon=True)
        self.bytes = 0

    def _sample(self) -> None:
        while True:
            self.bytes = max(self.bytes, tree_pss_bytes(self._pid))
            if self._stop.wait(INTERVAL_S):
                return

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
