"""``make demo``: a synthetic org, the emulator on loopback, the real DAG for last month.

Everything runs from the project folder: data in ``data/demo/``, Airflow in ``.airflow/``,
statements in ``output/``. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta

from vapi_chargeback import localrun
from vapi_chargeback.config import load_config
from vapi_chargeback.period import last_complete_month

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_DIR / "include" / "config" / "chargeback.yaml"
DEMO_MONTHS = 3


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = load_config(args.config)
    month = args.month or last_complete_month(datetime.now().astimezone(), config.timezone)
    first = date.fromisoformat(f"{month}-01")
    data_start = first - relativedelta(months=DEMO_MONTHS - 1)
    calls = PROJECT_DIR / "data" / "demo" / f"calls-{data_start:%Y-%m}-{DEMO_MONTHS}m.parquet"
    output_dir = PROJECT_DIR / "output"

    _step(f"1/4 demo org: {DEMO_MONTHS} months of calls from {data_start:%Y-%m}")
    if calls.exists():
        print(f"    reusing {calls.relative_to(PROJECT_DIR)}")
    else:
        calls.parent.mkdir(parents=True, exist_ok=True)
        _run(
            [
                str(localrun.BIN / "vapi-emulator"),
                "generate",
                "--month",
                f"{data_start:%Y-%m}",
                "--months",
                str(DEMO_MONTHS),
                "--out",
                str(calls),
            ]
        )

    api_key = secrets.token_urlsafe(24)
    _step("2/4 starting vapi-emulator on loopback")
    emulator_log = PROJECT_DIR / ".airflow" / "demo-emulator.log"
    emulator_log.parent.mkdir(parents=True, exist_ok=True)
    with localrun.serve_emulator([calls], api_key, log=emulator_log) as base_url:
        print(f"    {base_url} (key generated for this run, never written)")
        env = localrun.airflow_env(
            project_dir=PROJECT_DIR,
            airflow_home=PROJECT_DIR / ".airflow",
            api_base_url=base_url,
            api_key=api_key,
            output_url=output_dir.as_uri(),
            config_path=args.config,
        )
        _step("3/4 preparing Airflow (SQLite in .airflow/)")
        localrun.migrate(env)
        logical_date = first + relativedelta(months=1)
        _step(f"4/4 airflow dags test {localrun.DAG_ID} {logical_date} → statements for {month}")
        started = time.monotonic()
        log = localrun.dags_test(logical_date, env, log_name=f"demo-{month}.log")
        print(
            f"    done in {time.monotonic() - started:.1f} s; log: {log.relative_to(PROJECT_DIR)}"
        )

    _summary(output_dir / month)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make demo",
        description="Generate a demo org, serve it with vapi-emulator on 127.0.0.1 and run the "
        "real chargeback DAG for one month with `airflow dags test`.",
    )
    parser.add_argument(
        "--month",
        help="statement month YYYY-MM (default: the last complete month in the org time zone)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"chargeback.yaml to use (default: {DEFAULT_CONFIG.relative_to(PROJECT_DIR)})",
    )
    return parser


def _summary(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    print(f"\nStatements for {manifest['period']} ({manifest['timezone']}):")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(PROJECT_DIR)}")
    totals = manifest["totals"]
    print(f"\n  {'cost center':<28} {'cost USD':>12}")
    for cost_center, amount in totals["cost_by_cost_center_usd"].items():
        print(f"  {cost_center:<28} {Decimal(amount):>12,.2f}")
    print(f"  {'total':<28} {Decimal(totals['cost_usd']):>12,.2f}")
    reconciliation = manifest["reconciliation"]
    verdict = "OK" if reconciliation["ok"] else "MISMATCH"
    print(
        f"\n  reconciliation {verdict}: org total {reconciliation['org_total_usd']}"
        f" + fixed shared {reconciliation['shared_total_usd']}"
        f" = lines {reconciliation['lines_total_usd']}"
    )


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True)


if __name__ == "__main__":
    sys.exit(main())
