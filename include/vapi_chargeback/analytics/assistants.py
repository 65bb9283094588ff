"""Every assistant of the org from ``GET /assistant``, for the names statements show.

Vapi lists assistants as a plain JSON array of at most ``limit`` (≤ 1000) objects, newest
``createdAt`` first, with no cursor: the only way on is a ``createdAtLt``/``createdAtGe``
window. So :func:`list_assistants` pages backwards: a full page means there may be more,
and the next page asks for those created before the oldest ``createdAt`` seen. Two things
make that naive walk lose assistants, and both are handled:

- Assistants created in the same millisecond as the oldest of a full page may not all
  have fit on it; ``createdAtLt`` would skip the rest. So that millisecond is listed on
  its own (``createdAtGe`` = it, ``createdAtLt`` = it + 1 ms), at the largest limit when
  the page's limit did not hold it, and — a bulk import can create more than 1000 in one
  millisecond — split by ``updatedAt`` windows, halved until each holds less than a
  page. Only if more than 1000 share both millisecond stamps is the listing refused.
- Nothing relies on the order within a page: the oldest is the minimum, and assistants
  are collected by id, so one seen twice (pages overlap by design) counts once.

Each page goes through :meth:`VapiAnalyticsClient.get`: the same key, retries, deadline
and typed errors as ``POST /analytics``. Only ``id``, ``name``, ``createdAt`` and
``metadata`` are kept (the metadata for the mapping rules that read cost centers from it).

Why not ``analytics.windows``, as ``GET /call`` pages: that walk lists a bounded
``createdAt`` range forwards in windows aimed at half-full pages, and it keeps the page
size at the one-millisecond level. Assistants have no lower bound (an org's first may be
years old), so it would start at the epoch and widen step by step — 77 requests for an
org of 2,345 against 5 here — and with a ``limit`` below 1000 it refuses a millisecond
holding more than ``limit`` assistants that this walk lists by asking that millisecond
again at the largest limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from vapi_chargeback.analytics.errors import UnusableResponseError, excerpt
from vapi_chargeback.analytics.windows import MAX_LIMIT

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

ASSISTANT_PATH = "/assistant"
MAX_NAME_CHARS = 40
"""Vapi's limit on an assistant's ``name``."""
_MILLISECOND = timedelta(milliseconds=1)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class Assistant(BaseModel):
    """One listed assistant, as far as statements need it (the API sends much more)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1)
    name: str | None = None
    """This is the name of the assistant (Vapi: at most 40 characters; optional)."""
    created_at: AwareDatetime = Field(alias="createdAt")
    """This is the ISO 8601 date-time string of when the assistant was created."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Vapi's free-form ``metadata`` object; absent or ``null`` is kept as empty."""

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return {} if value is None else value


_PAGE = TypeAdapter(list[Assistant])

Bounds = dict[str, datetime]


class _Lister:
    def __init__(self, client: VapiAnalyticsClient, limit: int) -> None:
        self.client = client
        self.limit = limit
        self.found: dict[str, Assistant] = {}
        self.requests = 0

    def run(self) -> None:
        before: datetime | None = None
        while True:
            page = self.page(self.limit, {} if before is None else {"createdAtLt": before})
            if len(page) < self.limit:
                return
            oldest = min(item.created_at for item in page)
            self.millisecond(oldest)
            before = oldest

    def millisecond(self, moment: datetime) -> None:
        """Every assistant created in the millisecond ``moment``."""
        window = {"createdAtGe": moment, "createdAtLt": moment + _MILLISECOND}
        for limit in sorted({self.limit, MAX_LIMIT}):
            if len(self.page(limit, window)) < limit:
                return
        self.updated_between(window, _EARLIEST, _LATEST)

    def updated_between(self, window: Bounds, start: datetime, end: datetime) -> None:
        """Those of ``window`` last updated in ``[start, end)``, halving it while full."""
        page = self.page(MAX_LIMIT, {**window, "updatedAtGe": start, "updatedAtLt": end})
        if len(page) < MAX_LIMIT:
            return
        if end - start <= _MILLISECOND:
            raise UnusableResponseError(
                f"over {MAX_LIMIT} assistants were created at {_wire(window['createdAtGe'])}"
                f" and updated at {_wire(start)}, the same milliseconds: GET /assistant cannot"
                " list them all. Update a few of them (any change) and run again.",
                request=f"GET {self.client.base_url}{ASSISTANT_PATH}",
            )
        middle = start + (end - start) // 2
        middle -= timedelta(microseconds=middle.microsecond % 1000)
        self.updated_between(window, start, middle)
        self.updated_between(window, middle, end)

    def page(self, limit: int, bounds: Bounds) -> list[Assistant]:
        params = {"limit": str(limit), **{name: _wire(value) for name, value in bounds.items()}}
        request = f"GET {self.client.base_url}{ASSISTANT_PATH}?{urlencode(params)}"
        response, raw, attempts = self.client.get(ASSISTANT_PATH, params, request=request)
        self.requests += attempts
        page = _read_page(raw, request, response.status_code)
        if len(page) > limit:
            raise UnusableResponseError(
                f"{len(page)} assistants for limit={limit}; check the base URL points at the"
                " Vapi API",
                request=request,
                status_code=response.status_code,
            )
        created_before = bounds.get("createdAtLt")
        if created_before is not None and any(i.created_at >= created_before for i in page):
            raise UnusableResponseError(
                "assistants created after createdAtLt were listed: the server ignores the"
                " window, so the listing could not end. Check the base URL points at the Vapi"
                " API",
                request=request,
                status_code=response.status_code,
            )
        for item in page:
            self.found.setdefault(item.id, item)
        return page


@dataclass(frozen=True)
class AssistantListing:
    """Every assistant the org lists, each once, ordered by id."""

    assistants: list[Assistant]
    requests: int
    """HTTP requests it took, retries included."""


def list_assistants(client: VapiAnalyticsClient, *, limit: int = MAX_LIMIT) -> AssistantListing:
    """Every assistant the org lists (see the module docstring); raises the client's typed
    errors. ``limit``: assistants per page, 1 … 1000."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit={limit} is out of range; GET /assistant takes 1 … {MAX_LIMIT}")
    lister = _Lister(client, limit)
    lister.run()
    return AssistantListing(
        sorted(lister.found.values(), key=lambda item: item.id), lister.requests
    )


def _read_page(raw: bytes, request: str, status: int) -> list[Assistant]:
    try:
        return _PAGE.validate_python(json.loads(raw))
    except (ValueError, ValidationError) as error:
        detail = (
            "; ".join(
                f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}"
                for problem in error.errors()[:5]
            )
            if isinstance(error, ValidationError)
            else f"not JSON ({error})"
        )
        raise UnusableResponseError(
            f"the body is not the array of assistants GET /assistant returns ({detail}):"
            f" {excerpt(raw.decode('utf-8', errors='replace'))!r}",
            request=request,
            status_code=status,
        ) from error


def _wire(moment: datetime) -> str:
    """An instant as the API writes them: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
