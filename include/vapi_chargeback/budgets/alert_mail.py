"""What a budget alert says: the month so far, the budget, where the month is heading and why.

Every figure is read from the published month-to-date figures (``budgets.mtd``), never
recomputed, so the mail agrees with the ``_mtd`` files and the statements page. Built by
delivery's :func:`~vapi_chargeback.delivery.compose.compose_message`: the same headers,
the same HTML and plain-text parts as the statement mails. The owner is the addressee;
finance is copied.

The mail states which alert it is (the highest threshold crossed for the first time
this month, and any other crossed with it, or the forecast), the spend so far with its
share of the budget, the budget left (or how far over), the forecast with its method,
the assistants driving the spend (names beside ids) and the day-by-day trend, each day
with a text bar so the shape reads in any mail client.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from email.message import EmailMessage

from vapi_chargeback.budgets.alert_log import AlertRecord, Kind, format_pct
from vapi_chargeback.budgets.mtd import CostCenterMtd, MtdReport
from vapi_chargeback.delivery.compose import (
    Envelope,
    Section,
    compose_message,
    money,
    month_name,
)
from vapi_chargeback.money import percent_of

BAR_WIDTH = 20
BAR = "█"
ZERO = Decimal(0)


def alert_message(
    report: MtdReport,
    center: CostCenterMtd,
    alerts: Sequence[tuple[Kind, Decimal]],
    earlier: Sequence[AlertRecord],
    *,
    recipient: str,
    cc: Sequence[str],
    envelope: Envelope,
    message_id: str,
) -> EmailMessage:
    """The alert mail for ``alerts`` (lowest first) of one cost center; ``earlier``: its
    alerts already sent this month, named so the owner sees the whole month's story."""
    budget = center.budget_usd
    if budget is None:
        raise ValueError(f"{center.cost_center_id} has no budget: there is nothing to alert on")
    month = month_name(report.period)
    thresholds = [pct for kind, pct in alerts if kind == "threshold"]
    forecast_alert = any(kind == "forecast" for kind, _ in alerts)
    used = _pct(center.used_pct)
    forecast = _pct(center.forecast_pct)
    if thresholds:
        headline = (
            f"{center.name} has spent {used} of its {month} budget"
            f" ({money(center.spent_usd)} of {money(budget)} USD)"
        )
    else:
        headline = (
            f"{center.name} is forecast to spend {forecast} of its {month} budget"
            f" ({money(center.forecast_usd)} of {money(budget)} USD)"
        )
    subject = f"{envelope.subject_prefix} Budget alert: {headline}".strip()
    through = f"{report.through_day:%A %d %B %Y}"
    crossed = _crossed_text(thresholds)
    intro_parts = []
    if thresholds:
        intro_parts.append(
            f"Spend of {center.name} crossed {crossed} of its monthly budget for the first time"
            f" this month: {money(center.spent_usd)} USD through {through} ({report.timezone}),"
            f" {used} of {money(budget)} USD."
        )
    if forecast_alert:
        limit = center.budget.forecast_alert_pct if center.budget else None
        intro_parts.append(
            f"At its current run rate the month ends near {money(center.forecast_usd)} USD,"
            f" {forecast} of the budget — above the {_level(limit)} the forecast alert warns at."
        )
    elif thresholds:
        intro_parts.append(
            f"At its current run rate the month ends near {money(center.forecast_usd)} USD"
            f" ({forecast} of the budget)."
        )
    left = budget - center.spent_usd
    facts = [
        ("Cost center", f"{center.name} ({center.cost_center_id})"),
        (
            "Figures through",
            f"{report.through_day} ({report.timezone}), day {report.elapsed_days} of"
            f" {report.total_days}",
        ),
        ("Budget", f"{money(budget)} USD"),
        ("Spent so far", f"{money(center.spent_usd)} USD ({used})"),
        ("  of which direct", f"{money(center.direct_usd)} USD"),
        ("  of which shared pools", f"{money(center.shared_usd)} USD"),
        (
            "Budget left" if left >= 0 else "Over budget by",
            f"{money(abs(left))} USD",
        ),
        ("Forecast month end", f"{money(center.forecast_usd)} USD ({forecast})"),
        ("This alert", _this_alert(thresholds, forecast_alert)),
        ("Earlier alerts", _earlier_text(earlier)),
        ("Thresholds", _thresholds_text(center)),
    ]
    sections = [Section(None, facts=facts)]
    if center.top_assistants:
        sections.append(_assistants(center))
    if center.daily_usd:
        sections.append(_trend(center))
    footer = (
        f"Forecast: {_sentence(report.forecast_method)} Shared pools:"
        f" {_sentence(report.pools_note)} Each threshold is mailed once a month, the first"
        f" time it is crossed. Figures from {report.relative_json}, run {report.run_id}."
    )
    message = compose_message(
        subject=subject,
        recipient=recipient,
        envelope=envelope,
        message_id=message_id,
        heading=f"Budget alert — {center.name}, {month}",
        intro=" ".join(intro_parts),
        sections=sections,
        footer=footer,
        attachments=[],
        period=report.period,
    )
    if cc:
        message["Cc"] = ", ".join(cc)
    return message


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.1f} %"


