"""The statements page's app in-process: what it lists, what it serves, what it refuses.

Authorization is swapped for "allowed" here (it is Airflow's, tested for real in
tests/browser against a running api-server), except in the test that checks a request
without credentials never reaches the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from vapi_chargeback.airflow.page_access import Viewer
from vapi_chargeback.airflow.statements_page import Source, create_app
from vapi_chargeback.close.audit import AuditEvent, record_event
from vapi_chargeback.close.lifecycle import version_folder
from vapi_chargeback.delivery import deliver_month

from support.delivery_samples import (
    PERIOD,
    PREVIOUS,
    ScriptedSender,
    chargeback_config,
    publish_month,
)

BASE = "http://testserver/"
NAMES = {"sales": "Sales", "support": "Customer <Support>"}
FINANCE = Viewer("fiona", "finance@example.com", frozenset(), finance=True)
"""Who owners see what is tests/unit/delivery/test_page_access.py's."""


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
        viewer=lambda: FINANCE,
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
            f"focus-{period}.csv",
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


# --- Where each month stands in its close ------------------------------------------------

EARLIEST = "2026-08"
LIFECYCLE_FIELDS = (
    "status",
    "version",
    "statement_ids",
    "approved_by",
    "approved_at",
    "approved_run_id",
    "restatement_reason",
    "invoice",
)
HOSTILE = "<script>alert('x')</script><img src=x onerror=\"alert(1)\"> & '-- ✓"
INVOICE = {
    "id": "INV-2026-10-001",
    "amount_usd": "222.97",
    "usage_usd": "219.80",
    "difference_usd": "3.17",
    "tolerance_pct": "2",
    "approvable": True,
    "message": "invoice INV-2026-10-001 is 222.97 USD and the statement's Vapi usage is …",
}


def set_lifecycle(folder: Path, **fields: Any) -> None:
    """Give a published set's manifest these lifecycle fields and no others (the manifest
    itself is not hashed, so the set still verifies)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    for name in LIFECYCLE_FIELDS:
        manifest.pop(name, None)
    manifest.update(fields)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def ids(period: str, version: int) -> dict[str, Any]:
    return {
        "org": f"VAPI-{period}-ORG-v{version}",
        "cost_centers": {c: f"VAPI-{period}-{c}-v{version}" for c in ("sales", "support")},
    }


def event(name: str, at: str, version: int, **fields: Any) -> AuditEvent:
    return AuditEvent(
        event=name, period=PERIOD, at=datetime.fromisoformat(at), version=version, **fields
    )


@pytest.fixture
def closed(output: Path, tmp_path: Path) -> Path:
    """August published before months had a lifecycle; September a draft v1; October final
    v2 (a restatement), v1 kept under ``_versions``, with an audit trail."""
    publish_month(output, EARLIEST, scale=3)
    set_lifecycle(output / EARLIEST)
    set_lifecycle(
        output / PREVIOUS, status="draft", version=1, statement_ids=ids(PREVIOUS, 1), invoice=None
    )
    elsewhere = tmp_path / "v1"
    publish_month(elsewhere, PERIOD, scale=1)
    v1 = output / version_folder(PERIOD, 1)
    v1.parent.mkdir(parents=True)
    (elsewhere / PERIOD).rename(v1)
    set_lifecycle(
        v1,
        status="final",
        version=1,
        statement_ids=ids(PERIOD, 1),
        approved_by="carol",
        approved_at="2026-11-02T08:00:00+00:00",
        approved_run_id="review-1",
        invoice=None,
    )
    set_lifecycle(
        output / PERIOD,
        status="final",
        version=2,
        statement_ids=ids(PERIOD, 2),
        approved_by="dana",
        approved_at="2026-11-20T09:30:15+01:00",
        approved_run_id="review-2",
        restatement_reason="late calls of 30 October (FIN-42)",
        invoice=INVOICE,
    )
    for recorded in (
        event("draft-published", "2026-11-01T06:00:00+00:00", 1, run_id="run-1"),
        event(
            "rejected",
            "2026-11-01T10:00:00+00:00",
            1,
            run_id="review-0",
            actor="erin",
            reason="sales total looks low",
        ),
        event("draft-published", "2026-11-01T12:00:00+00:00", 1, run_id="run-2"),
        event("approved", "2026-11-02T08:00:00+00:00", 1, run_id="review-1", actor="carol"),
        event(
            "restated",
            "2026-11-19T16:00:00+00:00",
            2,
            run_id="run-3",
            actor="dana",
            reason="late calls of 30 October (FIN-42)",
        ),
        event("approved", "2026-11-20T08:30:15+00:00", 2, run_id="review-2", actor="dana"),
        event("delivered", "2026-11-20T08:31:00+00:00", 2, run_id="run-3", details={"sent": "3/3"}),
    ):
        record_event(output, recorded)
    return output


def section(page: str, period: str) -> str:
    """The month's details section."""
    start = page.index(f"<details id='m-{period}'")
    return page[start : page.index("</details>", start)]


