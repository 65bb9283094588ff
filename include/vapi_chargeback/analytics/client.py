"""HTTP client of the Vapi Analytics API: auth, timeouts, retries, batching, typed errors.

A monthly run asks a few hundred questions of an API that rate-limits, sometimes
answers 5xx during deploys, and sits behind proxies that drop idle connections. The
client absorbs all of that so the DAG sees one of two things: results matched to the
queries by name, or a typed error that says which request failed and what to do.

Retry policy (shaped like openai-python's ``_base_client``) lives in three small pure
functions — :func:`retry_reason`, :func:`parse_retry_after`, :func:`retry_delay` — with
the tunables as module constants below.

HTTP 500 is retried on purpose. ``POST /analytics`` only reads, so a repeated request
cannot double-count anything, and the 500s seen from such services are mostly transient
(database failover, deploy). A 500 that is a deterministic bug costs at most
``max_retries`` waits inside the deadline and still ends as :class:`ServerError` carrying
the server's body. 501 and 505 mean the server will never handle the request, so they
are not retried.

The deadline is per logical request (one :meth:`VapiAnalyticsClient.post_batch`), not per
:meth:`VapiAnalyticsClient.query`, because a large month legitimately takes many batches.

JSON numbers are parsed straight to ``Decimal`` (``parse_float=decimal.Decimal``): no
float ever exists on the money path, and the raw bytes are kept for provenance.

A success status does not make a body trustworthy. The client insists on the spec's
array with exactly one result per query (else :class:`ResponseError`, nothing used);
:func:`check_results` goes further and holds every row to the promises of the query it
answers — each group key present with a plain value, each aggregate present, numeric,
finite and not negative — which the pipeline applies to every batch it keeps. One case
is retried like a 5xx: a JSON array that breaks off or is corrupted
(:class:`DamagedResponseError`), which a proxy losing its upstream mid-body produces; an
HTML page, another JSON shape or well-formed wrong content is not transient and fails at
once.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr, ValidationError

from vapi_chargeback import __version__
from vapi_chargeback.analytics.errors import (
    AuthenticationError,
    BadRequestError,
    DamagedResponseError,
    DuplicateQueryNameError,
    RateLimitError,
    ResponseMismatchError,
    ServerError,
    TransportError,
    UnexpectedStatusError,
    UnusableResponseError,
    VapiAnalyticsError,
    excerpt,
)
from vapi_chargeback.analytics.models import AnalyticsQuery, AnalyticsQueryResult, field_path
from vapi_chargeback.analytics.numbers import InvalidNumberError, to_decimal

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.vapi.ai"
ANALYTICS_PATH = "/analytics"
USER_AGENT = f"vapi-chargeback/{__version__}"

DEFAULT_MAX_QUERIES_PER_REQUEST = 20
DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF_BASE = 0.5
"""Seconds; the first backoff is drawn from [0, base], the n-th from [0, base·2ⁿ⁻¹]."""
DEFAULT_BACKOFF_CAP = 30.0
DEFAULT_RETRY_AFTER_CAP = 60.0
"""The longest server-requested wait we honour; a longer Retry-After ends the retries."""
DEFAULT_DEADLINE = 300.0
DEFAULT_MAX_RESPONSE_BYTES = 512 * 1024 * 1024
"""A month of a 2,000-assistant org with a few breakdowns is ~150 MB in one batch; far more
means a wrong endpoint. Bodies are read into memory, so this also bounds that."""

SUCCESS_STATUS_CODES = frozenset({200, 201})
RETRYABLE_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
"""Timeouts, refused/reset connections, and a peer that closed without answering."""

_MAX_BACKOFF_EXPONENT = 60
_NAMES_IN_DESCRIPTION = 10
_MAX_REPORTED_PROBLEMS = 10
DATE_KEY = "date"
"""Rows of a query with a ``step`` carry their bucket under this key."""


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


@dataclass(frozen=True)
class BatchResponse:
    """One answered ``POST /analytics``: parsed results in request order, and the bytes as received."""

    results: list[AnalyticsQueryResult]
    """Empty when the batch was posted with ``keep_results=False``."""
    raw: bytes = field(repr=False)
    """The body exactly as received, to store as provenance next to :attr:`sha256`."""
    sha256: str
    status_code: int
    attempts: int
    """HTTP attempts it took, 1 when the first one succeeded."""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Query name → ``[start, end)`` byte offsets of its result in :attr:`raw`, so a reader of
    the stored body can decode one query without the rest (see :func:`iter_json_array`)."""


