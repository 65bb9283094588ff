from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from vapi_chargeback.statement import (
    UNALLOCATED,
    Breakdown,
    ChangesVs,
    CostCenterInfo,
    LineChange,
    Provenance,
    Reconciliation,
    Statement,
)
from vapi_chargeback.statements.validate import StatementError, validate_statement

from support.statement_samples import (
    APPROVED_AT,
    BERLIN,
    closed_statement,
    final_statement,
    restated_statement,
    sample_statement,
)

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


def _invoice(**changes: Any) -> Change:
    def change(statement: Statement) -> Statement:
        assert statement.invoice is not None
        return replace(statement, invoice=replace(statement.invoice, **changes))

    return change


def _changes(version: int, *items: LineChange) -> Change:
    return _with(changes_vs=ChangesVs(version, list(items)))


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
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [[1.5]])), "float is not str, int, Decimal, date or None", id="float-in-breakdown"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [[datetime(2026, 10, 1, tzinfo=UTC)]])), "rows[0][0]: datetime is not str", id="datetime-in-breakdown"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [], ["Total", 1])), "breakdowns['sales'][0].total: 2 values for 1 columns", id="ragged-total-row"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [], [1.5])), "total[0]: float is not", id="float-in-total-row"),
    pytest.param(_breakdown("sales", Breakdown("../x", "X", ["a"], [])), "definition_id: '../x' is not a slug", id="breakdown-id-traversal"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a", "b"], [["ok", 1], [None, 2], ["b\x01d", 3]])), "rows[2][0]: control character U+0001", id="control-character-in-breakdown"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [["ok"], ["x" * 40_000]])), "rows[1][0]: 40000 characters", id="overlong-breakdown-text"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [[Decimal(1)], [None], [Decimal("NaN")]])), "rows[2][0]: Decimal('NaN') is not a finite number", id="nan-in-breakdown"),
    pytest.param(_breakdown("sales", Breakdown("x", "X", ["a"], [[1], [True]])), "rows[1][0]: bool is not str", id="bool-in-breakdown"),
]  # fmt: skip

# Cases on the closed sample (corrections of September, tied to its invoice): index 6 is
# sales' correction, 7 the UNALLOCATED correction, 8 and 9 the adjustment lines.
CLOSED_CASES = [
    pytest.param(_line(6, corrects=""), "lines[6].corrects: '' is not a statement id of 2026-09", id="correction-without-corrects"),
    pytest.param(_line(6, corrects="VAPI-2026-08-sales-v1"), "is not a statement id of 2026-09", id="corrects-another-month"),
    pytest.param(_line(6, allocation="correction:2026-10", corrects="VAPI-2026-10-sales-v1"), "only an earlier month can be corrected", id="corrects-its-own-month"),
    pytest.param(_line(6, allocation="correction:2026-13"), "lines[6].allocation: 'correction:2026-13' is not direct", id="correction-of-no-month"),
    pytest.param(_line(0, corrects="VAPI-2026-09-sales-v1"), "lines[0].corrects: 'VAPI-2026-09-sales-v1' on a 'direct' line", id="corrects-on-direct"),
    pytest.param(_line(8, calls=-1), "lines[8].calls: -1 is not a non-negative integer", id="negative-calls-on-adjustment"),
    pytest.param(_line(8, minutes=Decimal("-1")), "lines[8].minutes: Decimal('-1') is negative; only a correction's", id="negative-minutes-on-adjustment"),
    pytest.param(_line(6, minutes=Decimal("-1E+13")), "lines[6].minutes: Decimal('-1E+13') is not a finite Decimal below 10^13", id="correction-minutes-too-large"),
    pytest.param(_line(6, cost_usd=Decimal("-1.205")), "lines[6].cost_usd: -1.205 is not rounded to the cent", id="correction-sub-cent"),
    pytest.param(_line(8, cost_center_id=UNALLOCATED, cost_center_name="Unallocated"), "lines[8].allocation: 'adjustment:invoice' on an UNALLOCATED line", id="adjustment-on-unallocated"),
    pytest.param(_with(invoice=None), "an adjustment:invoice line but the statement has no invoice", id="adjustment-without-invoice"),
    pytest.param(_reconciliation(corrections_usd=Decimal("0.00"), difference_usd=Decimal("-0.40")), "reconciliation.corrections_usd: 0.00 but the correction: lines add up to -0.40", id="corrections-term-disagrees"),
    pytest.param(_reconciliation(adjustments_usd=Decimal("3.00"), difference_usd=Decimal("0.17")), "reconciliation.adjustments_usd: 3.00 but the adjustment:invoice lines add up to 3.17", id="adjustments-term-disagrees"),
    pytest.param(_reconciliation(org_total_usd=Decimal("170.00")), "but lines − org − shared − corrections − adjustments = 0.50", id="difference-with-all-terms"),
    pytest.param(_reconciliation(invoice_usd=Decimal("173.00")), "but the statement's invoice is 'INV-2026-10' 173.67", id="reconciled-against-another-invoice"),
    pytest.param(_invoice(difference_usd=Decimal("3.00")), "invoice.difference_usd: 3.00 but amount − usage = 3.17", id="invoice-difference-wrong"),
    pytest.param(_invoice(invoice_id=" "), "invoice.invoice_id: empty", id="invoice-without-id"),
    pytest.param(_invoice(amount_usd=Decimal("173.675")), "invoice.amount_usd: 173.675 is not rounded to the cent", id="invoice-sub-cent"),
    pytest.param(_invoice(tolerance_pct=Decimal(101)), "invoice.tolerance_pct: Decimal('101') is not a percentage", id="tolerance-over-100"),
]  # fmt: skip

