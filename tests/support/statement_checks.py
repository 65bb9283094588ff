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
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery, TimeRange
from vapi_chargeback.config import load_config
from vapi_chargeback.money import round_money
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


LEADING_COLUMNS = [
    "period",
    "cost_center_id",
    "cost_center_name",
    "team",
    "assistant_id",
    "allocation",
    "calls",
    "minutes",
    "cost_usd",
]
APPENDED_COLUMNS = ["assistant_name", "statement_id", "corrects"]
"""DESIGN §3: appended after ``other_usd`` in this order; existing columns never move."""
ALLOCATION = re.compile(
    r"direct|shared:.+|unallocated:.+|correction:(?P<month>\d{4}-\d{2})|adjustment:invoice"
)
CARRIED = ("correction:", "adjustment:")


def csv_header(folder: Path, month: str) -> list[str]:
    with (folder / f"chargeback-{month}.csv").open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def assert_month_statements(folder: Path, month: str, api: Api) -> None:
    """Every file present; Σ usage lines = independent org total + fixed shared; corrections
    and adjustments add up to the manifest's terms; reconciled; every line names its
    statement by the manifest's ids."""
    config = load_config(CONFIG)
    expected_files = {
        f"chargeback-{month}.csv",
        f"chargeback-{month}.xlsx",
        "manifest.json",
        *(f"cost-centers/{cc.id}-{month}.xlsx" for cc in config.cost_centers),
    }
    assert expected_files <= set(file_hashes(folder))

    components = [f"{name}_usd" for name in config.components]
    header = csv_header(folder, month)
    assert header[: len(LEADING_COLUMNS) + len(components) + 1 + len(APPENDED_COLUMNS)] == [
        *LEADING_COLUMNS,
        *components,
        "other_usd",
        *APPENDED_COLUMNS,
    ]
    rows = csv_rows(folder, month)
    usage = [row for row in rows if not row["allocation"].startswith(CARRIED)]
    total = sum((Decimal(row["cost_usd"]) for row in usage), Decimal(0))
    assert total == org_total(api, month) + fixed_shared_total(), month
    assert {row["period"] for row in rows} == {month}
    reasons = {row["allocation"] for row in rows if row["cost_center_id"] == "UNALLOCATED"}
    assert "unallocated:unmapped-assistant" in reasons

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["period"] == month
    check = manifest["reconciliation"]
    assert check["ok"] is True
    for term, prefix in (("corrections_usd", "correction:"), ("adjustments_usd", "adjustment:")):
        carried = [Decimal(row["cost_usd"]) for row in rows if row["allocation"].startswith(prefix)]
        assert Decimal(check[term]) == sum(carried, Decimal(0)), term
    assert_statement_ids(manifest, rows, month)
    assert_converted(config.reporting_currency, header, rows, manifest)


def assert_converted(
    currency: str | None, header: list[str], rows: list[dict[str, str]], manifest: dict[str, Any]
) -> None:
    """With a reporting currency the CSV ends with ``cost_<currency>``, whose lines add up
    exactly to the manifest's converted total: Σ ``cost_usd`` × rate, rounded once to the
    currency's minor unit. Without one the manifest has no ``fx`` block."""
    if currency is None:
        assert "fx" not in manifest
        return
    fx, column = manifest["fx"], f"cost_{currency.lower()}"
    assert header[-1] == column and fx["currency"] == currency
    quantum = Decimal(1).scaleb(-fx["minor_units"])
    usd = sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))
    converted = sum((Decimal(row[column]) for row in rows), Decimal(0))
    assert converted == Decimal(fx["total"]) == round_money(usd * Decimal(fx["rate"]), quantum)
    assert all(Decimal(row[column]) == Decimal(row[column]).quantize(quantum) for row in rows)


def assert_statement_ids(
    manifest: dict[str, object], rows: list[dict[str, str]], month: str
) -> None:
    """``statement_id`` on every line is its cost center's id in the manifest (the org's
    for UNALLOCATED), ids follow ``{prefix}-{month}-{cc|ORG}-v{version}``, and only
    correction lines name the statement they correct."""
    assert manifest["status"] in ("draft", "final")
    version = manifest["version"]
    ids = manifest["statement_ids"]
    assert isinstance(version, int) and isinstance(ids, dict)
    org, by_center = ids["org"], ids["cost_centers"]
    assert org.endswith(f"-{month}-ORG-v{version}"), org
    prefix = org.removesuffix(f"-{month}-ORG-v{version}")
    assert by_center == {center: f"{prefix}-{month}-{center}-v{version}" for center in by_center}
    for index, row in enumerate(rows, start=2):
        found = ALLOCATION.fullmatch(row["allocation"])
        assert found, f"line {index}: allocation {row['allocation']!r}"
        assert row["statement_id"] == by_center.get(row["cost_center_id"], org), f"line {index}"
        corrected = found["month"]
        if corrected is None:
            assert row["corrects"] == "", f"line {index}"
        else:
            assert re.fullmatch(rf"{prefix}-{corrected}-.+-v\d+", row["corrects"]), f"line {index}"
