"""How many rows a compiled query may answer, and the time windows that keep it below that.

The API answers at most :data:`ROW_CAP` rows per query (the emulator refuses more with a
400, ``would return more than 100,000 rows``) and has no filter, so the only way to ask
for fewer rows is a shorter time range. The plan cuts every grouped query into windows
whose *estimated* rows stay within :data:`ROW_BUDGET`, and packs queries into requests
whose estimated rows stay within :data:`REQUEST_ROW_BUDGET`, from the size of the org.

The estimate of one query over a window of ``k`` days, per bucket::

    assistants × min(most, per_day × sqrt(k))            (k ≥ 1 day)
    assistants × per_day × min(1, k × SLICE_PEAK)        (k < 1 day: a slice of a day)

``assistants`` is the mapping's assistants plus :data:`UNLISTED_SHARE` for those it does
not list yet, plus one group for calls without an assistant. ``per_day`` and ``most``
multiply, over the variable value and each group-by dimension of the query, how many
distinct values one assistant's calls show in one day and at most in a month
(:data:`VARIABLE_VALUES`, :data:`DIMENSION_VALUES`). Distinct values grow with the window,
but far slower than the calls (most calls end the same few ways), hence the square root.
A day query has one bucket per day, a week query one per week it touches, a period
query one. Measured on the benchmark orgs, the estimate is 1.3–2.6× the rows the emulator
answers at 2,000 assistants (24 calls a day each) for every shape and window; at 20,000
(8 calls a day each) a day is cut into slices, and equal slices of a day are not equal
in calls (office hours): the afternoon quarter held 60% of a day's rows, 3% over an
estimate that spread them evenly, hence :data:`SLICE_PEAK`.

An org whose calls spread over more values than this (hundreds of calls a day per
assistant, every end reason in use) can still get an over-cap answer: the fetch then
splits that query's window and asks again (``analytics.row_cap``), so the estimate only
decides how many requests a run takes, never whether it succeeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Final

from vapi_chargeback.config import Dimension

ROW_CAP: Final = 100_000
"""Rows the API answers per query at most (the emulator's ``MAX_RESULT_ROWS``)."""
ROW_BUDGET: Final = 80_000
"""Estimated rows a query is planned for: room below the cap for an estimate that runs short."""
REQUEST_ROW_BUDGET: Final = 300_000
"""Estimated rows per request: ~60 MB of JSON, which the fetch holds twice while checking
it (its bytes and one result decoded at a time), four requests at a time."""
SLICE_PEAK: Final = 2
"""A slice of a day may hold this many times its even share of the day's rows: calls
follow office hours (measured: a quarter of the day held 60% of its rows)."""
UNLISTED_SHARE: Final = 0.10
"""Assistants calling without a mapping row, as a share of those the mapping lists."""
VARIABLE_VALUES: Final = (3, 8)
"""Distinct values of the cost-center variable per assistant: in a day (its own cost
center, none, one other), and at most (never more than the cost centers + none + an
unknown one)."""
DIMENSION_VALUES: Final[dict[Dimension, tuple[int, int]]] = {
    "type": (2, 3),
    "endedReason": (4, 16),
    "analysis.successEvaluation": (2, 3),
    "status": (1, 3),
}
"""Per group-by dimension, distinct values per assistant in a day and at most. Three call
types; ~40 end reasons exist but an assistant's calls end a few ways (customer or
assistant hung up, voicemail, silence …); the evaluation is ``true``/``false``/none; a
settled month's calls have ended, so status adds almost nothing next to the end reason."""


@dataclass(frozen=True)
class Slice:
    """The local days ``first``..``last``, or with ``parts`` > 1 the ``part``-th of ``parts``
    equal slices of the single day ``first`` (when even one day holds too many rows)."""

    first: date
    last: date
    part: int = 0
    parts: int = 1

    @property
    def days(self) -> float:
        return (self.last - self.first).days + 1 if self.parts == 1 else 1 / self.parts


@dataclass(frozen=True)
class RowEstimate:
    """The rows one grouped query shape answers per window, for one org."""

    assistants: int
    per_day: int
    most: int

    @classmethod
    def of(
        cls, mapped_assistants: int, cost_centers: int, shape: tuple[Dimension, ...]
    ) -> RowEstimate:
        per_day, most = VARIABLE_VALUES[0], min(VARIABLE_VALUES[1], cost_centers + 2)
        for dimension in shape:
            per_day *= DIMENSION_VALUES[dimension][0]
            most *= DIMENSION_VALUES[dimension][1]
        assistants = math.ceil(mapped_assistants * (1 + UNLISTED_SHARE)) + 1
        return cls(assistants, per_day, max(most, per_day))

    def per_bucket(self, days: float) -> float:
        """Rows of one bucket ``days`` long (a slice of a day when below one)."""
        if days < 1:
            return self.assistants * self.per_day * min(1.0, days * SLICE_PEAK)
        return self.assistants * min(self.most, self.per_day * math.sqrt(days))

    def rows(self, window: Slice, grain: str) -> int:
        """The estimated rows of a query at ``grain`` (day, week, period) over ``window``."""
        if window.parts > 1 or grain == "period":
            return math.ceil(self.per_bucket(window.days))
        if grain == "day":
            return math.ceil(self.per_bucket(1) * window.days)
        total = 0.0
        start = window.first
        while start <= window.last:
            sunday = start + timedelta(days=6 - start.weekday())
            end = min(sunday, window.last)
            total += self.per_bucket((end - start).days + 1)
            start = end + timedelta(days=1)
        return math.ceil(total)


def cut(span: Slice, grain: str, estimate: RowEstimate, budget: int = ROW_BUDGET) -> list[Slice]:
    """``span`` in as few windows as keep each one's estimate within ``budget``, in day order.

    Windows are of near-equal length; a week query's are cut at Mondays while a week fits
    the budget, so no week bucket is split (a split one is two rows, summed alike). When a
    single day is over the budget, each day is cut into equal slices.
    """
    days = (span.last - span.first).days + 1
    if estimate.rows(span, grain) <= budget:
        return [span]
    one_day = estimate.rows(Slice(span.first, span.first), grain)
    if one_day > budget:
        parts = math.ceil(one_day * SLICE_PEAK / budget)
        return [
            Slice(span.first + timedelta(days=day), span.first + timedelta(days=day), part, parts)
            for day in range(days)
            for part in range(parts)
        ]
    if grain == "week":
        weeks = _week_runs(span)
        if all(estimate.rows(week, grain) <= budget for week in weeks):
            return _pack(weeks, grain, estimate, budget)
    count = next(
        n
        for n in range(2, days + 1)
        if all(estimate.rows(piece, grain) <= budget for piece in _even(span, n))
    )
    return _even(span, count)


def _even(span: Slice, count: int) -> list[Slice]:
    """``span`` in ``count`` runs of whole days, lengths differing by at most one."""
    days = (span.last - span.first).days + 1
    bounds = [span.first + timedelta(days=days * i // count) for i in range(count + 1)]
    return [Slice(start, end - timedelta(days=1)) for start, end in pairwise(bounds)]


def _week_runs(span: Slice) -> list[Slice]:
    """``span`` cut at every Monday."""
    runs = []
    start = span.first
    while start <= span.last:
        end = min(start + timedelta(days=6 - start.weekday()), span.last)
        runs.append(Slice(start, end))
        start = end + timedelta(days=1)
    return runs


def _pack(weeks: list[Slice], grain: str, estimate: RowEstimate, budget: int) -> list[Slice]:
    """Consecutive weeks joined into windows while the estimate stays within ``budget``."""
    windows = [weeks[0]]
    for week in weeks[1:]:
        joined = Slice(windows[-1].first, week.last)
        if estimate.rows(joined, grain) <= budget:
            windows[-1] = joined
        else:
            windows.append(week)
    return windows


def pack_requests(
    names: list[str], size: int, estimated: dict[str, int], rows_per_request: int | None
) -> list[list[str]]:
    """Queries in order, packed into requests of at most ``size`` queries and, with a row
    budget, at most ``rows_per_request`` estimated rows (a query over it goes alone)."""
    batches: list[list[str]] = []
    rows = 0
    for name in names:
        more = estimated.get(name, 0) if rows_per_request is not None else 0
        full = bool(batches) and len(batches[-1]) >= size
        over = rows_per_request is not None and rows + more > rows_per_request
        if not batches or full or over:
            batches.append([])
            rows = 0
        batches[-1].append(name)
        rows += more
    return batches
