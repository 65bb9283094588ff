"""Statements built by hand, small enough to check every figure by eye."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from vapi_chargeback.close.invoices import Invoice
from vapi_chargeback.close.tieout import TieOut, tie_out
from vapi_chargeback.statement import (
    FINAL,
    UNALLOCATED,
    Breakdown,
    ChangesVs,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)

BERLIN = ZoneInfo("Europe/Berlin")
COMPONENTS = ["llm", "stt", "tts"]
INVOICE = Invoice("2026-10", "INV-2026-10", Decimal("173.67"), 2)
"""3.17 above the sample's usage (its org total, 170.50)."""
APPROVED_AT = datetime(2026, 11, 3, 10, 15, 12, tzinfo=UTC)


def line(
    center: str,
    name: str,
    team: str,
    assistant: str,
    allocation: str,
    calls: int,
    minutes: str,
    cost: str,
    parts: tuple[str, str, str],
) -> ChargebackLine:
    return ChargebackLine(
        cost_center_id=center,
        cost_center_name=name,
        team=team,
        assistant_id=assistant,
        allocation=allocation,
        calls=calls,
        minutes=Decimal(minutes),
        cost_usd=Decimal(cost),
        components_usd=dict(zip(COMPONENTS, map(Decimal, parts), strict=True)),
    )


def sample_statement(**changes: Any) -> Statement:
    """Two cost centers, a shared pool and two unallocated reasons; reconciles exactly.

    Org total 170.50 = 100.00 + 40.00 + 10.50 + 20.00; shared pool 12.00 = 7.00 + 5.00;
    lines total 182.50.
    """
    lines = [
        line(
            "sales",
            "Sales",
            "emea",
            "asst-1",
            "direct",
            120,
            "300.5",
            "100.00",
            ("40.00", "10.00", "20.00"),
        ),
        line("sales", "Sales", "", "", "shared:platform", 0, "0", "7.00", ("0.00", "0.00", "0.00")),
        line(
            "support",
            "Support, 1st level",
            "=cmd",
            "asst-2",
            "direct",
            30,
            "61.333",
            "40.00",
            ("10.00", "5.00", "5.00"),
        ),
        line(
            "support",
            "Support, 1st level",
            "",
            "",
            "shared:platform",
            0,
            "0",
            "5.00",
            ("0.00", "0.00", "0.00"),
        ),
        line(
            UNALLOCATED,
            "Unallocated",
            "",
            "",
            "unallocated:no-assistant",
            5,
            "10.004",
            "10.50",
            ("5.00", "1.00", "1.00"),
        ),
        line(
            UNALLOCATED,
            "Unallocated",
            "",
            "asst-9",
            "unallocated:unmapped-assistant",
            8,
            "20",
            "20.00",
            ("8.00", "2.00", "2.00"),
        ),
    ]
    statement = Statement(
        period="2026-10",
        timezone="Europe/Berlin",
        period_start=datetime(2026, 10, 1, tzinfo=BERLIN),
        period_end=datetime(2026, 11, 1, tzinfo=BERLIN),
        currency="USD",
        components=list(COMPONENTS),
        cost_centers=[
            CostCenterInfo("sales", "Sales", "sales-lead@example.com"),
            CostCenterInfo("support", "Support, 1st level", "support@example.com"),
        ],
        lines=lines,
        breakdowns={
            "sales": [
                Breakdown(
                    "cost-by-day",
                    "Cost by assistant/day: [all]",
                    ["day", "assistant", "cost_usd"],
                    [
                        ["2026-10-01", "asst-1", Decimal("60.00")],
                        ["2026-10-02", "asst-1", Decimal("40.00")],
                    ],
                ),
                Breakdown(
                    "calls-by-reason",
                    "Summary",
                    ["ended_reason", "calls"],
                    [["hangup", 100], ["-1", 20]],
                ),
            ]
        },
        reconciliation=Reconciliation(
            org_total_usd=Decimal("170.50"),
            shared_total_usd=Decimal("12.00"),
            lines_total_usd=Decimal("182.50"),
            difference_usd=Decimal("0.00"),
        ),
        provenance=Provenance(
            run_id="manual__2026-11-01T00:00:00+00:00",
            config_sha256="a" * 64,
            mapping_sha256="b" * 64,
            responses_sha256={"batch-0.json": "c" * 64, "batch-1.json": "d" * 64},
            generated_by="vapi-chargeback 0.1.0",
        ),
    )
    return replace(statement, **changes)


