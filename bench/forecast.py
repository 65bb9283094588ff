"""Benchmark of the month-end forecast: its error on generated months, per forecast day.

For each seed (a different demo org: its own assistants, popularity and mapping) the
emulator's generator writes ``--months`` months of calls; the emulator serves them, and the
daily run itself (``budgets.run.run_mtd``: plan → fetch → allocate → reconcile over HTTP,
pools prorated) computes each cost center's month to date as it would on the 8th, 15th and
22nd — forecasts made with 7, 14 and 21 days elapsed — and on the 1st of the next month,
the month's real total. The error is the absolute percentage error of each cost center's
forecast against that total; its mean over every (seed, month, cost center) is the MAPE.

The same figures are computed for the naive linear forecast (spend so far × days in the
month / days elapsed) as a baseline, so the weekday method's gain is visible.

Prints a table and writes ``bench/results/forecast.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.budgets.forecast import METHOD
from vapi_chargeback.budgets.mtd import MtdReport
from vapi_chargeback.budgets.outputs import read_mtd
from vapi_chargeback.budgets.run import MtdSettings, run_mtd
from vapi_emulator.data import generate_calls_file
from vapi_emulator.org import demo_org, render_mapping_csv
from vapi_emulator.server import run_emulator

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "include" / "config"
RESULTS = ROOT / "bench" / "results" / "forecast.json"
FORECAST_DAYS = (7, 14, 21)
"""Days elapsed when the forecast is made (the runs of the 8th, 15th and 22nd)."""
API_KEY = "bench-forecast"
NOW = datetime(2100, 1, 1, tzinfo=UTC)
"""Every generated month is over by then."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="demo orgs (seeds 1..N)")
    parser.add_argument("--first-month", default="2026-01")
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per month")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    began = time.perf_counter()
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as scratch:
        for seed in range(1, args.seeds + 1):
            samples += _org_samples(Path(scratch) / f"seed-{seed}", seed, args)
    result = {
        "method": METHOD,
        "baseline": "linear: spend so far × days in the month / days elapsed",
        "setup": {
            "seeds": args.seeds,
            "first_month": args.first_month,
            "months": args.months,
            "calls_per_month": args.calls,
            "timezone": "Europe/Berlin",
            "samples_per_day": len(samples) // len(FORECAST_DAYS),
        },
        "mape_pct": {str(day): _summary(samples, day) for day in FORECAST_DAYS},
        "seconds": round(time.perf_counter() - began, 1),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _print(result)


def _org_samples(work: Path, seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (month, cost center, forecast day) of one demo org."""
    work.mkdir(parents=True)
    calls = work / "calls.parquet"
    generate_calls_file(calls, args.first_month, args.months, args.calls, seed=seed)
    config_dir = work / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "assistant_teams.csv").write_text(
        render_mapping_csv(demo_org(seed)), encoding="utf-8"
    )
    first = date.fromisoformat(f"{args.first_month}-01")
    samples = []
    with run_emulator([calls], API_KEY) as url, VapiAnalyticsClient(url, API_KEY) as client:

        def figures(run_day: date) -> MtdReport:
            output = work / "out"
            settings = MtdSettings(
                config_path=str(config_dir / "chargeback.yaml"),
                output_url=output.as_uri(),
                default_output_url=output.as_uri(),
                run_day=run_day,
                run_id=f"bench-{run_day}",
            )
            published = run_mtd(settings, client, now=NOW)
            report = read_mtd(output, date.fromisoformat(published["through_day"]))
            assert report is not None
            return report

        for index in range(args.months):
            month = first + relativedelta(months=index)
            actual = figures(month + relativedelta(months=1))
            for elapsed in FORECAST_DAYS:
                early = figures(month + relativedelta(days=elapsed))
                for center in early.cost_centers:
                    total = actual.cost_center(center.cost_center_id).spent_usd
                    linear = center.spent_usd * early.total_days / early.elapsed_days
                    samples.append(
                        {
                            "seed": seed,
                            "month": early.period,
                            "cost_center": center.cost_center_id,
                            "days_elapsed": elapsed,
                            "actual_usd": str(total),
                            "forecast_usd": str(center.forecast_usd),
                            "linear_usd": str(linear.quantize(Decimal("0.01"))),
                            "ape_pct": _ape(center.forecast_usd, total),
                            "linear_ape_pct": _ape(linear, total),
                        }
                    )
    return samples


def _ape(forecast: Decimal, actual: Decimal) -> float:
    return float(abs(forecast - actual) / actual * 100)


def _summary(samples: list[dict[str, Any]], day: int) -> dict[str, float]:
    ours = [s["ape_pct"] for s in samples if s["days_elapsed"] == day]
    linear = [s["linear_ape_pct"] for s in samples if s["days_elapsed"] == day]
    return {
        "weekday": round(statistics.fmean(ours), 2),
        "weekday_p90": round(statistics.quantiles(ours, n=10, method="inclusive")[-1], 2),
        "weekday_max": round(max(ours), 2),
        "linear": round(statistics.fmean(linear), 2),
        "linear_p90": round(statistics.quantiles(linear, n=10, method="inclusive")[-1], 2),
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _print(result: dict[str, Any]) -> None:
    setup = result["setup"]
    print(
        f"forecast error on {setup['seeds']} generated orgs × {setup['months']} months"
        f" ({setup['calls_per_month']:,} calls/month, {setup['samples_per_day']} cost-center"
        f" months per day) in {result['seconds']} s"
    )
    print(
        f"{'days elapsed':>12}  {'MAPE':>7}  {'p90':>7}  {'max':>7}  {'linear MAPE':>11}  {'p90':>7}"
    )
    for day, row in result["mape_pct"].items():
        print(
            f"{day:>12}  {row['weekday']:>6.2f}%  {row['weekday_p90']:>6.2f}%"
            f"  {row['weekday_max']:>6.2f}%  {row['linear']:>10.2f}%  {row['linear_p90']:>6.2f}%"
        )


if __name__ == "__main__":
    main()