def row(page: str, period: str) -> str:
    start = page.index(f"<b>{period}</b>")
    return page[start : page.index("</tr>", start)]


def test_each_month_shows_its_status_version_statement_id_and_approver(closed: Path) -> None:
    page = client_for(closed).get("/").text

    assert "badge ok'>final</span> v2" in row(page, PERIOD)
    assert "badge warn'>draft</span> v1" in row(page, PREVIOUS)
    assert "badge warn'>draft</span> v1" in row(page, EARLIEST), "no status: a draft v1"
    october = section(page, PERIOD)
    assert "<code>VAPI-2026-10-ORG-v2</code>" in october
    assert "<code>VAPI-2026-10-sales-v2</code>" in october
    assert "approved by <b>dana</b> at 2026-11-20 08:30:15 UTC" in october
    assert "run <code>review-2</code>" in october
    assert "late calls of 30 October (FIN-42)" in october
    september = section(page, PREVIOUS)
    assert "<code>VAPI-2026-09-ORG-v1</code>" in september
    assert "not approved yet" in september and "approved by" not in september
    august = section(page, EARLIEST)
    assert "Statement id</th><td>none recorded" in august
    assert "not approved yet" in august


def test_the_invoice_tie_out_or_its_absence_is_shown(closed: Path) -> None:
    page = client_for(closed).get("/").text

    october = section(page, PERIOD)
    assert "badge ok'>tied</span> invoice <code>INV-2026-10-001</code> 222.97 USD" in october
    assert "difference 3.17 USD" in october
    for period in (PREVIOUS, EARLIEST):
        assert "not tied to an invoice" in section(page, period)
    assert "not tied to an invoice" not in october


def test_an_invoice_beyond_tolerance_says_the_month_cannot_be_approved(closed: Path) -> None:
    refused = {
        **INVOICE,
        "approvable": False,
        "message": "2026-09 cannot be approved: invoice INV-9 is 230.00 USD …",
    }
    set_lifecycle(closed / PREVIOUS, status="draft", version=1, invoice=refused)

    september = section(client_for(closed).get("/").text, PREVIOUS)

    assert "badge bad'>cannot be approved</span>" in september
    assert "2026-09 cannot be approved: invoice INV-9 is 230.00 USD" in september


def test_the_audit_trail_lists_each_event_in_time_order(closed: Path) -> None:
    october = section(client_for(closed).get("/").text, PERIOD)

    trail = october[october.index("Audit trail") :]
    cells = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(v\d)</td><td>([^<]*)</td>", trail)
    assert cells == [
        ("2026-11-01 06:00:00 UTC", "draft-published", "v1", ""),
        ("2026-11-01 10:00:00 UTC", "rejected", "v1", "erin"),
        ("2026-11-01 12:00:00 UTC", "draft-published", "v1", ""),
        ("2026-11-02 08:00:00 UTC", "approved", "v1", "carol"),
        ("2026-11-19 16:00:00 UTC", "restated", "v2", "dana"),
        ("2026-11-20 08:30:15 UTC", "approved", "v2", "dana"),
        ("2026-11-20 08:31:00 UTC", "delivered", "v2", ""),
    ]
    assert "<td>sales total looks low</td><td><code>review-0</code>" in trail
    assert "<code>sent: 3/3</code>" in trail
    assert "no entries recorded" in section(client_for(closed).get("/").text, PREVIOUS)


