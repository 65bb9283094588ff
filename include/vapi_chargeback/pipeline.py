"""The run, step by step: plan → fetch → allocate → reconcile → publish, free of Airflow.

Publishing follows the month's lifecycle (``close.publish``): a draft, nothing for a
final month that computes as booked, corrections carried into the next open month for
one that does not, a new version for a restatement. The review step's functions —
:func:`review_summary`, :func:`finalize_run` (approve), :func:`reject_run` — act on the
draft a run published.

Each function is one task of the DAG; ``runner.run_month`` chains the same functions in
one process. Steps hand each other small pydantic objects; anything large — the plan, raw
API responses, the statement — lives in the run's work folder in the output storage
(``{output}/_runs/{YYYY-MM}/{run id}/``, read back by ``workfolder``), so any worker can
pick up the next step and the raw responses stay beside the statements as provenance.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from vapi_chargeback import __version__, statement_json
from vapi_chargeback.allocate import allocate
from vapi_chargeback.analytics.models import DEFAULT_MAX_QUERIES_PER_REQUEST
from vapi_chargeback.analytics.row_cap import post_within_cap
from vapi_chargeback.breakdown_files import store_breakdowns
from vapi_chargeback.close import lifecycle
from vapi_chargeback.close.invoices import load_invoices
from vapi_chargeback.close.lifecycle import require_reason
from vapi_chargeback.close.previous import previous_month
from vapi_chargeback.close.publish import (
    approve_month,
    publish_month,
    reject_month,
    review_of,
    reviewed_draft,
)
from vapi_chargeback.close.store import corrections_into, state_reader
from vapi_chargeback.close.tieout import TieOut, tie_out
from vapi_chargeback.config import ChargebackConfig, load_config
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.exports.accounts import journal_accounts
from vapi_chargeback.fxrates import month_rate
from vapi_chargeback.mapping import AssistantMapping, load_mapping
from vapi_chargeback.names import (
    fetch_assistants,
    forget_names,
    named_lines,
    run_names,
    run_rules,
)
from vapi_chargeback.period import StatementPeriod, last_complete_month, require_settled
from vapi_chargeback.plan import Plan, RowBudget, build_plan
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.statement import ChargebackLine, FxRate, Provenance, Statement
from vapi_chargeback.storage import LOCAL_PROTOCOLS
from vapi_chargeback.workfolder import (
    PLAN_FILE,
    FetchedBatch,
    RunStateError,
    StoragePath,
    StoredResults,
    file_sha256,
    load_plan,
    load_statement,
)

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

OpenPath = Callable[[str], StoragePath]

STATEMENT_FILE = "statement.json"
RECONCILED_FILE = "statement-reconciled.json"
RUNS_DIR = "_runs"
COARSE_PLAN_MIN_ASSISTANTS = 200
"""From this many mapped assistants on, ``plan_run`` has the plan read the mapping and cut
its queries by its stretches of unchanged mapping (``build_plan(mapping=…)``). By day and variable
value the core query alone is ~75 rows per assistant a month: a 2,000-assistant org would
get ~150k rows in one query, past the API's row cap, and a few breakdowns make it millions.
A small org keeps one day-grained query per shape, which is the fewest queries."""
log = logging.getLogger(__name__)


def default_open_path(url: str) -> StoragePath:
    from upath import UPath

    return UPath(url)


class PlanSettings(BaseModel):
    """What any run — the monthly one, the daily one (``budgets.run``) — is asked to do,
    before anything is read."""

    model_config = ConfigDict(frozen=True)

    config_path: str
    output_url: str | None = None
    """Overrides the config's ``output``."""
    default_output_url: str
    """Where statements go when neither the override nor the config names a place."""
    run_id: str
    max_queries_per_request: int = Field(default=DEFAULT_MAX_QUERIES_PER_REQUEST, ge=1)
    """The API's batch limit, as the client will enforce it (the connection may lower it)."""
    api_base_url: str = "the configured API"
    """Named in messages that send the reader to check the connection."""


class RunSettings(PlanSettings):
    """What a monthly run is asked to do, before anything is read."""

    month: str | None = None
    """``YYYY-MM``; ``None`` = the last complete month in the org zone."""
    expect_empty_month: bool = False
    """Publish a month in which the API reports no calls at all (else it is refused)."""
    restate: bool = False
    """Replace a final month with a new version (a draft to approve again); needs ``reason``."""
    reason: str | None = None
    """Why a final month is restated: recorded in its manifest and the audit trail."""


