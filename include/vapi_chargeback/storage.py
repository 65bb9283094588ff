"""Publish a month's statement set so that a reader sees all of it or none of it.

``publish_statement`` validates and renders every file into a local temporary
directory first: a bad Statement or a failing writer never touches the output. Then:

**Local filesystems** (plain paths, ``file://`` URLs, local ``UPath`` or Airflow
``ObjectStoragePath``), under an exclusive per-month lock ``{output}/.lock-{YYYY-MM}``:

1. Leftovers of a killed run are repaired, before rendering and again before staging:
   a ``.previous-{YYYY-MM}-*`` set is moved back if ``{YYYY-MM}`` is missing, stale
   ``.staging-*`` / ``.previous-*`` dirs are deleted.
2. Files are copied into the hidden sibling ``{output}/.staging-{YYYY-MM}-{uuid}``,
   ``manifest.json`` last, each fsynced.
3. The staging dir takes the place of ``{YYYY-MM}``: on Linux with one
   ``renameat2(RENAME_EXCHANGE)``, so at every instant ``{YYYY-MM}`` is the complete old
   set or the complete new set; elsewhere with two renames (old → ``.previous-…``,
   staging → ``{YYYY-MM}``), so for an instant ``{YYYY-MM}`` is absent, never partial,
   and a crash in between is repaired by step 1 of the next run. The old set is
   deleted only after the new one is in place.

A reader who ignores dot-entries therefore sees, per month, the previous complete set
until the new complete set replaces it. Two runs of one month serialise on the lock:
the last to finish wins, each set is whole.

Reading a month back, whole and verified, is :mod:`vapi_chargeback.published`: it never
mixes two sets, and once a month exists it always gets a whole set, the old or the new.

**Object storage** (``s3://`` … through fsspec; there is no rename): every file is
uploaded, then ``manifest.json``, then files of an older set that the new manifest
does not list are deleted. A month is trustworthy only when its manifest lists every
file with a matching sha256; ``read_published`` checks exactly that, so while a month
is being replaced it reads as unpublished (``None``), never as a mix. It fetches every
object with one GET rather than through the filesystem's listing cache, so a long-lived
reader sees a republished month instead of failing on stale ETags. There is no lock:
two publishers of one month at once may leave files of both, which reads as ``None``
until the next publish — never as a trusted mix.

**One month, one writer at a time.** :func:`month_lock` is the same per-month lock,
public and re-entrant within a thread, so the close (``pipeline.publish_run``,
``finalize_run``) reads a month's state, decides and publishes under it: a rerun and an
approval of one month never interleave. :func:`keep_version` copies a month's set,
whole and verified, to ``_versions/{YYYY-MM}/v{N}/`` before a restatement replaces it;
``read_published(…, version=N)`` reads it back.

**Pause points (tests only).** Crash and concurrency tests stop a publisher at
``publish:rendered``, ``publish:staging``, ``publish:staged`` and ``publish:swapped``
and kill it there, and stop a process that finds a month locked at ``lock:waiting``
before it waits: see :mod:`vapi_chargeback.pausepoints` for the protocol.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from vapi_chargeback.close.lifecycle import version_folder
from vapi_chargeback.filelock import exclusive_lock
from vapi_chargeback.pausepoints import pause_point
from vapi_chargeback.published import (
    COPY_CHUNK,
    LOCAL_PROTOCOLS,
    OutputRoot,
    PublishedSetError,
    StorageLocation,
    _locate,
    fsync_dir,
    read_published,
    read_published_file,
    write_file,
)
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.manifest import MANIFEST_NAME
from vapi_chargeback.statements.render import RenderedSet, render_statement
from vapi_chargeback.statements.render_temp import remove_stale_render_folders, render_folder
from vapi_chargeback.statements.validate import PERIOD

__all__ = [
    "LOCAL_PROTOCOLS",
    "OutputRoot",
    "PublishResult",
    "PublishedSetError",
    "StorageLocation",
    "keep_version",
    "month_lock",
    "publish_statement",
    "read_published",
    "read_published_file",
    "recover_month",
    "write_file",
]

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 600.0
LOCK_POLL_SECONDS = 0.1
AT_FDCWD = -100
RENAME_EXCHANGE = 2
EXCHANGE_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})


@dataclass(frozen=True)
class PublishResult:
    period: str
    folder: str
    """URL of the month folder ``{output}/{YYYY-MM}``."""
    manifest_url: str
    """URL of ``manifest.json``: what a downstream Asset should point at."""
    manifest_sha256: str
    files: dict[str, str]
    """Published data files, relative path → sha256."""


def publish_statement(statement: Statement, output_root: OutputRoot) -> PublishResult:
    """Validate, render and atomically publish ``statement`` under ``{output_root}/{YYYY-MM}/``."""
    location = _locate(output_root)
    if (
        isinstance(location, Path)
        and PERIOD.fullmatch(statement.period)
        and _leftovers(location, statement.period)
    ):
        with _month_lock(location, statement.period):
            _recover(location, statement.period)
    # A publisher killed with SIGKILL leaves its render folder behind: remove such leftovers.
    remove_stale_render_folders()
    with render_folder(statement.period) as scratch:
        rendered = render_statement(statement, scratch)
        pause_point("publish", "rendered")
        if isinstance(location, Path):
            month_url = _publish_local(rendered, location)
        else:
            month_url = _publish_remote(rendered, location)
    log.info(
        "published %s: %d files and %s to %s",
        rendered.period,
        len(rendered.files),
        MANIFEST_NAME,
        month_url,
    )
    return PublishResult(
        period=rendered.period,
        folder=month_url,
        manifest_url=f"{month_url}/{MANIFEST_NAME}",
        manifest_sha256=rendered.manifest_sha256,
        files={entry.path: entry.sha256 for entry in rendered.files},
    )


def keep_version(output_root: OutputRoot, period: str, version: int) -> str:
    """Copy the month's current set, whole with its manifest, to where superseded version
    ``version`` lives (``close.lifecycle.version_folder``); its URL.

    Before a restatement replaces the set: the month folder keeps the old set until the
    new one is swapped in, so at every moment one of them is there and the kept copy is
    complete before anything replaces it. Locally the copy is staged and renamed into
    place; on object storage the manifest goes last, so a half-copied version does not
    verify. A kept copy equal to the current set (a restatement interrupted after keeping
    it) is reused; a different one is never overwritten.
    """
    current = read_published(output_root, period)
    if current is None:
        raise PublishedSetError(
            f"{period} is not published or does not verify against its manifest; nothing to"
            f" keep as v{version}: restore the set from a backup before restating it"
        )
    if current.get("version", 1) != version:
        raise PublishedSetError(
            f"{period} holds v{current.get('version', 1)}, not v{version}; it changed while"
            " being restated: run the restatement again"
        )
    folder = version_folder(period, version)
    location = _locate(output_root)
    kept = read_published(output_root, period, version)
    if kept is not None:
        if kept == current:
            return _url(location, folder)
        raise PublishedSetError(
            f"{folder} already holds a different v{version} of {period}; a kept version is"
            " never overwritten: move it away only if it is not the booked one"
        )
    names = [*current["files"], MANIFEST_NAME]
    if isinstance(location, Path):
        _keep_local(location.absolute(), period, folder, names)
    else:
        fs = location.fs
        base = location.path.rstrip("/")
        for name in names:
            fs.copy(f"{base}/{period}/{name}", f"{base}/{folder}/{name}")
    if read_published(output_root, period, version) != current:
        raise PublishedSetError(
            f"{folder}: the copy of {period} v{version} does not verify; the month was not"
            " restated: check the output storage and run the restatement again"
        )
    return _url(location, folder)


def _keep_local(root: Path, period: str, folder: str, names: list[str]) -> None:
    target = root / folder
    if target.exists():
        raise PublishedSetError(
            f"{target} exists but does not verify as {period}'s set; a kept version is never"
            " overwritten: check it and move it away if it is not the booked one"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".staging-{target.name}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for name in names:
            _copy_durably(root / period / name, staging / name)
        for directory in sorted({(staging / name).parent for name in names}, reverse=True):
            fsync_dir(directory)
        os.rename(staging, target)
    except BaseException:
        _discard(staging)
        raise
    fsync_dir(target.parent)


def _url(location: Path | StorageLocation, folder: str) -> str:
    if isinstance(location, Path):
        return (location.absolute() / folder).as_uri()
    return str(location.fs.unstrip_protocol(f"{location.path.rstrip('/')}/{folder}"))


# Local filesystem: stage, then swap the directory into place.


def _publish_local(rendered: RenderedSet, root: Path) -> str:
    root = root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    period = rendered.period
    target = root / period
    with _month_lock(root, period):
        _recover(root, period)
        staging = root / f".staging-{period}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            _stage(rendered, staging)
            pause_point("publish", "staged")
            _swap_into_place(staging, target, period)
            pause_point("publish", "swapped")
        except BaseException:
            _discard(staging)
            raise
        fsync_dir(root)
    return target.as_uri()


@contextmanager
def month_lock(output_root: OutputRoot, period: str) -> Iterator[None]:
    """Hold ``period``'s lock while deciding what to do to the month and doing it.

    Publishing takes the same lock, and it is re-entrant within one thread, so a caller
    can read the month's state, decide and publish without another run or an approval
    slipping in between. On object storage there is no lock (see the module docstring):
    this does nothing there.
    """
    if not PERIOD.fullmatch(period):
        raise ValueError(f"period {period!r} is not YYYY-MM")
    location = _locate(output_root)
    if not isinstance(location, Path):
        yield
        return
    root = location.absolute()
    root.mkdir(parents=True, exist_ok=True)
    with _month_lock(root, period):
        yield


def recover_month(output_root: OutputRoot, period: str) -> None:
    """Repair what a killed publisher of ``period`` left (local storage; the caller holds
    :func:`month_lock`), so the month's state is read from its whole set."""
    location = _locate(output_root)
    if isinstance(location, Path) and _leftovers(location.absolute(), period):
        with _month_lock(location.absolute(), period):
            _recover(location.absolute(), period)


