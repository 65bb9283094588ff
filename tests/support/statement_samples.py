"""Statements built by hand, small enough to check every figure by eye."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from vapi_chargeback.statement import (
    UNALLOCATED,
    Breakdown,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)

BERLIN = ZoneInfo("Europe/Berlin")
COMPONENTS = ["llm", "stt", "tts"]


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
