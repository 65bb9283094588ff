"""Statements survive the trip between tasks exactly: Decimals stay Decimals, text stays text."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
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

from support.statement_samples import APPROVED_AT, closed_statement, restated_statement

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


def test_round_trip_keeps_dates_totals_daily_cost_and_the_line_rule() -> None:
    """A day bucket comes back a ``date`` while text that reads like one stays text; the
    total row, the daily cost and each line's rule and successful calls survive too."""
    original = sample()
    table = Breakdown(
        "daily",
        "Daily",
        ["week", "week_coverage", "reason", "cost_usd"],
        [[date(2026, 9, 28), "Partial: 2026-10-01 to 2026-10-04", "2026-10-05", Decimal("1.10")]],
        ["Total", "", "", Decimal("1.10")],
    )
    line = replace(original.lines[0], charged_by="variable", successful_calls=3)
    original = replace(
        original,
        lines=[line, *original.lines[1:]],
        breakdowns={"sales": [table]},
        daily_cost_usd={
            "sales": [(date(2026, 10, 1), Decimal("0.60")), (date(2026, 10, 2), Decimal("0.50"))]
        },
    )

    again = statement_json.loads(statement_json.dumps(original))

    assert again == original
    cells = again.breakdowns["sales"][0].rows[0]
    assert [type(cell) for cell in cells] == [date, str, str, Decimal]
    assert [type(cell) for cell in again.breakdowns["sales"][0].total] == [str, str, str, Decimal]
    assert [type(day) for day, _ in again.daily_cost_usd["sales"]] == [date, date]
    assert (again.lines[0].charged_by, again.lines[0].successful_calls) == ("variable", 3)


def test_round_trip_keeps_the_close_of_the_month() -> None:
    """Status, version, prefix, approval, reason, invoice, changes, corrects and assistant
    names all survive; ids derived from them are the same after the trip."""
    restated = restated_statement()
    closed = closed_statement()
    named = replace(closed.lines[0], assistant_name="Booking bot")
    original = replace(
        closed,
        lines=[named, *closed.lines[1:]],
        status="final",
        version=2,
        statement_prefix="ACME",
        approved_by="controller@example.com",
        approved_at=APPROVED_AT,
        approved_run_id="manual__approve",
        restatement_reason="late calls (FIN-42)",
        changes_vs=restated.changes_vs,
    )

    again = statement_json.loads(statement_json.dumps(original))

    assert again == original
    assert again.statement_ids == original.statement_ids
    assert again.statement_ids.org == "ACME-2026-10-ORG-v2"
    assert again.invoice is not None and isinstance(again.invoice.amount_usd, Decimal)
    assert again.invoice.tolerance_pct == Decimal(2)
    assert again.approved_at is not None and again.approved_at.utcoffset() is not None
    assert again.changes_vs is not None
    assert [change.kind for change in again.changes_vs.lines] == ["changed", "removed", "added"]
    assert again.lines[6].corrects == "VAPI-2026-09-sales-v1"
    assert again.lines[6].minutes == Decimal("-3.25")
    assert again.lines[0].assistant_name == "Booking bot"


def test_a_statement_json_from_before_the_close_reads_as_a_first_draft() -> None:
    """Statements handed between tasks by an older worker have none of the new fields."""
    data = json.loads(statement_json.dumps(sample()))
    for name in ("status", "version", "statement_prefix", "invoice", "changes_vs"):
        del data[name]
    for line in data["lines"]:
        del line["assistant_name"], line["corrects"]
    del data["reconciliation"]["corrections_usd"], data["reconciliation"]["invoice_id"]

    again = statement_json.loads(json.dumps(data).encode())

    assert again == sample()
    assert (again.status, again.version, again.statement_ids.org) == (
        "draft",
        1,
        "VAPI-2026-10-ORG-v1",
    )


def test_dumps_is_deterministic() -> None:
    assert statement_json.dumps(sample()) == statement_json.dumps(sample())


def test_inputs_fingerprint_ignores_the_run_id_but_not_the_inputs() -> None:
    base = sample().provenance
    assert base is not None

    assert replace(base, run_id="another-run").inputs_sha256 == base.inputs_sha256
    assert replace(base, mapping_sha256="0" * 64).inputs_sha256 != base.inputs_sha256
    assert (
        replace(base, responses_sha256={"batch-000.json": "0" * 64}).inputs_sha256
        != base.inputs_sha256
    )
