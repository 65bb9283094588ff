"""The publisher's render folder in the worker's temp directory, and the leftovers of killed ones.

A publish renders every file into a local scratch folder before it touches the output
(``storage.publish_statement``). A publisher killed with SIGKILL runs no ``finally``: its
folder — a whole statement set, workbooks included — stays in the temp directory for
good. So each render folder carries an owner lock (``flock`` on ``.owner.lock`` inside it,
held while the folder is in use; the kernel releases it when its holder dies, however it
dies), and :func:`remove_stale_render_folders`, run before each publish, removes a folder
only when it can take that lock itself: only folders named as ours, and never one a live
publisher — in this process or another, on this worker — still holds.

A folder without a lock file is either one the previous release created (no lock) or one
whose publisher is between creating it and locking it; it is removed only once it is
older than :data:`UNLOCKED_STALE_AFTER`, which no publisher takes to lock its folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "vapi-chargeback-"
OWNER_LOCK = ".owner.lock"
_OURS = re.compile(r"^vapi-chargeback-\d{4}-\d{2}-[A-Za-z0-9_]+$")
"""``tempfile``'s names for our prefix: ``vapi-chargeback-{YYYY-MM}-{random}``."""
UNLOCKED_STALE_AFTER = 24 * 3600.0


@contextmanager
def render_folder(period: str, *, temp_dir: str | None = None) -> Iterator[Path]:
    """A fresh render folder for ``period``, owned (locked) until the block ends, then removed."""
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{period}-", dir=temp_dir))
    try:
        with (folder / OWNER_LOCK).open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_render_folders(temp_dir: str | None = None) -> list[Path]:
    """Remove the render folders of dead publishers from ``temp_dir``; return what was removed."""
    base = Path(temp_dir or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return removed
    for folder in entries:
        if not _OURS.match(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        if _remove_if_abandoned(folder):
            removed.append(folder)
    if removed:
        log.info("removed %d render folders left by killed publishers in %s", len(removed), base)
    return removed


def _remove_if_abandoned(folder: Path) -> bool:
    lock = folder / OWNER_LOCK
    try:
        descriptor = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _remove_if_old(folder)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live publisher's
        shutil.rmtree(folder, ignore_errors=True)
        return not folder.exists()
    finally:
        os.close(descriptor)


def _remove_if_old(folder: Path) -> bool:
    try:
        age = time.time() - folder.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < UNLOCKED_STALE_AFTER:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()
