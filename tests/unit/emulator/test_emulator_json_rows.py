"""Rows written as JSON by SQL (``query_sql.json_rows_sql``) are byte for byte the rows
``render`` writes from fetched tuples: strings with every kind of character JSON escapes,
nulls, zeros, trailing zeros, integers ending in zero, every step and key combination."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vapi_chargeback.analytics.models import AnalyticsQueryDTO
from vapi_emulator import engine as engine_module
from vapi_emulator.engine import Engine
from vapi_emulator.query_sql import json_renderable
from vapi_emulator.render import response_body
from vapi_emulator.resolve import resolve

AWKWARD = [
    'q"uote',
    "back\\slash",
    "\\u000B written out",
    "nul\x00 bell\x07 tab\t newline\n return\r",
    "vt\x0b so\x0e si\x0f sub\x1a esc\x1b us\x1f del\x7f",
    "\x08\x0c both short",
    "ünïcödé – “quotes” 🎧",
    "line\u2028para\u2029nel\x85",
    "",
    "/slash/ <tag> &amp;",
]
"""Values no generated org holds, each where JSON escaping can go wrong."""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = tmp_path_factory.mktemp("json-rows") / "calls.jsonl"
    records: list[dict[str, Any]] = []
    for index in range(60):
        text = AWKWARD[index % len(AWKWARD)]
        record: dict[str, Any] = {
            "id": f"call-{index:03d}" if index % 7 else f'id "{index}" {text}',
            "createdAt": f"2026-10-{1 + index % 9:02d}T{index % 24:02d}:1{index % 6}:00.000Z",
            "type": ["inboundPhoneCall", "webCall", text][index % 3],
            "status": "ended",
            "endedReason": text if index % 2 else None,
            "assistantId": f"assistant-{index % 4}",
            "assistantOverrides": {"variableValues": {"costCenter": text, 'k"ey': index % 3}},
            "analysis": {"successEvaluation": ["true", "false", text, None][index % 4]},
        }
        if index % 5:
            record |= {
                "startedAt": f"2026-10-{1 + index % 9:02d}T{index % 24:02d}:1{index % 6}:05.000Z",
                "endedAt": f"2026-10-{1 + index % 9:02d}T{index % 24:02d}:1{index % 6}:{5 + index % 50:02d}.250Z",
                "cost": [0, 1.5, 0.000001, 100, 12.34, 10][index % 6],
                "costBreakdown": {
                    "llm": [0, 0.1, 0.2, 7][index % 4],
                    "stt": 0.1 * (index % 3),
                    "llmPromptTokens": [0, 100, 1000, 12][index % 4],
                },
            }
        records.append(record)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    loaded = Engine([path])
    loaded.load()
    return loaded


def _queries() -> list[dict[str, Any]]:
    operations = [
        {"operation": "count", "column": "id"},
        {"operation": "sum", "column": "cost", "alias": 'sum "cost"'},
        {"operation": "min", "column": "costBreakdown.llm"},
        {"operation": "max", "column": "costBreakdown.stt"},
        {"operation": "sum", "column": "costBreakdown.llmPromptTokens"},
        {"operation": "max", "column": "costBreakdown.llmCompletionTokens"},
        {"operation": "sum", "column": "duration"},
        {"operation": "min", "column": "id"},
        {"operation": "max", "column": "id"},
    ]
    shapes = [
        {},
        {"groupBy": ["endedReason"]},
        {"groupBy": ["type", "analysis.successEvaluation", "assistantId"]},
        {"groupByVariableValue": [{"key": "costCenter"}, {"key": 'k"ey'}]},
        {"groupBy": ["status"], "groupByVariableValue": [{"key": "missing"}]},
    ]
    queries = []
    for index, shape in enumerate(shapes):
        for step in (None, "hour", "day", "week", "month"):
            time_range: dict[str, Any] = {
                "start": "2026-09-30T00:00:00Z",
                "end": "2026-10-12T00:00:00Z",
                "timezone": ["Europe/Berlin", "America/St_Johns", "UTC"][index % 3],
            }
            if step:
                time_range["step"] = step
            queries.append(
                {
                    "table": "call",
                    "name": f"q{len(queries)}",
                    "timeRange": time_range,
                    "operations": operations,
                    **shape,
                }
            )
    queries.append(
        {
            **queries[0],
            "name": "empty",
            "timeRange": {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
        }
    )
    return queries


@pytest.mark.parametrize("query", _queries(), ids=lambda query: str(query["name"]))
def test_sql_writes_the_rows_render_writes(
    engine: Engine, query: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolve(AnalyticsQueryDTO.model_validate({"queries": [query]}), 0)
    assert json_renderable(resolved[0])

    (written,) = engine.run(resolved)
    assert written.json_rows is not None
    by_sql = response_body([written])
    monkeypatch.setattr(engine_module, "json_renderable", lambda _query: False)
    (fetched,) = engine.run(resolved)
    assert fetched.json_rows is None
    by_python = response_body([fetched])

    assert by_sql == by_python
    assert json.loads(by_sql)[0]["result"] or query["name"] == "empty"


def test_numbers_as_strings_are_written_by_render(engine: Engine) -> None:
    resolved = resolve(AnalyticsQueryDTO.model_validate({"queries": [_queries()[7]]}), 0)

    (result,) = engine.run(resolved, numbers_as_strings=True)

    assert result.json_rows is None
    assert '"countId":"' in response_body([result], numbers_as_strings=True).decode()


def test_averages_minutes_and_histories_are_written_by_render() -> None:
    for operation, column in (("avg", "cost"), ("sum", "minutesUsed"), ("history", "cost")):
        query = {**_queries()[0], "operations": [{"operation": operation, "column": column}]}
        resolved = resolve(AnalyticsQueryDTO.model_validate({"queries": [query]}), 0)
        assert not json_renderable(resolved[0])
