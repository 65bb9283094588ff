"""When a failed ``POST /analytics`` is worth another attempt, and how long to wait first.

Shaped like openai-python's ``_base_client``: three small pure functions —
:func:`retry_reason`, :func:`parse_retry_after`, :func:`retry_delay` — with the tunables
as module constants, so the policy can be read and tested on its own and the client only
applies it.

HTTP 500 is retried on purpose. ``POST /analytics`` only reads, so a repeated request
cannot double-count anything, and the 500s seen from such services are mostly transient
(database failover, deploy). A 500 that is a deterministic bug costs at most
``max_retries`` waits inside the client's deadline and still ends as
:class:`~vapi_chargeback.analytics.errors.ServerError` carrying the server's body. 501 and
505 mean the server will never handle the request, so they are not retried.

One body is retried like a 5xx: a JSON array that breaks off or is corrupted
(:class:`~vapi_chargeback.analytics.errors.DamagedResponseError`), which a proxy losing
its upstream mid-body produces.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from vapi_chargeback.analytics.errors import DamagedResponseError

DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF_BASE = 0.5
"""Seconds; the first backoff is drawn from [0, base], the n-th from [0, base·2ⁿ⁻¹]."""
DEFAULT_BACKOFF_CAP = 30.0
DEFAULT_RETRY_AFTER_CAP = 60.0
"""The longest server-requested wait we honour; a longer Retry-After ends the retries."""

RETRYABLE_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
"""Timeouts, refused/reset connections, and a peer that closed without answering."""

_MAX_BACKOFF_EXPONENT = 60


def retry_reason(outcome: httpx.Response | BaseException) -> str | None:
    """Why another attempt may succeed (``"HTTP 503"``, ``"ReadTimeout"``), or None if it cannot."""
    if isinstance(outcome, httpx.Response):
        if outcome.status_code in RETRYABLE_STATUS_CODES:
            return f"HTTP {outcome.status_code}"
        return None
    if isinstance(outcome, DamagedResponseError):
        return "damaged JSON body"
    if isinstance(outcome, RETRYABLE_EXCEPTIONS):
        return type(outcome).__name__
    return None


def parse_retry_after(
    headers: httpx.Headers | Mapping[str, str], *, now: datetime | None = None
) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be delay-seconds or an HTTP date; a date in the past means "now"
    (0). Malformed, negative or non-finite values count as absent, so the caller falls
    back to its own backoff instead of trusting garbage.
    """
    headers = httpx.Headers(headers)
    milliseconds = _non_negative_number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(
    retries_done: int,
    retry_after: float | None,
    *,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    backoff_cap: float = DEFAULT_BACKOFF_CAP,
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the server wants more than we allow.

    The server's ``Retry-After`` wins when present (waiting less would only earn another
    429); otherwise capped exponential backoff with full jitter, which spreads the
    retries of concurrent batches instead of sending them back in lockstep.
    """
    if retry_after is not None:
        return retry_after if retry_after <= retry_after_cap else None
    exponent = min(retries_done, _MAX_BACKOFF_EXPONENT)
    return rand() * min(backoff_cap, backoff_base * 2.0**exponent)


def _non_negative_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
