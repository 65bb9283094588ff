"""Loading Call records: what loads, and how a bad record is reported (file, line, field)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_emulator.data import generate_calls_file
from vapi_emulator.engine import connect, load_calls
from vapi_emulator.records import MalformedRecordError

GOOD = {"id": "call-1", "createdAt": "2026-10-01T08:00:00.000Z"}


def jsonl(tmp_path: Path, *lines: str, name: str = "calls.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def record(**fields: object) -> str:
    return json.dumps(GOOD | fields)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("{not json", r"calls\.jsonl:2: not valid JSON", id="broken-json"),
        pytest.param(
            "[1, 2]", r"calls\.jsonl:2: expected a JSON object .*got an array", id="not-an-object"
        ),
        pytest.param(
            json.dumps({"createdAt": "2026-10-01T00:00:00Z"}),
            r"calls\.jsonl:2: id is missing",
            id="no-id",
        ),
        pytest.param(json.dumps({"id": ""}), r"calls\.jsonl:2: id is missing", id="empty-id"),
        pytest.param(
            json.dumps({"id": "x"}), r"calls\.jsonl:2: createdAt is missing", id="no-createdAt"
        ),
        pytest.param(
            record(createdAt="yesterday"),
            r"calls\.jsonl:2: createdAt 'yesterday' is not an ISO-8601",
            id="bad-timestamp",
        ),
        pytest.param(
            record(cost="12,50"),
            r"calls\.jsonl:2: cost '12,50' is not a decimal number",
            id="bad-money",
        ),
        pytest.param(
            record(cost=True),
            r"calls\.jsonl:2: cost: expected a number, got a boolean",
            id="boolean-money",
        ),
        pytest.param(
            record(costBreakdown="cheap"),
            r"calls\.jsonl:2: costBreakdown: expected an object",
            id="breakdown-not-object",
        ),
        pytest.param(
            record(costBreakdown={"llmPromptTokens": 12.5}),
            r"calls\.jsonl:2: costBreakdown\.llmPromptTokens '12\.5' is not an integer",
            id="fractional-tokens",
        ),
        pytest.param(
            record(assistantOverrides={"variableValues": ["a"]}),
            r"calls\.jsonl:2: assistantOverrides\.variableValues: expected an object, got an array",
            id="variables-not-object",
        ),
        pytest.param(
            record(assistantId={"id": "x"}),
            r"calls\.jsonl:2: assistantId: expected a string",
            id="assistant-object",
        ),
        pytest.param(
            record(id="call-0"),
            r"calls\.jsonl:2: id 'call-0' was already loaded from .*calls\.jsonl:1",
            id="duplicate-id",
        ),
    ],
)
def test_malformed_record_names_file_line_and_field(
    tmp_path: Path, line: str, message: str
) -> None:
    path = jsonl(tmp_path, record(id="call-0"), line)
    with pytest.raises(MalformedRecordError, match=message):
        load_calls(connect(), [path])


def test_json_array_reports_the_line_the_bad_element_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    path.write_text(
        "[\n  " + record(id="a") + ',\n  {\n    "id": "b",\n    "createdAt": "soon"\n  }\n]\n'
    )
    with pytest.raises(MalformedRecordError, match=r"calls\.json:3: createdAt 'soon'"):
        load_calls(connect(), [path])


def test_duplicate_across_files_names_both(tmp_path: Path) -> None:
    first = jsonl(tmp_path, record(id="same"), name="october.jsonl")
    second = jsonl(tmp_path, record(id="other"), record(id="same"), name="november.jsonl")
    with pytest.raises(
        MalformedRecordError, match=r"november\.jsonl:2: id 'same' .*october\.jsonl:1"
    ):
        load_calls(connect(), [first, second])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MalformedRecordError, match="no such file"):
        load_calls(connect(), [tmp_path / "absent.jsonl"])


def test_unknown_fields_are_ignored_and_values_stay_exact(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path,
        "",
        record(
            cost=0.1,
            costBreakdown={"stt": "0.2", "llmPromptTokens": 7, "newField": {"x": 1}},
            analysis={"successEvaluation": True},
            assistantOverrides={"variableValues": {"costCenter": "sales", "n": 1.5}},
            somethingNew=[1, 2, 3],
        ),
    )
    connection = connect()
    assert load_calls(connection, [path]) == 1
    row = connection.execute(
        "SELECT cost, stt, llm_prompt_tokens, success_evaluation, "
        "json_extract_string(variable_values, '/costCenter'), created_us FROM calls"
    ).fetchall()[0]
    assert row == (Decimal("0.1"), Decimal("0.2"), 7, "true", "sales", 1_790_841_600_000_000)


def test_json_array_and_parquet_load_the_same_calls(tmp_path: Path) -> None:
    generated = tmp_path / "calls.jsonl"
    generate_calls_file(generated, "2026-10", calls_per_month=300)
    array = tmp_path / "calls.json"
    array.write_text("[\n" + ",\n".join(generated.read_text().splitlines()) + "\n]\n")
    parquet = tmp_path / "calls.parquet"
    generate_calls_file(parquet, "2026-10", calls_per_month=300)
    totals = []
    for path in (generated, array, parquet):
        connection = connect()
        assert load_calls(connection, [path]) == 300
        totals.append(
            connection.execute(
                "SELECT sum(cost), sum(llm), sum(duration), count(assistant_id), "
                "count(variable_values), min(id), max(created_us) FROM calls"
            ).fetchall()
        )
    assert totals[0] == totals[1] == totals[2]


def test_parquet_without_created_at_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flat.parquet"
    connection = connect()
    connection.execute(f"COPY (SELECT 'x' AS id) TO '{path}' (FORMAT parquet)")
    with pytest.raises(MalformedRecordError, match=r"flat\.parquet: no column 'createdAt'"):
        load_calls(connect(), [path])


def test_flattened_parquet_with_dotted_names_loads(tmp_path: Path) -> None:
    path = tmp_path / "flat.parquet"
    connection = connect()
    connection.execute(
        "COPY (SELECT 'x' AS id, '2026-10-01T00:00:00Z' AS createdAt, "
        "'0.25' AS \"costBreakdown.llm\") "
        f"TO '{path}' (FORMAT parquet)"
    )
    target = connect()
    assert load_calls(target, [path]) == 1
    assert target.execute("SELECT llm FROM calls").fetchall() == [(Decimal("0.25"),)]


def test_bad_parquet_row_is_reported_by_row_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    connection = connect()
    connection.execute(
        "COPY (SELECT * FROM (VALUES ('a', '2026-10-01T00:00:00Z'), ('b', 'later')) AS t(id, createdAt)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    with pytest.raises(MalformedRecordError, match=r"bad\.parquet: row 2: createdAt 'later'"):
        load_calls(connect(), [path])
