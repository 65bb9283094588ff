"""The "Chargeback statements" page: every published month, its figures and its files.

A small FastAPI app that the plugin mounts on the api-server (``/chargeback/``) and the
Airflow UI shows in its navigation as an external view. Server-rendered HTML, no script:
one request reads the output storage and answers. The routes and the reading are here; the
markup is ``statements_html``.

- **What it shows** is only what a reader may trust: each month folder is checked with
  ``read_published`` (every listed file present with its sha256). A month that fails the
  check — being replaced, or damaged — is listed as not verified, without links.
- **Where each month stands in its close** (``close.lifecycle``): draft or final, the
  version, the org statement id, who approved it and when, the invoice tie-out (or "not
  tied to an invoice"), earlier versions a restatement kept under ``_versions/`` (each
  verified like a month), and the month's audit trail (``close.audit``). A month
  published before months had a lifecycle reads as draft v1. Audit reasons and names are
  free text typed by people: like every value on the page, they are HTML-escaped.
- **Downloads** are limited to the files the verified manifest lists (plus the manifest
  and the delivery log), and each file's bytes are checked against its sha256 again when
  served, so a link can never hand out another path or a half-replaced file. The same
  holds for an earlier version's files, against that version's manifest.
- **Month to date** (``mtd_html``): above the months, the latest figures the daily DAG
  published under ``_mtd/`` with a budget bar per cost center and the month's budget
  alerts from their ledger; the day's JSON and CSV download by their exact names only.
- **Who may see what** is ``page_access``'s: finance sees this whole page; a cost-center
  owner sees ``owner_html``'s page, their own workbooks only, and every other download
  is the same 403 whether the file exists or not. A browser without a session is sent
  to Airflow's login page.
- **Where the statements are**: the Variable ``vapi_chargeback_output``, else ``output`` in
  the config the Variable ``vapi_chargeback_config`` names, else ``{project}/output`` —
  ``pipeline.output_location``, the rule the DAG uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vapi_chargeback.airflow.mtd_html import MtdView
from vapi_chargeback.airflow.owner_html import render_owner_page
from vapi_chargeback.airflow.page_access import Viewer, airflow_viewer, scope_of
from vapi_chargeback.airflow.statements_html import MonthView, VersionView, render_page
from vapi_chargeback.budgets.alert_log import read_alert_log
from vapi_chargeback.budgets.mtd import MTD_DIR, MtdReport
from vapi_chargeback.close.audit import AuditRecordError, read_events
from vapi_chargeback.close.lifecycle import (
    VERSIONS_DIR,
    ManifestStateError,
    MonthState,
    version_folder,
)
from vapi_chargeback.config import ChargebackConfig, ConfigError, load_config
from vapi_chargeback.delivery.deliver import location
from vapi_chargeback.delivery.log import DELIVERY_NAME, DeliveryLog, read_log
from vapi_chargeback.pipeline import output_location
from vapi_chargeback.published import LOCAL_PROTOCOLS
from vapi_chargeback.statements.manifest import MANIFEST_NAME
from vapi_chargeback.storage import read_published

log = logging.getLogger(__name__)

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
VERSION = re.compile(r"^v([1-9][0-9]{0,5})$")
MTD_FILE = re.compile(r"^mtd-(\d{4}-\d{2}-\d{2})\.(json|csv)$")
"""A month-to-date file's name, as ``budgets.mtd.mtd_name`` writes it."""
"""A version folder's name, ``v{N}``, as ``close.lifecycle.version_folder`` writes it."""
MEDIA_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}
MISSING_FOLDER = (FileNotFoundError, NotADirectoryError)
"""What listing a folder that is not there raises: locally the first, on S3 (no folders,
only key prefixes) ``upath`` says the second."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self';"
        " base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def signed_in() -> Viewer:
    """Who asks; ``create_app`` overrides this with Airflow's user or a test's."""
    raise NotImplementedError("create_app sets the viewer dependency")


SignedIn = Annotated[Viewer, Depends(signed_in)]


@dataclass(frozen=True)
class Source:
    """Where the statements are, and the cost-center names to show with their ids."""

    output_url: str
    names: dict[str, str]
    config: ChargebackConfig | None = None
    """Who owns which cost center (``page_access``); none: owners see nothing."""


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
    return Source(output_url=str(output), names=names, config=config)


def storage_root(output_url: str) -> Any:
    """The output as the page reads it, freshly: a local ``Path``, else Airflow's
    ``ObjectStoragePath`` — ``s3://conn_id@bucket/prefix`` names the Airflow connection
    (keys, region, ``endpoint_url``), which a plain ``UPath`` would take for part of the
    bucket name — with the filesystem's listing cache dropped, so that a long-lived
    api-server lists the months as they are now, not as at its first request."""
    protocol = output_url.split("://", 1)[0] if "://" in output_url else ""
    if protocol in LOCAL_PROTOCOLS:
        return location(output_url)
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(output_url)
    root.fs.invalidate_cache()
    return root


def months(output_url: str) -> list[MonthView]:
    """Every ``YYYY-MM`` folder under the output, newest first, each verified."""
    root = storage_root(output_url)
    try:
        periods = sorted(
            (entry.name for entry in root.iterdir() if MONTH.match(entry.name) and entry.is_dir()),
            reverse=True,
        )
    except MISSING_FOLDER:
        return []
    return [_month(root, period) for period in periods]


def _month(root: Any, period: str) -> MonthView:
    manifest = read_published(root, period)
    problems: list[str] = []
    state = None
    if manifest is not None:
        try:
            state = MonthState.from_manifest(manifest)
        except ManifestStateError as error:
            problems.append(str(error))
    try:
        events = read_events(root, period)
    except AuditRecordError as error:
        events = []
        problems.append(f"audit trail unreadable: {error}")
    return MonthView(
        period=period,
        manifest=manifest,
        delivery=_delivery(root, period),
        has_delivery_copy=(root / period / DELIVERY_NAME).exists(),
        state=state,
        events=events,
        versions=_versions(root, period),
        problems=problems,
    )


def _versions(root: Any, period: str) -> list[VersionView]:
    """The superseded versions a restatement moved aside, each verified like a month."""
    try:
        numbers = sorted(
            int(found.group(1))
            for entry in (root / VERSIONS_DIR / period).iterdir()
            if (found := VERSION.match(entry.name)) and entry.is_dir()
        )
    except MISSING_FOLDER:
        return []
    return [VersionView(n, read_published(root, period, version=n)) for n in numbers]


def create_app(
    project_dir: Path,
    *,
    authorize: Callable[..., Any] | None = None,
    source: Callable[[], Source] | None = None,
    viewer: Callable[..., Viewer] | None = None,
) -> FastAPI:
    """The page's app. ``viewer`` (who is signed in, ``page_access``) and ``source`` default
    to Airflow's; tests swap them, and may add an ``authorize`` dependency."""
    who = viewer or airflow_viewer()
    find = source or (lambda: airflow_source(project_dir))
    app = FastAPI(
        title="Chargeback statements",
        dependencies=[Depends(authorize)] if authorize else [],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.dependency_overrides[signed_in] = who

    @app.exception_handler(StarletteHTTPException)
    async def login_redirect(request: Request, error: StarletteHTTPException) -> Response:
        """A browser without a session goes to Airflow's login and comes back here after."""
        if error.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status_code=303)
        return await http_exception_handler(request, error)

    @app.get("/", response_class=HTMLResponse)
    def index(user: SignedIn) -> HTMLResponse:
        found = find()
        if user.finance:
            page = render_page(
                months(found.output_url),
                found.output_url,
                found.names,
                latest_mtd(found.output_url),
            )
        else:
            owned = sorted(scope_of(user, found.config).cost_centers)
            page = render_owner_page(user, owned, months(found.output_url), found.names)
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    @app.get("/files/{period}/{relative:path}")
    def download(period: str, relative: str, user: SignedIn) -> Response:
        found = find()
        scope_of(user, found.config).require(period, relative)
        return _attachment(verified_file(found.output_url, period, relative), relative)

    @app.get("/_mtd/{period}/{name}")
    def download_mtd(period: str, name: str, user: SignedIn) -> Response:
        found = find()
        scope_of(user, found.config).require_finance()
        return _attachment(mtd_file(found.output_url, period, name), name)

    @app.get("/versions/{period}/{version}/{relative:path}")
    def download_version(period: str, version: str, relative: str, user: SignedIn) -> Response:
        found = find()
        scope_of(user, found.config).require(period, relative)
        data = verified_version_file(found.output_url, period, version, relative)
        return _attachment(data, relative)

    return app


