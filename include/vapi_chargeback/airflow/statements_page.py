"""The "Chargeback statements" page: every published month, its figures and its files.

A small FastAPI app that the plugin mounts on the api-server (``/chargeback/``) and the
Airflow UI shows in its navigation as an external view. Server-rendered HTML, no script:
one request reads the output storage and answers.

- **What it shows** is only what a reader may trust: each month folder is checked with
  ``read_published`` (every listed file present with its sha256). A month that fails the
  check — being replaced, or damaged — is listed as not verified, without links.
- **Downloads** are limited to the files the verified manifest lists (plus the manifest
  and the delivery log), and each file's bytes are checked against its sha256 again when
  served, so a link can never hand out another path or a half-replaced file.
- **Who may see it** is decided by Airflow's own auth manager, with the same rule as the
  DAG's run history: read access to the DAG ``vapi_chargeback_monthly`` (statements are
  that DAG's output). A browser without a session is sent to Airflow's login page.
- **Where the statements are**: the Variable ``vapi_chargeback_output``, else ``output`` in
  the config the Variable ``vapi_chargeback_config`` names, else ``{project}/output`` —
  ``pipeline.output_location``, the rule the DAG uses.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vapi_chargeback.config import ChargebackConfig, ConfigError, load_config
from vapi_chargeback.delivery.deliver import location
from vapi_chargeback.delivery.log import DELIVERY_NAME, DeliveryLog, read_log
from vapi_chargeback.money import HUNDRED, percent_of
from vapi_chargeback.pipeline import output_location
from vapi_chargeback.statement import UNALLOCATED
from vapi_chargeback.statements.manifest import MANIFEST_NAME
from vapi_chargeback.storage import read_published

log = logging.getLogger(__name__)

DAG_ID = "vapi_chargeback_monthly"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MEDIA_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self';"
        " base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Source:
    """Where the statements are, and the cost-center names to show with their ids."""

    output_url: str
    names: dict[str, str]


@dataclass(frozen=True)
class MonthView:
    period: str
    manifest: dict[str, Any] | None
    """The verified manifest; ``None`` when the month's set is incomplete or damaged."""
    delivery: DeliveryLog | None
    has_delivery_copy: bool


def airflow_source(project_dir: Path) -> Source:
    """Statements location and names from Airflow Variables and the config, read per request.

    The api-server is not a task: the Task SDK's ``Variable`` reads only the environment
    there, so this uses the server-side model, which also reads the metadata database.
    """
    from airflow.models.variable import Variable

    from vapi_chargeback.airflow.settings import CONFIG_VARIABLE, DEFAULT_CONFIG, OUTPUT_VARIABLE

    config_path = Path(Variable.get(CONFIG_VARIABLE, default_var=None) or DEFAULT_CONFIG)
    if not config_path.is_absolute():
        config_path = project_dir / config_path
    config: ChargebackConfig | None = None
    try:
        config = load_config(config_path)
    except ConfigError as error:
        log.warning("statements page: config not readable, showing ids only: %s", error)
    output = output_location(
        Variable.get(OUTPUT_VARIABLE, default_var=None), config, (project_dir / "output").as_uri()
    )
    names = {center.id: center.name for center in config.cost_centers} if config else {}
    return Source(output_url=str(output), names=names)


def months(output_url: str) -> list[MonthView]:
    """Every ``YYYY-MM`` folder under the output, newest first, each verified."""
    root = location(output_url)
    try:
        periods = sorted(
            (entry.name for entry in root.iterdir() if MONTH.match(entry.name) and entry.is_dir()),
            reverse=True,
        )
    except FileNotFoundError:
        return []
    return [
        MonthView(
            period=period,
            manifest=read_published(root, period),
            delivery=_delivery(root, period),
            has_delivery_copy=(root / period / DELIVERY_NAME).exists(),
        )
        for period in periods
    ]


