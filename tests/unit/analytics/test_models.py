"""The models against the spec: examples round-trip, enums and limits equal the shipped YAML.

Everything the spec says is read from ``openapi.yml`` shipped inside the package, never
typed a second time here, so a spec update that the models miss fails this file.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from vapi_chargeback.analytics import models
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    AnalyticsQueryDTO,
    AnalyticsQueryResult,
    TimeRange,
    VariableValueGroupBy,
    default_result_key,
    validation_messages,
)

SEEDS = Path(__file__).resolve().parents[4] / "shared" / "seeds"
"""``shared/`` lies beside the clone on developer machines and in CI."""

SEED_001_PYTHON_EXAMPLE = """\
from vapi import Vapi, AnalyticsQuery, AnalyticsOperation

client = Vapi(
    token="YOUR_TOKEN_HERE",
)

client.analytics.get(
    queries=[
        AnalyticsQuery(
            table="call",
            name="Total Call Duration",
            operations=[
                AnalyticsOperation(
                    operation="sum",
                    column="duration",
                )
            ],
        )
    ],
)
"""
"""The Python SDK example of seed 001 (Vapi's API reference page), verbatim."""

SEED_001_GO_EXAMPLE = """\
    request := &serversdkgo.AnalyticsQueryDto{
        Queries: []*serversdkgo.AnalyticsQuery{
            &serversdkgo.AnalyticsQuery{
                Table: serversdkgo.AnalyticsQueryTableCall,
                Name: "Total Call Duration",
                Operations: []*serversdkgo.AnalyticsOperation{
                    &serversdkgo.AnalyticsOperation{
                        Operation: serversdkgo.AnalyticsOperationOperationSum,
                        Column: serversdkgo.AnalyticsOperationColumnDuration,
                    },
                },
            },
        },
    }
"""
"""The request literal of the Go SDK example of seed 001, verbatim."""


@cache
def spec() -> dict[str, Any]:
    text = files("vapi_chargeback.analytics").joinpath("openapi.yml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = spec()["components"]["schemas"][name]
    return found


def prop(schema_name: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = schema(schema_name)["properties"][name]
    return found


# Seed examples round-trip -----------------------------------------------------------


def python_example_queries(source: str) -> list[AnalyticsQuery]:
    """Evaluate the ``queries=[...]`` argument of the SDK call with our classes."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "queries":
            names = {"AnalyticsQuery": AnalyticsQuery, "AnalyticsOperation": AnalyticsOperation}
            queries: list[AnalyticsQuery] = eval(
                compile(ast.Expression(node.value), "<seed 001>", "eval"),
                {"__builtins__": {}},
                names,
            )
            return queries
    raise AssertionError("the example has no queries= argument")


def go_constant(enum: list[str]) -> dict[str, str]:
    """Fern's Go names for enum values: ``costBreakdown.llm`` → ``CostBreakdownLlm``."""
    return {
        "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", value)): value
        for value in enum
    }


def go_example_queries(source: str) -> list[AnalyticsQuery]:
    """Read the Go struct literal field by field, mapping constants through the spec's enums."""
    tables = go_constant(prop("AnalyticsQuery", "table")["enum"])
    operations = go_constant(prop("AnalyticsOperation", "operation")["enum"])
    columns = go_constant(prop("AnalyticsOperation", "column")["enum"])
    queries = []
    for block in source.split("&serversdkgo.AnalyticsQuery{")[1:]:
        ops = re.findall(
            r"Operation: serversdkgo\.AnalyticsOperationOperation(\w+),\s*"
            r"Column: serversdkgo\.AnalyticsOperationColumn(\w+)",
            block,
        )
        table = re.search(r"Table: serversdkgo\.AnalyticsQueryTable(\w+)", block)
        name = re.search(r'Name: "([^"]*)"', block)
        assert table and name and ops, f"cannot read the Go example block {block!r}"
        queries.append(
            AnalyticsQuery(
                table=tables[table[1]],  # type: ignore[arg-type]
                name=name[1],
                operations=[
                    AnalyticsOperation(operation=operations[op], column=columns[col])  # type: ignore[arg-type]
                    for op, col in ops
                ],
            )
        )
    return queries


EXPECTED_SEED_WIRE = {
    "table": "call",
    "name": "Total Call Duration",
    "operations": [{"operation": "sum", "column": "duration"}],
}


@pytest.mark.parametrize(
    ("read", "source"),
    [
        pytest.param(python_example_queries, SEED_001_PYTHON_EXAMPLE, id="python-sdk"),
        pytest.param(go_example_queries, SEED_001_GO_EXAMPLE, id="go-sdk"),
    ],
)
def test_seed_sdk_examples_round_trip(
    read: Callable[[str], list[AnalyticsQuery]], source: str
) -> None:
    (query,) = read(source)
    wire = AnalyticsQueryDTO(queries=[query]).to_wire()
    assert wire == {"queries": [EXPECTED_SEED_WIRE]}
    again = AnalyticsQueryDTO.model_validate_json(json.dumps(wire))
    assert again.queries == [query]
    assert again.to_wire() == wire


@pytest.mark.skipif(
    not SEEDS.is_dir() and os.environ.get("CI") != "true",
    reason="the seed files live in ../shared, which CI always has beside the clone",
)
@pytest.mark.parametrize(
    "example", [SEED_001_PYTHON_EXAMPLE, SEED_001_GO_EXAMPLE], ids=["py", "go"]
)
def test_embedded_examples_are_the_seed_text(example: str) -> None:
    (seed,) = SEEDS.glob("001_*.txt")
    assert example in seed.read_text()


def spec_result_example() -> str:
    """The ``"result": [...]`` example in the description of ``AnalyticsQueryResult.result``, as JSON."""
    text = prop("AnalyticsQueryResult", "result")["description"]
    body = text[text.index('"result": [') + len('"result": ') :]
    body = re.sub(r"//[^\n]*\n", "", body)
    return re.sub(r",\s*\]", "]", body)


def test_spec_result_example_round_trips_through_the_model_and_the_client() -> None:
    example = spec_result_example()
    rows = json.loads(example, parse_float=Decimal)
    assert len(rows) == 2 and rows[0]["sumDuration"] == 120
    wire = {"name": "example", "timeRange": {"timezone": "UTC"}, "result": rows}
    model = AnalyticsQueryResult.model_validate(wire)
    assert model.model_dump(mode="python", by_alias=True, exclude_none=True) == wire

    body = f'[{{"name":"example","timeRange":{{"timezone":"UTC"}},"result":{example}}}]'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=body))
    query = AnalyticsQuery(
        table="call",
        name="example",
        group_by=["assistantId", "endedReason"],
        time_range=TimeRange(step="day"),
        operations=[
            AnalyticsOperation(operation="sum", column="duration"),
            AnalyticsOperation(operation="avg", column="cost"),
        ],
    )
    with VapiAnalyticsClient("http://127.0.0.1:9", "sk-unit", transport=transport) as client:
        (result,) = client.post_batch([query]).results
    assert result.result[0]["avgCost"] == Decimal("10.5")
    assert [op.result_key for op in query.operations] == ["sumDuration", "avgCost"]
    assert all(op.result_key in row for row in result.result for op in query.operations)


