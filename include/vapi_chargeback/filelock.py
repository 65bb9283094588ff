"""An exclusive lock on a local file, shared by publishing and delivery.

``flock`` rather than a lock file's mere existence: the kernel releases the lock when its
holder dies, so a task killed with SIGKILL never leaves a month locked for the next run.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path, *, timeout: float, poll: float, holder: str) -> Iterator[None]:
    """Hold ``path`` exclusively; give up after ``timeout`` seconds naming ``holder``."""
    with path.open("a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{path}: {holder} has held this lock for {timeout:.0f} s;"
                        " check for a hung task before retrying"
                    ) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
