"""The audit trail of a month: one small JSON file per event, never rewritten.

Finance and auditors need to see who published, approved, rejected, restated and
delivered which version of a month, when, and with which files. Object stores cannot
append to a file, so each event is its own object,
``{output}/_audit/{YYYY-MM}/{UTC timestamp}-{event}.json``, and the trail of a month is
its folder listed in name order, which is time order (the timestamp is fixed-width,
``20261103T101512123456Z``, to the microsecond).

**Never rewritten.** On a local filesystem the body is written and fsynced under a
hidden temporary name, then hard-linked to its final name, which fails if the name
exists: the file appears whole or not at all, and an existing one is never replaced.
(Where hard links are not supported, it is created with ``O_EXCL`` instead.) Object
stores have no create-exclusive write through fsspec, so there the name is checked,
then written: two writers of the same event of the same month in the same microsecond
could collide, which is acceptable for a record written by one run at a time. When the
name is taken, the time in the name moves on by a microsecond until a free one is found;
the body keeps the event's own time.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.period import parse_month
from vapi_chargeback.published import OutputRoot, StorageLocation, _locate, fsync_dir, read_folder

AUDIT_DIR = "_audit"
AUDIT_FORMAT_VERSION: Literal[1] = 1
EventName = Literal[
    "draft-published", "approved", "rejected", "correction-carried", "restated", "delivered"
]
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
MAX_NAME_ATTEMPTS = 1000
"""Microseconds a name may move on before giving up: a thousand events of one kind in
one millisecond means a loop, not a busy month."""
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


class AuditRecordError(PermanentError):
    """An audit file that cannot be read back: the trail was altered outside this code."""


class AuditEvent(BaseModel):
    """One event of a month's close, as recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = AUDIT_FORMAT_VERSION
    event: EventName
    period: str
    """``YYYY-MM``: the month the event is about."""
    at: AwareDatetime
    """When it happened, stored in UTC."""
    run_id: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)
    """The month's version the event concerns."""
    actor: str | None = None
    """Who, where known: the approver, the person who rejected or asked for a restatement."""
    reason: str | None = None
    """Why, where given: a rejection's comment, a restatement's reason."""
    files: dict[str, str] = Field(default_factory=dict)
    """Relative path → sha256 of the files the event concerns (``manifest.json`` included)."""
    details: dict[str, str] = Field(default_factory=dict)
    """Event-specific facts, e.g. ``carried_to`` and ``statement_id`` of a correction."""

    @field_validator("period")
    @classmethod
    def _month(cls, value: str) -> str:
        parse_month(value)
        return value

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("files")
    @classmethod
    def _hashes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(path for path, digest in value.items() if not _is_sha256(digest))
        if bad:
            raise ValueError(f"not a lower-case hex sha256 for {bad}")
        return value

    def to_json(self) -> bytes:
        text = json.dumps(
            self.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False
        )
        return (text + "\n").encode("utf-8")


def _is_sha256(digest: str) -> bool:
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def audit_name(at: datetime, event: str) -> str:
    """``{UTC timestamp}-{event}.json`` for an aware ``at``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; pass an aware time")
    return f"{at.astimezone(UTC).strftime(TIMESTAMP_FORMAT)}-{event}.json"


def audit_folder(period: str) -> str:
    """The month's audit folder, relative to the output root."""
    parse_month(period)
    return f"{AUDIT_DIR}/{period}"


def record_event(output_root: OutputRoot, event: AuditEvent) -> str:
    """Add ``event`` to its month's trail without touching any existing file; its URL or path."""
    location = _locate(output_root)
    body = event.to_json()
    if isinstance(location, Path):
        return _record_local(location.absolute() / audit_folder(event.period), event, body)
    return _record_remote(location, event, body)


def read_events(output_root: OutputRoot, period: str) -> list[AuditEvent]:
    """The month's trail in time order; ``[]`` when it has none."""
    folder = audit_folder(period)
    return [
        _parse(data, where, period)
        for name, where, data in read_folder(_locate(output_root), folder)
        if name.endswith(".json")
    ]


def _parse(raw: bytes, where: str, period: str) -> AuditEvent:
    try:
        event = AuditEvent.model_validate_json(raw)
    except ValidationError as error:
        raise AuditRecordError(
            f"{where}: not an audit record of this version ({error.error_count()} problem(s):"
            f" {error.errors()[0]['msg']}); the trail was altered outside vapi-chargeback:"
            " restore the file from a backup, never edit audit records"
        ) from None
    if event.period != period:
        raise AuditRecordError(
            f"{where}: records an event of {event.period} in the trail of {period}; the trail"
            " was altered outside vapi-chargeback: restore the file from a backup"
        )
    return event


def _names(event: AuditEvent) -> list[str]:
    """The file name for the event, then the same name a microsecond later, and so on."""
    step = timedelta(microseconds=1)
    return [audit_name(event.at + step * n, event.event) for n in range(MAX_NAME_ATTEMPTS)]


def _record_local(directory: Path, event: AuditEvent, body: bytes) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{uuid.uuid4().hex}.writing"
    with temporary.open("xb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        for name in _names(event):
            target = directory / name
            try:
                _create_exclusive(temporary, target, body)
            except FileExistsError:
                continue
            fsync_dir(directory)
            return str(target)
    finally:
        temporary.unlink(missing_ok=True)
    raise _no_free_name(directory, event)


def _create_exclusive(temporary: Path, target: Path, body: bytes) -> None:
    """Make ``target`` hold ``body``, or raise ``FileExistsError`` if the name is taken."""
    try:
        os.link(temporary, target)
        return
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno not in NO_HARD_LINKS:
            raise
    with target.open("xb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())


def _record_remote(location: StorageLocation, event: AuditEvent, body: bytes) -> str:
    fs = location.fs
    base = f"{location.path.rstrip('/')}/{audit_folder(event.period)}"
    for name in _names(event):
        target = f"{base}/{name}"
        if fs.exists(target):
            continue
        fs.pipe_file(target, body)
        return str(fs.unstrip_protocol(target))
    raise _no_free_name(base, event)


def _no_free_name(where: object, event: AuditEvent) -> AuditRecordError:
    return AuditRecordError(
        f"{where}: every name for a {event.event} event within {MAX_NAME_ATTEMPTS} µs of"
        f" {event.at.isoformat()} is taken; something is recording the same event in a loop"
    )
