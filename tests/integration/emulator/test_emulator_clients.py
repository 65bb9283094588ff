"""The official ``vapi-server-sdk`` and our own client work against the emulator unchanged.

Expected values are the hand-computed ones of the edge-case fixture (group D: Berlin's
25-hour day; group E: exact micro-dollar sums).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from vapi import AnalyticsOperation, AnalyticsQuery, Vapi
from vapi import TimeRange as SdkTimeRange
from vapi.core.api_error import ApiError

from vapi_chargeback.analytics import models
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_emulator.server import run_emulator

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "calls_edge_cases.jsonl"
KEY = "client-key"
B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
BERLIN_DAYS = [
    {"date": "2026-10-23T22:00:00.000Z", "assistantId": B, "sumCost": 1, "countId": 1},
    {"date": "2026-10-24T22:00:00.000Z", "assistantId": B, "sumCost": 30, "countId": 4},
    {"date": "2026-10-25T23:00:00.000Z", "assistantId": B, "sumCost": 32, "countId": 1},
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_emulator([FIXTURE], api_key=KEY) as url:
        yield url


def test_official_sdk_queries_the_emulator_unchanged(base_url: str) -> None:
    sdk = Vapi(token=KEY, base_url=base_url)
    results = sdk.analytics.get(
        queries=[
            AnalyticsQuery(
                table="call",
                name="berlin-days",
                group_by=["assistantId"],
                time_range=SdkTimeRange(
                    step="day",
                    timezone="Europe/Berlin",
                    start=datetime(2026, 10, 24, tzinfo=UTC),
                    end=datetime(2026, 10, 27, tzinfo=UTC),
                ),
                operations=[
                    AnalyticsOperation(operation="sum", column="cost"),
                    AnalyticsOperation(operation="count", column="id"),
                ],
            )
        ]
    )
    (result,) = results
    assert result.name == "berlin-days"
    assert result.time_range.timezone == "Europe/Berlin"
    assert result.time_range.start == datetime(2026, 10, 24, tzinfo=UTC)
    assert result.result == BERLIN_DAYS


def test_official_sdk_sees_our_errors_as_api_errors(base_url: str) -> None:
    with pytest.raises(ApiError) as raised:
        Vapi(token="wrong", base_url=base_url).analytics.get(
            queries=[AnalyticsQuery(table="call", name="x", operations=[])]
        )
    assert raised.value.status_code == 401
    assert raised.value.body == {"statusCode": 401, "message": "Unauthorized"}


def test_our_client_gets_exact_decimals(base_url: str) -> None:
    query = models.AnalyticsQuery(
        table="call",
        name="by-cost-center",
        group_by_variable_value=[models.VariableValueGroupBy(key="costCenter")],
        time_range=models.TimeRange(
            start=datetime(2026, 10, 5, tzinfo=UTC), end=datetime(2026, 10, 6, tzinfo=UTC)
        ),
        operations=[models.AnalyticsOperation(operation="sum", column="cost", alias="spend")],
    )
    with VapiAnalyticsClient(base_url, KEY) as client:
        results = client.query([query])
    assert results["by-cost-center"].result == [
        {"costCenter": "", "spend": 0},
        {"costCenter": "legacy-crm", "spend": Decimal("0.5")},
        {"costCenter": "sales", "spend": Decimal("1.000001")},
        {"costCenter": None, "spend": Decimal("3.000001")},
    ]
