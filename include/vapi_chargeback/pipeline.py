"""The run, step by step: plan → fetch → allocate → reconcile → publish, free of Airflow.

Each function is one task of the DAG and also runs on its own (the CLI and the tests call
them directly). Steps hand each other small pydantic objects; anything large — the plan,
raw API responses, the statement — lives in the run's work folder in the output storage
(``{output}/_runs/{YYYY-MM}/{run id}/``), so any worker can pick up the next step and the
raw responses stay beside the statements as provenance.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from vapi_chargeback import __version__, statement_json
from vapi_chargeback.allocate import allocate
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.config import ChargebackConfig, load_config, load_mapping
from vapi_chargeback.period import StatementPeriod, last_complete_month
from vapi_chargeback.plan import Plan, build_plan
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.statement import Provenance, Statement
from vapi_chargeback.storage import publish_statement

StoragePath = Any
"""A ``upath.UPath`` or Airflow's ``ObjectStoragePath`` (a proxy with the same API)."""

OpenPath = Callable[[str], StoragePath]

PLAN_FILE = "plan.json"
STATEMENT_FILE = "statement.json"
RECONCILED_FILE = "statement-reconciled.json"
RUNS_DIR = "_runs"
_RESULTS = TypeAdapter(list[AnalyticsQueryResult])


def default_open_path(url: str) -> StoragePath:
    from upath import UPath

    return UPath(url)


class RunSettings(BaseModel):
    """What a run is asked to do, before anything is read."""

    model_config = ConfigDict(frozen=True)

    config_path: str
    output_url: str | None = None
    """Overrides the config's ``output``."""
    default_output_url: str
    """Where statements go when neither the override nor the config names a place."""
    month: str | None = None
    """``YYYY-MM``; ``None`` = the last complete month in the org zone."""
    run_id: str


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


class FetchedBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    file: str
    sha256: str
    size: int
    attempts: int
    status_code: int


def plan_run(settings: RunSettings, *, open_path: OpenPath = default_open_path) -> RunInfo:
    """Validate everything first — a bad config or mapping fails here and writes nothing."""
    config_file = Path(settings.config_path)
    config = load_config(config_file)
    mapping_file = mapping_path(config, config_file)
    load_mapping(mapping_file, config)
    month = settings.month or last_complete_month(
        datetime.now().astimezone(),
        config.timezone,
        settlement_delay_hours=config.settlement_delay_hours,
    )
    period = StatementPeriod.for_month(month, config.timezone)
    plan = build_plan(config, period)
    output_url = settings.output_url or config.output or settings.default_output_url
    work = open_path(output_url) / RUNS_DIR / month / safe_name(settings.run_id)
    work.mkdir(parents=True, exist_ok=True)
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
    )


def fetch_batch(
    run: RunInfo,
    index: int,
    client: VapiAnalyticsClient,
    *,
    open_path: OpenPath = default_open_path,
) -> FetchedBatch:
    """Send batch ``index`` of the plan and keep its raw bytes, so a rerun can be audited."""
    work = open_path(run.work_url)
    plan = _load_plan(work)
    queries = [plan.query(name) for name in plan.batches[index]]
    response = client.post_batch(queries)
    name = f"batch-{index:03d}.json"
    (work / "raw").mkdir(parents=True, exist_ok=True)
    (work / "raw" / name).write_bytes(response.raw)
    return FetchedBatch(
        index=index,
        file=name,
        sha256=response.sha256,
        size=len(response.raw),
        attempts=response.attempts,
        status_code=response.status_code,
    )


def allocate_run(
    run: RunInfo,
    fetched: Sequence[Mapping[str, Any]],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    work = open_path(run.work_url)
    config, mapping, plan = _load_inputs(run, work)
    results = _load_results(work, [FetchedBatch.model_validate(item) for item in fetched])
    statement = allocate(config, mapping, plan, results)
    statement = replace(
        statement,
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


def reconcile_run(
    run: RunInfo,
    allocated: Mapping[str, Any],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Raise ``ReconciliationError`` unless the lines add up to the independent org total."""
    work = open_path(run.work_url)
    statement = _load_statement(work, allocated)
    plan = _load_plan(work)
    fetched = [FetchedBatch.model_validate(item) for item in allocated["fetched"]]
    results = _load_results(work, fetched)
    reconciliation = reconcile(statement, plan, results)
    statement = replace(statement, reconciliation=reconciliation)
    raw = statement_json.dumps(statement)
    (work / RECONCILED_FILE).write_bytes(raw)
    return {
        "statement": RECONCILED_FILE,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "org_total_usd": str(reconciliation.org_total_usd),
        "shared_total_usd": str(reconciliation.shared_total_usd),
        "lines_total_usd": str(reconciliation.lines_total_usd),
    }


def publish_run(
    run: RunInfo,
    reconciled: Mapping[str, Any],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    work = open_path(run.work_url)
    statement = _load_statement(work, reconciled)
    result = publish_statement(statement, open_path(run.output_url))
    return {
        "month": run.month,
        "folder": str(result.folder),
        "files": sorted(result.files),
        "total_usd": str(sum((line.cost_usd for line in statement.lines), Decimal(0))),
    }


def mapping_path(config: ChargebackConfig, config_file: Path) -> Path:
    """The mapping CSV named by the config, relative to the config file."""
    path = Path(config.mapping)
    return path if path.is_absolute() else config_file.parent / path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def safe_name(run_id: str) -> str:
    """A run id as one path segment: Airflow's ids carry ``:`` and ``+``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def _load_plan(work: StoragePath) -> Plan:
    return Plan.model_validate_json((work / PLAN_FILE).read_bytes())


def _load_inputs(run: RunInfo, work: StoragePath) -> tuple[ChargebackConfig, Any, Plan]:
    config_file = Path(run.config_path)
    mapping_file = Path(run.mapping_path)
    for path, expected in ((config_file, run.config_sha256), (mapping_file, run.mapping_sha256)):
        if file_sha256(path) != expected:
            raise RuntimeError(
                f"{path} changed after this run was planned; clear the run to plan it again"
            )
    config = load_config(config_file)
    return config, load_mapping(mapping_file, config), _load_plan(work)


def _load_results(
    work: StoragePath, fetched: Sequence[FetchedBatch]
) -> dict[str, AnalyticsQueryResult]:
    """Results by query name, re-read from the stored raw bytes after checking their hashes."""
    results: dict[str, AnalyticsQueryResult] = {}
    for batch in sorted(fetched, key=lambda item: item.index):
        raw = (work / "raw" / batch.file).read_bytes()
        if hashlib.sha256(raw).hexdigest() != batch.sha256:
            raise RuntimeError(f"raw response {batch.file} does not match its recorded sha256")
        for result in _RESULTS.validate_python(json.loads(raw, parse_float=Decimal)):
            results[result.name] = result
    return results


def _load_statement(work: StoragePath, step: Mapping[str, Any]) -> Statement:
    raw = (work / step["statement"]).read_bytes()
    if hashlib.sha256(raw).hexdigest() != step["sha256"]:
        raise RuntimeError(f"{step['statement']} changed since the previous step wrote it")
    return statement_json.loads(raw)
