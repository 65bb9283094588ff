"""Read a published month back: whole, verified against its manifest, or not at all.

A set is trustworthy only when its manifest lists every file with a matching sha256
(and size); :func:`read_published` returns that manifest, else ``None``, and
:func:`read_published_file` one verified file of it. Publishing is
:mod:`vapi_chargeback.storage`'s job; its docstring describes the protocol both sides keep.

``read_published`` reads one set through one directory descriptor, so it can never mix
two sets; but a publish may swap that set out and delete it while it is being read,
and then files it has not opened yet vanish. That is not damage: when the set it holds
is no longer the month's (another inode at the path, compared with ``fstat``), it reads
again from the set now in place, at most ``READ_ATTEMPTS`` times. Between the two
renames of the fallback it reads the one ``.previous-{YYYY-MM}-*`` set (the set that
was just moved aside, or that recovery would restore after a crash there). So once a
month exists, a reader always gets a whole set, the old or the new, never ``None``.

On object storage every object is fetched with one GET rather than through the
filesystem's listing cache, so a long-lived reader sees a republished month instead of
failing on stale ETags; a month being replaced there reads as ``None``, never as a mix.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, cast

from upath import UPath

from vapi_chargeback.close.lifecycle import version_folder
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.statements.manifest import FORMAT_VERSION, MANIFEST_NAME
from vapi_chargeback.statements.validate import PERIOD

log = logging.getLogger(__name__)

LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
COPY_CHUNK = 1 << 20
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


# Local filesystem: one set through one directory descriptor.


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


def write_file(output_root: OutputRoot, relative: str, data: bytes) -> str:
    """Write one file under the output so a reader sees the old file or the new one, whole;
    its sha256. For files outside the month sets (``_mtd/`` figures, carried corrections).

    Local: a temporary sibling, fsynced, renamed over the target, the folder fsynced. Object
    storage: one PUT, which replaces an object atomically.
    """
    location = _locate(output_root)
    if not isinstance(location, Path):
        location.fs.pipe_file(f"{location.path.rstrip('/')}/{relative}", data)
        return hashlib.sha256(data).hexdigest()
    target = location.absolute() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.writing"
    try:
        with temporary.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        fsync_dir(target.parent)
    finally:
        temporary.unlink(missing_ok=True)
    return hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable, not only the files' bytes."""
    descriptor = os.open(path, os.O_RDONLY | O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_folder(location: Path | StorageLocation, folder: str) -> list[tuple[str, str, bytes]]:
    """(name, where, bytes) of the visible files directly in ``folder``, by name; ``[]`` if absent.

    Small bookkeeping folders (corrections, the audit trail) are read whole, one GET per
    object on object storage, like ``read_published``.
    """
    if isinstance(location, Path):
        directory = location / folder
        if not directory.is_dir():
            return []
        return [
            (path.name, str(path), path.read_bytes())
            for path in sorted(directory.iterdir())
            if path.is_file() and not path.name.startswith(".")
        ]
    fs = location.fs
    base = f"{location.path.rstrip('/')}/{folder}"
    if not fs.exists(base):
        return []
    names = sorted(str(item).rsplit("/", 1)[-1] for item in fs.ls(base, detail=False))
    return [
        (name, str(fs.unstrip_protocol(f"{base}/{name}")), bytes(fs.cat_file(f"{base}/{name}")))
        for name in names
        if not name.startswith(".")
    ]
