"""The client against a real HTTP server on 127.0.0.1: retries, errors, batching, secrecy.

A mocked transport cannot show keep-alive, a read timeout or a reset connection; the
scripted server can, and it counts exactly how many requests the client really sent.
Waits go to an injected clock, so a 2 s ``Retry-After`` costs no wall time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from vapi_chargeback import __version__
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import (
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    ServerError,
    TransportError,
    VapiAnalyticsError,
)
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery

from support.scripted_server import RecordedRequest, Reply, ScriptedServer, analytics_results, echo

API_KEY = "sk-test-7f3e9b2a-41c6-4d0e-9a55-c0ffee123456"


class FakeClock:
    """Injected ``sleep`` and ``clock``: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def __call__(self) -> float:
        return self.now


def make_query(name: str, column: str = "cost") -> AnalyticsQuery:
    return AnalyticsQuery(
        table="call",
        name=name,
        group_by=["assistantId"],
        operations=[AnalyticsOperation(operation="sum", column=column, alias="total")],
    )


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(server: ScriptedServer, clock: FakeClock, **options: Any) -> VapiAnalyticsClient:
    options.setdefault("read_timeout", 5.0)
    return VapiAnalyticsClient(server.url, API_KEY, sleep=clock.sleep, clock=clock, **options)


@pytest.mark.parametrize("status", [200, 201], ids=["200", "201"])
def test_success_sends_authenticated_spec_json_and_parses_money_as_decimal(
    server: ScriptedServer, clock: FakeClock, status: int
) -> None:
    server.play(
        lambda request: Reply(
            status,
            b'[{"name":"cost","timeRange":{"start":"2026-10-01T00:00:00.000Z",'
            b'"end":"2026-11-01T00:00:00.000Z","timezone":"UTC"},'
            b'"result":[{"assistantId":"a1","total":12.3456789}]}]',
        )
    )
    with make_client(server, clock) as client:
        response = client.post_batch([make_query("cost")])

    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/analytics")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["user-agent"] == f"vapi-chargeback/{__version__}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"queries": [make_query("cost").to_wire()]}
    assert response.status_code == status
    assert response.attempts == 1
    assert response.results[0].result == [{"assistantId": "a1", "total": Decimal("12.3456789")}]
    assert clock.sleeps == []


def test_connection_is_kept_alive_across_requests(server: ScriptedServer, clock: FakeClock) -> None:
    server.play(echo(), echo(), echo())
    with make_client(server, clock) as client:
        for name in ("a", "b", "c"):
            client.post_batch([make_query(name)])
    assert len({request.client_port for request in server.requests}) == 1


def test_429_with_retry_after_waits_what_the_server_asked_then_succeeds(
    server: ScriptedServer, clock: FakeClock
) -> None:
    server.play(Reply(429, {"message": "slow down"}, headers={"Retry-After": "2"}), echo())
    with make_client(server, clock) as client:
        response = client.post_batch([make_query("cost")])
    assert len(server.requests) == 2
    assert response.attempts == 2
    assert clock.sleeps == [2.0]
    assert clock.now >= 2.0


def test_503_on_every_attempt_ends_in_server_error_after_max_retries_plus_one(
    server: ScriptedServer, clock: FakeClock
) -> None:
    max_retries = 3
    server.play(*[Reply(503, "upstream unavailable")] * (max_retries + 1))
    with (
        make_client(server, clock, max_retries=max_retries) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.post_batch([make_query("cost")])
    assert len(server.requests) == max_retries + 1
    assert len(clock.sleeps) == max_retries
    assert caught.value.status_code == 503
    assert "4 attempts" in str(caught.value)
    assert "upstream unavailable" in str(caught.value)


def test_429_on_every_attempt_ends_in_rate_limit_error(
    server: ScriptedServer, clock: FakeClock
) -> None:
    server.play(*[Reply(429, "busy", headers={"Retry-After": "1"})] * 3)
    with make_client(server, clock, max_retries=2) as client, pytest.raises(RateLimitError):
        client.post_batch([make_query("cost")])
    assert len(server.requests) == 3
    assert clock.sleeps == [1.0, 1.0]


def test_400_is_not_retried_and_carries_the_server_messages(
    server: ScriptedServer, clock: FakeClock
) -> None:
    messages = [
        "queries.0.operations.0.column must be one of the following values: id, cost",
        "queries.0.name must be shorter than or equal to 40 characters",
    ]
    server.play(Reply(400, {"statusCode": 400, "error": "Bad Request", "message": messages}))
    with make_client(server, clock) as client, pytest.raises(BadRequestError) as caught:
        client.post_batch([make_query("cost")])
    assert len(server.requests) == 1
    assert caught.value.messages == messages
    assert all(message in str(caught.value) for message in messages)
    assert "batch 0" in str(caught.value) and "cost" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403], ids=["401", "403"])
