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

**Object storage** (``s3://`` … through fsspec; there is no rename): every file is
uploaded, then ``manifest.json``, then files of an older set that the new manifest
does not list are deleted. A month is trustworthy only when its manifest lists every
file with a matching sha256; ``read_published`` checks exactly that, so while a month
is being replaced it reads as unpublished (``None``), never as a mix. It fetches every
object with one GET rather than through the filesystem's listing cache, so a long-lived
reader sees a republished month instead of failing on stale ETags. There is no lock:
two publishers of one month at once may leave files of both, which reads as ``None``
until the next publish — never as a trusted mix.

**Pause points (tests only).** Crash and concurrency tests must stop a publisher at an
exact step and kill it there, from another process. With
``VAPI_CHARGEBACK_PAUSE_AT=publish:<point>`` and ``VAPI_CHARGEBACK_PAUSE_DIR=<folder>``
set, a publisher reaching ``<point>`` writes ``<folder>/publish-<point>.paused`` (its pid)
and waits until ``<folder>/publish-<point>.resume`` exists. Points, in order: ``rendered``
(files rendered, output untouched), ``staging`` (first file copied into the staging dir,
lock held), ``staged`` (whole set and manifest staged, before the swap) and ``swapped``
(new set in place, old set not yet deleted). Unset, the check costs one ``os.environ``
lookup per point.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, cast

from upath import UPath

from vapi_chargeback.filelock import exclusive_lock
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
PAUSE_AT_ENV = "VAPI_CHARGEBACK_PAUSE_AT"
PAUSE_DIR_ENV = "VAPI_CHARGEBACK_PAUSE_DIR"
PAUSE_POINTS = ("rendered", "staging", "staged", "swapped")
PAUSE_TIMEOUT_SECONDS = 300.0


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
        pause_point("rendered")
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


def read_published(output_root: OutputRoot, period: str) -> dict[str, Any] | None:
    """The manifest of ``period`` when every file it lists is present with its sha256, else ``None``."""
    if not PERIOD.fullmatch(period):
        raise ValueError(f"period {period!r} is not YYYY-MM")
    location = _locate(output_root)
    if isinstance(location, Path):
        return _read_local(location / period, period)
    fs = location.fs
    base = f"{location.path.rstrip('/')}/{period}"

    def opener(relative: str) -> IO[bytes]:
        # One GET of the object as it is now. ``fs.open`` would trust the filesystem's
        # listing cache (size, ETag) and, in a long-lived reader, fail with FileExpired
        # after a republish instead of reading the new set.
        return io.BytesIO(fs.cat_file(f"{base}/{relative}"))

    return _verified(period, opener, base)


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
            pause_point("staged")
            _swap_into_place(staging, target, period)
            pause_point("swapped")
        except BaseException:
            _discard(staging)
            raise
        _fsync_dir(root)
    return target.as_uri()


def _month_lock(root: Path, period: str) -> AbstractContextManager[None]:
    """Serialise publishers of one month."""
    return exclusive_lock(
        root / f".lock-{period}",
        timeout=LOCK_TIMEOUT_SECONDS,
        poll=LOCK_POLL_SECONDS,
        holder=f"another publish of {period}",
    )


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
            pause_point("staging")
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


def pause_point(point: str) -> None:
    """Test-only: wait here while ``VAPI_CHARGEBACK_PAUSE_AT`` names ``publish:<point>``.

    Lets a test kill a publisher at an exact step (see the module docstring); a no-op
    unless the variable is set. Waits at most ``PAUSE_TIMEOUT_SECONDS``, so a forgotten
    variable cannot hang a worker for ever.
    """
    wanted = os.environ.get(PAUSE_AT_ENV)
    if wanted != f"publish:{point}":
        return
    folder = os.environ.get(PAUSE_DIR_ENV)
    if not folder:
        raise RuntimeError(
            f"{PAUSE_AT_ENV}={wanted} needs {PAUSE_DIR_ENV}, the folder to signal in"
        )
    marker = Path(folder) / f"publish-{point}.paused"
    marker.with_suffix(".writing").write_text(str(os.getpid()))
    os.replace(marker.with_suffix(".writing"), marker)
    resume = Path(folder) / f"publish-{point}.resume"
    deadline = time.monotonic() + PAUSE_TIMEOUT_SECONDS
    log.warning("paused at publish:%s until %s exists (test pause point)", point, resume)
    while not resume.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{resume} did not appear within {PAUSE_TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.02)


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
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_local(month: Path, period: str) -> dict[str, Any] | None:
    """Read through one directory descriptor, so a swap mid-read cannot mix two sets."""
    try:
        descriptor = os.open(month, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        return None
    try:

        def opener(relative: str) -> IO[bytes]:
            return os.fdopen(os.open(relative, os.O_RDONLY, dir_fd=descriptor), "rb")

        return _verified(period, opener, str(month))
    finally:
        os.close(descriptor)


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


def _verified(period: str, opener: Callable[[str], IO[bytes]], where: str) -> dict[str, Any] | None:
    try:
        with opener(MANIFEST_NAME) as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(raw)
    except ValueError as error:
        log.warning("%s/%s is not valid JSON (%s): month not trusted", where, MANIFEST_NAME, error)
        return None
    problems = _manifest_problems(manifest, period)
    if not problems:
        problems = [
            problem
            for item in manifest["files"].items()
            for problem in _file_problems(opener, *item)
        ]
    for problem in problems:
        log.warning("%s: %s: month not trusted", where, problem)
    return None if problems else cast(dict[str, Any], manifest)


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