# Enums and limits equal the spec ----------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "schema_name", "property_name"),
    [
        pytest.param(models.TABLES, "AnalyticsQuery", "table", id="tables"),
        pytest.param(models.OPERATIONS, "AnalyticsOperation", "operation", id="operations"),
        pytest.param(models.COLUMNS, "AnalyticsOperation", "column", id="columns"),
        pytest.param(models.STEPS, "TimeRange", "step", id="steps"),
    ],
)
def test_enum_tuples_equal_the_spec(
    ours: tuple[str, ...], schema_name: str, property_name: str
) -> None:
    assert list(ours) == prop(schema_name, property_name)["enum"]


def test_group_by_enum_equals_the_spec_both_places_it_is_written() -> None:
    group_by = prop("AnalyticsQuery", "groupBy")
    assert list(models.GROUP_BYS) == group_by["items"]["enum"] == group_by["enum"]


@pytest.mark.parametrize(
    ("ours", "schema_name", "property_name"),
    [
        pytest.param(models.NAME_MAX_LENGTH, "AnalyticsQuery", "name", id="name"),
        pytest.param(models.ALIAS_MAX_LENGTH, "AnalyticsOperation", "alias", id="alias"),
        pytest.param(models.VARIABLE_KEY_MAX_LENGTH, "VariableValueGroupBy", "key", id="key"),
    ],
)
def test_length_limits_equal_the_spec(ours: int, schema_name: str, property_name: str) -> None:
    assert ours == prop(schema_name, property_name)["maxLength"]


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "AnalyticsOperation": AnalyticsOperation,
    "AnalyticsQuery": AnalyticsQuery,
    "AnalyticsQueryDTO": AnalyticsQueryDTO,
    "TimeRange": TimeRange,
    "VariableValueGroupBy": VariableValueGroupBy,
}


