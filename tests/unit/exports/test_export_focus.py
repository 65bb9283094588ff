"""focus-{YYYY-MM}.csv: one FOCUS 1.2 row per statement line, charged by the line's kind."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.allocate import RESPREAD_NOTE
from vapi_chargeback.exports.focus import COLUMNS, FocusExportError, focus_name, write_focus
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.statement import Statement

from support.focus_validator import assert_valid
from support.statement_samples import closed_statement, line, sample_statement

RESPREAD = "shared:calls-without-assistant"


def every_kind() -> Statement:
    """The closed sample month (direct, a fixed pool, unallocated, corrections, invoice
    adjustments) plus a re-spread pool share, with names no ASCII column may carry."""
    base = closed_statement()
    named = replace(base.lines[0], assistant_name="Zoë – Empfang ☎")
    respread = line(
        "support",
        "Support, 1st level",
        "",
        "",
        RESPREAD,
        2,
        "3.5",
        "1.50",
        ("0.50", "0.50", "0.50"),
    )
    lines = [named, *base.lines[1:4], respread, *base.lines[4:]]
    return replace(base, lines=lines, pool_notes={"calls-without-assistant": RESPREAD_NOTE})


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def written(statement: Statement, tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / focus_name(statement.period)
    assert write_focus(statement, path) == len(statement.lines)
    return rows_of(path)


KINDS = {
    "direct": (
        0,
        {
            "ChargeCategory": "Usage",
            "ChargeClass": "",
            "ChargeFrequency": "Usage-Based",
            "PricingQuantity": "300.50",
            "PricingUnit": "Minutes",
            "ConsumedQuantity": "300.50",
            "ResourceId": "asst-1",
            "ResourceName": "Zoë – Empfang ☎",
            "SubAccountId": "sales",
            "x_StatementId": "VAPI-2026-10-sales-v1",
            "ChargePeriodStart": "2026-09-30T22:00:00Z",
        },
    ),
    "fixed-pool": (
        1,
        {
            "ChargeCategory": "Usage",
            "ChargeFrequency": "Recurring",
            "PricingQuantity": "0.00",
            "ResourceId": "",
            "x_Allocation": "shared:platform",
            "ChargeDescription": "Shared cost platform",
        },
    ),
    "respread-pool": (
        4,
        {
            "ChargeCategory": "Usage",
            "ChargeFrequency": "Usage-Based",
            "PricingQuantity": "3.50",
            "BilledCost": "1.50",
        },
    ),
    "unallocated": (
        5,
        {
            "ChargeCategory": "Usage",
            "SubAccountId": "UNALLOCATED",
            "x_StatementId": "VAPI-2026-10-ORG-v1",
            "ChargeDescription": "Vapi voice AI usage, unallocated (no-assistant)",
        },
    ),
    "correction": (
        7,
        {
            "ChargeCategory": "Adjustment",
            "ChargeClass": "Correction",
            "ChargeFrequency": "One-Time",
            "ChargePeriodStart": "2026-08-31T22:00:00Z",
            "ChargePeriodEnd": "2026-09-30T22:00:00Z",
            "BillingPeriodStart": "2026-09-30T22:00:00Z",
            "PricingQuantity": "",
            "PricingUnit": "",
            "ConsumedQuantity": "",
            "BilledCost": "-1.20",
            "EffectiveCost": "-1.20",
            "x_Corrects": "VAPI-2026-09-sales-v1",
        },
    ),
    "invoice-adjustment": (
        9,
        {
            "ChargeCategory": "Adjustment",
            "ChargeClass": "",
            "ChargeFrequency": "One-Time",
            "ChargePeriodStart": "2026-09-30T22:00:00Z",
            "PricingQuantity": "",
            "BilledCost": "2.26",
            "x_Allocation": "adjustment:invoice",
        },
    ),
}


@pytest.mark.parametrize(("index", "expected"), KINDS.values(), ids=KINDS.keys())
def test_each_line_kind_is_charged_as_focus_expects(
    index: int, expected: dict[str, str], tmp_path: Path
) -> None:
    row = written(every_kind(), tmp_path)[index]

    assert {column: row[column] for column in expected} == expected
    assert (row["ProviderName"], row["PublisherName"], row["InvoiceIssuerName"]) == ("Vapi",) * 3
    assert row["ServiceCategory"] == "AI and Machine Learning"
    assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"]
    assert row["BillingCurrency"] == "USD"


def test_every_line_is_a_row_and_billed_cost_adds_up_to_the_statement_total(
    tmp_path: Path,
) -> None:
    statement = every_kind()
    rows = written(statement, tmp_path)

    assert [row["x_Allocation"] for row in rows] == [ln.allocation for ln in statement.lines]
    assert sum(Decimal(row["BilledCost"]) for row in rows) == Decimal("186.77")
    assert sum(ln.cost_usd for ln in statement.lines) == Decimal("186.77")


def test_names_stay_out_of_the_description_and_go_to_x_columns_and_tags(tmp_path: Path) -> None:
    rows = written(every_kind(), tmp_path)

    assert all(row["ChargeDescription"].isascii() for row in rows)
    assert rows[0]["x_AssistantName"] == "Zoë – Empfang ☎"
    assert json.loads(rows[0]["Tags"]) == {
        "cost_center": "sales",
        "cost_center_name": "Sales",
        "team": "emea",
        "assistant_id": "asst-1",
        "assistant_name": "Zoë – Empfang ☎",
        "allocation": "direct",
    }
    assert json.loads(rows[1]["Tags"]) == {
        "cost_center": "sales",
        "cost_center_name": "Sales",
        "allocation": "shared:platform",
    }
    support = rows[2]
    assert support["x_Team"] == "'=cmd"
    assert json.loads(support["Tags"])["team"] == "=cmd"


def test_invoice_id_on_every_row_when_tied_and_on_none_otherwise(tmp_path: Path) -> None:
    assert {row["InvoiceId"] for row in written(every_kind(), tmp_path)} == {"INV-2026-10"}
    assert {row["InvoiceId"] for row in written(sample_statement(), tmp_path)} == {""}


ZONES = [
    pytest.param(
        "Europe/Berlin",
        "2026-10",
        ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z"),
        id="berlin-october-dst-ends",
    ),
    pytest.param(
        "America/New_York",
        "2026-03",
        ("2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"),
        id="new-york-march-dst-starts",
    ),
    pytest.param("UTC", "2026-02", ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"), id="utc"),
]


@pytest.mark.parametrize(("zone", "month", "bounds"), ZONES)
def test_datetimes_are_the_months_local_boundaries_in_utc(
    zone: str, month: str, bounds: tuple[str, str], tmp_path: Path
) -> None:
    period = StatementPeriod.for_month(month, zone)
    statement = sample_statement(
        period=month, timezone=zone, period_start=period.start, period_end=period.end
    )

    for row in written(statement, tmp_path):
        assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == bounds
        assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == bounds


def test_byte_format_nulls_empty_decimals_with_a_point_deterministic(tmp_path: Path) -> None:
    statement = every_kind()
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_focus(statement, first)
    write_focus(statement, second)
    data = first.read_bytes()

    assert data == second.read_bytes()
    assert data.decode("utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert b"\r" not in data and data.endswith(b"\n") and not data.startswith(b"\xef\xbb\xbf")
    assert b'""""' not in data.replace(b'""', b"") and b',"",' not in data
    for row in rows_of(first):
        for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
            assert "." in row[column], (column, row[column])
        assert row["PricingQuantity"] == "" or "." in row["PricingQuantity"]


def test_a_total_the_rows_cannot_show_is_refused_and_nothing_written(tmp_path: Path) -> None:
    statement = sample_statement()
    lines = [replace(statement.lines[0], cost_usd=Decimal("100.005")), *statement.lines[1:]]
    path = tmp_path / "focus.csv"

    with pytest.raises(
        FocusExportError, match=r"Σ BilledCost 182\.50 is not the statement.s total 182\.505"
    ):
        write_focus(replace(statement, lines=lines), path)

    assert not path.exists()


@pytest.mark.slow
def test_the_finops_validator_accepts_a_file_with_every_line_kind(tmp_path: Path) -> None:
    path = tmp_path / "focus-2026-10.csv"
    write_focus(every_kind(), path)

    verdict = assert_valid(path)

    assert verdict.failed == 1 and verdict.passed > 100, verdict.output[-2000:]
