"""Audit trail: one file per event, never rewritten, read back in time order."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from upath import UPath

from vapi_chargeback.close.audit import (
    AuditEvent,
    AuditRecordError,
    audit_name,
    read_events,
    record_event,
)

OCTOBER = "2026-10"
AT = datetime(2026, 11, 3, 10, 15, 12, 123456, tzinfo=UTC)
SHA = "a" * 64


def event(name: str = "approved", at: datetime = AT, **fields: Any) -> AuditEvent:
    return AuditEvent.model_validate(
        {"event": name, "period": OCTOBER, "at": at, "run_id": "run-1", **fields}
    )


def test_an_event_is_one_json_file_named_by_utc_time_and_event(tmp_path: Path) -> None:
    recorded = event(
        "draft-published",
        version=1,
        files={"manifest.json": SHA},
    )

    written = Path(record_event(tmp_path, recorded))

    assert written == tmp_path / "_audit/2026-10/20261103T101512123456Z-draft-published.json"
    assert written.read_bytes() == recorded.to_json()
    assert read_events(tmp_path, OCTOBER) == [recorded]
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]


def test_events_read_back_in_time_order_with_who_why_and_hashes(tmp_path: Path) -> None:
    trail = [
        event("draft-published", AT, version=1, files={"manifest.json": SHA}),
        event("rejected", AT + timedelta(hours=1), actor="fiona", reason="fee missing"),
        event("restated", AT + timedelta(days=1), actor="fiona", reason="fee added", version=2),
        event("approved", AT + timedelta(days=2), actor="fiona", version=2),
        event("delivered", AT + timedelta(days=2, seconds=5), files={"a.xlsx": "b" * 64}),
        event(
            "correction-carried",
            AT + timedelta(days=30),
            details={"carried_to": "2026-11", "statement_id": "VAPI-2026-10-ORG-v2"},
        ),
    ]
    for item in reversed(trail):
        record_event(tmp_path, item)

    assert read_events(tmp_path, OCTOBER) == trail
    assert read_events(tmp_path, "2026-09") == []


def test_a_time_in_another_zone_is_stored_and_named_in_utc(tmp_path: Path) -> None:
    local = AT.astimezone(ZoneInfo("Europe/Berlin"))

    written = Path(record_event(tmp_path, event(at=local)))

    assert written.name == "20261103T101512123456Z-approved.json"
    assert read_events(tmp_path, OCTOBER)[0].at.utcoffset() == timedelta(0)


def test_an_existing_record_is_never_rewritten(tmp_path: Path) -> None:
    folder = tmp_path / "_audit" / OCTOBER
    folder.mkdir(parents=True)
    taken = folder / audit_name(AT, "approved")
    original = event(actor="first").to_json()
    taken.write_bytes(original)

    written = Path(record_event(tmp_path, event(actor="second")))

    assert taken.read_bytes() == original
    assert written.name == "20261103T101512123457Z-approved.json"
    assert [e.actor for e in read_events(tmp_path, OCTOBER)] == ["first", "second"]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_two_writers_of_one_name_at_the_same_moment_both_keep_their_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writer is held after writing its body, before claiming the name; the
    second claims the name meanwhile. The first must then take the next name, not
    replace the second's record."""
    real_link = os.link
    first_ready, second_done = threading.Event(), threading.Event()

    def link(source: Any, target: Any) -> None:
        if threading.current_thread().name == "first":
            first_ready.set()
            assert second_done.wait(10)
        real_link(source, target)

    monkeypatch.setattr(os, "link", link)
    results: dict[str, str] = {}

    def write(actor: str) -> Callable[[], None]:
        return lambda: results.__setitem__(actor, record_event(tmp_path, event(actor=actor)))

    first = threading.Thread(target=write("first"), name="first")
    first.start()
    assert first_ready.wait(10)
    write("second")()
    second_done.set()
    first.join(10)

    assert Path(results["second"]).name == "20261103T101512123456Z-approved.json"
    assert Path(results["first"]).name == "20261103T101512123457Z-approved.json"
    assert {e.actor for e in read_events(tmp_path, OCTOBER)} == {"first", "second"}


def test_without_hard_links_the_name_is_still_created_exclusively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: Any, target: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    record_event(tmp_path, event(actor="first"))
    record_event(tmp_path, event(actor="second"))

    assert [e.actor for e in read_events(tmp_path, OCTOBER)] == ["first", "second"]


def test_object_storage_records_and_reads_the_same_trail() -> None:
    root = UPath(f"memory://audit-test-{os.getpid()}/statements")
    try:
        first = record_event(root, event(actor="first"))
        second = record_event(root, event(actor="second"))
        record_event(root, event("delivered", AT + timedelta(minutes=1)))

        assert first.endswith("/statements/_audit/2026-10/20261103T101512123456Z-approved.json")
        assert second.endswith("20261103T101512123457Z-approved.json")
        assert [e.actor for e in read_events(root, OCTOBER)] == ["first", "second", None]
        assert read_events(root, "2026-09") == []
    finally:
        root.fs.rm(root.path, recursive=True)


def test_a_record_altered_by_hand_stops_the_reader_and_names_the_file(tmp_path: Path) -> None:
    record_event(tmp_path, event())
    bad = tmp_path / "_audit" / OCTOBER / "20261104T000000000000Z-approved.json"
    bad.write_text('{"event": "approved"}')
    (tmp_path / "_audit" / OCTOBER / ".abc.writing").write_text("half")

    with pytest.raises(AuditRecordError, match=str(bad)):
        read_events(tmp_path, OCTOBER)


def test_a_record_of_another_month_in_the_trail_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "_audit" / OCTOBER
    folder.mkdir(parents=True)
    other = event().model_copy(update={"period": "2026-09"})
    (folder / audit_name(AT, "approved")).write_bytes(other.to_json())

    with pytest.raises(AuditRecordError, match="event of 2026-09 in the trail of 2026-10"):
        read_events(tmp_path, OCTOBER)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"event": "booked"}, id="unknown-event"),
        pytest.param({"period": "2026-13"}, id="bad-period"),
        pytest.param({"at": datetime(2026, 11, 3)}, id="naive-time"),
        pytest.param({"files": {"manifest.json": "not-a-hash"}}, id="bad-hash"),
        pytest.param({"run_id": ""}, id="no-run"),
        pytest.param({"surprise": 1}, id="unknown-field"),
    ],
)
def test_malformed_events_are_refused_before_writing(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        event(**fields)