def test_hostile_free_text_is_escaped_everywhere(closed: Path) -> None:
    record_event(
        closed,
        event(
            "rejected",
            "2026-11-21T10:00:00+00:00",
            2,
            run_id=HOSTILE,
            actor=HOSTILE,
            reason=HOSTILE,
            details={HOSTILE: HOSTILE},
        ),
    )
    set_lifecycle(
        closed / PREVIOUS,
        status="draft",
        version=1,
        statement_ids={"org": HOSTILE},
        restatement_reason=HOSTILE,
        invoice={**INVOICE, "id": HOSTILE, "message": HOSTILE},
    )

    page = client_for(closed).get("/").text

    escaped = html.escape(HOSTILE)
    assert page.count(escaped) >= 8  # actor, reason, run, detail key and value; id, reason, invoice
    for raw in ("<script", "<img", 'onerror="'):
        assert raw not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_earlier_versions_are_listed_and_their_files_download_verified(closed: Path) -> None:
    client = client_for(closed)
    october = section(client.get("/").text, PERIOD)
    earlier = october[october.index("Earlier versions") : october.index("Audit trail")]

    assert "badge ok'>final</span> v1 <code>VAPI-2026-10-ORG-v1</code>" in earlier
    assert "approved by carol at 2026-11-02 08:00:00 UTC" in earlier
    hrefs = set(re.findall(r"href='(versions/[^']+)'", october))
    v1 = closed / version_folder(PERIOD, 1)
    listed = json.loads((v1 / "manifest.json").read_text())["files"]
    assert hrefs == {f"versions/{PERIOD}/v1/{path}" for path in [*listed, "manifest.json"]}
    assert not re.findall(r"href='versions/", section(client.get("/").text, PREVIOUS))
    for href in sorted(hrefs):
        response = client.get(href)
        assert response.status_code == 200, href
        relative = href.removeprefix(f"versions/{PERIOD}/v1/")
        assert response.content == (v1 / relative).read_bytes()
    csv_name = f"chargeback-{PERIOD}.csv"
    assert (v1 / csv_name).read_bytes() != (closed / PERIOD / csv_name).read_bytes()


def test_a_damaged_earlier_version_is_shown_unverified_and_not_served(closed: Path) -> None:
    v1 = closed / version_folder(PERIOD, 1)
    (v1 / f"chargeback-{PERIOD}.csv").write_text("period\n")
    client = client_for(closed)

    october = section(client.get("/").text, PERIOD)

    assert "v1 <span class='badge bad'>not verified</span>" in october
    assert not re.findall(r"href='versions/", october)
    for name in (f"chargeback-{PERIOD}.xlsx", "manifest.json"):
        assert client.get(f"versions/{PERIOD}/v1/{name}").status_code == 404


@pytest.mark.parametrize(
    "href",
    [
        f"versions/{PERIOD}/v1/not-listed.csv",
        f"versions/{PERIOD}/v1/..%2F..%2F..%2F{PERIOD}%2Fmanifest.json",
        f"versions/{PERIOD}/v2/manifest.json",
        f"versions/{PERIOD}/1/manifest.json",
        f"versions/{PERIOD}/v0/manifest.json",
        "versions/_versions/v1/manifest.json",
    ],
    ids=["unlisted", "encoded-dot-dot", "no-such-version", "not-vN", "v0", "not-a-month"],
)
def test_only_files_a_version_manifest_lists_are_served(closed: Path, href: str) -> None:
    assert client_for(closed).get(href).status_code == 404


def test_an_altered_audit_trail_is_reported_not_hidden(closed: Path) -> None:
    (closed / "_audit" / PERIOD / "20261121T000000000000Z-approved.json").write_text("{}")
    set_lifecycle(closed / PREVIOUS, status="booked")

    page = client_for(closed).get("/").text

    october = section(page, PERIOD)
    assert "badge bad'>unreadable</span> audit trail unreadable:" in october
    assert "restore the file from a backup" in october
    assert "badge ok'>final</span> v2" in row(page, PERIOD), "the month itself still shows"
    assert "badge bad'>unknown</span>" in row(page, PREVIOUS)
    assert "lifecycle fields unreadable" in section(page, PREVIOUS)
