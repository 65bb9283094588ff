"""The list endpoints of the Vapi API (``GET /call``, ``GET /assistant``): one page, retried, typed.

These endpoints answer a plain JSON array of at most ``limit`` (≤ 1000) records filtered
by ``createdAt``/``updatedAt`` bounds, with no cursor and no promised order. Whoever lists
a month therefore pages by time window (:mod:`~vapi_chargeback.analytics.windows`);
this module only sends one ``GET`` and turns every outcome into a body or a typed error,
with the retry policy and error classes of ``POST /analytics``
(:mod:`~vapi_chargeback.analytics.retries`, :mod:`~vapi_chargeback.analytics.errors`),
so a caller handles both APIs alike. ``GET`` only reads: every retry is safe.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr

from vapi_chargeback import __version__
from vapi_chargeback.analytics.errors import (
    AuthenticationError,
    BadRequestError,
    DamagedResponseError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedStatusError,
    VapiAnalyticsError,
    excerpt,
)
from vapi_chargeback.analytics.retries import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_AFTER_CAP,
    RETRYABLE_EXCEPTIONS,
    parse_retry_after,
    retry_delay,
    retry_reason,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.vapi.ai"
USER_AGENT = f"vapi-chargeback/{__version__}"
MAX_LIMIT = 1000
"""The largest ``limit`` the list endpoints accept."""
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_DEADLINE = 300.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""1,000 calls with their costs are ~2 MB; far more means a wrong endpoint."""
SUCCESS_STATUS_CODES = frozenset({200, 201})

Params = tuple[tuple[str, str], ...]
Parse = Callable[[bytes], Any]
"""Reads a success body; raises :class:`DamagedResponseError` for a body broken in transit
(retried) and a permanent error for one that is whole but unusable."""


@dataclass(frozen=True)
class ListPage:
    """One answered ``GET``: what ``parse`` made of the body, and the body's digest."""

    path: str
    params: Params
    parsed: Any = field(repr=False)
    sha256: str
    size: int
    """Bytes of the body as received."""
    attempts: int


