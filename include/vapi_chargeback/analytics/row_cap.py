"""A batch answered even when one of its queries would return more rows than the API allows.

The plan sizes every query's window from an estimate of its rows (``row_budget.py``); an
org denser than estimated can still get ``400 query 'by-reason-03' would return more than
100,000 rows``. That query is then asked again as two queries over the halves of its time
range (at the local midnight nearest the middle, or at the middle second of a single
day), the rest of the batch unchanged, halving again as long as a piece is refused, at
most :data:`MAX_HALVINGS` times. Every other 400 is raised as it was.

Rows of the pieces answer the query they were cut from: a day or week bucket split
between two pieces comes back as one row from each, and allocation sums rows per group
anyway, so the statement is the same to the byte. The pieces are named after the query
(``by-reason-03~1``, ``by-reason-03~2``, ``by-reason-03~21`` …) and the stored body is
one JSON array of every result exactly as received, in the order sent, with
:attr:`CappedBatch.pieces` saying which results answer which planned query.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from vapi_chargeback.analytics.checked import checked_fingerprint
from vapi_chargeback.analytics.errors import BadRequestError
from vapi_chargeback.analytics.models import AnalyticsQuery, TimeRange

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import BatchResponse, VapiAnalyticsClient

log = logging.getLogger(__name__)

MAX_HALVINGS = 6
"""A refused query is cut into at most 2**6 = 64 pieces before the run gives up."""
PIECE_MARK = "~"
"""Separates a planned query's name from its piece's path of halves (``1`` first, ``2`` second)."""
_OVER_CAP = re.compile(r"query '(?P<name>[^']+)' would return more than [\d,]+ rows")


class RowCapError(BadRequestError):
    """A query is still over the API's row cap after :data:`MAX_HALVINGS` halvings."""


@dataclass(frozen=True)
class CappedBatch:
    """What :func:`post_within_cap` answered: the body to store, and how it was asked."""

    raw: bytes = field(repr=False)
    sha256: str
    status_code: int
    attempts: int
    """HTTP attempts of all its requests."""
    spans: dict[str, tuple[int, int]]
    """Result name (a planned query, or a piece of one) → its byte span in :attr:`raw`."""
    pieces: dict[str, list[str]]
    """Planned query → the pieces answering it, for each query that was split; else empty."""
    requests: int
    checked: str
    """Every row was checked against the planned queries by these rules
    (:func:`~vapi_chargeback.analytics.checked.checked_fingerprint`)."""


def post_within_cap(
    client: VapiAnalyticsClient, queries: Sequence[AnalyticsQuery], *, batch_index: int
) -> CappedBatch:
    """Send one planned batch; a query refused for its rows is split and asked again.

    Every response is checked row by row (``check=True``), so the answer carries the
    fingerprint of that check.
    """
    responses = _send(client, list(queries), batch_index)
    checked = checked_fingerprint(queries)
    if len(responses) == 1:
        only = responses[0]
        return CappedBatch(
            only.raw, only.sha256, only.status_code, only.attempts, dict(only.spans), {}, 1, checked
        )
    parts: list[bytes] = []
    spans: dict[str, tuple[int, int]] = {}
    offset = 1
    for response in responses:
        for name, (start, end) in sorted(response.spans.items(), key=lambda item: item[1]):
            if parts:
                offset += 1
            parts.append(response.raw[start:end])
            spans[name] = (offset, offset + end - start)
            offset += end - start
    raw = b"[" + b",".join(parts) + b"]"
    pieces: dict[str, list[str]] = {}
    for name in spans:
        if PIECE_MARK in name:
            pieces.setdefault(name.split(PIECE_MARK)[0], []).append(name)
    return CappedBatch(
        raw,
        hashlib.sha256(raw).hexdigest(),
        responses[-1].status_code,
        sum(response.attempts for response in responses),
        spans,
        pieces,
        len(responses),
        checked,
    )


def _send(
    client: VapiAnalyticsClient, queries: list[AnalyticsQuery], batch_index: int
) -> list[BatchResponse]:
    """The responses answering ``queries`` (pieces in place of refused ones), in order."""
    try:
        return [client.post_batch(queries, batch_index=batch_index, keep_results=False, check=True)]
    except BadRequestError as error:
        refused = _refused(error, queries)
        if refused is None:
            raise
        index, query = refused
        path = query.name.partition(PIECE_MARK)[2]
        if len(path) >= MAX_HALVINGS:
            raise RowCapError(
                f"the API refused {query.name!r} for its rows ({'; '.join(error.messages)})"
                f" after {MAX_HALVINGS} halvings of its time range; plan the month again with"
                " a smaller row budget (plan.RowBudget.rows_per_query).",
                request=error.request,
                messages=error.messages,
                status_code=error.status_code,
                body=error.body,
            ) from error
        halves = halve(query)
        log.warning(
            "batch %d: %s would return more rows than the API allows; asking for %s instead",
            batch_index,
            query.name,
            " and ".join(half.name for half in halves),
        )
        group = [*queries[:index], *halves, *queries[index + 1 :]]
        size = client.max_queries_per_request
        return [
            response
            for start in range(0, len(group), size)
            for response in _send(client, group[start : start + size], batch_index)
        ]


def _refused(
    error: BadRequestError, queries: list[AnalyticsQuery]
) -> tuple[int, AnalyticsQuery] | None:
    """The query the API refused for its rows, with its index in the batch; None otherwise."""
    names = [query.name for query in queries]
    for message in error.messages:
        match = _OVER_CAP.search(message)
        if match and match.group("name") in names:
            index = names.index(match.group("name"))
            return index, queries[index]
    return None


def halve(query: AnalyticsQuery) -> list[AnalyticsQuery]:
    """``query`` as two queries over the halves of its time range, named ``~1`` and ``~2``.

    The cut is the local midnight nearest the middle when the range holds two local days
    or more, else the middle whole second (a day bucket then comes back from both halves).
    """
    time_range = query.time_range
    if time_range is None or time_range.start is None or time_range.end is None:
        raise ValueError(f"query {query.name!r} has no time range to split")
    zone = ZoneInfo(time_range.timezone or "UTC")
    start, end = time_range.start, time_range.end
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    middle = start + (end - start) / 2
    if (last - first).days >= 1:
        day = (middle.astimezone(zone) + timedelta(hours=12)).date()
        day = min(max(day, first + timedelta(days=1)), last)
        cut = _local(datetime.combine(day, datetime.min.time(), tzinfo=zone), zone)
        if not start < cut < end:
            cut = _middle_second(start, end, zone)
    else:
        cut = _middle_second(start, end, zone)
    name = query.name if PIECE_MARK in query.name else query.name + PIECE_MARK
    return [
        query.model_copy(
            update={
                "name": f"{name}{position}",
                "time_range": TimeRange(
                    step=time_range.step, start=low, end=high, timezone=time_range.timezone
                ),
            }
        )
        for position, (low, high) in ((1, (start, cut)), (2, (cut, end)))
    ]


def _middle_second(start: datetime, end: datetime, zone: ZoneInfo) -> datetime:
    seconds = int((end - start).total_seconds())
    if seconds < 2:
        raise ValueError(f"a time range of {seconds} s cannot be halved in whole seconds")
    return _local(start + timedelta(seconds=seconds // 2), zone)


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    """``instant`` with the zone's fixed offset at that moment, as the plan writes bounds."""
    local = instant.astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.astimezone(dt_timezone(offset))