class _BearerAuth(httpx.Auth):
    """Adds the key per request, so it sits in no default header and no repr shows it."""

    def __init__(self, api_key: SecretStr) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return f"_BearerAuth({self._api_key!r})"


class _Cancelled(Exception):
    """Another batch of the same :meth:`VapiAnalyticsClient.query` failed; stop retrying this one."""


@dataclass(frozen=True)
class _Reply:
    response: httpx.Response
    raw: bytes


class VapiAnalyticsClient:
    """Typed, resilient access to ``POST /analytics``; one keep-alive connection pool per client.

    Thread-safe: :meth:`query` itself sends batches from a small thread pool.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | SecretStr = "",
        *,
        max_queries_per_request: int = DEFAULT_MAX_QUERIES_PER_REQUEST,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
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
        self.base_url = _checked_base_url(base_url)
        self.url = self.base_url + ANALYTICS_PATH
        _require(max_queries_per_request >= 1, "max_queries_per_request", max_queries_per_request)
        _require(max_concurrency >= 1, "max_concurrency", max_concurrency)
        _require(connect_timeout > 0, "connect_timeout", connect_timeout)
        _require(read_timeout > 0, "read_timeout", read_timeout)
        _require(max_retries >= 0, "max_retries", max_retries)
        _require(backoff_base >= 0, "backoff_base", backoff_base)
        _require(backoff_cap >= 0, "backoff_cap", backoff_cap)
        _require(retry_after_cap >= 0, "retry_after_cap", retry_after_cap)
        _require(deadline > 0, "deadline", deadline)
        _require(max_response_bytes >= 1, "max_response_bytes", max_response_bytes)
        self.max_queries_per_request = max_queries_per_request
        self.max_concurrency = max_concurrency
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
            auth=_BearerAuth(self._api_key),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key={self._api_key!r}, "
            f"max_queries_per_request={self.max_queries_per_request}, "
            f"max_concurrency={self.max_concurrency}, max_retries={self.max_retries}, "
            f"deadline={self.deadline})"
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
        """Close the pooled connections; the client cannot send afterwards."""
        self._http.close()

    def plan_batches(self, queries: Sequence[AnalyticsQuery]) -> list[list[AnalyticsQuery]]:
        """Split into requests of at most ``max_queries_per_request`` queries, keeping order."""
        size = self.max_queries_per_request
        return [list(queries[start : start + size]) for start in range(0, len(queries), size)]

    def query(self, queries: Sequence[AnalyticsQuery]) -> dict[str, AnalyticsQueryResult]:
        """Answer every query, in as few requests as the batch limit allows; keyed by name, in order."""
        queries = list(queries)
        _reject_duplicate_names(queries, request=f"POST {self.url} (before sending)")
        responses = self.post_batches(self.plan_batches(queries))
        by_name = {result.name: result for response in responses for result in response.results}
        return {query.name: by_name[query.name] for query in queries}

    def post_batches(self, batches: Sequence[Sequence[AnalyticsQuery]]) -> list[BatchResponse]:
        """Send planned batches with at most ``max_concurrency`` in flight; responses in batch order.

        The first failure is raised at once, as is; batches still in flight stop at their
        next retry (a wait with the default ``time.sleep`` is cut short).
        """
        if len(batches) <= 1:
            return [
                self.post_batch(batch, batch_index=index) for index, batch in enumerate(batches)
            ]
        cancelled = threading.Event()
        workers = min(self.max_concurrency, len(batches))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="vapi-analytics")
        futures = [
            pool.submit(self._post_batch, list(batch), index, cancelled)
            for index, batch in enumerate(batches)
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failure = _first_failure(futures, done)
        if failure is not None:
            cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise failure
        pool.shutdown()
        return [future.result() for future in futures]

    def post_batch(
        self,
        queries: Sequence[AnalyticsQuery],
        *,
        batch_index: int = 0,
        keep_results: bool = True,
        check: bool = False,
    ) -> BatchResponse:
        """Exactly one logical ``POST /analytics`` (retried as the policy allows) for these queries.

        ``batch_index`` only labels logs and errors, e.g. with the Airflow map index.
        ``check=True`` also holds every row to its query (:func:`check_results`).
        ``keep_results=False`` validates the body one result at a time and returns only the
        raw bytes and :attr:`BatchResponse.spans`: a large month's results as Python objects
        are several times its bytes, and a caller that stores the body needs none of them.
        """
        return self._post_batch(list(queries), batch_index, None, keep_results, check)

    def _post_batch(
        self,
        queries: list[AnalyticsQuery],
        batch_index: int,
        cancelled: threading.Event | None,
        keep_results: bool = True,
        check: bool = False,
    ) -> BatchResponse:
        names = [query.name for query in queries]
        request = self._describe(batch_index, names)
        if not queries:
            raise ValueError(f"{request}: no queries to send")
        if len(queries) > self.max_queries_per_request:
            raise ValueError(
                f"{request}: {len(queries)} queries exceed max_queries_per_request="
                f"{self.max_queries_per_request}; split them with plan_batches() or use query()"
            )
        _reject_duplicate_names(queries, request=request)
        body = json.dumps(
            {"queries": [query.to_wire() for query in queries]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            if cancelled is not None and cancelled.is_set():
                raise _Cancelled
            remaining = self.deadline - (self._clock() - started)
            outcome: _Reply | Exception = self._attempt(body, remaining, request)
            if isinstance(outcome, _Reply) and outcome.response.status_code in SUCCESS_STATUS_CODES:
                try:
                    return self._parse(
                        outcome, request, queries, attempt, keep_results=keep_results, check=check
                    )
                except DamagedResponseError as damaged:
                    outcome = damaged
            reason = retry_reason(outcome.response if isinstance(outcome, _Reply) else outcome)
            if isinstance(outcome, _Reply) and reason is None:
                raise self._final_status_error(outcome, request)
            elapsed = self._clock() - started
            if attempt > self.max_retries:
                raise self._exhausted(outcome, request, attempt, elapsed, "retries exhausted")
            retry_after = (
                parse_retry_after(outcome.response.headers) if isinstance(outcome, _Reply) else None
            )
            delay = retry_delay(
                attempt - 1,
                retry_after,
                backoff_base=self.backoff_base,
                backoff_cap=self.backoff_cap,
                retry_after_cap=self.retry_after_cap,
            )
            if delay is None:
                why = (
                    f"the server asked to wait {retry_after:.0f} s, longer than "
                    f"retry_after_cap={self.retry_after_cap:.0f} s"
                )
                raise self._exhausted(outcome, request, attempt, elapsed, why)
            if elapsed + delay >= self.deadline:
                why = f"waiting {delay:.1f} s more would pass the deadline of {self.deadline:.0f} s"
                raise self._exhausted(outcome, request, attempt, elapsed, why)
            if cancelled is not None and cancelled.is_set():
                raise _Cancelled
            log.warning(
                "Vapi analytics batch %d attempt %d/%d failed (%s); waiting %.2f s (%s) before retrying",
                batch_index,
                attempt,
                self.max_retries + 1,
                reason,
                delay,
                "Retry-After" if retry_after is not None else "backoff",
            )
            self._pause(delay, cancelled)

    def _pause(self, seconds: float, cancelled: threading.Event | None) -> None:
        """Sleep before a retry; with the default sleep, a failing sibling batch ends it early."""
        if cancelled is not None and self._sleep is time.sleep:
            cancelled.wait(seconds)
        else:
            self._sleep(seconds)

    def _attempt(self, body: bytes, remaining: float, request: str) -> _Reply | Exception:
        """One HTTP exchange; a retryable transport failure is returned, not raised."""
        if remaining <= 0:
            return httpx.TimeoutException("deadline reached before the attempt")
        timeout = httpx.Timeout(
            min(self.read_timeout, remaining), connect=min(self.connect_timeout, remaining)
        )
        log.debug("POST %s (%d bytes)", self.url, len(body))
        try:
            with self._http.stream("POST", self.url, content=body, timeout=timeout) as response:
                return _Reply(response, self._read_limited(response, request))
        except RETRYABLE_EXCEPTIONS as error:
            return error
        except httpx.HTTPError as error:
            raise TransportError(
                f"the request could not be sent ({type(error).__name__}: "
                f"{self._scrub(str(error))}). Check the base URL {self.base_url!r}.",
                request=request,
            ) from error

    def _read_limited(self, response: httpx.Response, request: str) -> bytes:
        """The body, refusing to buffer more than ``max_response_bytes`` (after decompression)."""
        declared = response.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else 0
        chunks: list[bytes] = []
        if size <= self.max_response_bytes:
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    break
                chunks.append(chunk)
        if size > self.max_response_bytes:
            raise UnusableResponseError(
                f"HTTP {response.status_code} with a body over max_response_bytes="
                f"{self.max_response_bytes} ({size} bytes or more). Check the base URL points at "
                "the Vapi API, or split the queries into shorter time ranges.",
                request=request,
                status_code=response.status_code,
            )
        return b"".join(chunks)

    def _parse(
        self,
        reply: _Reply,
        request: str,
        queries: list[AnalyticsQuery],
        attempts: int,
        *,
        keep_results: bool = True,
        check: bool = False,
    ) -> BatchResponse:
        """The results of a success response, or the error saying what is wrong with it.

        A good body is decoded one result at a time (:meth:`_stream`); anything else is
        parsed whole below, which words every error, so both paths refuse the same bodies.
        """
        status = reply.response.status_code
        streamed = self._stream(reply.raw, queries, request, status, keep_results, check)
        if streamed is not None:
            decoded, spans = streamed
            return BatchResponse(
                results=decoded,
                raw=reply.raw,
                sha256=hashlib.sha256(reply.raw).hexdigest(),
                status_code=status,
                attempts=attempts,
                spans=spans,
            )
        text = self._scrub(reply.raw.decode("utf-8", errors="replace"))
        names = [query.name for query in queries]
        try:
            data = decode_json(reply.raw)
        except ValueError as error:
            if isinstance(error, json.JSONDecodeError) and reply.raw.lstrip().startswith(b"["):
                raise DamagedResponseError(
                    f"HTTP {status} with a JSON array that breaks off or is corrupted ({error}); "
                    "the connection or a proxy on the way damaged the body.",
                    request=request,
                    status_code=status,
                    body=text,
                ) from None
            content_type = reply.response.headers.get("content-type", "no content-type")
            raise UnusableResponseError(
                f"HTTP {status} with a body that is not JSON ({content_type}; {error}): "
                f"{excerpt(text)!r}. Check that the base URL points at the Vapi API "
                "(e.g. https://api.vapi.ai), not a web page or a proxy.",
                request=request,
                status_code=status,
                body=text,
            ) from None
        if not isinstance(data, list):
            raise UnusableResponseError(
                f"HTTP {status} with a JSON {_json_kind(data)} where the spec promises an array "
                f"of results (one per query): {excerpt(text)!r}. Check the base URL and the API version.",
                request=request,
                status_code=status,
                body=text,
            )
        results: list[AnalyticsQueryResult] = []
        problems: list[str] = []
        for index, item in enumerate(data):
            try:
                results.append(AnalyticsQueryResult.model_validate(item))
            except ValidationError as error:
                problems.extend(
                    f"{field_path((index, *detail['loc']))}: {detail['msg']}"
                    for detail in error.errors()
                )
        if problems:
            raise UnusableResponseError(
                f"HTTP {status} with results that do not match the spec: {_listed(problems)}. "
                "The API may have changed; report it with the body kept on this error (.body).",
                request=request,
                status_code=status,
                body=text,
            )
        matched = _matched(results, names, request, status, text)
        if check:
            check_results(queries, matched, request=request, status_code=status)
        return BatchResponse(
            results=matched if keep_results else [],
            raw=reply.raw,
            sha256=hashlib.sha256(reply.raw).hexdigest(),
            status_code=status,
            attempts=attempts,
        )

    def _stream(
        self,
        raw: bytes,
        queries: list[AnalyticsQuery],
        request: str,
        status: int,
        keep_results: bool,
        check: bool,
    ) -> tuple[list[AnalyticsQueryResult], dict[str, tuple[int, int]]] | None:
        """The results of a good body and their byte spans, decoding one result at a time.

        None as soon as anything is off (not an array, a result the spec refuses, a name
        missing, unexpected or repeated): the whole-body parse then reports it. Rows that
        break their query (``check``) raise here, as :func:`check_results` words it.
        """
        by_name = {query.name: query for query in queries}
        kept: dict[str, AnalyticsQueryResult] = {}
        spans: dict[str, tuple[int, int]] = {}
        problems: list[str] = []
        try:
            for item, start, end in iter_json_array(raw):
                result = result_from_json(item)
                if result.name not in by_name or result.name in spans:
                    return None
                spans[result.name] = (start, end)
                if check and len(problems) <= _MAX_REPORTED_PROBLEMS:
                    problems += result_problems(by_name[result.name], result)
                if keep_results:
                    kept[result.name] = result
        except ValueError:
            return None
        if len(spans) != len(queries):
            return None
        if problems:
            raise _broken_results(problems, request=request, status_code=status)
        return [kept[name] for name in by_name] if keep_results else [], spans

    def _final_status_error(self, reply: _Reply, request: str) -> VapiAnalyticsError:
        """The error for a status that no retry can change."""
        status = reply.response.status_code
        text = self._scrub(reply.raw.decode("utf-8", errors="replace"))
        if status in (401, 403):
            return AuthenticationError(
                f"HTTP {status}, the API key was refused: {excerpt(text)!r}. Check that the key "
                "is the org's private API key (in Airflow: the password of the Vapi connection).",
                request=request,
                status_code=status,
                body=text,
            )
        if status == 400:
            messages = _server_messages(text)
            return BadRequestError(
                f"HTTP 400, the API rejected the queries: {'; '.join(messages)}. "
                "Fix the query definitions named above; the request was not retried.",
                request=request,
                messages=messages,
                status_code=status,
                body=text,
            )
        hint = "Check the base URL: it must be the API root, e.g. https://api.vapi.ai."
        location = reply.response.headers.get("location")
        if location:
            hint = f"The server redirects to {location!r}; set the base URL to the final address."
        return UnexpectedStatusError(
            f"unexpected HTTP {status}: {excerpt(text)!r}. {hint}",
            request=request,
            status_code=status,
            body=text,
        )

    def _exhausted(
        self,
        outcome: _Reply | Exception,
        request: str,
        attempts: int,
        elapsed: float,
        why: str,
    ) -> VapiAnalyticsError:
        """The error for a retryable failure we stopped retrying, saying why we stopped."""
        tried = f"after {attempts} attempt{'s' if attempts > 1 else ''} in {elapsed:.1f} s ({why})"
        if isinstance(outcome, DamagedResponseError):
            return DamagedResponseError(
                f"{outcome.detail} Every attempt was damaged {tried}; check for a proxy or "
                "network device in front of the API, then rerun the task.",
                request=request,
                status_code=outcome.status_code,
                body=outcome.body,
            )
        if isinstance(outcome, Exception):
            return TransportError(
                f"no HTTP response {tried}; last error {type(outcome).__name__}: "
                f"{self._scrub(str(outcome)) or 'no detail'}. Check network access to "
                f"{self.base_url}; if long queries time out, raise read_timeout.",
                request=request,
            )
        status = outcome.response.status_code
        text = self._scrub(outcome.raw.decode("utf-8", errors="replace"))
        if status == 429:
            return RateLimitError(
                f"still rate limited (HTTP 429) {tried}: {excerpt(text)!r}. Lower max_concurrency, "
                "or rerun the task later.",
                request=request,
                status_code=status,
                body=text,
            )
        return ServerError(
            f"HTTP {status} {tried}: {excerpt(text)!r}. The Vapi API is failing; rerun the task "
            "later and check https://status.vapi.ai if it persists.",
            request=request,
            status_code=status,
            body=text,
        )

    def _describe(self, batch_index: int, names: Sequence[str]) -> str:
        shown = ", ".join(names[:_NAMES_IN_DESCRIPTION])
        more = len(names) - _NAMES_IN_DESCRIPTION
        if more > 0:
            shown += f", … +{more} more"
        return f"POST {self.url} batch {batch_index} ({len(names)} queries: {shown})"

    def _scrub(self, text: str) -> str:
        """Servers sometimes echo request headers in error pages; never pass the key on."""
        secret = self._api_key.get_secret_value()
        return text.replace(secret, "**********")


def _checked_base_url(base_url: str) -> str:
    url = httpx.URL(base_url.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url {base_url!r} is not an absolute http(s) URL; use e.g. {DEFAULT_BASE_URL!r}"
        )
    return str(url).rstrip("/")


def _require(ok: bool, name: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range; see VapiAnalyticsClient's defaults")


def _reject_duplicate_names(queries: Sequence[AnalyticsQuery], *, request: str) -> None:
    counts = Counter(query.name for query in queries)
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    if duplicated:
        raise DuplicateQueryNameError(
            f"query names must be unique, repeated: {', '.join(map(repr, duplicated))}. "
            "Results are matched by name; rename or deduplicate these queries.",
            request=request,
        )


def _matched(
    results: list[AnalyticsQueryResult],
    names: list[str],
    request: str,
    status: int,
    text: str,
) -> list[AnalyticsQueryResult]:
    """The results in request order, or an error naming every missing, extra and repeated name."""
    counts = Counter(result.name for result in results)
    asked = set(names)
    missing = [name for name in names if name not in counts]
    extra = sorted(name for name in counts if name not in asked)
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    if missing or extra or duplicated:
        parts = [
            f"{label}: {', '.join(map(repr, found))}"
            for label, found in (
                ("missing", missing),
                ("unexpected", extra),
                ("repeated", duplicated),
            )
            if found
        ]
        raise ResponseMismatchError(
            f"HTTP {status} with results that do not answer the queries asked ({'; '.join(parts)}). "
            "The response cannot be trusted; rerun the task, and report it if it repeats.",
            request=request,
            missing=missing,
            extra=extra,
            duplicated=duplicated,
            status_code=status,
            body=text,
        )
    by_name = {result.name: result for result in results}
    return [by_name[name] for name in names]


def _server_messages(text: str) -> list[str]:
    """The ``message`` list of a NestJS 400 body, else the body itself as one message."""
    try:
        body = json.loads(text)
    except ValueError:
        return [excerpt(text) or "no message"]
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, list) and message:
        return [str(item) for item in message]
    if isinstance(message, str) and message:
        return [message]
    return [excerpt(text) or "no message"]


def decode_json(raw: bytes) -> Any:
    """JSON with every fraction as ``Decimal``; ``NaN`` and ``Infinity`` are refused (ValueError)."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)


