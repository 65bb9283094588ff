"""Decoding bodies whole and one result at a time: same values, same refusals, spans that hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from vapi_chargeback.analytics.decode import decode_json, iter_json_array, result_from_json
from vapi_chargeback.analytics.models import AnalyticsQueryResult

TIME_RANGE = {"start": "2026-10-01T00:00:00.000Z", "end": "2026-11-01T00:00:00.000Z"}
GOOD = (
    b' [ {"name":"minutes","timeRange":{},"result":[{"sum_cost":1e2}]} ,\n'
    b'{"name":"cost","timeRange":{},"result":[{"sum_cost":0.1},{"sum_cost":"0.2"}]},'
    b'{"name":"calls","timeRange":{"timezone":"Europe/Berlin"},"result":[]}]\n'
)


def _result(name: str, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": name, "timeRange": TIME_RANGE, "result": rows or []}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(GOOD, id="ascii"),
        pytest.param(
            GOOD.replace(b'"calls","timeRange":{', '"calls","x":"Küche ✓","timeRange":{'.encode()),
            id="utf-8",
        ),
        pytest.param(b"[]", id="empty"),
    ],
)
def test_elements_and_their_byte_spans_match_the_whole_body_parse(body: bytes) -> None:
    elements = list(iter_json_array(body))

    assert [item for item, _, _ in elements] == decode_json(body)
    for item, start, end in elements:
        assert decode_json(body[start:end]) == item


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[1,",
        b'[{"a":1}] x',
        b'[{"a":1} {"b":2}]',
        b'[{"a":NaN}]',
        b"\xff[]",
    ],
    ids=["empty", "truncated", "trailing", "no-comma", "nan", "not-utf-8"],
)
def test_what_the_whole_body_parse_refuses_the_stream_refuses(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(body)
    with pytest.raises(ValueError):
        list(iter_json_array(body))


@pytest.mark.parametrize(
    "item",
    [
        _result("cost", [{"sum_cost": Decimal("1.5")}, {"x": None}]),
        {"name": "cost", "timeRange": {"timezone": "UTC", "extra": 1}, "result": [], "more": True},
        {"name": "cost", "result": []},
        {"name": 7, "timeRange": {}, "result": []},
        {"name": "cost", "timeRange": {}, "result": [{"a": 1}, 2]},
        {"name": "cost", "timeRange": {}, "result": {"a": 1}},
        [],
    ],
    ids=[
        "good",
        "extra-fields",
        "no-time-range",
        "bad-name",
        "row-not-object",
        "rows-not-list",
        "list",
    ],
)
def test_results_are_accepted_and_refused_as_pydantic_would(item: Any) -> None:
    try:
        expected = AnalyticsQueryResult.model_validate(item)
    except ValueError:
        with pytest.raises(ValueError):
            result_from_json(item)
        return
    assert result_from_json(item) == expected