def test_refused_key_is_an_authentication_error_without_retry(
    server: ScriptedServer, clock: FakeClock, status: int
) -> None:
    server.play(Reply(status, {"statusCode": status, "message": "Invalid Key"}))
    with make_client(server, clock) as client, pytest.raises(AuthenticationError) as caught:
        client.post_batch([make_query("cost")])
    assert len(server.requests) == 1
    assert caught.value.status_code == status
    assert "private API key" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [
        Reply(delay=0.6),
        Reply(drop="reset"),
        Reply(drop="close"),
    ],
    ids=["read-timeout", "connection-reset", "closed-without-response"],
)
def test_transport_failure_is_retried(
    server: ScriptedServer, clock: FakeClock, failure: Reply
) -> None:
    server.play(failure, echo())
    with make_client(server, clock, read_timeout=0.2) as client:
        response = client.post_batch([make_query("cost")])
    assert len(server.requests) == 2
    assert response.attempts == 2
    assert len(clock.sleeps) == 1


def test_transport_failure_on_every_attempt_is_a_transport_error(
    server: ScriptedServer, clock: FakeClock
) -> None:
    server.play(Reply(drop="reset"), Reply(drop="reset"))
    with (
        make_client(server, clock, max_retries=1) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.post_batch([make_query("cost")])
    assert len(server.requests) == 2
    assert "2 attempts" in str(caught.value)


def test_45_queries_in_3_requests_answered_out_of_order_are_matched_by_name(
    server: ScriptedServer, clock: FakeClock
) -> None:
    delays = {"q00": 0.4, "q20": 0.2, "q40": 0.0}

    def out_of_order(request: RecordedRequest) -> Reply:
        """Later batches answer first, and each batch lists its results backwards."""
        results = analytics_results(request, row=lambda query: {"echo": query["name"]})
        first = request.json()["queries"][0]["name"]
        return Reply(200, list(reversed(results)), delay=delays[first])

    server.play(*[out_of_order] * 3)
    queries = [make_query(f"q{index:02d}") for index in range(45)]
    with make_client(server, clock, max_queries_per_request=20, max_concurrency=3) as client:
        results = client.query(queries)

    assert len(server.requests) == 3
    assert sorted(len(request.json()["queries"]) for request in server.requests) == [5, 20, 20]
    assert server.answered == ["q40", "q20", "q00"]
    assert list(results) == [query.name for query in queries]
    assert all(result.result == [{"echo": name}] for name, result in results.items())


def test_a_failing_batch_fails_the_whole_query(server: ScriptedServer, clock: FakeClock) -> None:
    def fail_second_batch(request: RecordedRequest) -> Reply:
        first = request.json()["queries"][0]["name"]
        if first == "q2":
            return Reply(400, {"message": ["queries.0.table must be one of call, subscription"]})
        return echo()(request)

    server.play(*[fail_second_batch] * 3)
    queries = [make_query(f"q{index}") for index in range(6)]
    with (
        make_client(server, clock, max_queries_per_request=2) as client,
        pytest.raises(BadRequestError) as caught,
    ):
        client.query(queries)
    assert "batch 1" in str(caught.value)
    assert "q2, q3" in str(caught.value)


def test_the_key_appears_in_no_log_error_or_repr(
    server: ScriptedServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("httpx", "httpcore", "vapi_chargeback"):
        caplog.set_level(logging.DEBUG, logger=name)
    server.play(
        Reply(429, "busy", headers={"Retry-After": "1"}),
        echo(),
        Reply(401, {"message": f"Invalid key Bearer {API_KEY}"}),
        Reply(drop="reset"),
        Reply(500, f"<html>debug: authorization={API_KEY}</html>"),
    )
    texts: list[str] = []
    with make_client(server, clock, max_retries=1) as client:
        texts.append(repr(client))
        client.post_batch([make_query("ok")])
        for expected in (AuthenticationError, ServerError):
            with pytest.raises(expected) as caught:
                client.post_batch([make_query("fails")])
            error: VapiAnalyticsError = caught.value
            texts += [str(error), repr(error), error.body or "", error.request]

    logged = {record.name.split(".")[0] for record in caplog.records}
    assert {"httpx", "httpcore", "vapi_chargeback"} <= logged
    assert any("Bearer **********" in text for text in texts)
    assert API_KEY not in caplog.text
    assert all(API_KEY not in text for text in texts)
