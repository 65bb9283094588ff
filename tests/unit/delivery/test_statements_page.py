"""The statements page's app in-process: what it lists, what it serves, what it refuses.

Authorization is swapped for "allowed" here (it is Airflow's, tested for real in
tests/browser against a running api-server), except in the test that checks a request
without credentials never reaches the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from vapi_chargeback.airflow.statements_page import Source, create_app
from vapi_chargeback.delivery import deliver_month

from support.delivery_samples import PERIOD, PREVIOUS, ScriptedSender, chargeback_config

BASE = "http://testserver/"
NAMES = {"sales": "Sales", "support": "Customer <Support>"}


class PageClient:
    """Requests straight into the ASGI app (no server, no deprecated TestClient)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def request() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                return await client.get(url, headers=headers)

        return asyncio.run(request())


def client_for(output: Path, *, authorize: Callable[..., Any] | None = None) -> PageClient:
    app = create_app(
        output.parent,
        authorize=authorize or (lambda: None),
        source=lambda: Source(output.as_uri(), NAMES),
    )
    return PageClient(app)


def links(page: str) -> list[str]:
    return re.findall(r"href='(files/[^']+)'", page)


def test_the_page_lists_months_newest_first_with_totals_and_status(output: Path) -> None:
    deliver_month(
        output,
        PERIOD,
        chargeback_config(),
        ScriptedSender(),
        from_address="chargeback@example.com",
        run_id="run-1",
    )

    page = client_for(output).get("/").text

    assert page.index(f"<b>{PERIOD}</b>") < page.index(f"<b>{PREVIOUS}</b>")
    assert "219.80" in page  # October's total (manifest totals.cost_usd)
    assert "98.5 %" in page  # allocated / total
    assert page.count("badge ok'>OK") == 2
    assert "3/3 sent" in page and "not sent" in page
    assert "Customer &lt;Support&gt;" in page and "<Support>" not in page


def test_every_link_downloads_the_published_bytes(output: Path) -> None:
    client = client_for(output)
    hrefs = set(links(client.get("/").text))
    expected = {
        f"files/{period}/{name}"
        for period in (PERIOD, PREVIOUS)
        for name in (
            f"chargeback-{period}.csv",
            f"chargeback-{period}.xlsx",
            f"cost-centers/sales-{period}.xlsx",
            f"cost-centers/support-{period}.xlsx",
            "manifest.json",
        )
    }
    assert hrefs == expected
    for href in sorted(hrefs):
        response = client.get(href)
        assert response.status_code == 200, href
        published = (output / href.removeprefix("files/")).read_bytes()
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(published).digest()
        assert response.headers["content-disposition"].startswith("attachment; filename=")
    workbook = client.get(f"files/{PERIOD}/chargeback-{PERIOD}.xlsx")
    assert workbook.headers["content-type"].endswith("spreadsheetml.sheet")


def test_a_damaged_month_is_shown_unverified_and_its_files_are_not_served(output: Path) -> None:
    workbook = output / PERIOD / f"chargeback-{PERIOD}.xlsx"
    workbook.write_bytes(b"not the published workbook")
    client = client_for(output)

    page = client.get("/").text

    assert "not verified" in page
    assert not [href for href in links(page) if href.startswith(f"files/{PERIOD}/")]
    assert client.get(f"files/{PERIOD}/chargeback-{PERIOD}.xlsx").status_code == 409
    assert client.get(f"files/{PERIOD}/manifest.json").status_code == 409


@pytest.mark.parametrize(
    "href",
    [
        f"files/{PERIOD}/not-listed.csv",
        f"files/{PERIOD}/..%2F{PREVIOUS}%2Fmanifest.json",
        f"files/_delivery/{PERIOD}.json",
        "files/2026-13/manifest.json",
    ],
    ids=["unlisted", "encoded-dot-dot", "not-a-month", "bad-month"],
)
def test_only_files_a_manifest_lists_are_served(output: Path, href: str) -> None:
    assert client_for(output).get(href).status_code == 404


def test_an_empty_output_says_so(tmp_path: Path) -> None:
    page = client_for(tmp_path / "nothing-here").get("/").text
    assert "No statements published yet" in page


def test_without_credentials_the_page_is_not_served(output: Path) -> None:
    from airflow.api_fastapi.core_api.security import requires_access_dag

    client = client_for(output, authorize=requires_access_dag("GET", param_dag_id="x"))
    response = client.get("/", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert client.get(f"files/{PERIOD}/manifest.json").status_code == 401
