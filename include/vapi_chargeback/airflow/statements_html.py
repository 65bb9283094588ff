"""The statements page's HTML: one server-rendered document, no script.

Apart from the routes (``statements_page``) so the markup can be read and changed on its
own. Every value that reaches the page — audit reasons, actors, invoice messages, ids,
file names — goes through ``html.escape``: much of it is free text typed by people.
``MonthView`` and ``VersionView`` are what the page knows of a month; the routes build
them from the output storage.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from vapi_chargeback.airflow.mtd_html import STYLE as MTD_STYLE
from vapi_chargeback.airflow.mtd_html import MtdView, mtd_section
from vapi_chargeback.close.audit import AuditEvent
from vapi_chargeback.close.lifecycle import FINAL, ManifestStateError, MonthState
from vapi_chargeback.close.tieout import NOT_TIED
from vapi_chargeback.delivery.log import DELIVERY_NAME, DeliveryLog
from vapi_chargeback.money import HUNDRED, percent_of
from vapi_chargeback.statement import UNALLOCATED
from vapi_chargeback.statements.manifest import MANIFEST_NAME


@dataclass(frozen=True)
class VersionView:
    """A superseded version kept under ``_versions/{YYYY-MM}/v{N}/``."""

    version: int
    manifest: dict[str, Any] | None
    """Its verified manifest; ``None`` when a file is missing or does not match."""


@dataclass(frozen=True)
class MonthView:
    period: str
    manifest: dict[str, Any] | None
    """The verified manifest; ``None`` when the month's set is incomplete or damaged."""
    delivery: DeliveryLog | None
    has_delivery_copy: bool
    state: MonthState | None
    """Where the current version stands; ``None`` when unverified or unreadable."""
    events: list[AuditEvent]
    """The month's audit trail, oldest first."""
    versions: list[VersionView]
    """Earlier versions, oldest first."""
    problems: list[str]
    """What could not be read (lifecycle fields, the audit trail), to show, not to hide."""


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px;
color:#1a202c;background:#fff;font-size:14px}
h1{font-size:22px;margin:0 0 4px}p.sub{color:#4a5568;margin:0 0 20px}
table{border-collapse:collapse;margin:0 0 16px;min-width:60%}
th,td{padding:7px 12px;border-bottom:1px solid #e2e8f0;text-align:left;vertical-align:top}
th{background:#f7fafc;font-weight:600;color:#2d3748}td.n,th.n{text-align:right;
font-variant-numeric:tabular-nums}a{color:#2b6cb0;text-decoration:none}a:hover{text-decoration:underline}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.ok{background:#c6f6d5;color:#22543d}.bad{background:#fed7d7;color:#822727}
.warn{background:#feebc8;color:#7b341e}.none{background:#edf2f7;color:#4a5568}
.bar{display:inline-block;width:70px;height:8px;background:#edf2f7;border-radius:4px;
margin-right:6px;vertical-align:middle}.bar span{display:block;height:8px;border-radius:4px;
background:#38a169}details{margin:0 0 12px;border:1px solid #e2e8f0;border-radius:6px;
padding:8px 14px}summary{cursor:pointer;font-weight:600}ul.files{margin:6px 0;padding-left:18px}
code{font-size:12px;color:#4a5568}
"""


def render_page(
    views: list[MonthView],
    output_url: str,
    names: dict[str, str],
    mtd: MtdView | None = None,
) -> str:
    """The whole page: the month to date first (where the month stands now), then the months."""
    e = html.escape
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Chargeback statements</title>"
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}{MTD_STYLE}</style>'
        "</head><body>"
        "<h1>Chargeback statements</h1>"
        f'<p class="sub">{len(views)} month{"s" if len(views) != 1 else ""} in'
        f" <code>{e(output_url)}</code>. Only complete sets whose files match their manifest"
        " are offered for download. A draft may still change; a final month is booked.</p>"
    )
    head += mtd_section(mtd) + "<h2>Statements</h2>"
    if not views:
        return head + "<p>No statements published yet.</p></body></html>"
    rows = "".join(_month_row(view) for view in views)
    table = (
        "<table><thead><tr><th>Month</th><th>Status</th><th class=n>Total USD</th>"
        "<th>Allocated</th><th class=n>Unallocated USD</th><th>Reconciliation</th>"
        f"<th>Delivery</th><th>Files</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    details = "".join(
        _month_details(view, names, open_=index == 0)
        for index, view in enumerate(views)
        if view.manifest is not None
    )
    return head + table + details + "</body></html>"


def _month_row(view: MonthView) -> str:
    e = html.escape
    period = view.period
    manifest = view.manifest
    if manifest is None:
        return (
            f"<tr><td>{e(period)}</td><td colspan=7><span class='badge bad'>not verified</span>"
            " the set is incomplete or a file does not match its manifest (being replaced?)"
            "</td></tr>"
        )
    totals = manifest.get("totals", {})
    total = _decimal(totals.get("cost_usd"))
    allocated = _decimal(totals.get("allocated_usd"))
    share = percent_of(allocated, total)
    bar = (
        f"<span class=bar><span style='width:{min(share, HUNDRED):.0f}%'></span></span>{share:.1f} %"
        if share is not None
        else "—"
    )
    files = manifest.get("files", {})
    workbook = f"chargeback-{period}.xlsx"
    csv_file = f"chargeback-{period}.csv"
    centers = [path for path in files if path.startswith("cost-centers/")]
    links = [
        _link(period, workbook, "Workbook") if workbook in files else "",
        _link(period, csv_file, "CSV") if csv_file in files else "",
        f"<a href='#m-{e(period)}'>{len(centers)} cost-center workbooks</a>" if centers else "",
        _link(period, MANIFEST_NAME, "manifest"),
    ]
    return (
        f"<tr><td><a href='#m-{e(period)}'><b>{e(period)}</b></a></td>"
        f"<td>{_status(view.state)}</td>"
        f"<td class=n>{_money(total)}</td><td>{bar}</td>"
        f"<td class=n>{_money(_decimal(totals.get('unallocated_usd')))}</td>"
        f"<td>{_reconciliation(manifest)}</td><td>{_delivery_badge(view.delivery)}</td>"
        f"<td>{' · '.join(link for link in links if link)}</td></tr>"
    )


def _month_details(view: MonthView, names: dict[str, str], *, open_: bool) -> str:
    e = html.escape
    period = view.period
    manifest = view.manifest or {}
    totals = manifest.get("totals", {})
    files = manifest.get("files", {})
    ids = _statement_ids(manifest)
    center_ids = ids.get("cost_centers")
    by_id = center_ids if isinstance(center_ids, dict) else {}
    total = _decimal(totals.get("cost_usd"))
    by_center = {
        center: _decimal(amount)
        for center, amount in totals.get("cost_by_cost_center_usd", {}).items()
    }
    # Cost centers by cost, most expensive first; what nobody was charged for comes last.
    order = sorted(by_center, key=lambda c: (c == UNALLOCATED, -by_center[c], c))
    rows = []
    for center in order:
        cost = by_center[center]
        workbook = f"cost-centers/{center}-{period}.xlsx"
        link = _link(period, workbook, f"{center}-{period}.xlsx") if workbook in files else ""
        percent = percent_of(cost, total)
        share = "—" if percent is None else f"{percent:.1f} %"
        name = "Unallocated" if center == UNALLOCATED else names.get(center, center)
        rows.append(
            f"<tr><td>{e(name)}</td><td><code>{e(center)}</code></td>"
            f"<td class=n>{_money(cost)}</td><td class=n>{share}</td><td>{link}</td>"
            f"<td>{_code(by_id.get(center))}</td></tr>"
        )
    rows.append(
        f"<tr><th>Total</th><th></th><th class=n>{_money(total)}</th><th class=n>100.0 %</th>"
        "<th></th><th></th></tr>"
    )
    listing = [
        f"<li>{_link(period, path, path)} <code>{entry.get('bytes', 0):,} bytes ·"
        f" sha256 {e(str(entry.get('sha256', ''))[:12])}…</code></li>"
        for path, entry in sorted(files.items())
    ]
    listing.append(f"<li>{_link(period, MANIFEST_NAME, MANIFEST_NAME)}</li>")
    if view.has_delivery_copy:
        listing.append(f"<li>{_link(period, DELIVERY_NAME, DELIVERY_NAME)}</li>")
    version = f" · v{view.state.version} {view.state.status}" if view.state else ""
    return (
        f"<details id='m-{e(period)}'{' open' if open_ else ''}><summary>{e(period)}{version} ·"
        f" {e(str(manifest.get('timezone', '')))} · run <code>{e(str(manifest.get('run_id')))}</code>"
        f"</summary>{_close(view, ids)}<table><thead><tr><th>Cost center</th><th>Id</th>"
        "<th class=n>Cost USD</th><th class=n>Share</th><th>Statement</th>"
        f"<th>Statement id</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<b>Files</b><ul class=files>{''.join(listing)}</ul>"
        f"{_earlier_versions(view)}{_audit_trail(view)}</details>"
    )


def _close(view: MonthView, ids: dict[str, Any]) -> str:
    """The month's place in its close: status, version, statement id, approval, invoice."""
    e = html.escape
    problems = "".join(
        f"<p><span class='badge bad'>unreadable</span> {e(problem)}</p>"
        for problem in view.problems
    )
    state = view.state
    if state is None:
        return problems
    org = ids.get("org")
    if state.status == FINAL and state.approved_at is not None:
        approval = (
            f"approved by <b>{e(str(state.approved_by))}</b> at {_utc(state.approved_at)}"
            + (f" (run <code>{e(state.approved_run_id)}</code>)" if state.approved_run_id else "")
        )
    else:
        approval = "not approved yet: a draft, not booked"
    rows = [
        ("Status", _status(state)),
        ("Statement id", _code(org) or "none recorded"),
        ("Approval", approval),
    ]
    if state.restatement_reason:
        rows.append(("Restated because", e(state.restatement_reason)))
    rows.append(("Invoice", _invoice(state)))
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f"{problems}<table class=close><tbody>{body}</tbody></table>"


def _status(state: MonthState | None) -> str:
    if state is None:
        return "<span class='badge bad'>unknown</span>"
    kind = "ok" if state.status == FINAL else "warn"
    return f"<span class='badge {kind}'>{html.escape(state.status)}</span> v{state.version}"


def _invoice(state: MonthState) -> str:
    e = html.escape
    invoice = state.invoice
    if invoice is None:
        return f"<span class='badge none'>{e(NOT_TIED)}</span>"
    badge = (
        "<span class='badge ok'>tied</span>"
        if invoice.approvable
        else "<span class='badge bad'>cannot be approved</span>"
    )
    return (
        f"{badge} invoice <code>{e(invoice.id)}</code> {e(invoice.amount_usd)} USD · usage"
        f" {e(invoice.usage_usd)} USD · difference {e(invoice.difference_usd)} USD (tolerance"
        f" {e(invoice.tolerance_pct)} %)<br><small>{e(invoice.message)}</small>"
    )


def _earlier_versions(view: MonthView) -> str:
    """Each superseded version with its approval and its files, or why it is not offered."""
    e = html.escape
    if not view.versions:
        return ""
    items = []
    for kept in view.versions:
        label = f"v{kept.version}"
        if kept.manifest is None:
            items.append(
                f"<li>{label} <span class='badge bad'>not verified</span> a file is missing or"
                " does not match its manifest</li>"
            )
            continue
        try:
            state = MonthState.from_manifest(kept.manifest)
        except ManifestStateError as error:
            items.append(
                f"<li>{label} <span class='badge bad'>unreadable</span> {e(str(error))}</li>"
            )
            continue
        approval = (
            f" approved by {e(str(state.approved_by))} at {_utc(state.approved_at)}"
            if state.approved_at is not None
            else ""
        )
        org = _statement_ids(kept.manifest).get("org")
        paths = [*sorted(kept.manifest.get("files", {})), MANIFEST_NAME]
        links = " · ".join(_version_link(view.period, kept.version, path, path) for path in paths)
        items.append(f"<li>{_status(state)} {_code(org)}{approval}<br>{links}</li>")
    return f"<b>Earlier versions</b><ul class=files>{''.join(items)}</ul>"


def _audit_trail(view: MonthView) -> str:
    e = html.escape
    if not view.events:
        return "<p><b>Audit trail</b>: no entries recorded.</p>"
    rows = "".join(
        f"<tr><td>{_utc(event.at)}</td><td>{e(event.event)}</td>"
        f"<td>{'' if event.version is None else f'v{event.version}'}</td>"
        f"<td>{e(event.actor or '')}</td><td>{_why(event)}</td>"
        f"<td><code>{e(event.run_id)}</code></td></tr>"
        for event in view.events
    )
    return (
        "<b>Audit trail</b><table class=audit><thead><tr><th>Time (UTC)</th><th>Event</th>"
        "<th>Version</th><th>Actor</th><th>Reason</th><th>Run</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _why(event: AuditEvent) -> str:
    """The reason as given, then the event's own facts (where a correction went …)."""
    e = html.escape
    parts = [e(event.reason)] if event.reason else []
    parts += [f"<code>{e(key)}: {e(value)}</code>" for key, value in sorted(event.details.items())]
    return "<br>".join(parts)


def _statement_ids(manifest: dict[str, Any]) -> dict[str, Any]:
    ids = manifest.get("statement_ids")
    return ids if isinstance(ids, dict) else {}


def _code(value: object) -> str:
    """A recorded identifier as code; nothing when none was recorded."""
    return f"<code>{html.escape(value)}</code>" if isinstance(value, str) and value else ""


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _link(period: str, relative: str, label: str) -> str:
    """Relative to the page, so it works under any ``[api] base_url`` prefix."""
    href = f"files/{period}/{relative}"
    return f"<a href='{html.escape(href)}' download>{html.escape(label)}</a>"


def _version_link(period: str, version: int, relative: str, label: str) -> str:
    href = f"versions/{period}/v{version}/{relative}"
    return f"<a href='{html.escape(href)}' download>{html.escape(label)}</a>"


def _reconciliation(manifest: dict[str, Any]) -> str:
    check = manifest.get("reconciliation")
    if not isinstance(check, dict):
        return "<span class='badge none'>none</span>"
    if check.get("ok"):
        return "<span class='badge ok'>OK</span>"
    return f"<span class='badge bad'>off by {html.escape(str(check.get('difference_usd')))}</span>"


def _delivery_badge(delivery: DeliveryLog | None) -> str:
    if delivery is None or not delivery.messages:
        return "<span class='badge none'>not sent</span>"
    counts = delivery.counts()
    total = len(delivery.messages)
    if counts["sent"] == total:
        return f"<span class='badge ok'>{total}/{total} sent</span>"
    failed = [m.recipient for m in delivery.messages.values() if m.status != "sent"]
    title = html.escape("not delivered: " + ", ".join(failed))
    return f"<span class='badge warn' title='{title}'>{counts['sent']}/{total} sent</span>"


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"
