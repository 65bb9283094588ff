"""The close on S3 through Airflow's ``ObjectStoragePath``: draft, approval, corrections,
restatement, as on a local folder but with no rename and no lock.

A real S3 HTTP server (moto's server mode) on loopback. The month's set, its kept
version, the pending corrections and the audit trail are all objects; each step is read
back through the same readers the pipeline uses, and the kept version also by a second,
independent s3fs client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from vapi_chargeback.close.audit import read_events
from vapi_chargeback.close.lifecycle import LifecycleError
from vapi_chargeback.close.publish import approve_month, publish_month
from vapi_chargeback.close.store import corrections_into, published_state
from vapi_chargeback.storage import read_published

from support.s3_server import CONN_ENV, CONN_ID, LocalS3, local_s3
from support.storage import PERIOD, small_statement

NEXT = "2026-11"
AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with local_s3() as server, pytest.MonkeyPatch.context() as env:
        env.setenv(CONN_ENV, server.connection_json())
        forget_airflow_s3_store()
        yield server
        forget_airflow_s3_store()


def forget_airflow_s3_store() -> None:
    """Airflow caches one filesystem per (protocol, conn_id) for the process's life."""
    from airflow.sdk.io import store

    for alias in ("s3", f"s3-{CONN_ID}"):
        store._STORE_CACHE.pop(alias, None)


def roots(s3: LocalS3) -> tuple[Any, Any]:
    from airflow.sdk import ObjectStoragePath

    output = ObjectStoragePath(s3.url(f"statements-{uuid.uuid4().hex[:8]}"))
    return output, output / "_runs" / PERIOD / "run-1"


def test_draft_approval_corrections_and_restatement_on_s3(s3: LocalS3) -> None:
    output, work = roots(s3)
    booked = small_statement()

    draft = publish_month(output, work, booked, run_id="run-1")
    assert (draft["action"], draft["version"]) == ("draft", 1)
    final = approve_month(
        output,
        replace(booked, status="draft"),
        approved_by="fiona.finance",
        approved_at=AT,
        run_id="run-1",
        reviewed_run_id="run-1",
    )
    assert final["status"] == "final"
    manifest = read_published(output, PERIOD)
    assert manifest is not None and manifest["approved_by"] == "fiona.finance"

    with pytest.raises(LifecycleError, match="not a draft"):
        approve_month(
            output,
            booked,
            approved_by="someone.else",
            approved_at=AT,
            run_id="run-1",
            reviewed_run_id="run-1",
        )

    assert publish_month(output, work, booked, run_id="run-2")["action"] == "unchanged"
    changed = small_statement(base="10.25")
    carried = publish_month(output, work, changed, run_id="run-3")
    assert (carried["action"], carried["carried_to"]) == ("corrections", NEXT)
    assert Decimal(carried["corrections_usd"]) == Decimal("0.50")
    assert read_published(output, PERIOD) == manifest
    (pending,) = corrections_into(output, NEXT)
    assert [line.corrects for line in pending.lines] == [
        "VAPI-2026-10-sales-v1",
        "VAPI-2026-10-support-v1",
    ]

    restated = publish_month(
        output, work, changed, run_id="run-4", restate=True, reason="re-costed calls"
    )
    assert (restated["action"], restated["version"]) == ("restated", 2)
    assert read_published(output, PERIOD, version=1) == manifest
    outside = s3.filesystem()
    reader = type("Reader", (), {"fs": outside, "protocol": "s3", "path": output.path})()
    assert read_published(reader, PERIOD, version=1) == manifest
    assert corrections_into(output, NEXT) == [], "pending corrections of v1 are withdrawn"
    state = published_state(output, PERIOD)
    assert state is not None and (state.status, state.version) == ("draft", 2)
    assert [event.event for event in read_events(output, PERIOD)] == [
        "draft-published",
        "approved",
        "correction-carried",
        "restated",
    ]
