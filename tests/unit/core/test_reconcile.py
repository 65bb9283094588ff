"""Reconciliation with corrections of final months and the invoice adjustment in the month.

Both are lines of the statement but not this month's usage: each is its own term, so the
usage lines must still equal org total + shared to the cent, whatever is carried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.allocate import allocate
from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.close.corrections import correction_lines
from vapi_chargeback.close.ids import statement_ids
from vapi_chargeback.close.invoices import Invoice
from vapi_chargeback.close.tieout import tie_out
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import Plan, build_plan
from vapi_chargeback.reconcile import ReconciliationError, reconcile
from vapi_chargeback.statement import ChargebackLine, Statement
from vapi_chargeback.statements.validate import validate_statement

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
MAPPING = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-sales,outbound-sales,sales,,\n"
    "asst-support,billing-support,support,,\n"
)
CALLS = [
    Call(date(2026, 10, 1), D("3.00"), "asst-sales"),
    Call(date(2026, 10, 2), D("1.00"), "asst-support"),
    Call(date(2026, 10, 3), D("0.50"), None),
]
SEPTEMBER = statement_ids("VAPI", "2026-09", ["sales", "support"], 1)


def _month(
    config: ChargebackConfig,
) -> tuple[Statement, Plan, dict[str, AnalyticsQueryResult]]:
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, CALLS)
    entries, problems = parse_mapping(MAPPING.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    return allocate(config, AssistantMapping(entries), plan, results), plan, results


def _september(sales: str, support: str) -> list[ChargebackLine]:
    """September's direct lines of both cost centers, as booked or as recomputed."""
    components = dict.fromkeys(["transport", "stt", "llm", "tts", "vapi"], D("0.00"))
    return [
        ChargebackLine("sales", "Sales", "outbound-sales", "asst-sales", "direct", 4, D("4.00"),
                       D(sales), components),
        ChargebackLine("support", "Support", "billing-support", "asst-support", "direct", 2,
                       D("2.00"), D(support), components),
    ]  # fmt: skip


def _closed(statement: Statement, corrections: list[ChargebackLine], invoice: Decimal) -> Statement:
    """``statement`` carrying ``corrections`` and tied to an invoice of ``invoice``."""
    tie = tie_out(
        "2026-10",
        statement.lines,
        Invoice("2026-10", "INV-10", invoice, 2),
        components=statement.components,
    )
    return replace(
        statement,
        lines=[*statement.lines, *corrections, *tie.lines],
        invoice=tie.statement_invoice(),
    )


@pytest.fixture
def config(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> ChargebackConfig:
    return config_from(base_config())


def test_corrections_and_adjustments_are_terms_of_their_own(config: ChargebackConfig) -> None:
    statement, plan, results = _month(config)
    corrections = [
        item.line
        for item in correction_lines(
            "2026-09",
            _september("10.00", "5.00"),
            _september("10.40", "4.00"),
            SEPTEMBER,
        )
    ]
    closed = _closed(statement, [replace(line, corrects=SEPTEMBER.for_cost_center(
        line.cost_center_id)) for line in corrections], D("4.60"))  # fmt: skip

    result = reconcile(closed, plan, results)

    assert result.ok
    assert (result.org_total_usd, result.shared_total_usd) == (D("4.50"), D("0.00"))
    assert result.corrections_usd == D("-0.60")
    assert result.adjustments_usd == D("0.10")
    assert result.lines_total_usd == D("4.00")
    assert result.expected_usd == D("4.50") + D("-0.60") + D("0.10")
    assert (result.invoice_id, result.invoice_usd) == ("INV-10", D("4.60"))
    assert result.invoiced_lines_usd == D("4.60")
    assert result.tied_to_invoice
    validate_statement(replace(closed, reconciliation=result))


def test_a_month_without_invoice_or_corrections_reconciles_as_before(
    config: ChargebackConfig,
) -> None:
    statement, plan, results = _month(config)

    result = reconcile(statement, plan, results)

    assert (result.corrections_usd, result.adjustments_usd) == (0, 0)
    assert (result.invoice_id, result.invoice_usd, result.invoice_difference_usd) == (
        None,
        None,
        None,
    )
    assert not result.tied_to_invoice


def test_carried_lines_cannot_hide_a_lost_usage_row(config: ChargebackConfig) -> None:
    statement, plan, results = _month(config)
    core = results["core-allocation"]
    results["core-allocation"] = core.model_copy(update={"result": core.result[1:]})
    statement = allocate(
        config,
        AssistantMapping(parse_mapping(MAPPING.encode(), "t.csv", {"sales", "support"})[0]),
        plan,
        results,
    )
    correction = replace(
        _september("0.00", "0.00")[0],
        allocation="correction:2026-09",
        cost_usd=D("3.00"),
        corrects=SEPTEMBER.for_cost_center("sales"),
    )

    with pytest.raises(ReconciliationError) as caught:
        reconcile(_closed(statement, [correction], D("4.50")), plan, results)

    message = str(caught.value)
    assert (
        "lines 7.50 != org total 4.50 + shared 0 + corrections 3.00 + adjustments 3.00"
        " = 10.50 (difference -3.00)" in message
    )
    assert "lines by kind: adjustment 3.00, correction 3.00, direct 1.00, unallocated 0.50" in (
        message
    )
    assert caught.value.reconciliation.difference_usd == D("-3.00")


cents = st.integers(min_value=-50_000, max_value=50_000).map(lambda value: D(value).scaleb(-2))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deltas=st.lists(cents, min_size=2, max_size=2), invoice=cents, drift=cents)
def test_any_corrections_and_invoice_reconcile_and_any_usage_drift_is_caught(
    config: ChargebackConfig, deltas: list[Decimal], invoice: Decimal, drift: Decimal
) -> None:
    """Σ lines = org + shared + corrections + adjustments exactly, for any carried amounts;
    a cent moved on a usage line fails the run whatever is carried beside it."""
    statement, plan, results = _month(config)
    corrections = [
        replace(line, allocation="correction:2026-09", cost_usd=delta,
                corrects=SEPTEMBER.for_cost_center(line.cost_center_id))
        for line, delta in zip(_september("0.00", "0.00"), deltas, strict=True)
        if delta
    ]  # fmt: skip
    closed = _closed(statement, corrections, D("4.50") + abs(invoice))

    result = reconcile(closed, plan, results)

    assert result.ok
    assert result.corrections_usd == sum(deltas, D(0))
    assert result.adjustments_usd == abs(invoice)
    assert result.lines_total_usd == sum((line.cost_usd for line in closed.lines), D(0))
    if drift:
        first = replace(closed.lines[0], cost_usd=closed.lines[0].cost_usd + drift)
        with pytest.raises(ReconciliationError):
            reconcile(replace(closed, lines=[first, *closed.lines[1:]]), plan, results)