_HELD_LOCKS: ContextVar[frozenset[str]] = ContextVar("held_month_locks", default=frozenset())
"""Month locks this thread holds: ``flock`` would block on a second descriptor of the same
file even in the process holding it, so a nested acquisition must not take it again."""


@contextmanager
def _month_lock(root: Path, period: str) -> Iterator[None]:
    """Serialise everything that reads and replaces one month: publishers, approvals."""
    path = root / f".lock-{period}"
    held = _HELD_LOCKS.get()
    if str(path) in held:
        yield
        return
    if _lock_busy(path):
        log.info("%s is held by another run of %s; waiting for it", path, period)
        pause_point("lock", "waiting")
    with exclusive_lock(
        path,
        timeout=LOCK_TIMEOUT_SECONDS,
        poll=LOCK_POLL_SECONDS,
        holder=f"another publish or approval of {period}",
    ):
        token = _HELD_LOCKS.set(held | {str(path)})
        try:
            yield
        finally:
            _HELD_LOCKS.reset(token)


def _lock_busy(path: Path) -> bool:
    """Whether another holder has ``path`` right now (a probe: it may change at once)."""
    with path.open("a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _leftovers(root: Path, period: str) -> list[Path]:
    return sorted([*root.glob(f".staging-{period}-*"), *root.glob(f".previous-{period}-*")])


def _recover(root: Path, period: str) -> None:
    """Repair what a killed publisher left; safe because we hold the month's lock."""
    target = root / period
    previous = sorted(root.glob(f".previous-{period}-*"))
    if previous and not target.exists():
        log.warning("restoring %s from %s left by an interrupted publish", target, previous[0])
        os.rename(previous[0], target)
        previous = previous[1:]
    for leftover in [*sorted(root.glob(f".staging-{period}-*")), *previous]:
        log.warning("removing %s left by an interrupted publish", leftover)
        _discard(leftover)


def _stage(rendered: RenderedSet, staging: Path) -> None:
    for index, entry in enumerate(rendered.files):
        _copy_durably(rendered.directory / entry.path, staging / entry.path)
        if index == 0:
            pause_point("publish", "staging")
    _copy_durably(rendered.manifest, staging / MANIFEST_NAME)
    for directory in sorted(
        {(staging / entry.path).parent for entry in rendered.files}, reverse=True
    ):
        fsync_dir(directory)


def _copy_durably(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as reader, target.open("xb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
        writer.flush()
        os.fsync(writer.fileno())


def _swap_into_place(staging: Path, target: Path, period: str) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    if target.is_symlink() or not target.is_dir():
        raise FileExistsError(
            f"{target} exists and is not a directory; move it away and publish again"
        )
    if _exchange(staging, target):
        _discard(staging)
        return
    previous = target.parent / f".previous-{period}-{uuid.uuid4().hex}"
    os.rename(target, previous)
    os.rename(staging, target)
    _discard(previous)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two directories in one atomic step (Linux ``renameat2``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(first), None, os.fspath(second))


def _discard(path: Path) -> None:
    """Delete a staging or previous set; failing to is untidy, not wrong, so only warn."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("could not remove %s (%s); the next publish of this month retries", path, error)


# Object storage: upload everything, the manifest last.


def _publish_remote(rendered: RenderedSet, root: StorageLocation) -> str:
    fs = root.fs
    base = f"{root.path.rstrip('/')}/{rendered.period}"
    for entry in rendered.files:
        fs.put_file(os.fspath(rendered.directory / entry.path), f"{base}/{entry.path}")
    fs.put_file(os.fspath(rendered.manifest), f"{base}/{MANIFEST_NAME}")
    keep = {entry.path for entry in rendered.files} | {MANIFEST_NAME}
    prefix = str(fs._strip_protocol(base)).rstrip("/") + "/"
    for found in fs.find(base):
        relative = str(found).removeprefix(prefix)
        if relative not in keep:
            log.info("removing %s: not part of the new %s set", found, rendered.period)
            fs.rm_file(found)
    return str(fs.unstrip_protocol(base))
