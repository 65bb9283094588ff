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

``read_published`` reads one set through one directory descriptor, so it can never mix
two sets; but a publish may swap that set out and delete it while it is being read,
and then files it has not opened yet vanish. That is not damage: when the set it holds
is no longer the month's (another inode at the path, compared with ``fstat``), it reads
again from the set now in place, at most ``READ_ATTEMPTS`` times. Between the two
renames of the fallback it reads the one ``.previous-{YYYY-MM}-*`` set (the set that
was just moved aside, or that recovery would restore after a crash there). So once a
month exists, a reader always gets a whole set, the old or the new, never ``None``.

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
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, cast

from upath import UPath

from vapi_chargeback.close.lifecycle import version_folder
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.filelock import exclusive_lock
from vapi_chargeback.pausepoints import pause_point
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.manifest import FORMAT_VERSION, MANIFEST_NAME
from vapi_chargeback.statements.render import RenderedSet, render_statement
from vapi_chargeback.statements.validate import PERIOD

log = logging.getLogger(__name__)

LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
LOCK_TIMEOUT_SECONDS = 600.0
LOCK_POLL_SECONDS = 0.1
COPY_CHUNK = 1 << 20
AT_FDCWD = -100
RENAME_EXCHANGE = 2
EXCHANGE_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})
READ_ATTEMPTS = 10
"""Sets read per ``read_published``: each retry means a whole publish happened mid-read."""
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class StorageLocation(Protocol):
    """What publishing needs from a ``upath.UPath`` or Airflow ``ObjectStoragePath``."""

    @property
    def protocol(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def fs(self) -> Any: ...


OutputRoot = str | os.PathLike[str] | StorageLocation


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
    with tempfile.TemporaryDirectory(prefix=f"vapi-chargeback-{statement.period}-") as scratch:
        rendered = render_statement(statement, Path(scratch))
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


def read_published(
    output_root: OutputRoot, period: str, version: int | None = None
) -> dict[str, Any] | None:
    """The manifest of ``period`` when every file it lists is present with its sha256, else ``None``.

    ``version``: a superseded version of the month, read from where a restatement moved it
    (``close.lifecycle.version_folder``) instead of the month folder, which holds the
    current one.
    """
    if not PERIOD.fullmatch(period):
        raise ValueError(f"period {period!r} is not YYYY-MM")
    location = _locate(output_root)
    if version is not None:
        return _read_version(location, period, version)
    if isinstance(location, Path):
        return _read_local(location, period)
    fs = location.fs
    base = f"{location.path.rstrip('/')}/{period}"

    def opener(relative: str) -> IO[bytes]:
        # One GET of the object as it is now. ``fs.open`` would trust the filesystem's
        # listing cache (size, ETag) and, in a long-lived reader, fail with FileExpired
        # after a republish instead of reading the new set.
        return io.BytesIO(fs.cat_file(f"{base}/{relative}"))

    manifest, problems = _verified(period, opener)
    _log_problems(base, problems)
    return manifest


def _read_version(
    location: Path | StorageLocation, period: str, version: int
) -> dict[str, Any] | None:
    """One pass over a superseded version: it was moved there whole and is never written
    again, so no publish can swap it out mid-read. Its manifest must name that version
    (no ``version``: a set published before months had versions, version 1)."""
    folder = version_folder(period, version)
    opener: Callable[[str], IO[bytes]]
    if isinstance(location, Path):
        base = str(location / folder)

        def opener(relative: str) -> IO[bytes]:
            return (Path(base) / relative).open("rb")
    else:
        fs = location.fs
        base = f"{location.path.rstrip('/')}/{folder}"

        def opener(relative: str) -> IO[bytes]:
            return io.BytesIO(fs.cat_file(f"{base}/{relative}"))

    manifest, problems = _verified(period, opener)
    recorded = None if manifest is None else manifest.get("version", 1)
    if manifest is not None and recorded != version:
        manifest, problems = None, [f"manifest is of version {recorded!r}, not {version}"]
    _log_problems(base, problems)
    return manifest


class PublishedSetError(PermanentError):
    """A published set that is missing, does not verify, or is not the version asked for."""


def read_published_file(
    output_root: OutputRoot, period: str, relative: str, *, version: int | None = None
) -> tuple[dict[str, Any], bytes]:
    """The verified manifest of ``period`` (or of its kept ``version``) and the bytes of one
    file it lists, held to the manifest's sha256.

    For the booked lines of a final month: read under :func:`month_lock`, so no publish
    swaps the set between the two reads; a mismatch is reported, never returned.
    """
    where = f"{period}" if version is None else f"{period} v{version}"
    manifest = read_published(output_root, period, version)
    if manifest is None:
        raise PublishedSetError(
            f"{where} is not published or does not verify against its manifest (see the"
            " warnings above); restore the set from a backup before closing or restating it"
        )
    entry = manifest["files"].get(relative)
    if entry is None:
        raise PublishedSetError(f"the manifest of {where} lists no {relative}")
    folder = period if version is None else version_folder(period, version)
    location = _locate(output_root)
    if isinstance(location, Path):
        data = (location / folder / relative).read_bytes()
    else:
        data = location.fs.cat_file(f"{location.path.rstrip('/')}/{folder}/{relative}")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise PublishedSetError(
            f"{folder}/{relative} changed after {where} was verified; read it under the"
            " month's lock, or restore it from a backup"
        )
    return manifest, data


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
            _fsync_dir(directory)
        os.rename(staging, target)
    except BaseException:
        _discard(staging)
        raise
    _fsync_dir(target.parent)


def _url(location: Path | StorageLocation, folder: str) -> str:
    if isinstance(location, Path):
        return (location.absolute() / folder).as_uri()
    return str(location.fs.unstrip_protocol(f"{location.path.rstrip('/')}/{folder}"))


def _locate(output_root: OutputRoot) -> Path | StorageLocation:
    """A local ``Path`` when the root is on this machine's filesystem, else the fsspec location."""
    root: object = output_root
    if isinstance(root, str):
        if "://" not in root:
            return Path(root)
        root = UPath(root)
    if hasattr(root, "fs") and hasattr(root, "protocol") and hasattr(root, "path"):
        location = cast(StorageLocation, root)
        return Path(location.path) if location.protocol in LOCAL_PROTOCOLS else location
    if isinstance(root, os.PathLike):
        return Path(os.fspath(root))
    raise TypeError(
        f"output root {output_root!r} is not a path, a URL or a UPath/ObjectStoragePath; "
        "pass e.g. 'file:///srv/statements' or 's3://bucket/statements'"
    )


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
        _fsync_dir(root)
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
        _fsync_dir(directory)


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


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_local(root: Path, period: str) -> dict[str, Any] | None:
    """Verify one set through one directory descriptor; read again if it was swapped out meanwhile."""
    for _ in range(READ_ATTEMPTS):
        source = _current_set(root, period)
        if source is None:
            return None
        try:
            descriptor = os.open(source, os.O_RDONLY | O_DIRECTORY)
        except FileNotFoundError:
            continue  # moved between finding and opening it: look again
        try:
            manifest, problems = _verified(period, _opener_in(descriptor))
            if manifest is not None:
                return manifest
            if _still_at(descriptor, source):
                _log_problems(str(source), problems)
                return None
        finally:
            os.close(descriptor)
        log.info("%s was replaced while being read; reading the set now in its place", source)
    log.warning(
        "%s was replaced %d times while being read: treated as not published this time; "
        "read it again once its publishers have finished",
        root / period,
        READ_ATTEMPTS,
    )
    return None


def _current_set(root: Path, period: str) -> Path | None:
    """The month folder or, while the fallback swap has it moved aside, that one set."""
    month = root / period
    if month.exists():
        return month
    previous = list(root.glob(f".previous-{period}-*"))
    if len(previous) == 1:
        return previous[0]
    # None moved aside: the swap may have completed since the first look. Several: a
    # repair is pending and none of them is surely the month.
    return month if month.exists() else None


def _opener_in(descriptor: int) -> Callable[[str], IO[bytes]]:
    def opener(relative: str) -> IO[bytes]:
        return os.fdopen(os.open(relative, os.O_RDONLY, dir_fd=descriptor), "rb")

    return opener


def _still_at(descriptor: int, path: Path) -> bool:
    """Whether ``path`` is still the directory held open (an open descriptor pins its inode)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


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


# Verification shared by both kinds of storage.


def _verified(
    period: str, opener: Callable[[str], IO[bytes]]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The manifest when every file it lists matches, else why not (nothing: no manifest).

    Problems are returned, not logged: a local reader whose set was swapped out mid-read
    reads again, and its vanished files are not worth a warning.
    """
    try:
        with opener(MANIFEST_NAME) as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, []
    try:
        manifest = json.loads(raw)
    except ValueError as error:
        return None, [f"{MANIFEST_NAME} is not valid JSON ({error})"]
    problems = _manifest_problems(manifest, period)
    if not problems:
        problems = [
            problem
            for item in manifest["files"].items()
            for problem in _file_problems(opener, *item)
        ]
    return (None, problems) if problems else (cast(dict[str, Any], manifest), [])


def _log_problems(where: str, problems: list[str]) -> None:
    for problem in problems:
        log.warning("%s: %s: month not trusted", where, problem)


def _manifest_problems(manifest: object, period: str) -> list[str]:
    if not isinstance(manifest, dict):
        return [f"{MANIFEST_NAME} is not a JSON object"]
    problems = []
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(
            f"format_version {manifest.get('format_version')!r}, this reader knows {FORMAT_VERSION}"
        )
    if manifest.get("period") != period:
        problems.append(f"manifest is for period {manifest.get('period')!r}, not {period}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("manifest lists no files")
    return problems


def _file_problems(opener: Callable[[str], IO[bytes]], relative: str, entry: object) -> list[str]:
    parts = PurePosixPath(relative).parts
    if (
        not parts
        or relative.startswith("/")
        or "\\" in relative
        or any(part in ("", ".", "..") for part in parts)
    ):
        return [f"{relative!r} is not a safe relative path"]
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        return [f"{relative}: no sha256 listed"]
    digest = hashlib.sha256()
    size = 0
    try:
        with opener(relative) as handle:
            while chunk := handle.read(COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return [f"{relative} is listed but missing"]
    if digest.hexdigest() != entry["sha256"] or size != entry.get("bytes"):
        return [f"{relative} does not match its sha256/size in the manifest"]
    return []
