"""Listing everything in a time range from an endpoint that caps pages and has no cursor.

``GET /call`` and ``GET /assistant`` answer at most ``limit`` records for the given
``createdAt``/``updatedAt`` bounds, in no promised order. A page with fewer than
``limit`` records is everything in its window; a full page may not be, so its window is
split and read again (the full page is reported but not kept). Windows are half-open,
``[ge, lt)`` in whole milliseconds (the API's resolution), so every record falls in
exactly one of them; the width adapts to the density, aiming at half-full pages.

One millisecond holding ``limit`` records or more (a batch of calls created in one
transaction) cannot be split by ``createdAt``. It is split by ``updatedAt`` instead,
walked upwards (``updatedAt`` before ``createdAt`` in one window, then from ``createdAt``
to the moment the walk reached it), then an open tail
``updatedAt ≥ that moment``: ``updatedAt`` only ever grows, so a record updated while
the walk runs moves into a window not yet read (or is read twice; callers deduplicate
by id) and is never skipped. Records both created and updated in one millisecond beyond
``limit`` cannot be separated by any filter the API has; that raises
:class:`UnsplittableWindowError` rather than count part of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vapi_chargeback.errors import PermanentError

MAX_LIMIT = 1000
"""The largest ``limit`` the list endpoints accept (their default is 100)."""

TARGET_FILL = 0.5
"""Share of ``limit`` a window aims at: low enough that few pages come back full."""
MAX_GROWTH = 2
"""A window grows at most this many times over the previous one: calls follow office hours,
and a window grown past the night into the morning comes back full (read for nothing)."""
FIRST_WIDTH = 60_000
"""Milliseconds: the first window of a walk; it grows from there to the density found, so a
dense month costs no full pages of halving from a month-wide window."""


@dataclass(frozen=True)
class ListPage:
    """One answered ``GET`` of a list endpoint: its records (as the caller parsed them), its digest."""

    records: Sequence[Any] = field(repr=False)
    sha256: str
    size: int
    """Bytes of the body as received."""
    attempts: int
    earliest_ms: int | None = None
    """The earliest ``createdAt`` among the records: where a full page's records begin. Only
    a hint for the next window's width (the API sends the newest first, though it does
    not promise to), never for what is counted."""


def instant(ms: int) -> str:
    """Epoch milliseconds in the API's ISO-8601 form, ``2026-10-01T00:00:00.000Z``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds; a sub-millisecond part is refused, not cut."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    if delta % timedelta(milliseconds=1):
        raise ValueError(f"{moment.isoformat()} is not a whole millisecond; the API filters by ms")
    return delta // timedelta(milliseconds=1)


class UnsplittableWindowError(PermanentError):
    """More than ``limit`` records share one created millisecond and one updated millisecond."""


@dataclass(frozen=True)
class Window:
    """``createdAt ∈ [created_ge, created_lt)`` and, when set, ``updatedAt ∈ [updated_ge, updated_lt)``.

    All in epoch milliseconds; ``updated_lt`` None is an open upper bound.
    """

    created_ge: int
    created_lt: int
    updated_ge: int | None = None
    updated_lt: int | None = None

    def params(self) -> list[tuple[str, str]]:
        """The query filters, in a fixed order (so the same window is the same request)."""
        params = [
            ("createdAtGe", instant(self.created_ge)),
            ("createdAtLt", instant(self.created_lt)),
        ]
        if self.updated_ge is not None:
            params.append(("updatedAtGe", instant(self.updated_ge)))
        if self.updated_lt is not None:
            params.append(("updatedAtLt", instant(self.updated_lt)))
        return params

    def holds(self, created_ms: int, updated_ms: int | None) -> bool:
        """Whether a record with these instants belongs in the window (a server is checked)."""
        if not self.created_ge <= created_ms < self.created_lt:
            return False
        if self.updated_ge is None:
            return True
        if updated_ms is None or updated_ms < self.updated_ge:
            return False
        return self.updated_lt is None or updated_ms < self.updated_lt


@dataclass(frozen=True)
class WindowPage:
    """A page read for ``window``; ``kept`` False when it came back full and was split instead."""

    window: Window
    page: ListPage
    count: int
    kept: bool


Fetch = Callable[[Window], ListPage]
"""Reads one window (all of it, or ``limit`` records of it)."""


def walk_windows(
    fetch: Fetch,
    start_ms: int,
    end_ms: int,
    *,
    limit: int,
    now_ms: Callable[[], int],
) -> Iterator[WindowPage]:
    """Every page read to list ``createdAt ∈ [start_ms, end_ms)`` completely, in time order."""
    if end_ms <= start_ms:
        return
    yield from _walk_axis(
        lambda low, high: fetch(Window(low, high)),
        lambda low, high: Window(low, high),
        start_ms,
        end_ms,
        limit,
        lambda millisecond: _walk_updated(fetch, millisecond, limit, now_ms),
        FIRST_WIDTH,
    )


def _walk_updated(
    fetch: Fetch, created_ms: int, limit: int, now_ms: Callable[[], int]
) -> Iterator[WindowPage]:
    """All records created in the millisecond ``created_ms``, windowed by ``updatedAt``."""

    def window(low: int, high: int | None) -> Window:
        return Window(created_ms, created_ms + 1, low, high)

    def unsplittable(updated_ms: int) -> Iterator[WindowPage]:
        raise UnsplittableWindowError(
            f"{limit} or more records were created at {instant(created_ms)} and updated at "
            f"{instant(updated_ms)}; no filter of the API separates them, so they cannot be "
            "listed completely. Report this to Vapi support with these instants."
        )

    def read(low: int, high: int) -> ListPage:
        return fetch(window(low, high))

    yield from _walk_axis(read, window, 0, created_ms, limit, unsplittable)
    low, high = created_ms, max(now_ms(), created_ms) + 1
    while True:
        yield from _walk_axis(read, window, low, high, limit, unsplittable, FIRST_WIDTH)
        tail = window(high, None)
        page = fetch(tail)
        full = len(page.records) >= limit
        yield WindowPage(tail, page, len(page.records), kept=not full)
        if not full:
            return
        low, high = high, max(now_ms() + 1, high + 1)


def _walk_axis(
    read: Callable[[int, int], ListPage],
    window: Callable[[int, int], Window],
    low: int,
    high: int,
    limit: int,
    one_millisecond: Callable[[int], Iterator[WindowPage]],
    first_width: int | None = None,
) -> Iterator[WindowPage]:
    """``[low, high)`` in adaptive windows; a full one-millisecond window goes one level down."""
    cursor, width = low, first_width or high - low
    while cursor < high:
        upper = min(cursor + width, high)
        page = read(cursor, upper)
        count = len(page.records)
        full = count >= limit
        yield WindowPage(window(cursor, upper), page, count, kept=not full)
        if full and upper - cursor > 1:
            width = (upper - cursor) // 2
            if page.earliest_ms is not None and cursor <= page.earliest_ms < upper:
                width = max(1, min(width, int((upper - page.earliest_ms) * TARGET_FILL)))
            continue
        if full:
            yield from one_millisecond(cursor)
        growth = MAX_GROWTH if count == 0 else min(MAX_GROWTH, limit * TARGET_FILL / count)
        width = max(1, int((upper - cursor) * growth))
        cursor = upper
