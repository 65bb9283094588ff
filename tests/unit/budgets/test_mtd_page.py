"""The statements page's month-to-date section: the latest figures, a budget bar per cost
center, the month's alerts, and the _mtd files offered for download (nothing else)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import httpx
import pytest

from vapi_chargeback.airflow.page_access import Viewer
from vapi_chargeback.airflow.statements_page import Source, create_app
from vapi_chargeback.budgets.alerts import send_alerts

from support.mtd_samples import CENTERS, RecordingSender, center, config, on_day, report

BASE = "http://testserver/"


def get(output: Path, url: str) -> httpx.Response:
    finance = Viewer("fiona", None, frozenset(), finance=True)
    app = create_app(
        output.parent,
        source=lambda: Source(output.as_uri(), {}),
        viewer=lambda: finance,
    )

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.get(url)

    return asyncio.run(request())


def publish(output: Path, mtd) -> None:  # type: ignore[no-untyped-def]
    path = output / mtd.relative_json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mtd.to_json())
    (output / mtd.relative_csv).write_text("period,cost_center_id\n")


def row(page: str, center_id: str) -> str:
    found = re.search(rf"<tr><td>[^<]*</td><td><code>{center_id}</code>.*?</tr>", page)
    assert found, center_id
    return found.group(0)


@pytest.fixture
def output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "output"
    monkeypatch.setitem(CENTERS, "support", ("Customer <Support>", "support-lead@example.com"))
    older = report(center("support", "100.00"), day=28, total_days=30)
    publish(root, replace(older, period="2026-09", through_day=date(2026, 9, 28)))
    publish(root, on_day(report(center("support", "500.00")), 9))
    today = report(
        center("support", "880.00", forecast="2456.00"),
        center("sales", "5400.00", forecast="9000.00"),
        center("ops", "75.00"),
    )
    send_alerts(root, today, config(), RecordingSender(), from_address="c@example.com", run_id="r")
    publish(root, today)
    return root


def test_the_latest_day_is_shown_with_a_bar_per_budget(output: Path) -> None:
    page = get(output, "/").text

    assert "Month to date: 2026-10" in page
    assert "Through Saturday 10 October 2026 (Europe/Berlin), day 10 of 31" in page
    assert page.index("Month to date") < page.index("<h2>Statements</h2>")
    support = row(page, "support")
    assert "Customer &lt;Support&gt;" in support and "<Support>" not in page
    assert "880.00" in support and "1,000.00" in support and "2,456.00" in support
    assert "class='fill warn' style='width:88.0%'" in support  # past 50 and 80, under 100
    assert "left:calc(100.0% - 1px)" in support  # the forecast tick stops at the bar's end
    assert "245.6 %" in support
    sales = row(page, "sales")
    assert "class='fill bad' style='width:100.0%'" in sales and "108.0 %" in sales
    ops = row(page, "ops")
    assert "no budget" in ops and "fill" not in ops
    # The alerts the ledger holds, per cost center.
    assert re.findall(r"badge ok' title='[^']*'>([^<]+)<", support) == ["50 %", "80 %", "forecast"]
    assert "100 %" in re.findall(r"badge ok' title='[^']*'>([^<]+)<", sales)
    assert "sent to support-lead@example.com" in support
    assert "platform-fee 500.00 USD prorated" in page


def test_a_quiet_month_start_is_green_with_the_forecast_tick_inside() -> None:
    from vapi_chargeback.airflow.mtd_html import bar

    markup = bar(center("support", "120.00", forecast="450.00"))
    assert "class='fill ok' style='width:12.0%'" in markup
    assert "left:calc(45.0% - 1px)" in markup


def test_the_mtd_files_download_and_nothing_else_under_mtd(output: Path) -> None:
    page = get(output, "/").text
    hrefs = re.findall(r"href='(_mtd/[^']+)'", page)
    assert hrefs == ["_mtd/2026-10/mtd-2026-10-10.json", "_mtd/2026-10/mtd-2026-10-10.csv"]
    for href in hrefs:
        response = get(output, href)
        assert response.status_code == 200
        assert response.content == (output / href).read_bytes()
    for bad in (
        "_mtd/2026-10/other.json",
        "_mtd/2026-13/mtd-2026-10-10.json",
        "_mtd/2026-10/mtd-2026-10-11.json",
        "_mtd/2026-10/..%2F..%2Fsecret.json",
    ):
        assert get(output, bad).status_code == 404, bad


def test_no_figures_yet_and_unreadable_figures_still_render(tmp_path: Path) -> None:
    root = tmp_path / "output"
    root.mkdir()
    assert "No month-to-date figures yet" in get(root, "/").text
    broken = root / "_mtd" / "2026-10" / "mtd-2026-10-10.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"format": 99}')
    response = get(root, "/")
    assert response.status_code == 200
    assert "unreadable" in response.text and "format 99" in response.text