class RunInfo(BaseModel):
    """A planned run: what every later step needs, small enough for XCom."""

    model_config = ConfigDict(frozen=True)

    month: str
    timezone: str
    period_start: datetime
    period_end: datetime
    run_id: str
    config_path: str
    mapping_path: str
    config_sha256: str
    mapping_sha256: str
    output_url: str
    work_url: str
    batch_count: int
    query_count: int
    expect_empty_month: bool = False
    api_base_url: str = "the configured API"
    restate: bool = False
    reason: str | None = None
    """The restatement reason as checked (stripped); ``None`` unless ``restate``."""
    invoices_path: str | None = None
    invoices_sha256: str | None = None
    """Of ``invoices_path`` when planned; ``None`` when there was no such file."""
    fx: FxRate | None = None
    """The reporting currency's rate for the month, chosen when planned (``fxrates``)."""


def plan_run(
    settings: RunSettings,
    *,
    open_path: OpenPath = default_open_path,
    now: datetime | None = None,
) -> RunInfo:
    """Validate everything first — a bad config or mapping, or a month that has not
    settled yet, fails here and writes nothing."""
    now = now or datetime.now(UTC)
    config_file = Path(settings.config_path)
    config = load_config(config_file)
    mapping_file = mapping_path(config, config_file)
    mapping = load_mapping(mapping_file, config)
    month = settings.month or last_complete_month(
        now, config.timezone, settlement_delay_hours=config.settlement_delay_hours
    )
    period = StatementPeriod.for_month(month, config.timezone)
    require_settled(period, config.settlement_delay_hours, now)
    invoices_file = invoices_path(config, config_file)
    invoices = load_invoices(invoices_file)
    fx = month_rate(config.reporting_currency, config.fx, config_file, period)
    plan = plan_for(config, period, mapping, settings.max_queries_per_request)
    output_url = output_location(settings.output_url, config, settings.default_output_url)
    reason = _restatement(month, settings, open_path(output_url))
    work = open_path(output_url) / RUNS_DIR / month / safe_name(settings.run_id)
    make_folder(work)
    forget_names(work)
    (work / PLAN_FILE).write_bytes(plan.model_dump_json(indent=2).encode())
    return RunInfo(
        month=month,
        timezone=config.timezone,
        period_start=period.start,
        period_end=period.end,
        run_id=settings.run_id,
        config_path=str(config_file),
        mapping_path=str(mapping_file),
        config_sha256=file_sha256(config_file),
        mapping_sha256=file_sha256(mapping_file),
        output_url=output_url,
        work_url=str(work),
        batch_count=len(plan.batches),
        query_count=len(plan.queries),
        expect_empty_month=settings.expect_empty_month,
        api_base_url=settings.api_base_url,
        restate=settings.restate,
        reason=reason,
        invoices_path=str(invoices_file),
        invoices_sha256=invoices.sha256,
        fx=fx,
    )


def _restatement(month: str, settings: RunSettings, output: StoragePath) -> str | None:
    """The checked reason of a restatement, refused before anything is fetched: restate
    without a reason, a reason without restate, or restating a month that is not final.
    Publish decides again under the month's lock (the month may change meanwhile)."""
    if not settings.restate and not (settings.reason or "").strip():
        return None
    reason = require_reason(month, settings.reason) if settings.restate else settings.reason
    lifecycle.plan_run(
        month, state_reader(output), changed=True, restate=settings.restate, reason=reason
    )
    return reason


def invoices_path(config: ChargebackConfig, config_file: Path) -> Path:
    """The invoices CSV named by the config (``invoices``), relative to the config file."""
    path = Path(config.invoices)
    return path if path.is_absolute() else config_file.parent / path


def output_location(override: str | None, config: ChargebackConfig | None, default: str) -> str:
    """Where statements go: the override (Airflow Variable ``vapi_chargeback_output``, the
    command line's ``--output``), else the config's ``output``, else ``default``.

    One rule for every reader and writer: the statements page shows the place the DAG
    writes to only because both ask this function. ``config`` is ``None`` where it could
    not be read (the page still lists what the override or the default holds).
    """
    return override or (config.output if config is not None else None) or default


