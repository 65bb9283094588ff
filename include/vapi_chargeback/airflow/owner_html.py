"""The statements page as a cost-center owner sees it: their own workbooks, nothing org-wide.

Finance gets ``statements_html``'s page (totals, reconciliation, every file, audit trail,
month to date). An owner (``page_access``) gets one table: per month and cost center they
own, its status, version, statement id and workbook — no org total, no other cost center,
no figure of anyone else, not even the number of cost centers. A month whose set is not
verified is listed without a link, as on finance's page. Every value is HTML-escaped.
"""

from __future__ import annotations

import html

from vapi_chargeback.airflow.page_access import Viewer
from vapi_chargeback.airflow.statements_html import STYLE, MonthView
from vapi_chargeback.close.lifecycle import FINAL
from vapi_chargeback.statements.xlsx import cost_center_workbook_name


def render_owner_page(
    viewer: Viewer, cost_centers: list[str], views: list[MonthView], names: dict[str, str]
) -> str:
    """The owner's page: whose statements these are, then one row per month and cost center."""
    e = html.escape
    owned = ", ".join(f"{e(names.get(c, c))} (<code>{e(c)}</code>)" for c in cost_centers)
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Chargeback statements</title>"
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style>'
        "</head><body><h1>Chargeback statements</h1>"
        f'<p class="sub">Signed in as <b>{e(viewer.name)}</b>.'
    )
    if not cost_centers:
        return (
            head + " No cost center names you as its owner (its <code>owner_email</code> or"
            " <code>owner_groups</code> in chargeback.yaml), so there is nothing to show."
            " Ask finance if that is wrong.</p></body></html>"
        )
    head += (
        f" Your cost center{'s' if len(cost_centers) != 1 else ''}: {owned}. A draft may"
        " still change; a final month is booked.</p>"
    )
    rows = "".join(_rows(view, cost_centers, names) for view in views)
    if not rows:
        return head + "<p>No statements published yet.</p></body></html>"
    return (
        head + "<table><thead><tr><th>Month</th><th>Cost center</th><th>Status</th>"
        f"<th>Statement id</th><th>Workbook</th></tr></thead><tbody>{rows}</tbody></table>"
        "</body></html>"
    )


def _rows(view: MonthView, cost_centers: list[str], names: dict[str, str]) -> str:
    e = html.escape
    if view.manifest is None:
        return (
            f"<tr><td><b>{e(view.period)}</b></td><td colspan=4>"
            '<span class="badge bad">not verified</span> being replaced or damaged;'
            " try again later</td></tr>"
        )
    ids = view.manifest.get("statement_ids")
    by_center = ids.get("cost_centers", {}) if isinstance(ids, dict) else {}
    files = view.manifest.get("files") or {}
    rows = []
    for center in cost_centers:
        workbook = cost_center_workbook_name(center, view.period)
        if workbook not in files:
            continue
        href = f"files/{view.period}/{workbook}"
        statement_id = by_center.get(center) if isinstance(by_center, dict) else None
        rows.append(
            f"<tr><td><b>{e(view.period)}</b></td>"
            f"<td>{e(names.get(center, center))} <code>{e(center)}</code></td>"
            f"<td>{_status(view)}</td>"
            f"<td>{f'<code>{e(statement_id)}</code>' if statement_id else ''}</td>"
            f"<td><a href='{e(href)}' download>Workbook</a></td></tr>"
        )
    return "".join(rows)


def _status(view: MonthView) -> str:
    state = view.state
    if state is None:
        return '<span class="badge none">draft</span>'
    if state.status == FINAL:
        return f'<span class="badge ok">final</span> v{state.version}'
    return f'<span class="badge warn">draft</span> v{state.version}'
