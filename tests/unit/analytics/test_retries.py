"""The retry policy, table by table: which outcomes are retried and how long to wait first."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from vapi_chargeback.analytics.retries import parse_retry_after, retry_delay, retry_reason

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