def _level(pct: Decimal | None) -> str:
    return "—" if pct is None else f"{format_pct(pct)} %"


def _sentence(text: str) -> str:
    """``text`` ending with a full stop, so the next sentence of the footer reads apart."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _crossed_text(thresholds: Sequence[Decimal]) -> str:
    """``80 %`` or ``50 % and 80 %``: every threshold this mail reports, lowest first."""
    names = [f"{format_pct(pct)} %" for pct in thresholds]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _this_alert(thresholds: Sequence[Decimal], forecast_alert: bool) -> str:
    parts = [f"spend crossed {_crossed_text(thresholds)} of budget"] if thresholds else []
    if forecast_alert:
        parts.append("forecast above its alert level")
    return "; ".join(parts)


def _earlier_text(earlier: Sequence[AlertRecord]) -> str:
    if not earlier:
        return "none this month"
    return "; ".join(
        f"{'forecast' if r.kind == 'forecast' else format_pct(r.pct) + ' %'} on {r.due_on}"
        for r in earlier
    )


def _thresholds_text(center: CostCenterMtd) -> str:
    budget = center.budget
    if budget is None:
        return "none"
    levels = ", ".join(f"{format_pct(pct)} %" for pct in budget.thresholds_pct)
    forecast = (
        "off"
        if budget.forecast_alert_pct is None
        else f"above {format_pct(budget.forecast_alert_pct)} %"
    )
    return f"{levels} of spend; forecast {forecast}"


def _assistants(center: CostCenterMtd) -> Section:
    rows = [
        [
            item.name if item.name and item.name != item.assistant_id else "(no name)",
            item.assistant_id or "(no assistant)",
            money(item.cost_usd),
            _share(item.cost_usd, center.direct_usd),
        ]
        for item in center.top_assistants
    ]
    return Section(
        f"Top {len(rows)} assistants driving the spend (direct cost so far)",
        header=["Assistant", "Id", "Cost USD", "Share of direct"],
        rows=rows,
    )


def _trend(center: CostCenterMtd) -> Section:
    """Each elapsed day's direct cost, the running total and a bar scaled to the largest day."""
    largest = max((cost for _, cost in center.daily_usd), default=ZERO)
    running = ZERO
    rows = []
    for day, cost in center.daily_usd:
        running += cost
        width = 0 if not largest else int(cost * BAR_WIDTH / largest)
        rows.append(
            [f"{day:%a %d %b}", money(cost), money(running), BAR * max(width, 1 if cost else 0)]
        )
    return Section(
        "Day by day (direct cost)",
        header=["Day", "Cost USD", "Month so far USD", ""],
        rows=rows,
    )


def _share(part: Decimal, whole: Decimal) -> str:
    pct = percent_of(part, whole)
    return "—" if pct is None else f"{pct:.1f} %"
