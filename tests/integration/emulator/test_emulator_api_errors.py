"""Errors look like the real NestJS service's, and no request body yields a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_emulator.server import run_emulator

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "calls_edge_cases.jsonl"
KEY = "error-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def query(**overrides: Any) -> dict[str, Any]:
    base = {"table": "call", "name": "q", "operations": [{"operation": "count", "column": "id"}]}
    return base | overrides


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_emulator([FIXTURE], api_key=KEY) as url:
        yield url


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        pytest.param({}, ["queries: Field required"], id="no-queries"),
        pytest.param(
            [],
            ["body: Input should be a valid dictionary or object to extract fields from"],
            id="array-body",
        ),
        pytest.param(
            "text",
            ["body: Input should be a valid dictionary or object to extract fields from"],
            id="string-body",
        ),
        pytest.param(
            {"queries": [query(table="calls")]},
            ["queries[0].table: Input should be 'call' or 'subscription'"],
            id="unknown-table",
        ),
        pytest.param(
            {"queries": [query(name="x" * 41)]},
            ["queries[0].name: String should have at most 40 characters"],
            id="name-too-long",
        ),
        pytest.param(
            {
                "queries": [
                    query(operations=[{"operation": "sum", "column": "cost", "alias": "a" * 41}])
                ]
            },
            ["queries[0].operations[0].alias: String should have at most 40 characters"],
            id="alias-too-long",
        ),
        pytest.param(
            {"queries": [query(groupByVariableValue=[{"key": "k" * 101}])]},
            ["queries[0].groupByVariableValue[0].key: String should have at most 100 characters"],
            id="variable-key-too-long",
        ),
        pytest.param(
            {"queries": [query(timeRange={"timezone": "CEST"})]},
            [
                "queries[0].timeRange.timezone: timezone 'CEST' is not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC')"
            ],
            id="bad-timezone",
        ),
        pytest.param(
            {"queries": [query(timeRange={"step": "fortnight"})]},
            [
                "queries[0].timeRange.step: Input should be 'second', 'minute', 'hour', 'day', 'week', 'month', 'quarter', 'year', 'decade', 'century' or 'millennium'"
            ],
            id="bad-step",
        ),
        pytest.param(
            {"queries": [query(unknown=1), query(table="x", operations="no")]},
            [
                "queries[0].unknown: Extra inputs are not permitted",
                "queries[1].table: Input should be 'call' or 'subscription'",
                "queries[1].operations: Input should be a valid list",
            ],
            id="one-message-per-problem",
        ),
        pytest.param(
            {
                "queries": [
                    query(
                        timeRange={"start": "2026-10-02T00:00:00Z", "end": "2026-10-01T00:00:00Z"}
                    )
                ]
            },
            [
                "queries[0].timeRange: start 2026-10-02T00:00:00.000Z is after end 2026-10-01T00:00:00.000Z"
            ],
            id="inverted-range",
        ),
        pytest.param(
            {"queries": [query(timeRange={"end": "0001-01-03T00:00:00Z"})]},
            [
                "queries[0].timeRange.start: the default (end − 7 days) is outside "
                "0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999999Z in UTC"
            ],
            id="default-start-before-year-1",
        ),
        pytest.param(
            {"queries": [query(timeRange={"start": "2026-10-01T00:00:00"})]},
            ["queries[0].timeRange.start: Input should have timezone info"],
            id="naive-start",
        ),
        pytest.param(
            {"queries": [query(operations=[{"operation": "avg", "column": "id"}])]},
            [
                "queries[0].operations[0]: 'avg' of 'id' is undefined (call ids are not numbers); use 'count', 'min', 'max' or 'history'"
            ],
            id="avg-of-id",
        ),
        pytest.param(
            {
                "queries": [
                    query(
                        operations=[
                            {"operation": "sum", "column": "cost", "alias": "x"},
                            {"operation": "sum", "column": "duration", "alias": "x"},
                        ]
                    )
                ]
            },
            [
                "queries[0].operations[1]: result key 'x' is already used by sum of cost; set a different alias"
            ],
            id="duplicate-alias",
        ),
        pytest.param(
            {
                "queries": [
                    query(
                        groupBy=["type"],
                        operations=[{"operation": "sum", "column": "cost", "alias": "type"}],
                    )
                ]
            },
            [
                "queries[0].operations[0]: result key 'type' collides with groupBy 'type'; set a different alias"
            ],
            id="alias-collides-with-group",
        ),
        pytest.param(
            {"queries": [query(timeRange={"step": "day"}, groupByVariableValue=[{"key": "date"}])]},
            [
                "queries[0].groupByVariableValue[0].key: 'date' collides with the bucket date in the result rows"
            ],
            id="variable-collides-with-date",
        ),
    ],
)
def test_bad_request_lists_every_problem(base_url: str, body: Any, messages: list[str]) -> None:
    response = httpx.post(f"{base_url}/analytics", headers=AUTH, json=body)
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "error": "Bad Request", "message": messages}


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        pytest.param(
            b'{"queries": [',
            "application/json",
            "body: not valid JSON (Expecting value)",
            id="truncated-json",
        ),
        pytest.param(b"", "application/json", "body: Field required", id="empty-body"),
        pytest.param(
            b"[" * 50_000 + b"]" * 50_000,
            "application/json",
            "body: There was an error parsing the body",
            id="deeply-nested",
        ),
        pytest.param(
            b"\xff\xfe",
            "application/json",
            "body: not valid JSON (Expecting value)",
            id="not-utf8",
        ),
        pytest.param(
            b"queries=1",
            "text/plain",
            "body: Input should be a valid dictionary or object to extract fields from",
            id="not-json-type",
        ),
    ],
)
def test_unparseable_bodies_are_400_not_500(
    base_url: str, content: bytes, content_type: str, message: str
) -> None:
    headers = AUTH | {"Content-Type": content_type}
    response = httpx.post(f"{base_url}/analytics", headers=headers, content=content)
    assert response.status_code == 400
    assert response.json()["message"] == [message]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong"),
        pytest.param({"Authorization": f"Basic {KEY}"}, id="not-bearer"),
        pytest.param({"Authorization": f"Bearer {KEY}x"}, id="key-prefix"),
        pytest.param({"Authorization": "Bearer"}, id="empty"),
    ],
)
def test_missing_or_wrong_key_is_401_even_with_a_bad_body(
    base_url: str, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{base_url}/analytics", headers=headers, json={"queries": "bad"})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Unauthorized"}


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        pytest.param("GET", "/analytics", 405, "Method Not Allowed", id="get-analytics"),
        pytest.param("POST", "/call", 405, "Method Not Allowed", id="post-call"),
        pytest.param("POST", "/phone-number", 404, "Not Found", id="unknown-path"),
    ],
)
def test_routing_errors_share_the_shape(
    base_url: str, method: str, path: str, status: int, error: str
) -> None:
    response = httpx.request(method, f"{base_url}{path}", headers=AUTH)
    assert response.status_code == status
    assert response.json() == {
        "statusCode": status,
        "error": error,
        "message": f"Cannot {method} {path}",
    }


def test_oversized_body_is_413(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/analytics",
        headers=AUTH | {"Content-Type": "application/json"},
        content=b" " * 2_000_000,
    )
    assert response.status_code == 413
    assert response.json()["statusCode"] == 413


def test_health_needs_no_key(base_url: str) -> None:
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok", "calls": 32}


def test_empty_batch_is_an_empty_answer(base_url: str) -> None:
    response = httpx.post(f"{base_url}/analytics", headers=AUTH, json={"queries": []})
    assert (response.status_code, response.json()) == (200, [])
