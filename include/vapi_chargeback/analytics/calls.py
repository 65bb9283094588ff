"""Call records from ``GET /call``: the fields a recount needs, a month listed page by page.

The verification recounts a month from the calls themselves, a second source beside
``POST /analytics``. A month is up to millions of calls, so they are streamed: a
generator of pages (:func:`list_call_pages`), each holding the calls read for the first
time and the sha256 of the body (every page read is reported, also those split because
they came back full, so the manifest can list every body the recount rests on). Only the
fields the recount uses are kept (:class:`CallRecord`); a month never sits in memory.

Each call is counted once: windows are half-open and disjoint (``windows.py``), every
call must lie in the window it was asked for (a server ignoring a filter is an error,
not a silent double count), and ids already seen are dropped. The range is a closed,
settled month: calls created at or after its end during the run fall outside it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from pydantic import (
    AliasPath,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import DamagedResponseError, UnusableResponseError
from vapi_chargeback.analytics.windows import (
    MAX_LIMIT,
    ListPage,
    Window,
    epoch_ms,
    instant,
    walk_windows,
)

CALL_PATH = "/call"
DEFAULT_VARIABLE_KEY = "costCenter"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AnalysisCostBreakdown(_Model):
    summary: Decimal | None = None
    structured_data: Decimal | None = Field(default=None, alias="structuredData")
    success_evaluation: Decimal | None = Field(default=None, alias="successEvaluation")


class CostBreakdown(_Model):
    """``Call.costBreakdown``: the five analytics components, the total and the analysis parts."""

    transport: Decimal | None = None
    stt: Decimal | None = None
    llm: Decimal | None = None
    tts: Decimal | None = None
    vapi: Decimal | None = None
    total: Decimal | None = None
    analysis_cost_breakdown: AnalysisCostBreakdown | None = Field(
        default=None, alias="analysisCostBreakdown"
    )
    voicemail_detection_cost: Decimal | None = Field(default=None, alias="voicemailDetectionCost")
    knowledge_base_cost: Decimal | None = Field(default=None, alias="knowledgeBaseCost")


class CostItem(_Model):
    """One item of ``Call.costs``: ``transport``, ``model``, ``analysis``, ``voicemail-detection``,
    ``knowledge-base`` …; ``analysisType`` says which analysis (summary, structuredData …)."""

    type: str
    cost: Decimal
    analysis_type: str | None = Field(default=None, alias="analysisType")


class CallRecord(_Model):
    """The part of a Vapi ``Call`` the recount reads; everything else is dropped on reading.

    ``variable_value`` is the call's ``assistantOverrides.variableValues[key]`` for the key
    the listing was given (a string, else its JSON text; None when absent or null), and
    ``success_evaluation`` is ``analysis.successEvaluation`` as text (``true``/``false`` as
    the analytics API groups it).
    """

    id: str = Field(min_length=1)
    assistant_id: str | None = Field(default=None, alias="assistantId")
    created_at: AwareDatetime = Field(alias="createdAt")
    updated_at: AwareDatetime | None = Field(default=None, alias="updatedAt")
    started_at: AwareDatetime | None = Field(default=None, alias="startedAt")
    ended_at: AwareDatetime | None = Field(default=None, alias="endedAt")
    cost: Decimal | None = None
    cost_breakdown: CostBreakdown | None = Field(default=None, alias="costBreakdown")
    costs: tuple[CostItem, ...] = ()
    variable_value: str | None = Field(default=None, validation_alias="assistantOverrides")
    success_evaluation: str | None = Field(
        default=None, validation_alias=AliasPath("analysis", "successEvaluation")
    )

    @field_validator("costs", mode="before")
    @classmethod
    def _no_costs(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("variable_value", mode="before")
    @classmethod
    def _variable(cls, overrides: Any, info: ValidationInfo) -> str | None:
        """Only the configured key of ``assistantOverrides.variableValues``: the rest can be large."""
        key = (info.context or {}).get("variable_key", DEFAULT_VARIABLE_KEY)
        variables = overrides.get("variableValues") if isinstance(overrides, dict) else None
        return _text(variables.get(key) if isinstance(variables, dict) else None)

    @field_validator("success_evaluation", mode="before")
    @classmethod
    def _evaluation(cls, value: Any) -> str | None:
        return _text(value)

    @property
    def duration_seconds(self) -> Decimal | None:
        """``endedAt − startedAt`` in seconds, as the analytics ``duration`` column."""
        if self.started_at is None or self.ended_at is None:
            return None
        return Decimal((self.ended_at - self.started_at) // _MICROSECOND) / 1_000_000


_MICROSECOND = datetime.resolution


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_PAGE = TypeAdapter(list[CallRecord])


@dataclass(frozen=True)
class CallPage:
    """One ``GET /call`` body read: its digest, and the calls it added (none when not kept)."""

    window: Window
    sha256: str
    size: int
    """Bytes of the body."""
    count: int
    """Calls in the body, repeats included."""
    kept: bool
    """False for a full page that was split and read again in smaller windows."""
    attempts: int
    calls: list[CallRecord]
    """Calls of this page not seen before; empty when not kept."""

    @property
    def request(self) -> str:
        return "GET /call?" + "&".join(f"{name}={value}" for name, value in self.window.params())


def parse_calls(raw: bytes, *, variable_key: str = DEFAULT_VARIABLE_KEY) -> list[CallRecord]:
    """A ``GET /call`` body; damaged JSON raises :class:`DamagedResponseError` (retried)."""
    try:
        return _PAGE.validate_json(raw, context={"variable_key": variable_key})
    except ValidationError as error:
        problems = error.errors(include_url=False)
        if any(problem["type"] in ("json_invalid", "json_type") for problem in problems):
            raise DamagedResponseError(
                f"the body is not complete JSON ({problems[0]['msg']}).", request=CALL_PATH
            ) from None
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UnusableResponseError(
            f"the body is not a list of Call objects: at {where or 'the top'}: {first['msg']} "
            f"({len(problems)} problem(s)). Check the base URL points at the Vapi API.",
            request=CALL_PATH,
        ) from None


def list_call_pages(
    client: VapiAnalyticsClient,
    start: datetime,
    end: datetime,
    *,
    limit: int = MAX_LIMIT,
    variable_key: str = DEFAULT_VARIABLE_KEY,
    now: Callable[[], datetime] | None = None,
) -> Iterator[CallPage]:
    """Every page read to list the calls created in ``[start, end)``, each call in exactly one page.

    ``start``/``end`` are aware datetimes on whole milliseconds (the statement month's
    bounds). ``now`` (default the system clock) bounds the ``updatedAt`` walk of a
    millisecond too dense to list by ``createdAt``.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit={limit} must be between 1 and {MAX_LIMIT}")
    seen: set[bytes] = set()

    def fetch(window: Window) -> ListPage:
        params = dict([*window.params(), ("limit", str(limit))])
        parsed: list[list[CallRecord]] = []
        _, raw, attempts = client.get(
            CALL_PATH,
            params,
            request=f"GET {client.base_url}{CALL_PATH}?{urlencode(params)}",
            check=lambda body: parsed.append(parse_calls(body, variable_key=variable_key)),
        )
        records = parsed[-1]
        earliest = min((_floor_ms(r.created_at) for r in records), default=None)
        return ListPage(records, hashlib.sha256(raw).hexdigest(), len(raw), attempts, earliest)

    def now_ms() -> int:
        return epoch_ms(now()) if now else time.time_ns() // 1_000_000

    for read in walk_windows(fetch, epoch_ms(start), epoch_ms(end), limit=limit, now_ms=now_ms):
        records: Sequence[CallRecord] = read.page.records
        fresh: list[CallRecord] = []
        for record in records:
            _check_in_window(record, read.window, client, read.page)
            if read.kept:
                key = _id_key(record.id)
                if key not in seen:
                    seen.add(key)
                    fresh.append(record)
        yield CallPage(
            window=read.window,
            sha256=read.page.sha256,
            size=read.page.size,
            count=read.count,
            kept=read.kept,
            attempts=read.page.attempts,
            calls=fresh,
        )