def iter_json_array(raw: bytes) -> Iterator[tuple[Any, int, int]]:
    """Each element of a JSON array body, decoded on its own as :func:`decode_json` would,
    with its ``[start, end)`` byte offsets in ``raw``.

    Decoded whole, a month of results is several times its bytes in Python objects; one
    element at a time, only the largest result is held. Raises ``ValueError`` for a body
    that is not UTF-8, not a JSON array, or that :func:`decode_json` would refuse.
    """
    text = raw.decode("utf-8")
    byte_offset = _byte_offsets(raw, text)
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise ValueError("the body is not a JSON array")
    position = _skip_space(text, position + 1)
    if not text.startswith("]", position):
        while True:
            item, end = _DECODER.raw_decode(text, position)
            yield item, byte_offset(position), byte_offset(end)
            position = _skip_space(text, end)
            if text.startswith(",", position):
                position = _skip_space(text, position + 1)
            elif text.startswith("]", position):
                break
            else:
                raise ValueError(f"expected ',' or ']' at character {position}")
    if _skip_space(text, position + 1) != len(text):
        raise ValueError("data after the JSON array")


def result_from_json(item: Any) -> AnalyticsQueryResult:
    """A decoded result validated like ``AnalyticsQueryResult.model_validate``, rows not copied.

    Pydantic would rebuild every row dict of a 70k-row result; rows that ``json`` decoded
    are plain dicts with string keys already, so only the envelope goes through pydantic.
    Raises ``ValueError`` (a ``ValidationError`` for the envelope) where pydantic would.
    """
    if not isinstance(item, dict):
        raise ValueError("a result must be a JSON object")
    rows = item.get("result")
    if not isinstance(rows, list) or not all(type(row) is dict for row in rows):
        raise ValueError("a result's rows must be a list of JSON objects")
    envelope = AnalyticsQueryResult.model_validate({**item, "result": []})
    return envelope.model_copy(update={"result": rows})


