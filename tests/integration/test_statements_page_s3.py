"""The statements page over ``s3://conn_id@bucket/prefix`` output, against moto's S3 server.

The page is handed the output URL the DAG writes to — the Airflow connection named in it
(``AIRFLOW_CONN_AWS_S3_TEST``: endpoint and keys) is the only way to the bucket — and must
list the month, verify it, serve its files checked against the manifest, serve the
month-to-date files, and see a month published since its last request (no stale listing).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_chargeback.airflow.page_access import Viewer
from vapi_chargeback.airflow.statements_page import Source, create_app
from vapi_chargeback.storage import publish_statement

from support.s3_server import CONN_ENV, CONN_ID, LocalS3, local_s3
from support.storage import PERIOD, small_statement

FINANCE = Viewer("fiona", "finance@example.com", frozenset(), finance=True)
NAMES = {"sales": "Sales", "support": "Support"}


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with local_s3() as server, pytest.MonkeyPatch.context() as env:
        env.setenv(CONN_ENV, server.connection_json())
        _forget_airflow_s3_store()
        yield server
        _forget_airflow_s3_store()


def _forget_airflow_s3_store() -> None:
    from airflow.sdk.io import store

    for alias in ("s3", f"s3-{CONN_ID}"):
        store._STORE_CACHE.pop(alias, None)


def get(output_url: str, url: str) -> httpx.Response:
    app = create_app(
        Path("/nonexistent"),
        authorize=lambda: None,
        source=lambda: Source(output_url, NAMES),
        viewer=lambda: FINANCE,
    )

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/") as c:
            return await c.get(url)

    return asyncio.run(request())


@dataclass(frozen=True)
class Worker:
    """The DAG's side, another process: its own s3fs, so nothing it writes touches the
    page's filesystem cache."""

    fs: Any
    path: str
    protocol: str = "s3"


def test_the_page_lists_verifies_and_serves_an_s3_month(s3: LocalS3) -> None:
    prefix = f"statements-{uuid.uuid4().hex[:8]}"
    output_url = s3.url(prefix)
    assert output_url.startswith(f"s3://{CONN_ID}@"), "the URL names the connection"
    worker = Worker(s3.filesystem(), f"{s3.bucket}/{prefix}")
    worker.fs.pipe_file(f"{worker.path}/README.txt", b"statements")
    assert f"<b>{PERIOD}</b>" not in get(output_url, "/").text, "listed before it exists"

    publish_statement(small_statement(base="10.00"), worker)
    worker.fs.pipe_file(
        f"{worker.path}/_mtd/{PERIOD}/mtd-2026-10-12.csv", b"cost_center_id,spent_usd\n"
    )

    page = get(output_url, "/")
    assert page.status_code == 200, page.text
    assert f"<b>{PERIOD}</b>" in page.text, "a month published since the last request shows"
    assert "badge ok'>OK" in page.text, "the month is verified against its manifest"
    csv_name = f"chargeback-{PERIOD}.csv"
    assert f"files/{PERIOD}/{csv_name}" in page.text

    download = get(output_url, f"/files/{PERIOD}/{csv_name}")
    assert download.status_code == 200
    manifest = json.loads(worker.fs.cat_file(f"{worker.path}/{PERIOD}/manifest.json"))
    assert hashlib.sha256(download.content).hexdigest() == manifest["files"][csv_name]["sha256"]
    mtd = get(output_url, f"/_mtd/{PERIOD}/mtd-2026-10-12.csv")
    assert mtd.status_code == 200 and mtd.content.startswith(b"cost_center_id")

    publish_statement(small_statement(base="70.00"), worker)
    again = get(output_url, f"/files/{PERIOD}/{csv_name}")
    assert again.status_code == 200 and b"70.00" in again.content
    assert again.content != download.content, "the republished month is served, not a cache"


def test_an_s3_output_without_months_shows_an_empty_page(s3: LocalS3) -> None:
    page = get(s3.url(f"empty-{uuid.uuid4().hex[:8]}"), "/")
    assert page.status_code == 200
    assert f"<b>{PERIOD}</b>" not in page.text
