"""Batch planning, name checks before sending, construction, and failure of one batch of many."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import BadRequestError, DuplicateQueryNameError
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery


def make_query(name: str) -> AnalyticsQuery:
    return AnalyticsQuery(
        table="call", name=name, operations=[AnalyticsOperation(operation="count", column="id")]
    )


class Echo:
    """Mocked transport answering every query by name; thread-safe request log."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        names = [query["name"] for query in json.loads(request.content)["queries"]]
        with self._lock:
            self.requests.append(names)
        return httpx.Response(
            200, json=[{"name": name, "timeRange": {}, "result": []} for name in names]
        )


def client_for(handler: Any, **options: Any) -> VapiAnalyticsClient:
    options.setdefault("sleep", lambda seconds: None)
    return VapiAnalyticsClient(
        "http://127.0.0.1:9", "sk-unit", transport=httpx.MockTransport(handler), **options
    )


@pytest.mark.parametrize(
    ("count", "limit", "sizes"),
    [
        pytest.param(0, 20, [], id="nothing"),
        pytest.param(1, 20, [1], id="one"),
        pytest.param(20, 20, [20], id="exactly-full"),
        pytest.param(21, 20, [20, 1], id="one-over"),
        pytest.param(45, 20, [20, 20, 5], id="45-by-20"),
        pytest.param(5, 1, [1, 1, 1, 1, 1], id="limit-one"),
    ],
)
def test_plan_batches_splits_at_the_limit_and_keeps_order(
    count: int, limit: int, sizes: list[int]
) -> None:
    queries = [make_query(f"q{index}") for index in range(count)]
    with client_for(Echo(), max_queries_per_request=limit) as client:
        batches = client.plan_batches(queries)
    assert [len(batch) for batch in batches] == sizes
    assert [query for batch in batches for query in batch] == queries


def test_query_sends_one_request_per_batch_and_merges_in_query_order() -> None:
    echo = Echo()
    queries = [make_query(f"q{index}") for index in range(7)]
    with client_for(echo, max_queries_per_request=3) as client:
        results = client.query(queries)
    assert sorted(echo.requests) == [["q0", "q1", "q2"], ["q3", "q4", "q5"], ["q6"]]
    assert list(results) == [f"q{index}" for index in range(7)]


def test_query_of_nothing_sends_nothing() -> None:
    echo = Echo()
    with client_for(echo) as client:
        assert client.query([]) == {}
    assert echo.requests == []


def test_duplicate_names_are_rejected_before_anything_is_sent() -> None:
    echo = Echo()
    queries = [make_query("cost"), make_query("calls"), make_query("cost")]
    with client_for(echo) as client, pytest.raises(DuplicateQueryNameError) as caught:
        client.query(queries)
    assert echo.requests == []
    assert "'cost'" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("queries", "says"),
    [
        pytest.param([], "no queries", id="empty"),
        pytest.param(
            [make_query(f"q{i}") for i in range(3)], "max_queries_per_request=2", id="over"
        ),
        pytest.param([make_query("a"), make_query("a")], "repeated: 'a'", id="duplicates"),
    ],
)
def test_post_batch_refuses_what_cannot_be_one_request(
    queries: list[AnalyticsQuery], says: str
) -> None:
    echo = Echo()
    with client_for(echo, max_queries_per_request=2) as client, pytest.raises(ValueError) as caught:
        client.post_batch(queries)
    assert says in str(caught.value)
    assert echo.requests == []


def test_one_failing_batch_stops_the_others_from_retrying() -> None:
    """Batch 0 is refused at once; batch 1 would retry 503s for a second without cancellation."""
    attempts = {"a": 0, "b": 0}
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        first = json.loads(request.content)["queries"][0]["name"]
        with lock:
            attempts[first] += 1
        if first == "a":
            time.sleep(0.05)
            return httpx.Response(400, json={"message": ["queries.0.name is bad"]})
        return httpx.Response(503)

    queries = [make_query("a"), make_query("b")]
    with (
        client_for(
            handler, max_queries_per_request=1, max_retries=5, sleep=lambda seconds: time.sleep(0.2)
        ) as client,
        pytest.raises(BadRequestError),
    ):
        client.query(queries)
    assert attempts["a"] == 1
    assert attempts["b"] <= 2


@pytest.mark.parametrize(
    ("base_url", "endpoint"),
    [
        pytest.param("https://api.vapi.ai", "https://api.vapi.ai/analytics", id="default"),
        pytest.param("https://api.vapi.ai/", "https://api.vapi.ai/analytics", id="trailing-slash"),
        pytest.param(
            "http://127.0.0.1:8787/v1/", "http://127.0.0.1:8787/v1/analytics", id="path-prefix"
        ),
    ],
)
def test_endpoint_is_the_base_url_plus_analytics(base_url: str, endpoint: str) -> None:
    with VapiAnalyticsClient(base_url, "sk-unit") as client:
        assert client.url == endpoint


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        pytest.param({"api_key": ""}, "api_key is empty", id="empty-key"),
        pytest.param({"api_key": SecretStr("  ")}, "api_key is empty", id="blank-secret"),
        pytest.param({"base_url": "api.vapi.ai"}, "not an absolute http(s) URL", id="no-scheme"),
        pytest.param({"base_url": "ftp://api.vapi.ai"}, "not an absolute", id="wrong-scheme"),
        pytest.param({"max_queries_per_request": 0}, "max_queries_per_request=0", id="limit-0"),
        pytest.param({"max_concurrency": 0}, "max_concurrency=0", id="concurrency-0"),
        pytest.param({"max_retries": -1}, "max_retries=-1", id="negative-retries"),
        pytest.param({"deadline": 0}, "deadline=0", id="no-deadline"),
        pytest.param({"read_timeout": 0}, "read_timeout=0", id="no-read-timeout"),
    ],
)
def test_bad_settings_are_refused_by_name(arguments: dict[str, Any], says: str) -> None:
    settings: dict[str, Any] = {"base_url": "https://api.vapi.ai", "api_key": "sk-unit"}
    with pytest.raises(ValueError) as caught:
        VapiAnalyticsClient(**(settings | arguments))
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "key", ["sk-very-secret-0001", SecretStr("sk-very-secret-0001")], ids=["str", "secret"]
)
def test_repr_masks_the_key(key: str | SecretStr) -> None:
    with VapiAnalyticsClient("https://api.vapi.ai", key) as client:
        text = repr(client)
        auth_text = repr(client._http.auth)
    assert "sk-very-secret-0001" not in text + auth_text
    assert "**********" in text


def test_a_sibling_failure_cuts_a_real_retry_wait_short() -> None:
    """Batch b is told to wait 30 s; batch a's 400 must end that wait, not the 30 s clock."""

    def handler(request: httpx.Request) -> httpx.Response:
        first = json.loads(request.content)["queries"][0]["name"]
        if first == "a":
            time.sleep(0.1)
            return httpx.Response(400, json={"message": ["queries.0.name is bad"]})
        return httpx.Response(429, headers={"Retry-After": "30"})

    started = time.monotonic()
    client = VapiAnalyticsClient(
        "http://127.0.0.1:9",
        "sk-unit",
        transport=httpx.MockTransport(handler),
        max_queries_per_request=1,
    )
    with client, pytest.raises(BadRequestError):
        client.query([make_query("a"), make_query("b")])
    raised_after = time.monotonic() - started
    deadline = time.monotonic() + 5
    while any(t.name.startswith("vapi-analytics") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a batch thread is still waiting out Retry-After"
        time.sleep(0.01)
    assert raised_after < 5