def _attachment(data: bytes, relative: str) -> Response:
    name = PurePosixPath(relative).name
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    media_type = MEDIA_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
    return Response(data, media_type=media_type, headers=headers)


def verified_file(output_url: str, period: str, relative: str) -> bytes:
    """The bytes of a file the month's manifest lists, checked against its sha256; else 404/409."""
    if not MONTH.match(period):
        raise HTTPException(404, f"{period!r} is not a month")
    if not _safe_relative(relative):
        raise HTTPException(404, f"{relative!r} is not a file of a month")
    root = storage_root(output_url)
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


def verified_version_file(output_url: str, period: str, version: str, relative: str) -> bytes:
    """A file of an earlier version (``v{N}``) its verified manifest lists; else 404/409.

    A superseded version is never written again, so the whole set is verified on every
    download (as ``read_published`` does for it) and the file checked against it.
    """
    found = VERSION.match(version)
    if not MONTH.match(period) or found is None:
        raise HTTPException(404, f"{period!r}/{version!r} is not a version of a month")
    if not _safe_relative(relative):
        raise HTTPException(404, f"{relative!r} is not a file of a version")
    root = storage_root(output_url)
    folder = root / version_folder(period, int(found.group(1)))
    manifest = read_published(root, period, version=int(found.group(1)))
    if manifest is None:
        raise HTTPException(404, f"{period} has no complete, verified {version}")
    entry = manifest["files"].get(relative)
    if relative != MANIFEST_NAME and entry is None:
        raise HTTPException(404, f"{period} {version} lists no file {relative!r}")
    try:
        data = bytes((folder / relative).read_bytes())
    except FileNotFoundError:
        raise HTTPException(409, f"{period} {version}: {relative} is missing") from None
    if entry is not None and hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise HTTPException(409, f"{period} {version}: {relative} does not match its manifest")
    return data


