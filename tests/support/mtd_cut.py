"""A monthly statement cut at an instant, to hold the month-to-date figures against.

The month-to-date run of day D claims its figures are those of a monthly statement of the
same calls (``createdAt`` before D's local midnight) with the fixed pools as much of them
as has elapsed. Here that statement is made the monthly way, independently of the daily
code: the calls file cut at the instant by DuckDB, a config copy whose pool amounts are
the prorated ones written as plain numbers, and ``runner.run_month`` (the monthly DAG's
steps) over an emulator serving the cut calls.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import yaml

from vapi_chargeback import runner, statement_json
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.money import round_money
from vapi_chargeback.pipeline import RunSettings, default_open_path
from vapi_chargeback.statement import Statement
from vapi_emulator.assistants import sidecar_path
from vapi_emulator.server import run_emulator

LineKey = tuple[str, str, str, str]
LineFigures = tuple[int, Decimal, Decimal]


def cut_calls(source: Path, out: Path, as_of: datetime) -> Path:
    """``source``'s calls created before ``as_of``, as Parquet, with its assistants beside."""
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet('{source}') WHERE createdAt < $as_of)"
        f" TO '{out}' (FORMAT parquet)",
        params={"as_of": as_of},
    )
    shutil.copyfile(sidecar_path(source), sidecar_path(out))
    return out


def prorated_config_copy(config_dir: Path, out_dir: Path, elapsed: int, total: int) -> Path:
    """The config folder copied with each fixed pool's ``amount`` × elapsed / total, to the
    cent, half up (what the month-to-date run says it charges)."""
    shutil.copytree(config_dir, out_dir, dirs_exist_ok=True)
    path = out_dir / "chargeback.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for pool in document.get("shared_costs", []):
        if "amount" in pool:
            amount = Decimal(str(pool["amount"]))
            pool["amount"] = str(round_money(Fraction(amount) * elapsed / total))
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def cut_statement(
    calls: Path, as_of: datetime, month: str, config: Path, work: Path, *, now: datetime
) -> Statement:
    """The monthly statement of ``month`` over the calls before ``as_of`` (allocated and
    reconciled by the monthly steps, not published)."""
    cut = cut_calls(calls, work / "cut.parquet", as_of)
    key = "sk-cut-statement"
    output = (work / "out").as_uri()
    settings = RunSettings(
        config_path=str(config),
        output_url=output,
        default_output_url=output,
        month=month,
        run_id="cut-statement",
        expect_empty_month=True,
    )
    with run_emulator([cut], key) as url, VapiAnalyticsClient(url, key) as client:
        done = runner.run_month(settings, client, publish=False, now=now)
    folder = default_open_path(done.run.work_url)
    return statement_json.loads((folder / done.reconciled["statement"]).read_bytes(), folder)


def statement_lines(statement: Statement) -> dict[LineKey, LineFigures]:
    return {line.key: (line.calls, line.minutes, line.cost_usd) for line in statement.lines}


def mtd_csv_lines(raw: bytes) -> dict[LineKey, LineFigures]:
    rows = csv.DictReader(io.StringIO(raw.decode()))
    return {
        (r["cost_center_id"], r["team"], r["assistant_id"], r["allocation"]): (
            int(r["calls"]),
            Decimal(r["minutes"]),
            Decimal(r["cost_usd"]),
        )
        for r in rows
    }