def create_app(
    project_dir: Path,
    *,
    authorize: Callable[..., Any] | None = None,
    source: Callable[[], Source] | None = None,
) -> FastAPI:
    """The page's app. ``authorize`` and ``source`` default to Airflow's; tests swap them."""
    if authorize is None:
        from airflow.api_fastapi.core_api.security import requires_access_dag

        authorize = requires_access_dag("GET", param_dag_id=DAG_ID)
    find = source or (lambda: airflow_source(project_dir))
    app = FastAPI(
        title="Chargeback statements",
        dependencies=[Depends(authorize)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def login_redirect(request: Request, error: StarletteHTTPException) -> Response:
        """A browser without a session goes to Airflow's login and comes back here after."""
        if error.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status_code=303)
        return await http_exception_handler(request, error)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        found = find()
        page = render_page(months(found.output_url), found.output_url, found.names)
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    @app.get("/files/{period}/{relative:path}")
    def download(period: str, relative: str) -> Response:
        found = find()
        data = verified_file(found.output_url, period, relative)
        name = PurePosixPath(relative).name
        headers = {
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        media_type = MEDIA_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
        return Response(data, media_type=media_type, headers=headers)

    return app


def verified_file(output_url: str, period: str, relative: str) -> bytes:
    """The bytes of a file the month's manifest lists, checked against its sha256; else 404/409."""
    if not MONTH.match(period):
        raise HTTPException(404, f"{period!r} is not a month")
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise HTTPException(404, f"{relative!r} is not a file of a month")
    root = location(output_url)
    month = root / period
    if relative in (MANIFEST_NAME, DELIVERY_NAME):
        if read_published(root, period) is None:
            raise HTTPException(409, f"{period} is not a complete, verified statement set")
        try:
            return bytes((month / relative).read_bytes())
        except FileNotFoundError:
            raise HTTPException(404, f"{period} has no {relative}") from None
    try:
        manifest = json.loads((month / MANIFEST_NAME).read_bytes())
        entry = manifest["files"][relative]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        raise HTTPException(404, f"{period} lists no file {relative!r}") from None
    try:
        data = bytes((month / relative).read_bytes())
    except FileNotFoundError:
        raise HTTPException(
            409, f"{period}/{relative} is missing; the month is incomplete"
        ) from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise HTTPException(409, f"{period}/{relative} does not match its manifest; try again")
    return data


def _delivery(root: Any, period: str) -> DeliveryLog | None:
    try:
        return read_log(root, period)
    except ValueError as error:
        log.warning("statements page: delivery log of %s unreadable: %s", period, error)
        return None


# --- HTML -------------------------------------------------------------------------------

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


def render_page(views: list[MonthView], output_url: str, names: dict[str, str]) -> str:
    e = html.escape
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Chargeback statements</title>"
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head><body>'
        "<h1>Chargeback statements</h1>"
        f'<p class="sub">{len(views)} month{"s" if len(views) != 1 else ""} in'
        f" <code>{e(output_url)}</code>. Only complete sets whose files match their manifest"
        " are offered for download.</p>"
    )
    if not views:
        return head + "<p>No statements published yet.</p></body></html>"
    rows = "".join(_month_row(view) for view in views)
    table = (
        "<table><thead><tr><th>Month</th><th class=n>Total USD</th><th>Allocated</th>"
        "<th class=n>Unallocated USD</th><th>Reconciliation</th><th>Delivery</th>"
        f"<th>Files</th></tr></thead><tbody>{rows}</tbody></table>"
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
            f"<tr><td>{e(period)}</td><td colspan=6><span class='badge bad'>not verified</span>"
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
            f"<td class=n>{_money(cost)}</td><td class=n>{share}</td><td>{link}</td></tr>"
        )
    rows.append(
        f"<tr><th>Total</th><th></th><th class=n>{_money(total)}</th><th class=n>100.0 %</th>"
        "<th></th></tr>"
    )
    listing = [
        f"<li>{_link(period, path, path)} <code>{entry.get('bytes', 0):,} bytes ·"
        f" sha256 {e(str(entry.get('sha256', ''))[:12])}…</code></li>"
        for path, entry in sorted(files.items())
    ]
    listing.append(f"<li>{_link(period, MANIFEST_NAME, MANIFEST_NAME)}</li>")
    if view.has_delivery_copy:
        listing.append(f"<li>{_link(period, DELIVERY_NAME, DELIVERY_NAME)}</li>")
    return (
        f"<details id='m-{e(period)}'{' open' if open_ else ''}><summary>{e(period)} ·"
        f" {e(str(manifest.get('timezone', '')))} · run <code>{e(str(manifest.get('run_id')))}</code>"
        "</summary><table><thead><tr><th>Cost center</th><th>Id</th><th class=n>Cost USD</th>"
        f"<th class=n>Share</th><th>Statement</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table><b>Files</b><ul class=files>{''.join(listing)}</ul></details>"
    )


def _link(period: str, relative: str, label: str) -> str:
    """Relative to the page, so it works under any ``[api] base_url`` prefix."""
    href = f"files/{period}/{relative}"
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
