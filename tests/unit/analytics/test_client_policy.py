"""How the client applies the retry policy: caps, deadline, logged waits (mocked transport)."""

from __future__ import annotations

import logging

import httpx
import pytest

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import RateLimitError, ServerError, UnexpectedStatusError
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery


class Script:
    """A mocked transport answering with the given responses in order; counts requests."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


QUERY = AnalyticsQuery(
    table="call", name="cost", operations=[AnalyticsOperation(operation="sum", column="cost")]
)


def client_for(script: Script, clock: Clock, **options: float) -> VapiAnalyticsClient:
    return VapiAnalyticsClient(
        "http://127.0.0.1:9",
        "sk-unit",
        sleep=clock.sleep,
        clock=lambda: clock.now,
        transport=httpx.MockTransport(script),
        **options,  # type: ignore[arg-type]
    )


def test_retry_after_longer_than_the_cap_stops_at_once() -> None:
    script, clock = Script(httpx.Response(429, headers={"Retry-After": "3600"})), Clock()
    with (
        client_for(script, clock, retry_after_cap=60) as client,
        pytest.raises(RateLimitError) as caught,
    ):
        client.post_batch([QUERY])
    assert len(script.requests) == 1
    assert clock.sleeps == []
    assert "3600 s" in str(caught.value) and "retry_after_cap" in str(caught.value)


def test_deadline_stops_retries_before_a_wait_that_would_pass_it() -> None:
    script = Script(*[httpx.Response(503, headers={"Retry-After": "6"})] * 3)
    clock = Clock()
    with client_for(script, clock, deadline=10) as client, pytest.raises(ServerError) as caught:
        client.post_batch([QUERY])
    assert len(script.requests) == 2
    assert clock.sleeps == [6.0]
    assert "deadline of 10 s" in str(caught.value)


def test_every_wait_is_logged_with_batch_attempt_reason_and_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "4"}),
        httpx.Response(200, json=[{"name": "cost", "timeRange": {}, "result": []}]),
    )
    clock = Clock()
    caplog.set_level(logging.INFO, logger="vapi_chargeback.analytics.client")
    with client_for(script, clock) as client:
        client.post_batch([QUERY], batch_index=7)
    waits = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(waits) == 2 == len(clock.sleeps)
    assert "batch 7 attempt 1/6" in waits[0] and "HTTP 503" in waits[0]
    assert f"{clock.sleeps[0]:.2f} s (backoff)" in waits[0]
    assert "batch 7 attempt 2/6" in waits[1] and "HTTP 429" in waits[1]
    assert "4.00 s (Retry-After)" in waits[1]


def test_backoff_waits_grow_within_their_caps() -> None:
    script = Script(*[httpx.Response(502)] * 6)
    clock = Clock()
    with (
        client_for(script, clock, backoff_base=1.0, backoff_cap=8.0) as client,
        pytest.raises(ServerError),
    ):
        client.post_batch([QUERY])
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(clock.sleeps) == len(ceilings)
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(clock.sleeps, ceilings, strict=True))


@pytest.mark.parametrize(
    ("response", "hint"),
    [
        pytest.param(httpx.Response(404, text="Cannot POST /v2/analytics"), "base URL", id="404"),
        pytest.param(
            httpx.Response(301, headers={"Location": "https://api.vapi.ai/analytics"}),
            "redirects to 'https://api.vapi.ai/analytics'",
            id="redirect",
        ),
        pytest.param(httpx.Response(501, text="not implemented"), "base URL", id="501"),
    ],
)
def test_other_statuses_are_not_retried_and_name_a_fix(response: httpx.Response, hint: str) -> None:
    script, clock = Script(response), Clock()
    with client_for(script, clock) as client, pytest.raises(UnexpectedStatusError) as caught:
        client.post_batch([QUERY])
    assert len(script.requests) == 1
    assert hint in str(caught.value)