def correction_lines() -> list[ChargebackLine]:
    """Two corrections of September, as ``close.corrections`` carries them: one of sales
    (less than booked: negative in every column) and one of September's unallocated lines."""
    return [
        replace(
            line(
                "sales",
                "Sales",
                "emea",
                "asst-1",
                "correction:2026-09",
                -2,
                "-3.25",
                "-1.20",
                ("-0.50", "-0.20", "-0.30"),
            ),
            corrects="VAPI-2026-09-sales-v1",
        ),
        replace(
            line(
                UNALLOCATED,
                "Unallocated",
                "",
                "asst-9",
                "correction:2026-09",
                1,
                "2",
                "0.80",
                ("0.30", "0.10", "0.10"),
            ),
            corrects="VAPI-2026-09-ORG-v1",
        ),
    ]


def sample_tie_out() -> TieOut:
    """The sample's month held against ``INVOICE``: 3.17 spread as 2.26 (sales) + 0.91
    (support), by direct cost 100.00 : 40.00 and largest remainder."""
    return tie_out(
        "2026-10",
        sample_statement().lines,
        INVOICE,
        components=COMPONENTS,
        fixed_pools=["platform"],
    )


def closed_statement(**changes: Any) -> Statement:
    """The sample month with corrections of September and tied to its invoice; reconciles.

    Lines 182.50 − 0.40 (corrections) + 3.17 (adjustments) = 185.27 = org 170.50 + shared
    12.00 − 0.40 + 3.17; the lines the invoice covers, 185.27 − 12.00 + 0.40 = 173.67.
    """
    base = sample_statement()
    tie = sample_tie_out()
    lines = [*base.lines, *correction_lines(), *tie.lines]
    statement = replace(
        base,
        lines=lines,
        invoice=tie.statement_invoice(),
        reconciliation=Reconciliation(
            org_total_usd=Decimal("170.50"),
            shared_total_usd=Decimal("12.00"),
            lines_total_usd=Decimal("185.27"),
            difference_usd=Decimal("0.00"),
            corrections_usd=Decimal("-0.40"),
            adjustments_usd=Decimal("3.17"),
            invoice_id=INVOICE.invoice_id,
            invoice_usd=INVOICE.amount_usd,
        ),
    )
    return replace(statement, **changes)


def final_statement(**changes: Any) -> Statement:
    """The sample month approved: final, version 1."""
    return sample_statement(
        status=FINAL,
        approved_by="controller@example.com",
        approved_at=APPROVED_AT,
        approved_run_id="manual__2026-11-03T10:15:00+00:00",
        **changes,
    )


def restated_statement(**changes: Any) -> Statement:
    """Version 2 of the sample month: sales' direct line re-costed, support's pool share
    gone, a new unallocated line; ``changes_vs`` lists exactly those three against v1."""
    v1 = sample_statement().lines
    recosted = replace(
        v1[0],
        calls=121,
        cost_usd=Decimal("101.00"),
        components_usd={"llm": Decimal("41.00"), "stt": Decimal("10.00"), "tts": Decimal("20.00")},
    )
    added = line(
        UNALLOCATED,
        "Unallocated",
        "",
        "asst-7",
        "unallocated:unmapped-assistant",
        1,
        "1",
        "1.00",
        ("1.00", "0.00", "0.00"),
    )
    v2 = [recosted, v1[1], v1[2], v1[4], v1[5], added]
    return sample_statement(
        lines=v2,
        version=2,
        restatement_reason="late-costed calls of 30 October (ticket FIN-42)",
        changes_vs=ChangesVs.between(1, v1, v2),
        reconciliation=Reconciliation(
            org_total_usd=Decimal("172.50"),
            shared_total_usd=Decimal("7.00"),
            lines_total_usd=Decimal("179.50"),
            difference_usd=Decimal("0.00"),
        ),
        **changes,
    )
