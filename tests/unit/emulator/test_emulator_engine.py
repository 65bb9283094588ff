"""Engine details no fixture query reaches: odd variable keys, the row limit, offsets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vapi_chargeback.analytics.models import AnalyticsQueryDTO
from vapi_emulator import engine as engine_module
from vapi_emulator.engine import Engine, ResultTooLarge
from vapi_emulator.query_sql import COLUMNS, NARROW_TYPES, json_pointer
from vapi_emulator.render import response_body
from vapi_emulator.resolve import resolve
from vapi_emulator.timezones import local_wall_to_instant_us, offset_segments

ODD_KEYS = {"a/b": "slash", "t~x": "tilde", "": "empty", 'q"uote': "quote", "ünï": "unicode"}


@pytest.mark.parametrize(
    ("key", "pointer"),
    [("costCenter", "/costCenter"), ("a/b", "/a~1b"), ("t~x", "/t~0x"), ("~/", "/~0~1"), ("", "/")],
    ids=["plain", "slash", "tilde", "both", "empty"],
)
def test_json_pointer_escapes_rfc6901(key: str, pointer: str) -> None:
    assert json_pointer(key) == pointer


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    path = tmp_path / "calls.jsonl"
    records = [
        {"id": f"c{i}", "createdAt": f"2026-10-05T09:0{i}:00.000Z", "cost": 1}
        | ({"assistantOverrides": {"variableValues": ODD_KEYS | {"n": 7}}} if i == 0 else {})
        for i in range(3)
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    loaded = Engine([path])
    loaded.load()
    return loaded


def answer(engine: Engine, query: dict[str, object]) -> list[dict[str, object]]:
    dto = AnalyticsQueryDTO.model_validate({"queries": [query]})
    (result,) = json.loads(response_body(engine.run(resolve(dto, 0))))
    return result["result"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "key", [*ODD_KEYS, "n"], ids=["slash", "tilde", "empty", "quote", "unicode", "number"]
)
def test_any_variable_key_groups_by_its_value(engine: Engine, key: str) -> None:
    rows = answer(
        engine,
        {
            "table": "call",
            "name": "odd",
            "timeRange": {"start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"},
            "groupByVariableValue": [{"key": key}],
            "operations": [{"operation": "count", "column": "id"}],
        },
    )
    expected = ODD_KEYS.get(key, "7")
    assert rows == [{key: expected, "countId": 1}, {key: None, "countId": 2}]


def test_too_many_rows_is_refused(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "MAX_RESULT_ROWS", 2)
    query: dict[str, object] = {
        "table": "call",
        "name": "per-second",
        "timeRange": {
            "start": "2026-10-05T00:00:00Z",
            "end": "2026-10-06T00:00:00Z",
            "step": "second",
        },
        "operations": [{"operation": "count", "column": "id"}],
    }
    with pytest.raises(ResultTooLarge, match="'per-second' would return more than 2 rows"):
        answer(engine, query)


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp()) * 1_000_000


@pytest.mark.parametrize(
    ("zone", "changes"),
    [
        ("Europe/Berlin", ["2026-03-29T01:00:00+00:00", "2026-10-25T01:00:00+00:00"]),
        ("America/New_York", ["2026-03-08T07:00:00+00:00", "2026-11-01T06:00:00+00:00"]),
        ("Asia/Kolkata", []),
        ("Australia/Lord_Howe", ["2026-04-04T15:00:00+00:00", "2026-10-03T15:30:00+00:00"]),
    ],
    ids=["berlin", "new-york", "kolkata", "lord-howe-half-hour-dst"],
)
def test_offset_changes_are_found_to_the_second(zone: str, changes: list[str]) -> None:
    segments = offset_segments(
        zone, us("2026-01-01T00:00:00+00:00"), us("2027-01-01T00:00:00+00:00")
    )
    assert [start for start, _ in segments[1:]] == [us(change) for change in changes]


@pytest.mark.parametrize(
    ("zone", "wall", "instant"),
    [
        ("Europe/Berlin", "2026-10-25T00:00:00", "2026-10-24T22:00:00+00:00"),
        ("Europe/Berlin", "2026-10-26T00:00:00", "2026-10-25T23:00:00+00:00"),
        ("America/Santiago", "2026-09-06T00:00:00", "2026-09-06T04:00:00+00:00"),
        ("Asia/Kolkata", "2026-10-16T00:00:00", "2026-10-15T18:30:00+00:00"),
    ],
    ids=["berlin-before-fall-back", "berlin-after", "santiago-midnight-gap", "kolkata"],
)
def test_local_midnight_to_instant(zone: str, wall: str, instant: str) -> None:
    wall_us = us(wall + "+00:00")
    assert local_wall_to_instant_us(zone, wall_us) == us(instant)


@pytest.mark.parametrize("column", [c for c, spec in COLUMNS.items() if spec.kind in NARROW_TYPES])
def test_narrow_text_keeps_the_scale_of_each_aggregate(engine: Engine, column: str) -> None:
    """Text written through ``NARROW_TYPES`` has the digits of the wide value only if the
    scales agree; a changed stored type must change the narrow type with it."""
    spec = COLUMNS[column]
    narrow = engine.cursor().execute(f"SELECT typeof(TRY_CAST(NULL AS {NARROW_TYPES[spec.kind]}))")
    (narrow_type,) = narrow.fetchone() or ("",)
    for aggregate in ("sum", "min", "max"):
        typed = engine.cursor().execute(f"SELECT typeof({aggregate}({spec.source})) FROM calls")
        (wide_type,) = typed.fetchone() or ("",)
        assert wide_type.partition(",")[2] == narrow_type.partition(",")[2], aggregate


def test_sums_beyond_64_bits_are_written_exactly(tmp_path: Path) -> None:
    """Sums too large for the 64-bit text path take the 128-bit one, digit for digit."""
    path = tmp_path / "calls.jsonl"
    numbers = [("9000000.000000000001", "9223372036854775807"), ("1000000.5", "300"), ("-1", "7")]
    path.write_text(
        "".join(
            f'{{"id": "c{i}", "createdAt": "2026-10-05T09:0{i}:00.000Z", "cost": {cost},'
            f' "costBreakdown": {{"llmPromptTokens": {tokens}}}}}\n'
            for i, (cost, tokens) in enumerate(numbers)
        )
    )
    engine = Engine([path])
    engine.load()
    query = {
        "table": "call",
        "name": "big",
        "timeRange": {"start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"},
        "operations": [
            {"operation": "sum", "column": "cost"},
            {"operation": "max", "column": "cost"},
            {"operation": "sum", "column": "costBreakdown.llmPromptTokens"},
        ],
    }
    body = response_body(
        engine.run(resolve(AnalyticsQueryDTO.model_validate({"queries": [query]}), 0))
    ).decode()
    assert '"sumCost":9999999.500000000001,' in body
    assert '"maxCost":9000000.000000000001,' in body
    assert '"sumCostBreakdownLlmPromptTokens":9223372036854776114}' in body
