"""Our client sends, byte for byte, what the official ``vapi-server-sdk`` sends for the same query.

Both talk to the same loopback server, which records the two request bodies. If the
SDK (generated from Vapi's own API definition) ever serialises differently — a renamed
field, a datetime format, a null for an unset field — this shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import vapi

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    TimeRange,
    VariableValueGroupBy,
)

from support.scripted_server import ScriptedServer, echo

API_KEY = "sk-wire-test"
BERLIN = ZoneInfo("Europe/Berlin")

QUERIES: dict[str, dict[str, Any]] = {
    "seed-001-example": {
        "table": "call",
        "name": "Total Call Duration",
        "operations": [{"operation": "sum", "column": "duration"}],
    },
    "group-by-and-aliases": {
        "table": "call",
        "name": "cost by assistant",
        "group_by": ["assistantId", "endedReason", "analysis.successEvaluation"],
        "operations": [
            {"operation": "sum", "column": "cost", "alias": "cost"},
            {"operation": "count", "column": "id", "alias": "calls"},
            {"operation": "avg", "column": "costBreakdown.llmPromptTokens"},
        ],
    },
    "variable-values": {
        "table": "call",
        "name": "cost by cost center",
        "group_by": ["assistantId"],
        "group_by_variable_value": [{"key": "costCenter"}, {"key": "project.code"}],
        "operations": [{"operation": "sum", "column": "costBreakdown.transport"}],
    },
    "berlin-month-by-day": {
        "table": "call",
        "name": "daily cost",
        "time_range": {
            "step": "day",
            "start": datetime(2026, 10, 1, tzinfo=BERLIN),
            "end": datetime(2026, 11, 1, tzinfo=BERLIN),
            "timezone": "Europe/Berlin",
        },
        "operations": [{"operation": "sum", "column": "cost"}],
    },
    "utc-instants-with-fractions": {
        "table": "subscription",
        "name": "minutes",
        "time_range": {
            "step": "month",
            "start": datetime(2026, 1, 1, tzinfo=UTC),
            "end": datetime(2026, 6, 30, 23, 59, 59, 250000, tzinfo=ZoneInfo("UTC")),
        },
        "operations": [{"operation": "sum", "column": "minutesUsed"}],
    },
    "step-and-zone-only": {
        "table": "call",
        "name": "peak concurrency",
        "time_range": {"step": "hour", "timezone": "America/New_York"},
        "operations": [
            {"operation": "max", "column": "concurrency"},
            {"operation": "history", "column": "concurrency", "alias": "series"},
        ],
    },
}


def ours(spec: dict[str, Any]) -> AnalyticsQuery:
    time_range = spec.get("time_range")
    return AnalyticsQuery(
        table=spec["table"],
        name=spec["name"],
        group_by=spec.get("group_by"),
        group_by_variable_value=[VariableValueGroupBy(**v) for v in spec["group_by_variable_value"]]
        if "group_by_variable_value" in spec
        else None,
        time_range=TimeRange(**time_range) if time_range else None,
        operations=[AnalyticsOperation(**operation) for operation in spec["operations"]],
    )


def theirs(spec: dict[str, Any]) -> vapi.AnalyticsQuery:
    """The SDK's own classes, given only the fields the spec sets (unset stays unset)."""
    fields: dict[str, Any] = {
        "table": spec["table"],
        "name": spec["name"],
        "operations": [vapi.AnalyticsOperation(**operation) for operation in spec["operations"]],
    }
    if "group_by" in spec:
        fields["group_by"] = spec["group_by"]
    if "group_by_variable_value" in spec:
        fields["group_by_variable_value"] = [
            vapi.VariableValueGroupBy(**value) for value in spec["group_by_variable_value"]
        ]
    if "time_range" in spec:
        fields["time_range"] = vapi.TimeRange(**spec["time_range"])
    return vapi.AnalyticsQuery(**fields)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(default=echo()) as running:
        yield running


@pytest.mark.parametrize(
    "case", [[name] for name in QUERIES] + [list(QUERIES)], ids=[*QUERIES, "all-in-one-request"]
)
def test_request_json_equals_the_official_sdk(server: ScriptedServer, case: list[str]) -> None:
    specs = [QUERIES[name] for name in case]
    before = len(server.requests)
    with VapiAnalyticsClient(server.url, API_KEY) as client:
        client.post_batch([ours(spec) for spec in specs])
    sdk = vapi.Vapi(token=API_KEY, base_url=server.url)
    sdk.analytics.get(queries=[theirs(spec) for spec in specs])

    ours_sent, sdk_sent = server.requests[before:]
    assert (ours_sent.method, ours_sent.path) == (sdk_sent.method, sdk_sent.path)
    assert ours_sent.headers["authorization"] == sdk_sent.headers["authorization"]
    assert ours_sent.json() == sdk_sent.json()
    assert ours_sent.body == sdk_sent.body