def _byte_offsets(raw: bytes, text: str) -> Callable[[int], int]:
    """Character index → byte offset in ``raw``, for increasing indexes (identity for ASCII)."""
    if raw.isascii():
        return lambda index: index
    last = [0, 0]

    def offset(index: int) -> int:
        last[1] += len(text[last[0] : index].encode("utf-8"))
        last[0] = index
        return last[1]

    return offset


def _skip_space(text: str, position: int) -> int:
    match = _JSON_SPACE.match(text, position)
    return match.end() if match else position


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number finance can book")


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


_SCALAR_TYPES = (str, bool, int, Decimal)


def result_problems(query: AnalyticsQuery, result: AnalyticsQueryResult) -> list[str]:
    """What in ``result`` breaks the promises of ``query``, one sentence per problem (capped).

    Every row must carry each group key (``groupBy`` names, variable-value keys, and
    ``date`` with a ``step``) with a plain value or null — a row without its key would be
    charged to nobody — and every aggregate under its key: ``count`` a whole number,
    ``sum``/``avg``/``min``/``max`` a finite number or null (``min``/``max`` of ``id`` a
    string), ``history`` a list of points with such values. No aggregate the API offers
    can be negative, so a negative one is corruption, not a refund.
    """
    groups = [*(query.group_by or ()), *(item.key for item in query.group_by_variable_value or ())]
    if query.time_range is not None and query.time_range.step is not None:
        groups.append(DATE_KEY)
    aggregates = [
        (operation.result_key, operation.operation, operation.column)
        for operation in query.operations
    ]
    problems: list[str] = []
    for index, row in enumerate(result.result):
        where = f"{query.name!r} row {index}"
        for key in groups:
            value = row.get(key, _MISSING)
            if value is _MISSING:
                problems.append(f"{where}: no group key {key!r} (the query groups by it)")
            elif value is not None and not isinstance(value, _SCALAR_TYPES):
                problems.append(
                    f"{where}: group key {key!r} is a JSON {_json_kind(value)}, not a plain value"
                )
        for key, operation, column in aggregates:
            value = row.get(key, _MISSING)
            if type(value) is Decimal and value.is_finite() and value >= 0 and operation != "count":
                continue
            if type(value) is int and value >= 0:
                continue
            problem = _aggregate_problem(value, operation, column, f"{where}.{key}")
            if problem:
                problems.append(problem)
        if len(problems) > _MAX_REPORTED_PROBLEMS:
            break
    return problems