def spec_facts(node: dict[str, Any]) -> dict[str, Any]:
    """What a spec property constrains, in one comparable shape."""
    if "allOf" in node:
        (only,) = node["allOf"]
        return spec_facts(only)
    if "$ref" in node:
        return {"ref": node["$ref"].rsplit("/", 1)[-1]}
    facts = {key: node[key] for key in ("type", "enum", "maxLength", "format") if key in node}
    if node.get("type") == "array":
        facts.pop("enum", None)
        facts["items"] = spec_facts(node["items"])
    return facts


def model_facts(node: dict[str, Any]) -> dict[str, Any]:
    """The same shape from pydantic's JSON schema; ``None`` for an optional field is not a type."""
    if "anyOf" in node:
        (only,) = [branch for branch in node["anyOf"] if branch != {"type": "null"}]
        return model_facts(only)
    if "$ref" in node:
        return {"ref": node["$ref"].rsplit("/", 1)[-1]}
    facts = {key: node[key] for key in ("type", "enum", "maxLength", "format") if key in node}
    if node.get("type") == "array":
        facts["items"] = model_facts(node["items"])
    return facts


@pytest.mark.parametrize("name", list(REQUEST_MODELS))
def test_request_model_constrains_exactly_what_the_spec_does(name: str) -> None:
    ours = REQUEST_MODELS[name].model_json_schema(by_alias=True)
    theirs = schema(name)
    assert sorted(ours.get("required", [])) == sorted(theirs.get("required", []))
    assert {key: model_facts(value) for key, value in ours["properties"].items()} == {
        key: spec_facts(value) for key, value in theirs["properties"].items()
    }


def test_result_model_reads_every_spec_field() -> None:
    ours = AnalyticsQueryResult.model_json_schema(by_alias=True)
    theirs = schema("AnalyticsQueryResult")
    assert set(ours["properties"]) == set(theirs["properties"])
    assert sorted(ours["required"]) == sorted(theirs["required"])


def test_results_tolerate_fields_the_spec_does_not_list_yet() -> None:
    result = AnalyticsQueryResult.model_validate(
        {
            "name": "n",
            "timeRange": {"start": "2026-10-01T00:00:00Z", "x": 1},
            "result": [],
            "new": 2,
        }
    )
    assert result.name == "n"
    assert result.time_range.start == datetime(2026, 10, 1, tzinfo=UTC)


# Serialisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "wire"),
    [
        pytest.param(
            AnalyticsQuery(
                table="call",
                name="minimal",
                operations=[AnalyticsOperation(operation="count", column="id")],
            ),
            {
                "table": "call",
                "name": "minimal",
                "operations": [{"operation": "count", "column": "id"}],
            },
            id="unset-fields-absent",
        ),
        pytest.param(
            AnalyticsQuery(
                table="call",
                name="by cost center",
                group_by=["assistantId"],
                group_by_variable_value=[VariableValueGroupBy(key="costCenter")],
                time_range=TimeRange(
                    step="day",
                    start=datetime(2026, 10, 1, tzinfo=ZoneInfo("Europe/Berlin")),
                    end=datetime(2026, 11, 1, tzinfo=UTC),
                    timezone="Europe/Berlin",
                ),
                operations=[AnalyticsOperation(operation="sum", column="cost", alias="cost")],
            ),
            {
                "table": "call",
                "groupBy": ["assistantId"],
                "groupByVariableValue": [{"key": "costCenter"}],
                "name": "by cost center",
                "timeRange": {
                    "step": "day",
                    "start": "2026-10-01T00:00:00+02:00",
                    "end": "2026-11-01T00:00:00Z",
                    "timezone": "Europe/Berlin",
                },
                "operations": [{"operation": "sum", "column": "cost", "alias": "cost"}],
            },
            id="every-field-camel-case",
        ),
        pytest.param(
            AnalyticsQuery(
                table="subscription",
                name="minutes",
                time_range=TimeRange(timezone="UTC"),
                operations=[AnalyticsOperation(operation="sum", column="minutesUsed")],
            ),
            {
                "table": "subscription",
                "name": "minutes",
                "timeRange": {"timezone": "UTC"},
                "operations": [{"operation": "sum", "column": "minutesUsed"}],
            },
            id="partial-time-range",
        ),
    ],
)
def test_serialising_gives_exactly_the_spec_json(
    query: AnalyticsQuery, wire: dict[str, Any]
) -> None:
    assert query.to_wire() == wire
    assert "null" not in json.dumps(query.to_wire())
    assert AnalyticsQuery.model_validate(wire) == query


