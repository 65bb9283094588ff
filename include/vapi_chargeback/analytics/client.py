"""HTTP client of the Vapi Analytics API: auth, timeouts, retries, batching, typed errors.

A monthly run asks a few hundred questions of an API that rate-limits, sometimes
answers 5xx during deploys, and sits behind proxies that drop idle connections. The
client absorbs all of that so the DAG sees one of two things: results matched to the
queries by name, or a typed error that says which request failed and what to do.

What needs no connection lives beside it, so a reader of stored bodies imports no HTTP:
the retry policy the client applies (:mod:`~vapi_chargeback.analytics.retries`), and
the reading of a success body into results matched by name
(:mod:`~vapi_chargeback.analytics.responses`), built on decoding
(:mod:`~vapi_chargeback.analytics.decode`) and row checks
(:mod:`~vapi_chargeback.analytics.checks`). The raw bytes of every answer are kept for
provenance.

The deadline is per logical request (one :meth:`VapiAnalyticsClient.post_batch`), not per
:meth:`VapiAnalyticsClient.query`, because a large month legitimately takes many batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

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
    UnusableResponseError,
    VapiAnalyticsError,
    excerpt,
    reject_duplicate_names,
    server_messages,
)
from vapi_chargeback.analytics.models import (
    DEFAULT_MAX_QUERIES_PER_REQUEST,
    AnalyticsQuery,
    AnalyticsQueryResult,
)
from vapi_chargeback.analytics.responses import read_results
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
from vapi_chargeback.errors import ChargebackError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.vapi.ai"
ANALYTICS_PATH = "/analytics"
USER_AGENT = f"vapi-chargeback/{__version__}"

DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_DEADLINE = 300.0
DEFAULT_MAX_RESPONSE_BYTES = 512 * 1024 * 1024
"""A month of a 2,000-assistant org with a few breakdowns is ~150 MB in one batch; far more
means a wrong endpoint. Bodies are read into memory, so this also bounds that."""

SUCCESS_STATUS_CODES = frozenset({200, 201})

_NAMES_IN_DESCRIPTION = 10
_T = TypeVar("_T")
_Check = Callable[[bytes], object] | None


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
    the stored body can decode one query without the rest (see
    :func:`~vapi_chargeback.analytics.decode.iter_json_array`)."""


class _BearerAuth(httpx.Auth):
    """Adds the key per request, so it sits in no default header and no repr shows it."""

    def __init__(self, api_key: SecretStr) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return f"_BearerAuth({self._api_key!r})"


class _Cancelled(ChargebackError):
    """Another batch of the same :meth:`VapiAnalyticsClient.query` failed; stop retrying this one.

    Never reaches a caller (the other batch's failure is raised instead), so it is no
    :class:`PermanentError`: it says nothing about whether a retry would help.
    """


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
        reject_duplicate_names(
            [query.name for query in queries], request=f"POST {self.url} (before sending)"
        )
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
        ``check=True`` also holds every row to its query
        (:func:`~vapi_chargeback.analytics.checks.check_results`).
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
        reject_duplicate_names([query.name for query in queries], request=request)
        body = json.dumps(
            {"queries": [query.to_wire() for query in queries]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        return self._with_retries(
            request,
            f"Vapi analytics batch {batch_index}",
            lambda remaining: self._attempt(remaining, request, content=body),
            lambda reply, attempts: self._parse(
                reply, request, queries, attempts, keep_results=keep_results, check=check
            ),
            cancelled,
        )

    def get(
        self, path: str, params: Mapping[str, str], *, request: str, check: _Check = None
    ) -> tuple[httpx.Response, bytes, int]:
        """One logical ``GET`` of ``path`` (``/assistant``), retried like :meth:`post_batch`:
        the success response, its body and the attempts it took; ``request`` labels errors.
        ``check(body)`` runs inside the retries: its :class:`DamagedResponseError` is retried."""
        url = self.base_url + path
        return self._with_retries(
            request,
            request,
            lambda remaining: self._attempt(remaining, request, url=url, params=params),
            lambda r, attempts: (r.response, r.raw, attempts, check and check(r.raw))[:3],
        )

    def _with_retries(
        self,
        request: str,
        label: str,
        attempt_once: Callable[[float], _Reply | Exception],
        parse: Callable[[_Reply, int], _T],
        cancelled: threading.Event | None = None,
    ) -> _T:
        """Attempts until one is parsed, the policy says stop, or the deadline is near."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            if cancelled is not None and cancelled.is_set():
                raise _Cancelled
            remaining = self.deadline - (self._clock() - started)
            outcome: _Reply | Exception = attempt_once(remaining)
            if isinstance(outcome, _Reply) and outcome.response.status_code in SUCCESS_STATUS_CODES:
                try:
                    return parse(outcome, attempt)
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
                "%s attempt %d/%d failed (%s); waiting %.2f s (%s) before retrying",
                label,
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

    def _attempt(
        self,
        remaining: float,
        request: str,
        *,
        content: bytes | None = None,
        url: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> _Reply | Exception:
        """One HTTP exchange, a POST of ``content`` to ``/analytics`` or a GET of ``url``; a
        retryable transport failure is returned, not raised."""
        if remaining <= 0:
            return httpx.TimeoutException("deadline reached before the attempt")
        timeout = httpx.Timeout(
            min(self.read_timeout, remaining), connect=min(self.connect_timeout, remaining)
        )
        method = "GET" if content is None else "POST"
        log.debug("%s %s (%d bytes)", method, url or self.url, len(content or b""))
        try:
            with self._http.stream(
                method, url or self.url, content=content, params=params, timeout=timeout
            ) as response:
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
        """The batch a success response answers, or the error saying what is wrong with it."""
        status = reply.response.status_code
        results, spans = read_results(
            reply.raw,
            queries,
            request=request,
            status=status,
            content_type=reply.response.headers.get("content-type", "no content-type"),
            scrub=self._scrub,
            keep_results=keep_results,
            check=check,
        )
        return BatchResponse(
            results=results,
            raw=reply.raw,
            sha256=hashlib.sha256(reply.raw).hexdigest(),
            status_code=status,
            attempts=attempts,
            spans=spans,
        )

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
            messages = server_messages(text)
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
