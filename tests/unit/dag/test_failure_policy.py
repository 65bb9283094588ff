"""The one error policy on the Airflow side: what a retry cannot fix fails for good.

Each case makes its error with the real code that raises it in a run (the config loader,
the client against a mocked transport, the planner, the reconciler, the hook, the output
folder …) and passes it through ``steps.failure_policy``, the adapter every task of the
DAG goes through. Permanent errors must come out as Airflow's non-retryable
``AirflowFailException`` with the original message; transient ones must come out
unchanged, so that Airflow retries them. ``tests/e2e/test_dag_failure_policy.py`` shows
the same through ``airflow dags test`` (try numbers read from the metadata database).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from airflow.sdk.exceptions import AirflowFailException

from vapi_chargeback.airflow import steps
from vapi_chargeback.airflow.hook import VapiAnalyticsHook
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    AnalyticsQueryResult,
)
from vapi_chargeback.config import load_config
from vapi_chargeback.errors import ChargebackError, PermanentError
from vapi_chargeback.mapping import load_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.pipeline import RunSettings, make_folder, plan_run
from vapi_chargeback.plan import ORG_TOTAL_QUERY, build_plan, measure_alias
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.statement import ChargebackLine, Statement

ROOT = Path(__file__).resolve().parents[3]
DEMO_CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
QUERY = AnalyticsQuery(
    table="call", name="cost", operations=[AnalyticsOperation(operation="sum", column="cost")]
)


def client_answering(*responses: httpx.Response, **options: float) -> VapiAnalyticsClient:
    answers = list(responses)
    return VapiAnalyticsClient(
        "http://127.0.0.1:9",
        "sk-unit",
        sleep=lambda seconds: None,
        transport=httpx.MockTransport(lambda request: answers.pop(0) if answers else answers_end()),
        **options,  # type: ignore[arg-type]
    )


def answers_end() -> httpx.Response:
    raise httpx.ConnectError("no more scripted answers")


def query_with(*responses: httpx.Response, **options: float) -> None:
    with client_answering(*responses, **options) as client:
        client.query([QUERY])


def bad_config(tmp_path: Path) -> None:
    path = tmp_path / "chargeback.yaml"
    path.write_text(DEMO_CONFIG.read_text().replace("timezone: ", "timezone: EST #", 1))
    load_config(path)


def bad_mapping(tmp_path: Path) -> None:
    config = load_config(DEMO_CONFIG)
    path = tmp_path / "mapping.csv"
    path.write_text("assistant_id;team;cost_center_id;valid_from;valid_to\n")
    load_mapping(path, config)


def unfinished_month(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    settings = RunSettings(
        config_path=str(DEMO_CONFIG),
        default_output_url=tmp_path.as_uri(),
        month=f"{now:%Y-%m}",
        run_id="unit",
    )
    plan_run(settings, now=now)


def statement_and_plan(lines_cost: Decimal) -> tuple[Statement, object, dict[str, object]]:
    config = load_config(DEMO_CONFIG)
    period = StatementPeriod.for_month("2026-10", config.timezone)
    plan = build_plan(config, period)
    line = ChargebackLine(
        cost_center_id="UNALLOCATED",
        cost_center_name="Unallocated",
        team="",
        assistant_id="",
        allocation="unallocated:no-assistant",
        calls=1,
        minutes=Decimal("1.00"),
        cost_usd=lines_cost,
        components_usd={},
    )
    statement = Statement(
        period="2026-10",
        timezone=config.timezone,
        period_start=period.start,
        period_end=period.end,
        currency="USD",
        components=[],
        cost_centers=[],
        lines=[line],
    )
    return statement, plan, {}


def org_result(calls: int, cost: str) -> AnalyticsQueryResult:
    rows = (
        []
        if calls == 0
        else [{measure_alias("calls"): calls, measure_alias("cost"): cost, "sum_duration": 60}]
    )
    return AnalyticsQueryResult.model_validate(
        {"name": ORG_TOTAL_QUERY, "timeRange": {"start": "2026-10-01T00:00:00Z"}, "result": rows}
    )


def reconciliation_failure(tmp_path: Path) -> None:
    statement, plan, _ = statement_and_plan(Decimal("1.00"))
    fixed = sum(plan.fixed_shared_usd.values(), Decimal(0))  # type: ignore[attr-defined]
    results = {
        name: AnalyticsQueryResult.model_validate({"name": name, "timeRange": {}, "result": []})
        for batch in plan.batches  # type: ignore[attr-defined]
        for name in batch
    }
    results[ORG_TOTAL_QUERY] = org_result(1, str(Decimal("2.00") + fixed))
    reconcile(statement, plan, results)  # type: ignore[arg-type]


def empty_month(tmp_path: Path) -> None:
    statement, plan, _ = statement_and_plan(Decimal("0.00"))
    reconcile(replace(statement, lines=[]), plan, {ORG_TOTAL_QUERY: org_result(0, "0")})  # type: ignore[arg-type]


def missing_connection(tmp_path: Path) -> None:
    VapiAnalyticsHook(vapi_conn_id="no_such_connection_for_this_test").get_conn()


def output_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "statements").write_text("a file where the output folder should be")
    from upath import UPath

    make_folder(UPath(tmp_path / "statements" / "_runs" / "2026-10"))


PERMANENT: dict[str, tuple[Callable[[Path], None], str]] = {
    "bad-config": (bad_config, "ConfigError"),
    "bad-mapping": (bad_mapping, "ConfigError"),
    "http-400": (
        lambda _: query_with(
            httpx.Response(
                400, json={"statusCode": 400, "error": "Bad Request", "message": ["bad"]}
            )
        ),
        "BadRequestError",
    ),
    "http-401": (
        lambda _: query_with(httpx.Response(401, text="Unauthorized")),
        "AuthenticationError",
    ),
    "http-404": (
        lambda _: query_with(httpx.Response(404, text="Not Found")),
        "UnexpectedStatusError",
    ),
    "html-page": (
        lambda _: query_with(
            httpx.Response(200, text="<html></html>", headers={"content-type": "text/html"})
        ),
        "UnusableResponseError",
    ),
    "unfinished-month": (unfinished_month, "MonthNotReadyError"),
    "reconciliation": (reconciliation_failure, "ReconciliationError"),
    "empty-month": (empty_month, "EmptyMonthError"),
    "missing-connection": (missing_connection, "VapiConnectionError"),
    "output-under-a-file": (output_under_a_file, "OutputLocationError"),
}

TRANSIENT: dict[str, tuple[Callable[[Path], None], str]] = {
    "503-outlasting-retries": (
        lambda _: query_with(*[httpx.Response(503)] * 3, max_retries=2),
        "ServerError",
    ),
    "connection-refused": (lambda _: query_with(max_retries=1), "TransportError"),
    "damaged-body": (
        lambda _: query_with(
            *[httpx.Response(200, text='[{"name": "cost", "res')] * 2, max_retries=1
        ),
        "DamagedResponseError",
    ),
}


def raised_by(case: Callable[[Path], None], tmp_path: Path) -> BaseException:
    with pytest.raises(BaseException) as caught:
        steps.failure_policy(case)(tmp_path)
    return caught.value


@pytest.mark.parametrize("name", sorted(PERMANENT))
def test_a_permanent_error_fails_the_task_for_good(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONNECTION_FOR_THIS_TEST", raising=False)
    case, error_name = PERMANENT[name]
    raised = raised_by(case, tmp_path)

    assert isinstance(raised, AirflowFailException), f"{name}: {type(raised).__name__}: {raised}"
    cause = raised.__cause__
    assert isinstance(cause, PermanentError) and type(cause).__name__ == error_name
    assert str(raised).startswith(f"{error_name}: {cause}")
    assert "not retried" in str(raised)


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_a_transient_error_is_left_for_airflow_to_retry(name: str, tmp_path: Path) -> None:
    case, error_name = TRANSIENT[name]
    raised = raised_by(case, tmp_path)

    assert type(raised).__name__ == error_name, f"{name}: {type(raised).__name__}: {raised}"
    assert isinstance(raised, ChargebackError) and not isinstance(raised, PermanentError)


def test_storage_errors_are_left_for_airflow_to_retry(tmp_path: Path) -> None:
    def storage_timeout(_: Path) -> None:
        raise TimeoutError("s3 read timed out")

    raised = raised_by(storage_timeout, tmp_path)
    assert type(raised) is TimeoutError


def test_every_task_of_the_dag_goes_through_the_policy() -> None:
    for name in ("plan", "fetch", "allocate", "reconcile", "verify", "publish", "deliver"):
        function = getattr(steps, name)
        assert function.__wrapped__, f"steps.{name} is not wrapped by failure_policy"
    source = (ROOT / "dags" / "vapi_chargeback_monthly.py").read_text()
    for name in ("plan", "fetch", "allocate", "reconcile", "verify", "publish", "deliver"):
        assert f"return steps.{name}(" in source, f"task {name} bypasses steps.{name}"


def test_the_message_keeps_what_to_do(tmp_path: Path) -> None:
    raised = raised_by(unfinished_month, tmp_path)
    assert "is not complete yet" in str(raised)
    assert "settles" in str(raised)
    assert json.dumps(str(raised))  # plain text, safe for Airflow's UI and mails
