"""The checks a published month must pass, wherever it was published.

Shared by the file:// and the s3:// end-to-end tests, so "S3 output passes the same
statement checks as local output" is true by construction: an S3 test downloads the
month into a folder and hands it to the same function. Totals are checked against the
emulator with an independent ungrouped query made here, never against anything the
pipeline computed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery, TimeRange
from vapi_chargeback.config import load_config
from vapi_chargeback.period import StatementPeriod

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"


class Api(Protocol):
    """Where the independent total is asked: the emulator the DAG ran against."""

    base_url: str
    api_key: str


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def org_total(api: Api, month: str) -> Decimal:
    """The org's cost for the month from one ungrouped query the pipeline did not make."""
    config = load_config(CONFIG)
    period = StatementPeriod.for_month(month, config.timezone)
    query = AnalyticsQuery(
        table="call",
        name="independent-total",
        time_range=TimeRange(start=period.start, end=period.end, timezone=config.timezone),
        operations=[AnalyticsOperation(operation="sum", column="cost", alias="cost")],
    )
    with VapiAnalyticsClient(api.base_url, api.api_key) as client:
        rows = client.query([query])["independent-total"].result
    return Decimal(str(rows[0]["cost"])).quantize(Decimal("0.01"))


def fixed_shared_total() -> Decimal:
    config = load_config(CONFIG)
    return sum(
        (Decimal(pool.amount) for pool in config.shared_costs if pool.amount is not None),
        Decimal(0),
    )


def csv_rows(folder: Path, month: str) -> list[dict[str, str]]:
    with (folder / f"chargeback-{month}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_month_statements(folder: Path, month: str, api: Api) -> None:
    """Every file present; Σ cost_usd = independent org total + fixed shared; reconciled."""
    config = load_config(CONFIG)
    expected_files = {
        f"chargeback-{month}.csv",
        f"chargeback-{month}.xlsx",
        "manifest.json",
        *(f"cost-centers/{cc.id}-{month}.xlsx" for cc in config.cost_centers),
    }
    assert expected_files <= set(file_hashes(folder))

    rows = csv_rows(folder, month)
    total = sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))
    assert total == org_total(api, month) + fixed_shared_total(), month
    assert {row["period"] for row in rows} == {month}
    reasons = {row["allocation"] for row in rows if row["cost_center_id"] == "UNALLOCATED"}
    assert "unallocated:unmapped-assistant" in reasons

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["period"] == month
    assert manifest["reconciliation"]["ok"] is True
