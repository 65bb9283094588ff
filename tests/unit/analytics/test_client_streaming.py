"""Batches read one result at a time: same results, same refusals, byte spans that hold.

The client reads a good body result by result (a large month would otherwise sit in
memory as Python objects several times its size) and falls back to the whole-body parse
for anything else, so every error reads as before. These tests hold both paths to the
same answers through the client; ``test_decode.py`` holds the decoders themselves.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.decode import decode_json
from vapi_chargeback.analytics.errors import ResponseError, UnusableResponseError
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery

NAMES = ["cost", "calls", "minutes"]
TIME_RANGE = {"start": "2026-10-01T00:00:00.000Z", "end": "2026-11-01T00:00:00.000Z"}
GOOD = (
    b' [ {"name":"minutes","timeRange":{},"result":[{"sum_cost":1e2}]} ,\n'
    b'{"name":"cost","timeRange":{},"result":[{"sum_cost":0.1},{"sum_cost":"0.2"}]},'
    b'{"name":"calls","timeRange":{"timezone":"Europe/Berlin"},"result":[]}]\n'
)


def queries() -> list[AnalyticsQuery]:
    return [
        AnalyticsQuery(
            table="call",
            name=name,
            operations=[AnalyticsOperation(operation="sum", column="cost", alias="sum_cost")],
        )
        for name in NAMES
    ]


def client_answering(body: bytes) -> VapiAnalyticsClient:
    return VapiAnalyticsClient(
        "http://127.0.0.1:9",
        "sk-unit",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
        sleep=lambda seconds: None,
        max_retries=0,
    )


def test_a_batch_kept_or_not_has_the_same_bytes_and_spans_for_every_result() -> None:
    with client_answering(GOOD) as client:
        kept = client.post_batch(queries())
        bare = client.post_batch(queries(), keep_results=False)

    assert [r.name for r in kept.results] == NAMES
    assert kept.results[0].result == [{"sum_cost": Decimal("0.1")}, {"sum_cost": "0.2"}]
    assert bare.results == []
    assert (bare.raw, bare.sha256, bare.spans) == (kept.raw, kept.sha256, kept.spans)
    assert sorted(bare.spans) == sorted(NAMES)
    for name, (start, end) in bare.spans.items():
        assert decode_json(GOOD[start:end])["name"] == name


def _error(body: bytes, **options: Any) -> tuple[type[Exception], str]:
    with client_answering(body) as client, pytest.raises(ResponseError) as caught:
        client.post_batch(queries(), **options)
    return type(caught.value), str(caught.value)


def _results(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()


def _result(name: str, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": name, "timeRange": TIME_RANGE, "result": rows or []}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>502</html>", id="html"),
        pytest.param(GOOD[: len(GOOD) // 2], id="truncated"),
        pytest.param(b'{"results":[]}', id="object"),
        pytest.param(_results(_result("cost"), _result("calls")), id="missing"),
        pytest.param(
            _results(_result("cost"), _result("calls"), _result("minutes"), _result("cost")),
            id="repeated",
        ),
        pytest.param(
            _results(_result("cost"), _result("calls"), _result("surprise")), id="unexpected"
        ),
        pytest.param(
            _results(_result("cost"), {"name": "calls", "result": []}, _result("minutes")),
            id="invalid-result",
        ),
    ],
)
@pytest.mark.parametrize("keep_results", [True, False])
def test_bad_bodies_are_refused_with_the_same_error_whether_results_are_kept(
    body: bytes, keep_results: bool
) -> None:
    assert _error(body, keep_results=keep_results) == _error(body)


def test_check_holds_rows_to_their_query_on_either_path() -> None:
    body = _results(_result("cost", [{"sum_cost": -1}]), _result("calls"), _result("minutes"))

    for keep_results in (True, False):
        kind, message = _error(body, keep_results=keep_results, check=True)
        assert kind is UnusableResponseError
        assert "'cost' row 0.sum_cost: -1 is negative" in message
    with client_answering(body) as client:
        assert client.post_batch(queries()).results[0].result == [{"sum_cost": -1}]