def latest_mtd(output_url: str) -> MtdView | None:
    """The newest month-to-date figures (last month folder, last day in it), with the
    month's alert ledger; ``None`` when the daily run has published none.

    The JSON is written after the CSV, each whole: a day with its JSON is complete.
    """
    root = storage_root(output_url)
    try:
        periods = sorted(
            (e.name for e in (root / MTD_DIR).iterdir() if MONTH.match(e.name) and e.is_dir()),
            reverse=True,
        )
    except MISSING_FOLDER:
        return None
    for period in periods:
        folder = root / MTD_DIR / period
        days = sorted(
            found.group(1)
            for entry in folder.iterdir()
            if (found := MTD_FILE.match(entry.name)) and found.group(2) == "json"
        )
        if not days:
            continue
        relative = f"{MTD_DIR}/{period}/mtd-{days[-1]}.json"
        csv_present = (folder / f"mtd-{days[-1]}.csv").exists()
        try:
            report = MtdReport.from_json((root / relative).read_bytes())
            alerts = read_alert_log(root, period)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("statements page: %s unreadable: %s", relative, error)
            return MtdView(None, relative, csv_present, problem=f"{type(error).__name__}: {error}")
        return MtdView(report, relative, csv_present, alerts)
    return None


def mtd_file(output_url: str, period: str, name: str) -> bytes:
    """A month-to-date JSON or CSV by its exact name; nothing else under ``_mtd/`` (else 404)."""
    if not MONTH.match(period) or not MTD_FILE.match(name):
        raise HTTPException(404, f"{period}/{name} is not a month-to-date file")
    try:
        return bytes((storage_root(output_url) / MTD_DIR / period / name).read_bytes())
    except FileNotFoundError:
        raise HTTPException(404, f"no month-to-date file {period}/{name}") from None


def _safe_relative(relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return (
        bool(parts)
        and not relative.startswith("/")
        and "\\" not in relative
        and all(part not in ("", ".", "..") for part in parts)
    )


def _delivery(root: Any, period: str) -> DeliveryLog | None:
    try:
        return read_log(root, period)
    except ValueError as error:
        log.warning("statements page: delivery log of %s unreadable: %s", period, error)
        return None