def settlement_pending(config_file: Path, month: str | None, *, now: datetime) -> datetime | None:
    """When ``month`` settles in the config's zone, if that is still after ``now``; else None.

    Scheduled runs wait for this moment (the DAG's ``settled`` sensor) rather than fail in
    ``plan``. The config is read on every call, never when the DAG is parsed, so a changed
    ``settlement_delay_hours`` counts at the next check. No month means the last complete
    one, which has settled by definition.
    """
    if month is None:
        return None
    config = load_config(config_file)
    period = StatementPeriod.for_month(month, config.timezone)
    return period.settles_after(config.settlement_delay_hours, now)


def fetch_batch(
    run: RunInfo,
    index: int,
    client: VapiAnalyticsClient,
    *,
    open_path: OpenPath = default_open_path,
) -> FetchedBatch:
    """Send batch ``index`` of the plan and keep its raw bytes, so a rerun can be audited.

    A response whose rows break what the plan asked (a missing group key, a negative cost)
    raises here and is not kept: later steps only ever see batches that passed. The body is
    checked one result at a time and not kept as objects: this task only stores it. The
    record says how it was checked (:attr:`FetchedBatch.checked`), so a later step reading
    the same bytes by the same rules need not check them again.
    Batch 0 also lists the org's assistants once per run, for their names
    (``names.fetch_assistants``: a failure there is recorded, not raised).
    """
    work = open_path(run.work_url)
    if index == 0:
        fetch_assistants(client, work)
    plan = load_plan(work)
    queries = [plan.query(name) for name in plan.batches[index]]
    response = post_within_cap(client, queries, batch_index=index)
    log.info(
        "batch %d of %s: HTTP %d after %d attempt(s) in %d request(s), %d bytes",
        index,
        run.month,
        response.status_code,
        response.attempts,
        response.requests,
        len(response.raw),
    )
    name = f"batch-{index:03d}.json"
    make_folder(work / "raw")
    (work / "raw" / name).write_bytes(response.raw)
    return FetchedBatch(
        index=index,
        file=name,
        sha256=response.sha256,
        size=len(response.raw),
        attempts=response.attempts,
        status_code=response.status_code,
        spans=response.spans,
        pieces=response.pieces,
        checked=response.checked,
    )


def allocate_run(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    *,
    open_path: OpenPath = default_open_path,
    statement: Statement | None = None,
) -> dict[str, Any]:
    """Allocate and keep the statement, its breakdowns one file per cost center beside it
    (``breakdown_files``); a sharded run's merge passes its rounded ``statement``."""
    work = open_path(run.work_url)
    config, mapping, plan = load_inputs(run, work)
    if statement is None:
        results = StoredResults(work, plan, [FetchedBatch.model_validate(item) for item in fetched])
        statement = allocate(config, mapping, plan, results, run_rules(work, config.mapping_rules))
    output = open_path(run.output_url)
    lines = [*statement.lines, *_carried_into(statement, output)]
    last_day = (statement.period_end - timedelta(days=1)).date()
    names = run_names(work, output, statement.period, last_day, lines, mapping)
    statement = replace(
        statement,
        lines=named_lines(lines, names),
        breakdowns=store_breakdowns(work, statement.breakdowns, make_folder),
        names=names,
        statement_prefix=config.statement_prefix,
        previous=previous_month(output, statement.period, config.statement_prefix),
        fx=run.fx,
        journal=journal_accounts(config.gl, {c.id: c.gl_account for c in config.cost_centers}),
        budgets_usd={center: budget.amount_usd for center, budget in config.budgets.items()},
        provenance=Provenance(
            run_id=run.run_id,
            config_sha256=run.config_sha256,
            mapping_sha256=run.mapping_sha256,
            responses_sha256={item["file"]: item["sha256"] for item in fetched},
            generated_by=f"vapi-chargeback {__version__}",
        ),
    )
    raw = statement_json.dumps(statement)
    (work / STATEMENT_FILE).write_bytes(raw)
    return {
        "statement": STATEMENT_FILE,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "lines": len(statement.lines),
        "fetched": list(fetched),
    }