def instant(ms: int) -> str:
    """Epoch milliseconds as the API's ISO-8601 form, ``2026-10-01T00:00:00.000Z``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds; sub-millisecond parts are refused, not cut."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    if delta % timedelta(milliseconds=1):
        raise ValueError(f"{moment.isoformat()} is not a whole millisecond; the API filters by ms")
    return delta // timedelta(milliseconds=1)


class VapiListClient:
    """``GET`` on the list endpoints with the analytics client's auth, timeouts and retries."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | SecretStr = "",
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
        deadline: float = DEFAULT_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not self._api_key.get_secret_value().strip():
            raise ValueError("api_key is empty: pass the private API key of the Vapi org")
        url = httpx.URL(base_url.strip())
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url {base_url!r} is not an absolute http(s) URL")
        self.base_url = str(url).rstrip("/")
        for name, value, ok in (
            ("connect_timeout", connect_timeout, connect_timeout > 0),
            ("read_timeout", read_timeout, read_timeout > 0),
            ("max_retries", max_retries, max_retries >= 0),
            ("backoff_base", backoff_base, backoff_base >= 0),
            ("backoff_cap", backoff_cap, backoff_cap >= 0),
            ("retry_after_cap", retry_after_cap, retry_after_cap >= 0),
            ("deadline", deadline, deadline > 0),
            ("max_response_bytes", max_response_bytes, max_response_bytes >= 1),
        ):
            if not ok:
                raise ValueError(f"{name}={value!r} is out of range; see VapiListClient's defaults")
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key={self._api_key!r}, "
            f"max_retries={self.max_retries}, deadline={self.deadline})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Sequence[tuple[str, str]], parse: Parse) -> ListPage:
        """One logical ``GET path?params``, retried as the policy allows until ``parse`` accepts it."""
        params = tuple(params)
        url = self.base_url + path
        request = f"GET {url}?{httpx.QueryParams(params)}"
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            remaining = self.deadline - (self._clock() - started)
            outcome: tuple[httpx.Response, bytes] | Exception = self._attempt(
                url, params, remaining, request
            )
            if (
                not isinstance(outcome, Exception)
                and outcome[0].status_code in SUCCESS_STATUS_CODES
            ):
                try:
                    parsed = parse(outcome[1])
                except DamagedResponseError as damaged:
                    outcome = damaged
                else:
                    return ListPage(
                        path=path,
                        params=params,
                        parsed=parsed,
                        sha256=hashlib.sha256(outcome[1]).hexdigest(),
                        size=len(outcome[1]),
                        attempts=attempt,
                    )
            reason = retry_reason(outcome if isinstance(outcome, Exception) else outcome[0])
            if reason is None and not isinstance(outcome, Exception):
                raise self._final_status_error(*outcome, request)
            elapsed = self._clock() - started
            if attempt > self.max_retries:
                raise self._exhausted(outcome, request, attempt, elapsed, "retries exhausted")
            retry_after = (
                None if isinstance(outcome, Exception) else parse_retry_after(outcome[0].headers)
            )
            delay = retry_delay(
                attempt - 1,
                retry_after,
                backoff_base=self.backoff_base,
                backoff_cap=self.backoff_cap,
                retry_after_cap=self.retry_after_cap,
            )
            if delay is None:
                why = f"the server asked to wait {retry_after:.0f} s, over retry_after_cap"
                raise self._exhausted(outcome, request, attempt, elapsed, why)
            if elapsed + delay >= self.deadline:
                why = f"waiting {delay:.1f} s more would pass the deadline of {self.deadline:.0f} s"
                raise self._exhausted(outcome, request, attempt, elapsed, why)
            log.warning(
                "%s attempt %d/%d failed (%s); waiting %.2f s before retrying",
                request,
                attempt,
                self.max_retries + 1,
                reason,
                delay,
            )
            self._sleep(delay)

    def _attempt(
        self, url: str, params: Params, remaining: float, request: str
    ) -> tuple[httpx.Response, bytes] | Exception:
        """One HTTP exchange; a retryable transport failure is returned, not raised."""
        if remaining <= 0:
            return httpx.TimeoutException("deadline reached before the attempt")
        timeout = httpx.Timeout(
            min(self.read_timeout, remaining), connect=min(self.connect_timeout, remaining)
        )
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        try:
            with self._http.stream(
                "GET", url, params=params, headers=headers, timeout=timeout
            ) as response:
                return response, self._read_limited(response, request)
        except RETRYABLE_EXCEPTIONS as error:
            return error
        except httpx.HTTPError as error:
            raise TransportError(
                f"the request could not be sent ({type(error).__name__}: "
                f"{self._scrub(str(error))}). Check the base URL {self.base_url!r}.",
                request=request,
            ) from error

    def _read_limited(self, response: httpx.Response, request: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise UnexpectedStatusError(
                    f"HTTP {response.status_code} with a body over max_response_bytes="
                    f"{self.max_response_bytes}. Check the base URL points at the Vapi API.",
                    request=request,
                    status_code=response.status_code,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _final_status_error(
        self, response: httpx.Response, raw: bytes, request: str
    ) -> VapiAnalyticsError:
        status = response.status_code
        text = self._scrub(raw.decode("utf-8", errors="replace"))
        if status in (401, 403):
            return AuthenticationError(
                f"HTTP {status}, the API key was refused: {excerpt(text)!r}. Check that the key "
                "is the org's private API key (in Airflow: the password of the Vapi connection).",
                request=request,
                status_code=status,
                body=text,
            )
        if status == 400:
            return BadRequestError(
                f"HTTP 400, the API rejected the filters: {excerpt(text)!r}. The listing "
                "builds these itself, so report this with the request above.",
                request=request,
                messages=[excerpt(text)],
                status_code=status,
                body=text,
            )
        return UnexpectedStatusError(
            f"unexpected HTTP {status}: {excerpt(text)!r}. Check the base URL: it must be the "
            "API root, e.g. https://api.vapi.ai.",
            request=request,
            status_code=status,
            body=text,
        )

    def _exhausted(
        self,
        outcome: tuple[httpx.Response, bytes] | Exception,
        request: str,
        attempts: int,
        elapsed: float,
        why: str,
    ) -> VapiAnalyticsError:
        tried = f"after {attempts} attempt{'s' if attempts > 1 else ''} in {elapsed:.1f} s ({why})"
        if isinstance(outcome, DamagedResponseError):
            return DamagedResponseError(
                f"{outcome.detail} Every attempt was damaged {tried}; check for a proxy in "
                "front of the API, then rerun the task.",
                request=request,
                status_code=outcome.status_code,
            )
        if isinstance(outcome, Exception):
            return TransportError(
                f"no HTTP response {tried}; last error {type(outcome).__name__}: "
                f"{self._scrub(str(outcome)) or 'no detail'}. Check network access to "
                f"{self.base_url}.",
                request=request,
            )
        response, raw = outcome
        text = self._scrub(raw.decode("utf-8", errors="replace"))
        error = RateLimitError if response.status_code == 429 else ServerError
        return error(
            f"HTTP {response.status_code} {tried}: {excerpt(text)!r}. Rerun the task later"
            + (", or lower the concurrency." if error is RateLimitError else "."),
            request=request,
            status_code=response.status_code,
            body=text,
        )

    def _scrub(self, text: str) -> str:
        """Servers sometimes echo request headers in error pages; never pass the key on."""
        return text.replace(self._api_key.get_secret_value(), "**********")