@pytest.mark.parametrize(
    ("operation", "column", "key"),
    [
        ("sum", "duration", "sumDuration"),
        ("avg", "cost", "avgCost"),
        ("count", "id", "countId"),
        ("sum", "costBreakdown.llm", "sumCostBreakdownLlm"),
        ("sum", "costBreakdown.llmPromptTokens", "sumCostBreakdownLlmPromptTokens"),
        (
            "max",
            "costBreakdown.analysisBreakdown.summary",
            "maxCostBreakdownAnalysisBreakdownSummary",
        ),
        ("history", "concurrency", "historyConcurrency"),
    ],
    ids=lambda value: str(value),
)
def test_default_result_key(operation: str, column: str, key: str) -> None:
    assert default_result_key(operation, column) == key
    op = AnalyticsOperation(operation=operation, column=column)  # type: ignore[arg-type]
    assert op.result_key == key
    assert op.model_copy(update={"alias": "x"}).result_key == "x"


# Invalid queries name their field ---------------------------------------------------

VALID = {
    "table": "call",
    "name": "ok",
    "operations": [{"operation": "sum", "column": "cost"}],
}


def broken(**changes: Any) -> dict[str, Any]:
    query = json.loads(json.dumps(VALID)) | changes
    return {key: value for key, value in query.items() if value is not ...}


INVALID = [
    (
        "unknown-column",
        broken(operations=[{"operation": "sum", "column": "price"}]),
        "operations[0].column",
        "'cost'",
    ),
    (
        "unknown-operation",
        broken(operations=[{"operation": "median", "column": "cost"}]),
        "operations[0].operation",
        "'history'",
    ),
    ("unknown-table", broken(table="calls"), "table", "'subscription'"),
    ("missing-table", broken(table=...), "table", "Field required"),
    ("missing-name", broken(name=...), "name", "Field required"),
    ("missing-operations", broken(operations=...), "operations", "Field required"),
    ("operations-not-list", broken(operations={"operation": "sum"}), "operations", "valid list"),
    (
        "operation-missing-column",
        broken(operations=[{"operation": "sum"}]),
        "operations[0].column",
        "Field required",
    ),
    ("name-too-long", broken(name="n" * 41), "name", "at most 40 characters"),
    ("name-not-string", broken(name=42), "name", "valid string"),
    (
        "alias-too-long",
        broken(operations=[{"operation": "sum", "column": "cost", "alias": "a" * 41}]),
        "operations[0].alias",
        "at most 40",
    ),
    ("unknown-group-by", broken(groupBy=["assistantId", "team"]), "groupBy[1]", "'endedReason'"),
    ("group-by-not-list", broken(groupBy="assistantId"), "groupBy", "valid list"),
    (
        "variable-key-too-long",
        broken(groupByVariableValue=[{"key": "k" * 101}]),
        "groupByVariableValue[0].key",
        "at most 100",
    ),
    (
        "variable-key-missing",
        broken(groupByVariableValue=[{}]),
        "groupByVariableValue[0].key",
        "Field required",
    ),
    ("unknown-step", broken(timeRange={"step": "fortnight"}), "timeRange.step", "'millennium'"),
    (
        "naive-start",
        broken(timeRange={"start": "2026-10-01T00:00:00"}),
        "timeRange.start",
        "timezone",
    ),
    (
        "impossible-end",
        broken(timeRange={"end": "2026-13-01T00:00:00Z"}),
        "timeRange.end",
        "datetime",
    ),
    ("offset-not-zone", broken(timeRange={"timezone": "+02:00"}), "timeRange.timezone", "IANA"),
    (
        "unknown-zone",
        broken(timeRange={"timezone": "Mars/Olympus_Mons"}),
        "timeRange.timezone",
        "IANA",
    ),
    ("unknown-field", broken(filter={"assistantId": "a"}), "filter", "Extra inputs"),
    (
        "unknown-operation-field",
        broken(operations=[{"operation": "sum", "column": "cost", "as": "x"}]),
        "operations[0].as",
        "Extra inputs",
    ),
]


@pytest.mark.parametrize(
    ("query", "path", "says"),
    [pytest.param(query, path, says, id=case) for case, query, path, says in INVALID],
)
def test_invalid_query_is_rejected_naming_the_field_path(
    query: dict[str, Any], path: str, says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AnalyticsQueryDTO.model_validate({"queries": [VALID, VALID, query]})
    messages = validation_messages(caught.value)
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"queries[2].{path}: "), messages
    assert says in messages[0]


def test_at_least_fifteen_invalid_cases() -> None:
    assert len(INVALID) >= 15