def _carried_into(statement: Statement, output: StoragePath) -> list[ChargebackLine]:
    """The correction lines pending for the statement's month (``close.store``), in the
    statement's columns: carried from final months that a rerun found changed."""
    names = {center.id: center.name for center in statement.cost_centers}
    zero = Decimal("0.00")
    lines = []
    for item in corrections_into(output, statement.period):
        for line in item.lines:
            lines.append(
                replace(
                    line,
                    cost_center_name=names.get(line.cost_center_id, line.cost_center_name),
                    components_usd={
                        name: line.components_usd.get(name, zero) for name in statement.components
                    },
                )
            )
        log.info(
            "%s carries %d correction line(s) of %s (%s USD)",
            statement.period,
            len(item.lines),
            item.corrected_period,
            sum((line.cost_usd for line in item.lines), Decimal(0)),
        )
    return lines


def reconcile_run(
    run: RunInfo,
    allocated: Mapping[str, Any],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Tie the month to its invoice, if it has one, then raise ``ReconciliationError`` unless
    the lines add up to the independent org total + shared + corrections + adjustments."""
    work = open_path(run.work_url)
    statement = load_statement(work, allocated)
    plan = load_plan(work)
    fetched = [FetchedBatch.model_validate(item) for item in allocated["fetched"]]
    results = StoredResults(work, plan, fetched)
    tie = _tie_out(run, statement, plan)
    if tie is not None:
        log.info("%s", tie.message)
        statement = replace(
            statement, lines=[*statement.lines, *tie.lines], invoice=tie.statement_invoice()
        )
    reconciliation = reconcile(
        statement,
        plan,
        results,
        expect_empty_month=run.expect_empty_month,
        api=run.api_base_url,
    )
    statement = replace(statement, reconciliation=reconciliation)
    raw = statement_json.dumps(statement)
    (work / RECONCILED_FILE).write_bytes(raw)
    return {
        "statement": RECONCILED_FILE,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "org_total_usd": str(reconciliation.org_total_usd),
        "shared_total_usd": str(reconciliation.shared_total_usd),
        "lines_total_usd": str(reconciliation.lines_total_usd),
        "corrections_usd": str(reconciliation.corrections_usd),
        "adjustments_usd": str(reconciliation.adjustments_usd),
        "invoice": statement.invoice.manifest_block() if statement.invoice else None,
    }


def _tie_out(run: RunInfo, statement: Statement, plan: Plan) -> TieOut | None:
    """The month held against its row of ``invoices.csv`` (the file as planned); ``None``
    without one."""
    if run.invoices_path is None:
        return None
    invoices = load_invoices(run.invoices_path)
    if invoices.sha256 != run.invoices_sha256:
        raise RunStateError(
            f"{run.invoices_path} changed after this run was planned; clear the run to plan it"
            " again"
        )
    invoice = invoices.for_period(run.month)
    if invoice is None:
        return None
    if file_sha256(Path(run.config_path)) != run.config_sha256:
        raise RunStateError(
            f"{run.config_path} changed after this run was planned; clear the run to plan it again"
        )
    config = load_config(run.config_path)
    return tie_out(
        run.month,
        statement.lines,
        invoice,
        components=statement.components,
        fixed_pools=list(plan.fixed_shared_usd),
        tolerance_pct=config.invoice_tolerance_pct,
    )


def publish_run(
    run: RunInfo,
    reconciled: Mapping[str, Any],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Publish the month as its lifecycle allows, under its lock (``close.publish``).

    Not final: a draft (``action`` ``draft``). Final: compared with the booked lines;
    unchanged, nothing is written (``unchanged``); changed, the differences are carried
    into the next open month (``corrections``) and the month's files stay byte-identical.
    Final with ``restate``: the set is kept under ``_versions/`` and the next version is
    published as a draft (``restated``). A draft's result is what :func:`review_summary`
    shows and what :func:`finalize_run` approves.
    """
    work = open_path(run.work_url)
    return publish_month(
        open_path(run.output_url),
        work,
        load_statement(work, reconciled),
        run_id=run.run_id,
        restate=run.restate,
        reason=run.reason,
    )


def finalize_run(
    run: RunInfo,
    *,
    approved_by: str,
    approved_at: datetime,
    reviewed: Mapping[str, Any],
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Make the draft that ``reviewed`` (this run's :func:`publish_run` result) published
    final: re-rendered with status final and the approval, swapped in atomically.

    Under the month's lock, refused (``LifecycleError``, nothing written) unless the month
    is still that draft: not a draft, replaced by another run since the review, an invoice
    beyond tolerance (both amounts named), or corrections carried into the month after its
    draft was computed.
    """
    reviewed_draft(reviewed, run.month, run.run_id)
    work = open_path(run.work_url)
    return approve_month(
        open_path(run.output_url),
        load_statement(work, reviewed),
        approved_by=approved_by,
        approved_at=approved_at,
        run_id=run.run_id,
        reviewed_run_id=str(reviewed["run_id"]),
    )


def reject_run(
    run: RunInfo,
    *,
    rejected_by: str | None,
    at: datetime,
    reason: str,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Record that the month's draft was rejected (``rejected`` in the audit trail); its
    files stay as they are, a draft, for a rerun to replace."""
    return reject_month(
        open_path(run.output_url),
        run.month,
        run_id=run.run_id,
        rejected_by=rejected_by,
        at=at,
        reason=reason,
    )


def review_summary(
    run: RunInfo,
    published: Mapping[str, Any],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """What the approver must see, from the month as published now: the approval task's
    ``subject`` and ``body`` (Markdown) and the facts behind them — month, status,
    version, org statement id, totals, the invoice tie-out, links to the files, and
    ``approvable`` with the ``blockers`` that stop :func:`finalize_run`."""
    return review_of(open_path(run.output_url), run.month, published.get("run_id"))


def plan_for(
    config: ChargebackConfig,
    period: StatementPeriod,
    mapping: AssistantMapping,
    max_queries_per_request: int = DEFAULT_MAX_QUERIES_PER_REQUEST,
) -> Plan:
    """The plan of a run: mapping-aware from ``COARSE_PLAN_MIN_ASSISTANTS`` on, and always
    cut in windows and requests by the row budget of the mapping's assistants."""
    assistants = {entry.assistant_id for entry in mapping.entries}
    rows = RowBudget(assistants=len(assistants))
    if len(assistants) < COARSE_PLAN_MIN_ASSISTANTS:
        return build_plan(config, period, max_queries_per_request, rows=rows)
    return build_plan(config, period, max_queries_per_request, mapping=mapping, rows=rows)


def mapping_path(config: ChargebackConfig, config_file: Path) -> Path:
    """The mapping CSV named by the config, relative to the config file."""
    path = Path(config.mapping)
    return path if path.is_absolute() else config_file.parent / path


def make_folder(path: StoragePath) -> None:
    """Create ``path`` with its parents on a local filesystem; on object storage do nothing.

    Object stores have no folders (writing a key is enough), and there fsspec's
    ``mkdir(parents=True)`` creates a missing *bucket*: a typo in the output URL would
    quietly make a new bucket instead of failing on the first write.
    """
    if str(getattr(path, "protocol", "") or "") in LOCAL_PROTOCOLS:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise OutputLocationError(
                f"cannot create the folder {path}: {error.strerror or error} (a regular file"
                " stands where a folder is needed). Point the output (Airflow Variable"
                " vapi_chargeback_output, or `output:` in chargeback.yaml) at a folder."
            ) from error


class OutputLocationError(PermanentError):
    """The output URL names a place where statements cannot be written."""


def safe_name(run_id: str) -> str:
    """A run id as one harmless path segment: Airflow's ids carry ``:`` and ``+``.

    A leading dot is replaced too, so ``.`` or ``..`` (which Airflow's default run-id
    pattern allows) cannot climb out of the month's folder or hide as a dot-entry.
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return "_" + name[1:] if name.startswith(".") else name or "_"


def load_inputs(run: RunInfo, work: StoragePath) -> tuple[ChargebackConfig, Any, Plan]:
    """The config, mapping and plan a run was planned with; refused if either file changed
    since, as the plan's queries and the allocation would no longer agree."""
    config = checked_config(run)
    return config, load_mapping(Path(run.mapping_path), config), load_plan(work)


def checked_config(run: RunInfo) -> ChargebackConfig:
    """The config a run was planned with, once it and the mapping are both held to their
    sha256 (:func:`load_inputs`; the sharded merge, which attributes no rows, reads no
    mapping but still refuses one changed since)."""
    config_file = Path(run.config_path)
    mapping_file = Path(run.mapping_path)
    for path, expected in ((config_file, run.config_sha256), (mapping_file, run.mapping_sha256)):
        if file_sha256(path) != expected:
            raise RunStateError(
                f"{path} changed after this run was planned; clear the run to plan it again"
            )
    return load_config(config_file)
