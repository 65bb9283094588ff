"""Statements survive the trip between tasks exactly: Decimals stay Decimals, text stays text."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from vapi_chargeback import statement_json
from vapi_chargeback.statement import (
    Breakdown,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)

BERLIN = ZoneInfo("Europe/Berlin")


def sample() -> Statement:
    line = ChargebackLine(
        cost_center_id="sales",
        cost_center_name="Sales",
        team="inbound-sales",
        assistant_id="a1",
        allocation="direct",
        calls=3,
        minutes=Decimal("12.50"),
        cost_usd=Decimal("1.10"),
        components_usd={"stt": Decimal("0.30"), "llm": Decimal("0.40")},
    )
    return Statement(
        period="2026-10",
        timezone="Europe/Berlin",
        period_start=datetime(2026, 10, 1, tzinfo=BERLIN),
        period_end=datetime(2026, 11, 1, tzinfo=BERLIN),
        currency="USD",
        components=["stt", "llm"],
        cost_centers=[CostCenterInfo("sales", "Sales", "owner@example.com")],
        lines=[line],
        breakdowns={
            "sales": [
                Breakdown(
                    "by-reason",
                    "Minutes by reason",
                    ["reason", "minutes"],
                    [["12.50", Decimal("12.50")], [None, 3]],
                )
            ]
        },
        reconciliation=Reconciliation(Decimal("1.10"), Decimal(0), Decimal("1.10"), Decimal(0)),
        provenance=Provenance("run-1", "c" * 64, "m" * 64, {"batch-000.json": "f" * 64}, "test"),
    )


def test_round_trip_is_exact_and_keeps_cell_types() -> None:
    original = sample()
    again = statement_json.loads(statement_json.dumps(original))
    assert again == original
    assert list(again.lines[0].components_usd) == ["stt", "llm"], "column order is kept"
    cells = again.breakdowns["sales"][0].rows[0]
    assert isinstance(cells[0], str) and isinstance(cells[1], Decimal)
    assert again.lines[0].other_usd == Decimal("0.40")
    assert again.period_start.utcoffset() == original.period_start.utcoffset()


def test_dumps_is_deterministic() -> None:
    assert statement_json.dumps(sample()) == statement_json.dumps(sample())


def test_inputs_fingerprint_ignores_the_run_id_but_not_the_inputs() -> None:
    base = sample().provenance
    assert base is not None
    from dataclasses import replace

    assert replace(base, run_id="another-run").inputs_sha256 == base.inputs_sha256
    assert replace(base, mapping_sha256="0" * 64).inputs_sha256 != base.inputs_sha256
    assert (
        replace(base, responses_sha256={"batch-000.json": "0" * 64}).inputs_sha256
        != base.inputs_sha256
    )
