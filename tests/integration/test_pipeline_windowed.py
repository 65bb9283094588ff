"""The pipeline's steps over real HTTP, with the day plan and with the windowed plan.

A large org gets the mapping-aware, windowed plan (``plan_for``); the demo org is small,
so here the threshold is lowered to make the same month run both ways. The statements
must not differ by a cent or a row, and each run sends one request per planned batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vapi_chargeback import pipeline, runner, statement_json
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.plan import Plan
from vapi_emulator.data import generate_calls_file
from vapi_emulator.server import run_emulator

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
KEY = "sk-windowed-plan-test"
MONTH = "2026-10"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    calls = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(calls, MONTH, calls_per_month=4_000)
    with run_emulator([calls], KEY) as url:
        yield url


class _Counting(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def _run(base_url: str, output: Path) -> tuple[runner.MonthRun, int]:
    """A month through ``runner.run_month``, and the requests its transport saw."""
    settings = pipeline.RunSettings(
        config_path=str(CONFIG),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id="windowed-test",
    )
    transport = _Counting()
    with VapiAnalyticsClient(base_url, KEY, transport=transport) as client:
        month = runner.run_month(settings, client)
    return month, transport.requests


def _work_file(run: pipeline.RunInfo, name: str) -> bytes:
    return bytes((pipeline.default_open_path(run.work_url) / name).read_bytes())


def test_windowed_plan_publishes_the_same_statement_as_the_day_plan(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daily, daily_requests = _run(base_url, tmp_path / "daily")
    monkeypatch.setattr(pipeline, "COARSE_PLAN_MIN_ASSISTANTS", 0)
    windowed, windowed_requests = _run(base_url, tmp_path / "windowed")
    daily_run, windowed_run = daily.run, windowed.run

    daily_plan = Plan.model_validate_json(_work_file(daily_run, "plan.json"))
    plan = Plan.model_validate_json(_work_file(windowed_run, "plan.json"))
    assert daily_plan.families == {}
    assert plan.families and len(plan.queries) > len(daily_plan.queries)
    # One request per batch, plus the run's one GET /assistant (names, not figures).
    assert (daily_requests, windowed_requests) == (
        daily_run.batch_count + 1,
        windowed_run.batch_count + 1,
    )
    assert (daily.requests + 1, windowed.requests + 1) == (daily_requests, windowed_requests)
    assert all(batch["spans"] for batch in windowed.fetched)

    csv = f"chargeback-{MONTH}.csv"
    assert (tmp_path / "windowed" / MONTH / csv).read_bytes() == (
        tmp_path / "daily" / MONTH / csv
    ).read_bytes()
    first, second = (
        statement_json.loads(
            _work_file(run, pipeline.RECONCILED_FILE), pipeline.default_open_path(run.work_url)
        )
        for run in (daily_run, windowed_run)
    )
    assert (second.lines, second.breakdowns, second.reconciliation) == (
        first.lines,
        first.breakdowns,
        first.reconciliation,
    )
    assert windowed.published and daily.published
    assert windowed.published["total_usd"] == daily.published["total_usd"]


def test_a_batch_stored_without_spans_is_still_read_whole(base_url: str, tmp_path: Path) -> None:
    month, _ = _run(base_url, tmp_path / "first")
    run = month.run
    fetched = [{**batch, "spans": {}} for batch in month.fetched]

    allocated = pipeline.allocate_run(run, fetched)

    assert allocated["lines"] > 0
    assert pipeline.reconcile_run(run, allocated)["org_total_usd"]
