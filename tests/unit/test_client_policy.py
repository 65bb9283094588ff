"""The retry policy, table by table, and how the client applies it (mocked transport)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest

from vapi_chargeback.analytics.client import (
    VapiAnalyticsClient,
    parse_retry_after,
    retry_delay,
    retry_reason,
)
from vapi_chargeback.analytics.errors import RateLimitError, ServerError, UnexpectedStatusError
from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery

NOW = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"Retry-After": "2"}, 2.0, id="seconds"),
        pytest.param({"retry-after": "0"}, 0.0, id="zero-seconds"),
        pytest.param({"Retry-After": "1.5"}, 1.5, id="fractional-seconds"),
        pytest.param({"Retry-After": " 7 "}, 7.0, id="padded-seconds"),
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="milliseconds"),
        pytest.param({"retry-after-ms": "250", "Retry-After": "9"}, 0.25, id="ms-wins"),
        pytest.param({"retry-after-ms": "soon", "Retry-After": "3"}, 3.0, id="bad-ms-falls-back"),
        pytest.param({"Retry-After": "Mon, 02 Nov 2026 09:00:30 GMT"}, 30.0, id="http-date"),
        pytest.param({"Retry-After": "Mon, 02 Nov 2026 08:59:00 GMT"}, 0.0, id="past-date-is-now"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": "-5"}, None, id="negative"),
        pytest.param({"Retry-After": "nan"}, None, id="nan"),
        pytest.param({"Retry-After": "inf"}, None, id="infinite"),
        pytest.param({"Retry-After": ""}, None, id="empty"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_retry_after_header_to_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (200, False),
        (201, False),
        (301, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (422, False),
        (501, False),
        (505, False),
    ],
    ids=lambda value: str(value),
)
def test_status_is_retried(status: int, retried: bool) -> None:
    reason = retry_reason(httpx.Response(status))
    assert (reason is not None) is retried
    if retried:
        assert reason == f"HTTP {status}"


REQUEST = httpx.Request("POST", "http://127.0.0.1/analytics")


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        pytest.param(httpx.ConnectError("refused", request=REQUEST), True, id="connect-error"),
        pytest.param(httpx.ConnectTimeout("slow", request=REQUEST), True, id="connect-timeout"),
        pytest.param(httpx.ReadTimeout("slow", request=REQUEST), True, id="read-timeout"),
        pytest.param(httpx.WriteTimeout("slow", request=REQUEST), True, id="write-timeout"),
        pytest.param(httpx.PoolTimeout("busy", request=REQUEST), True, id="pool-timeout"),
        pytest.param(httpx.ReadError("reset", request=REQUEST), True, id="read-error"),
        pytest.param(httpx.WriteError("broken", request=REQUEST), True, id="write-error"),
        pytest.param(httpx.RemoteProtocolError("eof", request=REQUEST), True, id="dropped"),
        pytest.param(httpx.LocalProtocolError("bad", request=REQUEST), False, id="local-protocol"),
        pytest.param(httpx.UnsupportedProtocol("ftp", request=REQUEST), False, id="unsupported"),
        pytest.param(ValueError("bug"), False, id="programming-error"),
    ],
)
def test_exception_is_retried(error: BaseException, retried: bool) -> None:
    assert (retry_reason(error) is not None) is retried


@pytest.mark.parametrize(
    ("retries_done", "retry_after", "rand", "delay"),
    [
        pytest.param(0, 2.0, 0.9, 2.0, id="retry-after-exactly"),
        pytest.param(3, 0.0, 0.9, 0.0, id="retry-after-now"),
        pytest.param(0, 60.0, 0.9, 60.0, id="retry-after-at-cap"),
        pytest.param(0, 60.5, 0.9, None, id="retry-after-over-cap-stops"),
        pytest.param(0, None, 1.0, 0.5, id="backoff-first"),
        pytest.param(1, None, 1.0, 1.0, id="backoff-second"),
        pytest.param(2, None, 1.0, 2.0, id="backoff-third"),
        pytest.param(5, None, 1.0, 16.0, id="backoff-sixth"),
        pytest.param(6, None, 1.0, 30.0, id="backoff-capped"),
        pytest.param(10_000, None, 1.0, 30.0, id="backoff-no-overflow"),
        pytest.param(2, None, 0.25, 0.5, id="full-jitter-scales"),
        pytest.param(4, None, 0.0, 0.0, id="full-jitter-may-be-zero"),
    ],
)
def test_wait_before_next_attempt(
    retries_done: int, retry_after: float | None, rand: float, delay: float | None
) -> None:
    assert (
        retry_delay(
            retries_done,
            retry_after,
            backoff_base=0.5,
            backoff_cap=30.0,
            retry_after_cap=60.0,
            rand=lambda: rand,
        )
        == delay
    )


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
