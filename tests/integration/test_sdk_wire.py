"""Our client sends, byte for byte, what the official ``vapi-server-sdk`` sends for the same query;
and the SDK's ``assistants.list()`` and ``calls.list()`` work against the emulator.

Both talk to the same loopback server, which records the two request bodies. If the
SDK (generated from Vapi's own API definition) ever serialises differently — a renamed
field, a datetime format, a null for an unset field — this shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import vapi

from vapi_chargeback.analytics.calls import iter_calls
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    TimeRange,
    VariableValueGroupBy,
)
from vapi_emulator.app import create_app
from vapi_emulator.assistants import AssistantDirectory
from vapi_emulator.data import generate_calls_file
from vapi_emulator.engine import Engine
from vapi_emulator.server import run_app

from support.scripted_server import ScriptedServer, echo

API_KEY = "sk-wire-test"
CALLS = Path(__file__).resolve().parents[1] / "fixtures" / "calls_edge_cases.jsonl"
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


def test_the_sdk_lists_the_emulators_assistants_with_vapis_parameters() -> None:
    """``assistants.list()`` of the official SDK against ``GET /assistant`` of the emulator:
    its parameters (a float ``limit``, ISO instants) are accepted and its models read back."""
    exported = [
        {
            "id": f"00000000-0000-4000-8000-{number:012d}",
            "orgId": "org-1",
            "name": f"Support – Line {number}",
            "createdAt": f"2026-0{number}-01T08:00:00.000Z",
            "updatedAt": f"2026-0{number}-02T08:00:00.000Z",
        }
        for number in range(1, 6)
    ]
    app = create_app(Engine([CALLS]), API_KEY, assistants=AssistantDirectory(exported))
    with run_app(app) as url:
        sdk = vapi.Vapi(token=API_KEY, base_url=url)
        everything = sdk.assistants.list()
        window = sdk.assistants.list(limit=2, created_at_lt=datetime(2026, 5, 1, 8, tzinfo=UTC))
        updated = sdk.assistants.list(updated_at_ge=datetime(2026, 4, 2, 8, tzinfo=UTC))
        with pytest.raises(vapi.core.api_error.ApiError) as refused:
            vapi.Vapi(token="wrong", base_url=url).assistants.list()
    assert [item.name for item in everything] == [item["name"] for item in reversed(exported)]
    assert everything[0].created_at == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert [item.name for item in window] == ["Support – Line 4", "Support – Line 3"]
    assert [item.id for item in updated] == [exported[4]["id"], exported[3]["id"]]
    assert refused.value.status_code == 401


def test_the_sdks_calls_list_reads_the_emulators_get_call(tmp_path: Path) -> None:
    """``vapi.calls.list()`` parses the emulator's Calls (typed cost items included) and its
    filters select the calls our listing finds."""
    calls = tmp_path / "calls.jsonl"
    generate_calls_file(calls, "2026-10", calls_per_month=300)
    since = datetime(2026, 10, 15, tzinfo=UTC)
    with run_app(create_app(Engine([calls]), API_KEY)) as url:
        listed = vapi.Vapi(token=API_KEY, base_url=url).calls.list(limit=1000, created_at_ge=since)
        with VapiAnalyticsClient(url, API_KEY) as client:
            ours = list(iter_calls(client, since, datetime(2026, 11, 1, tzinfo=UTC)))
    assert sorted(call.id for call in listed) == sorted(call.id for call in ours)
    costed = next(call for call in listed if call.costs)
    assert any(isinstance(item, vapi.ModelCost) for item in costed.costs or [])
    assert costed.cost == pytest.approx(sum(item.cost for item in costed.costs or []))
