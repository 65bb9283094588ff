"""Typed errors of the Vapi Analytics client, so callers decide by class, not by parsing text.

Every error keeps what a person needs to act without re-running anything: which request
(URL, batch index, query names), the HTTP status and the body the server sent, and its
message ends with what to do. The client scrubs the API key from bodies before they get
here, so these objects are safe to log and to show in the Airflow UI.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence

from vapi_chargeback.errors import ChargebackError, PermanentError

BODY_EXCERPT_CHARS = 500
"""How much of a response body an error message quotes; ``.body`` keeps the whole text."""


class VapiAnalyticsError(ChargebackError):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        request: str,
        status_code: int | None = None,
        body: str | None = None,
    ) -> None:
        self.request = request
        """Which request failed, e.g. ``POST https://api.vapi.ai/analytics batch 2 (queries: a, b)``."""
        self.status_code = status_code
        self.body = body
        super().__init__(f"{request}: {message}")


class AuthenticationError(VapiAnalyticsError, PermanentError):
    """401 or 403: the key is missing, wrong, or not allowed to read analytics. Never retried."""


class BadRequestError(VapiAnalyticsError, PermanentError):
    """400: the server rejected the queries. Never retried; ``messages`` lists its complaints."""

    def __init__(
        self,
        message: str,
        *,
        request: str,
        messages: Sequence[str],
        status_code: int | None = 400,
        body: str | None = None,
    ) -> None:
        self.messages = list(messages)
        super().__init__(message, request=request, status_code=status_code, body=body)


class UnexpectedStatusError(VapiAnalyticsError, PermanentError):
    """A status the API does not use for this endpoint (404, 405, 3xx …): usually a wrong base URL."""


class RateLimitError(VapiAnalyticsError):
    """429 on every attempt until retries or the deadline ran out."""


class ServerError(VapiAnalyticsError):
    """5xx (or 408) on every attempt until retries or the deadline ran out."""


class TransportError(VapiAnalyticsError):
    """No HTTP answer (timeout, refused or dropped connection) until retries or the deadline ran out."""


class ResponseError(VapiAnalyticsError):
    """A success status with a body that cannot be used; catch this to handle both kinds."""


class UnusableResponseError(ResponseError, PermanentError):
    """A success status with a body that is not the spec's list of results (an HTML page, an
    object), or results that break what the queries asked for (missing group keys, negative
    or non-numeric aggregates). Never retried: the same request gets the same answer."""


class DamagedResponseError(ResponseError):
    """A success status whose JSON array broke off or was corrupted on the way.

    Retried like a 5xx: a proxy that loses its upstream mid-body produces exactly this, and
    ``POST /analytics`` only reads. Raised to the caller once retries run out.
    """

    def __init__(
        self,
        message: str,
        *,
        request: str,
        status_code: int | None = None,
        body: str | None = None,
    ) -> None:
        self.detail = message
        """The message without the request prefix, to restate when retries run out."""
        super().__init__(message, request=request, status_code=status_code, body=body)


class ResponseMismatchError(UnusableResponseError):
    """The results do not answer the queries asked: names missing, unexpected or repeated."""

    def __init__(
        self,
        message: str,
        *,
        request: str,
        missing: Sequence[str],
        extra: Sequence[str],
        duplicated: Sequence[str],
        status_code: int | None = None,
        body: str | None = None,
    ) -> None:
        self.missing = list(missing)
        self.extra = list(extra)
        self.duplicated = list(duplicated)
        super().__init__(message, request=request, status_code=status_code, body=body)


class DuplicateQueryNameError(VapiAnalyticsError, PermanentError, ValueError):
    """Two queries of one call share a name, so their results could not be told apart."""


def excerpt(body: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """The start of a body for a one-line message: whitespace collapsed, cut at ``limit``."""
    text = " ".join(body.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_messages(text: str) -> list[str]:
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


def reject_duplicate_names(names: Iterable[str], *, request: str) -> None:
    """Results are matched to queries by name, so one call's query names must be unique."""
    counts = Counter(names)
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    if duplicated:
        raise DuplicateQueryNameError(
            f"query names must be unique, repeated: {', '.join(map(repr, duplicated))}. "
            "Results are matched by name; rename or deduplicate these queries.",
            request=request,
        )