def check_results(
    queries: Sequence[AnalyticsQuery],
    results: Sequence[AnalyticsQueryResult],
    *,
    request: str,
    status_code: int | None = None,
) -> None:
    """Raise :class:`ResponseError` listing what in ``results`` breaks ``queries`` (same order)."""
    problems = [
        problem
        for query, result in zip(queries, results, strict=True)
        for problem in result_problems(query, result)
    ]
    if problems:
        raise _broken_results(problems, request=request, status_code=status_code)


def _broken_results(
    problems: list[str], *, request: str, status_code: int | None
) -> UnusableResponseError:
    return UnusableResponseError(
        f"results that break what the queries asked for: {_listed(problems)}. Nothing of "
        "this batch was used; rerun the task, and report it with the raw response if it repeats.",
        request=request,
        status_code=status_code,
    )


def _aggregate_problem(value: object, operation: str, column: str, where: str) -> str | None:
    if value is _MISSING:
        return f"{where}: missing ({operation} of {column} was asked for)"
    if operation == "history":
        if not isinstance(value, list):
            return f"{where}: a JSON {_json_kind(value)} where a history (a list of points) belongs"
        for position, point in enumerate(value):
            inner = point.get("value", _MISSING) if isinstance(point, dict) else _MISSING
            problem = _aggregate_problem(inner, "sum", column, f"{where}[{position}].value")
            if problem:
                return problem
        return None
    if operation in ("min", "max") and column == "id":
        return (
            None if value is None or isinstance(value, str) else f"{where}: {value!r} is not an id"
        )
    if value is None and operation != "count":
        return None
    try:
        number = to_decimal(value, field=where)
    except InvalidNumberError as error:
        return str(error)
    if number is None:
        return f"{where}: null where a count belongs"
    if number < 0:
        return f"{where}: {number} is negative; no {operation} of {column} can be"
    if operation == "count" and number != number.to_integral_value():
        return f"{where}: {number} is not a whole count"
    return None


def _listed(problems: list[str]) -> str:
    """The first problems joined for a message, and how many more there were."""
    shown = "; ".join(problems[:_MAX_REPORTED_PROBLEMS])
    more = len(problems) - _MAX_REPORTED_PROBLEMS
    return f"{shown}; … and more" if more > 0 else shown


_MISSING = object()


def _json_kind(data: object) -> str:
    if isinstance(data, dict):
        return "object"
    if isinstance(data, str):
        return "string"
    if data is None:
        return "null"
    if isinstance(data, list):
        return "array"
    if isinstance(data, bool):
        return "boolean"
    return "number" if isinstance(data, int | Decimal) else "value"


def _first_failure(
    futures: list[Future[BatchResponse]], done: set[Future[BatchResponse]]
) -> BaseException | None:
    """The failure of the lowest batch index among finished batches, ignoring cancellations."""
    for future in futures:
        if future in done and not future.cancelled():
            error = future.exception()
            if error is not None and not isinstance(error, _Cancelled):
                return error
    return None