def iter_calls(
    client: VapiAnalyticsClient,
    start: datetime,
    end: datetime,
    *,
    limit: int = MAX_LIMIT,
    variable_key: str = DEFAULT_VARIABLE_KEY,
    digests: list[str] | None = None,
) -> Iterator[CallRecord]:
    """The calls created in ``[start, end)``, each once; appends every page's sha256 to ``digests``."""
    for page in list_call_pages(client, start, end, limit=limit, variable_key=variable_key):
        if digests is not None:
            digests.append(page.sha256)
        yield from page.calls


def _floor_ms(moment: datetime) -> int:
    return epoch_ms(moment.replace(microsecond=moment.microsecond // 1000 * 1000))


def _check_in_window(
    record: CallRecord, window: Window, client: VapiAnalyticsClient, page: ListPage
) -> None:
    created = _floor_ms(record.created_at)
    updated_ms = _floor_ms(record.updated_at) if record.updated_at else None
    if not window.holds(created, updated_ms):
        raise UnusableResponseError(
            f"call {record.id!r} (createdAt {instant(created)}) lies outside the window asked "
            f"for ({', '.join(f'{k}={v}' for k, v in window.params())}): the server ignored a "
            "filter, so the listing cannot be trusted. Check the base URL points at the Vapi API.",
            request=f"GET {client.base_url}{CALL_PATH} (body sha256 {page.sha256})",
        )


def _id_key(call_id: str) -> bytes:
    """A compact key for the set of seen ids: 16 bytes for a UUID, the UTF-8 text otherwise."""
    hexdigits = call_id.replace("-", "")
    if len(hexdigits) == 32:
        try:
            return b"u" + bytes.fromhex(hexdigits)
        except ValueError:
            pass
    return b"t" + call_id.encode()
