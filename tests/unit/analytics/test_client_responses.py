"""Success statuses with bodies that cannot be trusted are errors that say what is wrong."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import ResponseError, ResponseMismatchError
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery

NAMES = ["cost", "calls", "minutes"]
TIME_RANGE = {"start": "2026-10-01T00:00:00.000Z", "end": "2026-11-01T00:00:00.000Z"}


def queries(names: list[str] = NAMES) -> list[AnalyticsQuery]:
    return [
        AnalyticsQuery(
            table="call", name=name, operations=[AnalyticsOperation(operation="sum", column="cost")]
        )
        for name in names
    ]


def result(name: str, rows: Any = ()) -> dict[str, Any]:
    return {"name": name, "timeRange": TIME_RANGE, "result": list(rows)}


def answer(response: httpx.Response, **options: Any) -> VapiAnalyticsClient:
    return VapiAnalyticsClient(
        "http://127.0.0.1:9",
        "sk-unit",
        transport=httpx.MockTransport(lambda request: response),
        sleep=lambda seconds: None,
        **options,
    )


def test_results_come_back_in_request_order_with_exact_decimals() -> None:
    body = (
        b'[{"name":"minutes","timeRange":{},"result":[{"v":1e2}]},'
        b'{"name":"cost","timeRange":{},"result":[{"v":0.1},{"v":"0.2"}]},'
        b'{"name":"calls","timeRange":{},"result":[{"v":3}]}]'
    )
    with answer(httpx.Response(200, content=body)) as client:
        response = client.post_batch(queries())
    assert [r.name for r in response.results] == NAMES
    assert response.results[0].result == [{"v": Decimal("0.1")}, {"v": "0.2"}]
    assert isinstance(response.results[2].result[0]["v"], Decimal)
    assert response.raw == body
    assert response.sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("response", "says"),
    [
        pytest.param(
            httpx.Response(
                200,
                text="<!DOCTYPE html><html><title>Vapi Dashboard</title></html>",
                headers={"Content-Type": "text/html"},
            ),
            ["not JSON", "text/html", "Vapi Dashboard", "base URL"],
            id="html-page",
        ),
        pytest.param(httpx.Response(200, content=b""), ["not JSON"], id="empty-body"),
        pytest.param(
            httpx.Response(200, content=b'[{"name":"cost","result":[{"v":NaN}]}]'),
            ["not JSON", "NaN"],
            id="nan-number",
        ),
        pytest.param(
            httpx.Response(201, json={"results": []}),
            ["HTTP 201", "JSON object", "array of results"],
            id="object-not-list",
        ),
        pytest.param(
            httpx.Response(200, json=[{"timeRange": TIME_RANGE, "result": []}]),
            ["[0].name: Field required"],
            id="missing-name",
        ),
        pytest.param(
            httpx.Response(200, json=[result("cost"), {"name": "calls", "result": []}]),
            ["[1].timeRange: Field required"],
            id="missing-time-range",
        ),
        pytest.param(
            httpx.Response(200, json=[{"name": "cost", "timeRange": TIME_RANGE, "result": {}}]),
            ["[0].result: Input should be a valid list"],
            id="result-not-list",
        ),
        pytest.param(
            httpx.Response(200, json=[{"name": 7, "timeRange": TIME_RANGE, "result": [1]}]),
            ["[0].name: Input should be a valid string", "[0].result[0]"],
            id="wrong-types",
        ),
        pytest.param(
            httpx.Response(200, json=["cost"]),
            ["[0]: Input should be a valid dictionary"],
            id="item-not-object",
        ),
    ],
)
def test_malformed_success_is_a_response_error(response: httpx.Response, says: list[str]) -> None:
    with answer(response) as client, pytest.raises(ResponseError) as caught:
        client.post_batch(queries(["cost"]))
    message = str(caught.value)
    assert "batch 0 (1 queries: cost)" in message
    for fragment in says:
        assert fragment in message


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 10):
        yield b"x" * 10


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(200, content=b"[" + b" " * 200 + b"]"), id="content-length"),
        pytest.param(httpx.Response(200, content=_chunks(300)), id="streamed-no-length"),
    ],
)
def test_oversized_response_is_refused(response: httpx.Response) -> None:
    with answer(response, max_response_bytes=100) as client, pytest.raises(ResponseError) as caught:
        client.post_batch(queries(["cost"]))
    assert "max_response_bytes=100" in str(caught.value)


@pytest.mark.parametrize(
    ("names", "missing", "extra", "duplicated"),
    [
        pytest.param(["cost", "calls"], ["minutes"], [], [], id="missing"),
        pytest.param(["cost", "calls", "minutes", "surprise"], [], ["surprise"], [], id="extra"),
        pytest.param(["cost", "calls", "minutes", "calls"], [], [], ["calls"], id="duplicated"),
        pytest.param(
            ["cost", "cost", "other"], ["calls", "minutes"], ["other"], ["cost"], id="all-three"
        ),
    ],
)
def test_results_not_matching_the_queries_are_named(
    names: list[str], missing: list[str], extra: list[str], duplicated: list[str]
) -> None:
    response = httpx.Response(200, json=[result(name) for name in names])
    with answer(response) as client, pytest.raises(ResponseMismatchError) as caught:
        client.post_batch(queries())
    error = caught.value
    assert (error.missing, error.extra, error.duplicated) == (missing, extra, duplicated)
    for name in missing + extra + duplicated:
        assert repr(name) in str(error)


def test_body_is_kept_on_the_error_for_diagnosis() -> None:
    body = json.dumps({"unexpected": True})
    with answer(httpx.Response(200, text=body)) as client, pytest.raises(ResponseError) as caught:
        client.post_batch(queries(["cost"]))
    assert caught.value.body == body
    assert caught.value.status_code == 200
