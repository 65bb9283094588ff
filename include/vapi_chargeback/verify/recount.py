"""The statement month recounted from call records, page by page, in the analytics' shape.

A month is up to millions of calls, so nothing holds them: each page of ``GET /call``
(``analytics.calls.list_call_pages``) is folded into sums per (local day, assistant,
variable value) as it arrives and then dropped; only its sha256 is kept. The sums are the
figures ``POST /analytics`` would give for the core query grouped the same way (count of
ids, Σ duration, Σ cost, Σ each component), so they are handed to the allocation as
analytics rows (:meth:`Recount.results`) and the very same rules (``attribution.py``,
``allocate.py``) turn them into lines: the recount cannot attribute a call differently
from the statement, only count it differently.

Beside the analytics' columns, each call's ``costs[]`` items explain its Other — the cost
beyond the reported components (analysis, voicemail detection, knowledge base …), which
the analytics API has no column for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from queue import Full, Queue
from threading import Event, Thread
from typing import Any
from zoneinfo import ZoneInfo

from vapi_chargeback.analytics.calls import CallPage, CallRecord, list_call_pages
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.models import DATE_KEY, AnalyticsQueryResult, ResultTimeRange
from vapi_chargeback.analytics.windows import epoch_ms
from vapi_chargeback.config import COMPONENTS, ChargebackConfig
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import ASSISTANT_KEY, SUCCESS_KEY, Plan, build_plan, measure_alias
from vapi_chargeback.split import exact_context

MEASURES: tuple[str, ...] = ("calls", "seconds", "cost", *COMPONENTS)
"""What each cell sums, in this order: the analytics core query's measures, all components."""
COST_ITEM_COMPONENTS = {
    "transport": "transport",
    "transcriber": "stt",
    "model": "llm",
    "voice": "tts",
    "vapi": "vapi",
}
"""``costs[].type`` → the analytics component it is reported in."""
UNITEMISED = "unitemised"
"""Other that no ``costs[]`` item explains (a call without items, or items not adding up)."""
ZERO = Decimal(0)
LISTINGS = 2
"""Slices of the month listed side by side: while one waits for the API, the other's page is
parsed. Against the real API a page is mostly network wait, which the two overlap; on a
loaded 2-core loopback the gain was within noise (docs/benchmarks.md)."""
PUT_WAIT_S = 0.5

CellKey = tuple[date, str | None, str | None]
"""(local day, assistant id as the call has it, variable value)."""


