from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from vapi_chargeback.statement import (
    UNALLOCATED,
    Breakdown,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)
from vapi_chargeback.statements.validate import StatementError, validate_statement

from support.statement_samples import BERLIN, sample_statement

Change = Callable[[Statement], Statement]


def _line(index: int, **changes: Any) -> Change:
    def change(statement: Statement) -> Statement:
        lines = list(statement.lines)
        lines[index] = replace(lines[index], **changes)
        return replace(statement, lines=lines)

    return change


def _with(**changes: Any) -> Change:
    return lambda statement: replace(statement, **changes)


def _centers(*centers: CostCenterInfo) -> Change:
    return _with(cost_centers=list(centers), breakdowns={})


def _reconciliation(**changes: Any) -> Change:
    def change(statement: Statement) -> Statement:
        assert statement.reconciliation is not None
        return replace(statement, reconciliation=replace(statement.reconciliation, **changes))

    return change


def _provenance(**changes: Any) -> Change:
    def change(statement: Statement) -> Statement:
        assert statement.provenance is not None
        return replace(statement, provenance=replace(statement.provenance, **changes))

    return change


def _breakdown(center: str, breakdown: Breakdown) -> Change:
    return _with(breakdowns={center: [breakdown]})


SALES = CostCenterInfo("sales", "Sales", "a@example.com")
SUPPORT = CostCenterInfo("support", "Support, 1st level", "b@example.com")

