"""The check that lets finance book a statement without re-adding it.

The statement's lines come from the grouped core query; the org total comes from an
ungrouped query that shares nothing with it. Σ lines must equal the rounded org total
plus the fixed shared pools, to the cent. A difference means rows were lost, doubled or
mis-rounded somewhere, and the run must stop before anything is published.

Two kinds of line are not this month's usage and are counted as terms of their own:
corrections carried from final months (``correction:{YYYY-MM}``) and the invoice
adjustment (``adjustment:invoice``). So the check is Σ lines = org total + shared +
corrections + adjustments; those two terms are Σ of their lines, so they cannot hide a
difference in the usage lines, which must still equal org total + shared exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.analytics.numbers import to_decimal, to_int
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.money import round_money
from vapi_chargeback.plan import Plan, measure_alias, measure_default_key
from vapi_chargeback.split import exact_sum
from vapi_chargeback.statement import Reconciliation, Statement


class ReconciliationError(PermanentError):
    """The statement does not add up; carries the figures and a readable diff."""

    def __init__(self, reconciliation: Reconciliation, details: list[str]) -> None:
        self.reconciliation = reconciliation
        self.details = details
        super().__init__("\n  ".join(details))


class EmptyMonthError(PermanentError):
    """The API reported no calls at all for the month, and the run did not expect that."""

    def __init__(self, period: str, api: str) -> None:
        self.period = period
        super().__init__(
            f"the Vapi API at {api} reports no calls at all in {period}: nothing published."
            " This usually means an API key of the wrong org, a dead integration or the wrong"
            " base URL (check the vapi_default connection's host and key, and that calls"
            f" appear in the Vapi dashboard for {period}). If the month really had no calls,"
            ' run it again with the param expect_empty_month=true (-c \'{"expect_empty_month":'
            " true}'); the manifest then records that the month was expected to be empty."
        )


def reconcile(
    statement: Statement,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
    *,
    expect_empty_month: bool = False,
    api: str = "the configured URL",
) -> Reconciliation:
    """Compare Σ line cost with round(org total) + Σ fixed pools; raise on any difference.

    Checked first: a month with no calls at all is refused unless ``expect_empty_month``,
    because a statement of shared pools only would be booked and mailed as if real.
    """
    empty = _total_calls(results, plan.org_total_query) == 0
    if empty and not expect_empty_month:
        raise EmptyMonthError(statement.period, api)
    org_total = round_money(_total_cost(results, plan.org_total_query))
    shared_total = sum(plan.fixed_shared_usd.values(), Decimal(0))
    lines_total = sum((line.cost_usd for line in statement.lines), Decimal(0))
    corrections = sum((line.cost_usd for line in statement.lines if line.is_correction), Decimal(0))
    adjustments = sum((line.cost_usd for line in statement.lines if line.is_adjustment), Decimal(0))
    invoice = statement.invoice
    reconciliation = Reconciliation(
        org_total_usd=org_total,
        shared_total_usd=shared_total,
        lines_total_usd=lines_total,
        difference_usd=lines_total - (org_total + shared_total + corrections + adjustments),
        empty_month_expected=empty,
        corrections_usd=corrections,
        adjustments_usd=adjustments,
        invoice_id=invoice.invoice_id if invoice else None,
        invoice_usd=invoice.amount_usd if invoice else None,
    )
    pool_problems = [
        f"shared pool {name!r}: lines {booked} but the config says {amount}"
        for name, amount in plan.fixed_shared_usd.items()
        if (booked := _allocated(statement, f"shared:{name}")) != amount
    ]
    if reconciliation.ok and not pool_problems:
        return reconciliation
    raise ReconciliationError(
        reconciliation, _diff(statement, plan, results, reconciliation) + pool_problems
    )


def _diff(
    statement: Statement,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
    reconciliation: Reconciliation,
) -> list[str]:
    r = reconciliation
    core_total = round_money(
        exact_sum(_total_cost(results, part) for part in plan.parts(plan.core_query))
    )
    by_kind: dict[str, Decimal] = {}
    for line in statement.lines:
        kind = line.allocation.split(":", 1)[0]
        by_kind[kind] = by_kind.get(kind, Decimal(0)) + line.cost_usd
    carried = (
        f" + corrections {r.corrections_usd} + adjustments {r.adjustments_usd}"
        if r.corrections_usd or r.adjustments_usd
        else ""
    )
    lines = [
        f"statement {statement.period} does not reconcile: lines {r.lines_total_usd}"
        f" != org total {r.org_total_usd} + shared {r.shared_total_usd}{carried}"
        f" = {r.expected_usd} (difference {r.difference_usd:+})",
        "lines by kind: " + ", ".join(f"{kind} {total}" for kind, total in sorted(by_kind.items())),
        f"grouped query {plan.core_query!r} totals {core_total};"
        f" ungrouped {plan.org_total_query!r} totals {r.org_total_usd}",
    ]
    if core_total != r.org_total_usd:
        lines.append(
            "the two queries disagree: a response lost or doubled rows (compare the stored"
            " raw responses), or they were fetched for different periods; re-run the fetch"
        )
    return lines


def _total_cost(results: Mapping[str, AnalyticsQueryResult], name: str) -> Decimal:
    """Σ cost over a query's rows, exactly (the ungrouped total has one row, or none)."""
    result = results.get(name)
    if result is None:
        raise KeyError(f"no result for query {name!r}; fetch every batch of the plan first")
    alias, default = measure_alias("cost"), measure_default_key("cost")
    values = []
    for index, row in enumerate(result.result):
        key = alias if alias in row else default
        value = to_decimal(row.get(key), field=f"query {name!r} row {index}.{key}")
        values.append(value if value is not None else Decimal(0))
    return exact_sum(values)


def _total_calls(results: Mapping[str, AnalyticsQueryResult], name: str) -> int:
    """Calls counted by the ungrouped org query (one row, or none in an empty month)."""
    result = results.get(name)
    if result is None:
        raise KeyError(f"no result for query {name!r}; fetch every batch of the plan first")
    alias, default = measure_alias("calls"), measure_default_key("calls")
    total = 0
    for index, row in enumerate(result.result):
        key = alias if alias in row else default
        total += to_int(row.get(key), field=f"query {name!r} row {index}.{key}") or 0
    return total


def _allocated(statement: Statement, allocation: str) -> Decimal:
    return sum(
        (line.cost_usd for line in statement.lines if line.allocation == allocation), Decimal(0)
    )