LIFECYCLE_CASES = [
    pytest.param(_with(status="booked"), "status: 'booked' is not 'draft' or 'final'", id="unknown-status"),
    pytest.param(_with(status="final"), "approved_by: missing; a final statement records who approved it", id="final-without-approver"),
    pytest.param(_with(approved_by="x@example.com"), "approved_by: 'x@example.com' on a draft", id="draft-with-approver"),
    pytest.param(_with(approved_run_id="run-1"), "approved_run_id: 'run-1' on a draft", id="draft-with-approving-run"),
    pytest.param(_with(status="final", approved_by="x", approved_at=datetime(2026, 11, 3)), "approved_at: 2026-11-03T00:00:00 has no time zone", id="naive-approval-time"),
    pytest.param(_with(version=0), "version: 0 is not a whole number >= 1", id="version-zero"),
    pytest.param(_with(version=True), "version: True is not a whole number >= 1", id="version-bool"),
    pytest.param(_with(version=2), "restatement_reason: missing on version 2", id="restatement-without-reason"),
    pytest.param(_with(restatement_reason="because"), "restatement_reason: given on version 1", id="reason-on-version-1"),
    pytest.param(_with(version=2, restatement_reason="a\x00b"), "restatement_reason: control character", id="reason-with-control-character"),
    pytest.param(_with(statement_prefix="VAPI 2026"), "statement_prefix: statement_prefix 'VAPI 2026' cannot start a statement id", id="bad-prefix"),
    pytest.param(_centers(SALES, replace(SUPPORT, id="ORG")), "cost_centers[1].id: 'ORG' is reserved for the org's statement id", id="cost-center-named-org"),
    pytest.param(_changes(1), "changes_vs.version: 1 is not an earlier version than 1", id="changes-vs-itself"),
]  # fmt: skip


def test_sample_statement_is_valid() -> None:
    validate_statement(sample_statement())


def test_closed_final_and_restated_samples_are_valid() -> None:
    """Negative calls, minutes and money on corrections, a correction on UNALLOCATED, the
    invoice adjustment, a final month and a restatement listing its changes all pass."""
    closed = closed_statement()
    assert min(line.calls for line in closed.lines) < 0
    assert min(line.minutes for line in closed.lines) < 0
    assert any(line.cost_center_id == UNALLOCATED and line.is_correction for line in closed.lines)
    for statement in (
        closed,
        final_statement(),
        restated_statement(),
        closed_statement(status="final", approved_by="c@example.com", approved_at=APPROVED_AT),
    ):
        validate_statement(statement)


@pytest.mark.parametrize(("change", "message"), CLOSED_CASES)
def test_bad_correction_or_adjustment_is_refused_naming_the_field(
    change: Change, message: str
) -> None:
    with pytest.raises(StatementError) as caught:
        validate_statement(change(closed_statement()))

    assert any(message in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(("change", "message"), LIFECYCLE_CASES)
def test_bad_lifecycle_fields_are_refused_naming_the_field(change: Change, message: str) -> None:
    with pytest.raises(StatementError) as caught:
        validate_statement(change(sample_statement()))

    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def test_changes_must_be_lines_of_the_statement_as_it_stands() -> None:
    restated = restated_statement()
    assert restated.changes_vs is not None
    changed, removed, added = restated.changes_vs.lines
    stale = LineChange(changed.old, replace(changed.new, cost_usd=Decimal("99.00")))
    problems = {
        "stale-new-line": _changes(1, stale, removed, added),
        "removed-but-present": _changes(1, changed, LineChange(restated.lines[1], None)),
        "listed-twice": _changes(1, changed, changed),
        "neither-side": _changes(1, LineChange(None, None)),
    }
    expected = {
        "stale-new-line": "changes_vs.lines[0].new: ('sales', 'emea', 'asst-1', 'direct') is not a line",
        "removed-but-present": "listed as removed but the statement has it",
        "listed-twice": "changes_vs.lines[1]: ('sales', 'emea', 'asst-1', 'direct') is listed twice",
        "neither-side": "changes_vs.lines[0]: neither an old nor a new line",
    }
    for name, change in problems.items():
        with pytest.raises(StatementError) as caught:
            validate_statement(change(restated))
        assert any(expected[name] in p for p in caught.value.problems), (
            name,
            caught.value.problems,
        )


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
