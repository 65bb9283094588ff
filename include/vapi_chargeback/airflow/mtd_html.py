"""The statements page's month-to-date section: each cost center's spend against its budget.

From the latest ``{output}/_mtd/{YYYY-MM}/mtd-{YYYY-MM-DD}.json`` the daily run published
(``budgets.mtd``: figures are read, never recomputed) and the month's alert ledger
(``budgets.alert_log``). One bar per cost center with a budget, plain HTML and CSS: the
filled part is the spend so far as a share of the budget (green below the first
threshold, orange past one, red at or over the budget), the dark tick is where the
forecast puts the month's end; both stop at the bar's end, and the numbers beside say
how far past it they are. Every value is HTML-escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal

from vapi_chargeback.budgets.alert_log import AlertLog, format_pct
from vapi_chargeback.budgets.mtd import CostCenterMtd, MtdReport
from vapi_chargeback.money import HUNDRED

STYLE = """
h2{font-size:18px;margin:22px 0 6px}.budget{position:relative;display:inline-block;width:160px;height:10px;background:#edf2f7;
border-radius:5px;vertical-align:middle;margin-right:6px}.budget .fill{position:absolute;
left:0;top:0;height:10px;border-radius:5px}.fill.ok{background:#38a169}
.fill.warn{background:#dd6b20}.fill.bad{background:#e53e3e}.budget .fc{position:absolute;
top:-3px;width:2px;height:16px;background:#2d3748}p.note{color:#4a5568;font-size:12px}
"""


@dataclass(frozen=True)
class MtdView:
    """What the page knows of the month to date."""

    report: MtdReport | None
    """The latest published figures; ``None`` when unreadable (``problem`` says why)."""
    json_path: str
    """Relative to the output root: ``_mtd/{YYYY-MM}/mtd-{YYYY-MM-DD}.json``."""
    csv_present: bool
    alerts: AlertLog | None = None
    problem: str | None = None


def mtd_section(view: MtdView | None) -> str:
    """The section, or a sentence saying the daily run has not published yet."""
    if view is None:
        return (
            "<h2>Month to date</h2><p>No month-to-date figures yet: the DAG"
            " <code>vapi_chargeback_daily</code> publishes them under <code>_mtd/</code>.</p>"
        )
    e = html.escape
    report = view.report
    if report is None:
        return (
            f"<h2>Month to date</h2><p><span class='badge bad'>unreadable</span>"
            f" <code>{e(view.json_path)}</code>: {e(view.problem or '')}</p>"
        )
    links = [_link(view.json_path, "JSON")]
    if view.csv_present:
        links.append(_link(view.json_path.removesuffix(".json") + ".csv", "CSV"))
    rows = "".join(_row(center, view.alerts) for center in report.cost_centers)
    rows += (
        f"<tr><td>Unallocated</td><td><code>UNALLOCATED</code></td>"
        f"<td class=n>{_money(report.unallocated_usd)}</td><td colspan=5></td></tr>"
        f"<tr><th>Total</th><th></th><th class=n>{_money(report.total_usd)}</th>"
        "<th colspan=5></th></tr>"
    )
    return (
        f"<h2 id=mtd>Month to date: {e(report.period)}</h2>"
        f"<p class=sub>Through {e(f'{report.through_day:%A %d %B %Y}')} ({e(report.timezone)}),"
        f" day {report.elapsed_days} of {report.total_days}"
        f"{' (complete month)' if report.complete else ''} · computed"
        f" {report.computed_at.astimezone(UTC):%Y-%m-%d %H:%M UTC} by run"
        f" <code>{e(report.run_id)}</code> · {' · '.join(links)}</p>"
        "<table class=mtd><thead><tr><th>Cost center</th><th>Id</th><th class=n>Spent USD</th>"
        "<th class=n>Budget USD</th><th>Used (tick: forecast)</th><th class=n>Forecast USD</th>"
        f"<th class=n>Forecast</th><th>Alerts this month</th></tr></thead><tbody>{rows}"
        "</tbody></table>"
        f"<p class=note>Forecast: {e(report.forecast_method)}<br>Shared pools:"
        f" {e(report.pools_note)}</p>"
    )


def _row(center: CostCenterMtd, alerts: AlertLog | None) -> str:
    e = html.escape
    head = (
        f"<tr><td>{e(center.name)}</td><td><code>{e(center.cost_center_id)}</code></td>"
        f"<td class=n>{_money(center.spent_usd)}</td>"
    )
    budget = center.budget_usd
    if budget is None:
        return (
            f"{head}<td class=n>—</td><td><span class='badge none'>no budget</span></td>"
            f"<td class=n>{_money(center.forecast_usd)}</td><td class=n>—</td><td></td></tr>"
        )
    return (
        f"{head}<td class=n>{_money(budget)}</td><td>{bar(center)}</td>"
        f"<td class=n>{_money(center.forecast_usd)}</td><td class=n>{_pct(center.forecast_pct)}</td>"
        f"<td>{_alerts(center.cost_center_id, alerts)}</td></tr>"
    )


def bar(center: CostCenterMtd) -> str:
    """The budget bar: spend as a filled share, the forecast as a tick, both capped at 100 %."""
    used = center.used_pct or Decimal(0)
    forecast = center.forecast_pct or Decimal(0)
    if used >= HUNDRED:
        level = "bad"
    elif center.thresholds_crossed:
        level = "warn"
    else:
        level = "ok"
    title = html.escape(
        f"spent {_pct(center.used_pct)} of the budget; forecast {_pct(center.forecast_pct)}",
        quote=True,
    )
    return (
        f"<span class=budget title='{title}'><span class='fill {level}'"
        f" style='width:{min(used, HUNDRED):.1f}%'></span><span class=fc"
        f" style='left:calc({min(forecast, HUNDRED):.1f}% - 1px)'></span></span>"
        f"{_pct(center.used_pct)}"
    )


def _alerts(center_id: str, alerts: AlertLog | None) -> str:
    """The month's alerts of the cost center as the ledger records them."""
    if alerts is None:
        return "none"
    records = sorted(
        (r for r in alerts.alerts.values() if r.cost_center_id == center_id),
        key=lambda r: (r.due_on, r.kind != "threshold", r.pct),
    )
    if not records:
        return "none"
    items = []
    for record in records:
        label = f"{format_pct(record.pct)} %" if record.kind == "threshold" else "forecast"
        kind = "ok" if record.status == "sent" else "warn"
        title = html.escape(
            f"{record.status} to {record.recipient}"
            + (f": {record.error}" if record.error else ""),
            quote=True,
        )
        items.append(
            f"<span class='badge {kind}' title='{title}'>{html.escape(label)}</span>"
            f" {record.due_on:%d %b}"
        )
    return " ".join(items)


def _link(relative: str, label: str) -> str:
    """Relative to the page, so it works under any ``[api] base_url`` prefix."""
    return f"<a href='{html.escape(relative)}' download>{html.escape(label)}</a>"


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.1f} %"


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"