class Recount:
    """Sums of one month's calls per (local day, assistant, variable value), built by
    :meth:`add_page` (the listing guarantees each call of the month comes exactly once)."""

    def __init__(self, period: StatementPeriod, components: Sequence[str]) -> None:
        self.period = period
        self._zone = ZoneInfo(period.timezone)
        self._reported = set(components)
        self.cells: dict[CellKey, list[Decimal]] = {}
        self.successes: dict[tuple[CellKey, str | None], int] = {}
        """Calls per cell and ``analysis.successEvaluation`` text."""
        self.other: dict[CellKey, dict[str, Decimal]] = {}
        """Other by ``costs[]`` type per cell, with :data:`UNITEMISED` for what no item explains."""
        self.pages_sha256: list[str] = []
        self.requests = 0
        self.calls = 0
        self.bytes = 0
        """Of the page bodies read, for the benchmark and the log."""

    def add_page(self, page: CallPage) -> None:
        self.pages_sha256.append(page.sha256)
        self.requests += page.attempts
        self.calls += len(page.calls)
        self.bytes += page.size
        with exact_context():
            for call in page.calls:
                self._add(call)

    def _add(self, call: CallRecord) -> None:
        day = call.created_at.astimezone(self._zone).date()
        key: CellKey = (day, call.assistant_id, call.variable_value)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [ZERO] * len(MEASURES)
        cell[0] += 1
        seconds = call.duration_seconds
        if seconds is not None:
            cell[1] += seconds
        cost = call.cost or ZERO
        cell[2] += cost
        breakdown = call.cost_breakdown
        reported = ZERO
        if breakdown is not None:
            for index, component in enumerate(COMPONENTS, start=3):
                value = getattr(breakdown, component)
                if value:
                    cell[index] += value
                    if component in self._reported:
                        reported += value
        success = (key, call.success_evaluation)
        self.successes[success] = self.successes.get(success, 0) + 1
        other = cost - reported
        if not other and not call.costs:
            return
        types = self.other.setdefault(key, {})
        for item in call.costs:
            if COST_ITEM_COMPONENTS.get(item.type) in self._reported:
                continue
            types[item.type] = types.get(item.type, ZERO) + item.cost
            other -= item.cost
        if other:
            types[UNITEMISED] = types.get(UNITEMISED, ZERO) + other

    def add_pages(self, pages: Iterable[CallPage]) -> None:
        for page in pages:
            self.add_page(page)

    def read_month(
        self, client: VapiAnalyticsClient, variable_key: str, listings: int = LISTINGS
    ) -> None:
        """List the period through ``GET /call`` in ``listings`` consecutive slices side by
        side, folding every page in as it arrives (here, in one thread; pages wait in a
        short queue). The page digests are kept slice after slice, so they do not depend
        on how the threads interleave."""
        start, end = epoch_ms(self.period.start), epoch_ms(self.period.end)
        cuts = [start + (end - start) * part // listings for part in range(listings + 1)]
        digests: list[list[str]] = [[] for _ in range(listings)]
        pages: Queue[tuple[int, CallPage | BaseException | None]] = Queue(maxsize=4 * listings)
        stop = Event()

        def list_slice(part: int) -> None:
            try:
                low, high = _moment(cuts[part]), _moment(cuts[part + 1])
                for page in list_call_pages(client, low, high, variable_key=variable_key):
                    if not _put(pages, (part, page), stop):
                        return
                _put(pages, (part, None), stop)
            except BaseException as error:  # handed to the reading thread, which raises it
                _put(pages, (part, error), stop)

        workers = [Thread(target=list_slice, args=(part,), daemon=True) for part in range(listings)]
        for worker in workers:
            worker.start()
        try:
            running = listings
            while running:
                part, item = pages.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    self.add_page(item)
                    digests[part].append(item.sha256)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        self.pages_sha256 = [digest for part in digests for digest in part]

    def results(self, plan: Plan, variable_key: str) -> dict[str, AnalyticsQueryResult]:
        """The core and success queries of ``plan`` (a :func:`recount_plan`) as the analytics
        API would answer them over these calls: one row per non-empty group, day buckets
        starting at local midnight as UTC instants."""
        aliases = [measure_alias(measure) for measure in MEASURES]
        core: list[dict[str, object]] = []
        for (day, assistant, value), cell in self.cells.items():
            row: dict[str, object] = {
                DATE_KEY: self.bucket(day),
                ASSISTANT_KEY: assistant,
                variable_key: value,
            }
            row.update(zip(aliases, cell, strict=True))
            core.append(row)
        count = measure_alias("calls")
        success: list[dict[str, object]] = [
            {
                DATE_KEY: self.bucket(day),
                ASSISTANT_KEY: assistant,
                variable_key: value,
                SUCCESS_KEY: evaluation,
                count: Decimal(calls),
            }
            for ((day, assistant, value), evaluation), calls in self.successes.items()
        ]
        echoed = ResultTimeRange(
            step="day", start=self.period.start, end=self.period.end, timezone=self.period.timezone
        )
        return {
            name: AnalyticsQueryResult.model_construct(name=name, time_range=echoed, result=rows)
            for name, rows in ((plan.core_query, core), (plan.success_query, success))
        }

    def bucket(self, day: date) -> str:
        """The day's bucket as the API labels it: its local midnight as a UTC instant."""
        start = datetime.combine(day, time(0), tzinfo=self._zone).astimezone(UTC)
        return start.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def recount_plan(config: ChargebackConfig, period: StatementPeriod) -> Plan:
    """The plan the recount is allocated with: the run's config without the owners' query
    definitions (their breakdowns are not recounted), so every query is by day over the
    month and only the core and success queries are read."""
    bare = config.model_copy(
        update={
            "cost_centers": [
                center.model_copy(update={"queries": []}) for center in config.cost_centers
            ]
        }
    )
    return build_plan(bare, period)


def other_types(sums: Iterable[Mapping[str, object]]) -> list[str]:
    """Every type seen, in a stable order: by name, :data:`UNITEMISED` last."""
    names = {name for types in sums for name in types}
    return sorted(names - {UNITEMISED}) + ([UNITEMISED] if UNITEMISED in names else [])


def _moment(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _put(queue: Queue[Any], item: Any, stop: Event) -> bool:
    """Hand ``item`` over unless the reader has stopped (it failed): then ``False``."""
    while not stop.is_set():
        try:
            queue.put(item, timeout=PUT_WAIT_S)
            return True
        except Full:
            continue
    return False
