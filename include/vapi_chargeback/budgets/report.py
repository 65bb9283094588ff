"""From the cut month's statement to the published month-to-date figures (``budgets.mtd``).

Every figure is read off the statement's lines, already rounded to the cent by allocation,
so the month-to-date figures add up to the statement of the same instant: a cost center's
``spent_usd`` is the sum of its lines, its ``daily_usd`` the statement's daily cost
(rounded against its direct lines), its top assistants its direct lines by assistant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from vapi_chargeback.attribution import DIRECT
from vapi_chargeback.budgets.forecast import METHOD, forecast_usd
from vapi_chargeback.budgets.mtd import AssistantSpend, CostCenterMtd, MtdReport
from vapi_chargeback.budgets.window import MtdWindow
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, Reconciliation, Statement

ZERO = Decimal("0.00")
SHARED_PREFIX = "shared:"


def build_report(
    statement: Statement,
    config: ChargebackConfig,
    window: MtdWindow,
    reconciliation: Reconciliation,
    *,
    pools_note: str,
    run_id: str,
    computed_at: datetime,
) -> MtdReport:
    """The month-to-date figures of ``statement`` (allocated over ``window.period``, with
    prorated pools); budgets from ``config``, in the order of its cost centers."""
    days = [window.month.first_day + timedelta(days=n) for n in range(window.elapsed_days)]
    centers = tuple(
        _center(statement, config, center.id, center.name, center.owner_email, days, window)
        for center in config.for_period(window.period).cost_centers
    )
    return MtdReport(
        period=window.period.label,
        timezone=window.period.timezone,
        month_start=window.period.start,
        as_of=window.as_of,
        through_day=window.through_day,
        elapsed_days=window.elapsed_days,
        total_days=window.total_days,
        forecast_method=METHOD,
        pools_note=pools_note,
        cost_centers=centers,
        unallocated_usd=_sum(
            line for line in statement.lines if line.cost_center_id == UNALLOCATED
        ),
        org_usage_usd=reconciliation.org_total_usd,
        shared_usd=reconciliation.shared_total_usd,
        total_usd=reconciliation.lines_total_usd,
        run_id=run_id,
        config_sha256=config.sha256 or "",
        computed_at=computed_at,
    )


def _center(
    statement: Statement,
    config: ChargebackConfig,
    center_id: str,
    name: str,
    owner_email: str,
    days: Sequence[date],
    window: MtdWindow,
) -> CostCenterMtd:
    lines = [line for line in statement.lines if line.cost_center_id == center_id]
    direct = [line for line in lines if line.allocation == DIRECT]
    shared = _sum(line for line in lines if line.allocation.startswith(SHARED_PREFIX))
    by_day = dict(statement.daily_cost_usd.get(center_id, []))
    daily = tuple((day, by_day.get(day, ZERO)) for day in days)
    spent = _sum(lines)
    return CostCenterMtd(
        cost_center_id=center_id,
        name=name,
        owner_email=owner_email,
        spent_usd=spent,
        direct_usd=_sum(direct),
        shared_usd=shared,
        forecast_usd=forecast_usd(daily, window.month.last_day, shared_usd=spent - _sum(direct)),
        budget=config.budgets.get(center_id),
        top_assistants=_top(direct, config.daily.top_assistants),
        daily_usd=daily,
    )


def _top(direct: Sequence[ChargebackLine], count: int) -> tuple[AssistantSpend, ...]:
    """The costliest assistants of the direct lines (one assistant may be on several teams'
    lines), most expensive first, ties by id."""
    costs: dict[str, Decimal] = {}
    names: dict[str, str] = {}
    for line in direct:
        if line.assistant_id:
            costs[line.assistant_id] = costs.get(line.assistant_id, ZERO) + line.cost_usd
            names[line.assistant_id] = names.get(line.assistant_id) or line.assistant_name
    ranked = sorted(costs.items(), key=lambda item: (-item[1], item[0]))[:count]
    return tuple(AssistantSpend(assistant, names[assistant], cost) for assistant, cost in ranked)


def _sum(lines: Iterable[ChargebackLine]) -> Decimal:
    return sum((line.cost_usd for line in lines), ZERO)