CASES = [
    pytest.param(_with(period="2026-13"), "period: '2026-13' is not YYYY-MM", id="bad-period"),
    pytest.param(_with(period_start=datetime(2026, 10, 1)), "period_start: 2026-10-01T00:00:00 has no time zone", id="naive-start"),
    pytest.param(_with(period_end=datetime(2026, 9, 1, tzinfo=BERLIN)), "period_end: must be after period_start", id="end-before-start"),
    pytest.param(_with(period_start=datetime(2026, 9, 30, tzinfo=BERLIN)), "does not begin period 2026-10", id="start-outside-period"),
    pytest.param(_with(components=["llm", "llm"]), "lists a component twice", id="duplicate-component"),
    pytest.param(_centers(replace(SALES, id="../etc"), SUPPORT), "cost_centers[0].id: '../etc' is not a safe slug", id="path-traversal-id"),
    pytest.param(_centers(replace(SALES, id="a/b"), SUPPORT), "cost_centers[0].id: 'a/b' is not a safe slug", id="slash-in-id"),
    pytest.param(_centers(SALES, replace(SUPPORT, id=UNALLOCATED)), "'UNALLOCATED' is reserved", id="reserved-id"),
    pytest.param(_centers(SALES, replace(SUPPORT, id="SALES")), "cost_centers[1].id: 'SALES' appears twice", id="duplicate-id-any-case"),
    pytest.param(_centers(replace(SALES, name=" "), SUPPORT), "cost_centers[0].name: empty", id="empty-name"),
    pytest.param(_line(0, cost_center_id="marketing"), "lines[0].cost_center_id: 'marketing' is not a configured cost center", id="unknown-center"),
    pytest.param(_line(0, allocation="unallocated:no-assistant"), "lines[0].cost_center_id: an unallocated line must use 'UNALLOCATED'", id="unallocated-on-center"),
    pytest.param(_line(4, allocation="direct"), "lines[4].allocation: 'direct' on an UNALLOCATED line", id="direct-on-unallocated"),
    pytest.param(_line(0, allocation="manual"), "lines[0].allocation: 'manual' is not direct", id="unknown-allocation"),
    pytest.param(_line(0, cost_center_name="Sales EMEA"), "differs from the configured name 'Sales'", id="name-mismatch"),
    pytest.param(_line(0, cost_usd=Decimal("100.005")), "lines[0].cost_usd: 100.005 is not rounded to the cent", id="sub-cent"),
    pytest.param(_line(0, cost_usd=100.0), "lines[0].cost_usd: 100.0 is a float; money must be a Decimal", id="float-money"),
    pytest.param(_line(0, cost_usd=Decimal("NaN")), "lines[0].cost_usd: Decimal('NaN') is not a finite amount", id="nan-money"),
    pytest.param(_line(0, cost_usd=Decimal("1E+14")), "too large to keep its cents", id="too-large"),
    pytest.param(_line(0, components_usd={"llm": Decimal(0)}), "lines[0].components_usd: keys ['llm'] differ", id="missing-component"),
    pytest.param(_line(0, components_usd={"llm": Decimal(0), "stt": Decimal("0.001"), "tts": Decimal(0)}), "lines[0].components_usd['stt']", id="component-sub-cent"),
    pytest.param(_line(0, calls=-1), "lines[0].calls: -1 is not a non-negative integer", id="negative-calls"),
    pytest.param(_line(0, minutes=Decimal("-1")), "lines[0].minutes", id="negative-minutes"),
    pytest.param(_line(1, team="emea", assistant_id="asst-1", allocation="direct"), "lines[1]: a second line", id="duplicate-line"),
    pytest.param(_line(0, team="bad\x00team"), "lines[0].team: control character U+0000", id="control-character"),
    pytest.param(_line(0, team="x" * 40_000), "more than a spreadsheet cell holds", id="overlong-text"),
    pytest.param(_reconciliation(difference_usd=Decimal("0.01")), "a statement that does not reconcile is never published", id="not-reconciled"),
    pytest.param(_line(0, cost_usd=Decimal("100.01"), components_usd={"llm": Decimal("40.00"), "stt": Decimal("10.00"), "tts": Decimal("20.00")}), "but the lines add up to 182.51", id="lines-disagree"),
    pytest.param(_reconciliation(org_total_usd=Decimal("170.00")), "reconciliation.difference_usd: 0.00 but lines − org − shared = 0.50", id="inconsistent-difference"),
    pytest.param(_provenance(config_sha256="XYZ"), "provenance.config_sha256: 'XYZ' is not a lowercase hex sha256", id="bad-hash"),
    pytest.param(_provenance(responses_sha256={"r.json": "0" * 63}), "provenance.responses_sha256['r.json']", id="bad-response-hash"),
    pytest.param(_breakdown("marketing", Breakdown("x", "X", ["a"], [])), "breakdowns['marketing']: not a configured cost center", id="breakdown-unknown-center"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a", "b"], [["1"]])), "breakdowns['sales'][0].rows[0]: 1 values for 2 columns", id="ragged-breakdown"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [[1.5]])), "float is not str, int, Decimal or None", id="float-in-breakdown"),
    pytest.param(_breakdown("sales", Breakdown("../x", "X", ["a"], [])), "definition_id: '../x' is not a slug", id="breakdown-id-traversal"),
]  # fmt: skip


def test_sample_statement_is_valid() -> None:
    validate_statement(sample_statement())


@pytest.mark.parametrize(("change", "message"), CASES)
def test_bad_statement_is_refused_naming_the_field(change: Change, message: str) -> None:
    with pytest.raises(StatementError) as caught:
        validate_statement(change(sample_statement()))

    assert any(message in problem for problem in caught.value.problems), caught.value.problems
    assert "nothing was written" in str(caught.value)


def test_all_problems_are_reported_at_once_and_the_message_stays_short() -> None:
    lines = [replace(line, cost_usd=Decimal("0.001")) for line in sample_statement().lines] * 10
    statement = sample_statement(lines=lines, reconciliation=None)

    with pytest.raises(StatementError) as caught:
        validate_statement(statement)

    assert len(caught.value.problems) > 25
    assert "… and" in str(caught.value)
    assert str(caught.value).count("\n  - ") == 25


def test_statement_without_reconciliation_or_provenance_is_publishable() -> None:
    validate_statement(sample_statement(reconciliation=None, provenance=None))


def test_provenance_and_reconciliation_types_are_the_model_ones() -> None:
    statement = sample_statement()
    assert isinstance(statement.reconciliation, Reconciliation)
    assert isinstance(statement.provenance, Provenance)
