"""Property: for random calls and random valid queries, the emulator over HTTP answers
exactly what an independent pandas/Decimal reference computes — every row, every value.

One uvicorn server runs for the whole test; each example loads its calls into a fresh
``Engine`` that the app then answers from, so every example still goes through real
HTTP, request validation, SQL and JSON rendering.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_pandas_reference import Call, answer, encode
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vapi_chargeback.analytics.models import COLUMNS, GROUP_BYS, OPERATIONS, STEPS
from vapi_emulator.app import create_app
from vapi_emulator.engine import Engine, QueryRows
from vapi_emulator.resolve import ResolvedQuery
from vapi_emulator.server import run_app

KEY = "property-key"
ANCHORS = (
    datetime(2026, 3, 7, 12, tzinfo=UTC),  # New York and St John's spring forward on Mar 8
    datetime(2026, 3, 28, 12, tzinfo=UTC),  # Berlin springs forward on Mar 29
    datetime(2026, 10, 24, 12, tzinfo=UTC),  # Berlin falls back on Oct 25
    datetime(2026, 10, 31, 12, tzinfo=UTC),  # month boundary; New York falls back on Nov 1
    datetime(2026, 12, 31, 12, tzinfo=UTC),  # year boundary
)
ZONES = (
    None,
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
)
ASSISTANTS = (
    "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
    "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
    "00000000-0000-0000-0000-000000000000",
    None,
)
WINDOW_MS = 3 * 86_400_000


class SwappableEngine(Engine):
    """Answers from whichever loaded engine the current example installed."""

    def __init__(self) -> None:
        super().__init__([])
        self.current: Engine | None = None

    def load(self) -> int:
        return 0

    def run(
        self, queries: Sequence[ResolvedQuery], *, numbers_as_strings: bool = False
    ) -> list[QueryRows]:
        assert self.current is not None
        return self.current.run(queries, numbers_as_strings=numbers_as_strings)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, SwappableEngine]]:
    engine = SwappableEngine()
    with run_app(create_app(engine, KEY)) as url:
        yield url, engine


def money() -> st.SearchStrategy[Decimal | None]:
    micro = st.integers(0, 5_000_000).map(lambda n: Decimal(n).scaleb(-6))
    pico = st.integers(0, 10**12).map(lambda n: Decimal(n).scaleb(-12))
    return st.one_of(st.none(), micro, micro, pico)


def offset_ms(upper: int) -> st.SearchStrategy[int]:
    """Milliseconds up to ``upper``, often on a ten-minute grid so that instants tie."""
    grid = st.integers(0, upper // 600_000).map(lambda slot: slot * 600_000)
    return st.one_of(st.integers(0, upper), grid)


@st.composite
def calls(draw: st.DrawFn, anchor: datetime) -> list[Call]:
    made = []
    window = draw(st.sampled_from([2 * 3_600_000, WINDOW_MS]))
    for index in range(draw(st.integers(1, 30))):
        created = anchor + timedelta(milliseconds=draw(offset_ms(window)))
        start_delay = draw(st.one_of(st.none(), st.just(0), st.integers(0, 5_000)))
        started = None if start_delay is None else created + timedelta(milliseconds=start_delay)
        length = draw(st.one_of(st.none(), offset_ms(1_800_000)))
        ended = (
            None if started is None or length is None else started + timedelta(milliseconds=length)
        )
        variables = draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "costCenter": st.sampled_from(["sales", "", "legacy-crm", None]),
                        "tier": st.sampled_from(["gold", "silver"]),
                    },
                ),
            )
        )
        made.append(
            Call(
                id=f"p{index:03d}",
                created=created,
                started=started,
                ended=ended,
                type=draw(st.sampled_from(["inboundPhoneCall", "outboundPhoneCall", "webCall"])),
                status=draw(st.sampled_from(["ended", "ended", "in-progress", "queued"])),
                reason=draw(
                    st.sampled_from([None, "customer-ended-call", "voicemail", "silence-timed-out"])
                ),
                assistant=draw(st.sampled_from(ASSISTANTS)),
                success=draw(st.sampled_from(["true", "false", None])),
                variables=variables,
                money={
                    key: draw(money())
                    for key in ("cost", "llm", "stt", "tts", "vapi", "transport", "summary")
                },
                integers={
                    key: draw(st.one_of(st.none(), st.integers(0, 50_000)))
                    for key in ("prompt", "completion", "cached", "characters")
                },
            )
        )
    return made


@st.composite
def operations(draw: st.DrawFn) -> list[dict[str, str]]:
    chosen: dict[str, dict[str, str]] = {}
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(OPERATIONS))
        column = draw(
            st.sampled_from([c for c in COLUMNS if not (c == "id" and operation in ("sum", "avg"))])
        )
        chosen[f"{operation}:{column}"] = {"operation": operation, "column": column}
    return list(chosen.values())


@st.composite
def queries(draw: st.DrawFn, anchor: datetime) -> tuple[dict[str, Any], datetime, datetime]:
    lower = draw(st.integers(-86_400_000, WINDOW_MS))
    upper = draw(st.integers(lower, WINDOW_MS + 86_400_000))
    start = anchor + timedelta(milliseconds=lower)
    end = anchor + timedelta(milliseconds=upper)
    time_range = {
        "start": start.isoformat(timespec="milliseconds"),
        "end": end.isoformat(timespec="milliseconds"),
    }
    step = draw(st.one_of(st.none(), st.sampled_from(STEPS)))
    if step:
        time_range["step"] = step
    zone = draw(st.sampled_from(ZONES))
    if zone:
        time_range["timezone"] = zone
    query: dict[str, Any] = {
        "table": draw(st.sampled_from(["call", "subscription"])),
        "name": "property",
        "timeRange": time_range,
        "operations": draw(operations()),
    }
    group_by = draw(st.lists(st.sampled_from(GROUP_BYS), max_size=2, unique=True))
    if group_by:
        query["groupBy"] = group_by
    variables = draw(st.lists(st.sampled_from(["costCenter", "tier"]), max_size=1))
    if variables:
        query["groupByVariableValue"] = [{"key": key} for key in variables]
    return query, start, end


@st.composite
def examples(draw: st.DrawFn) -> tuple[list[Call], list[tuple[dict[str, Any], datetime, datetime]]]:
    anchor = draw(st.sampled_from(ANCHORS))
    return draw(calls(anchor)), draw(st.lists(queries(anchor), min_size=1, max_size=3))


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(example=examples())
def test_emulator_equals_pandas_reference(
    server: tuple[str, SwappableEngine],
    example: tuple[list[Call], list[tuple[dict[str, Any], datetime, datetime]]],
) -> None:
    url, swappable = server
    made, batch = example
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "calls.jsonl"
        path.write_text("".join(encode(call.record()) + "\n" for call in made), encoding="utf-8")
        engine = Engine([path])
        engine.load()
    swappable.current = engine
    try:
        response = httpx.post(
            f"{url}/analytics",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"queries": [query for query, _, _ in batch]},
            timeout=30,
        )
    finally:
        engine.close()
    assert response.status_code == 200, response.text
    results = json.loads(response.text, parse_float=Decimal)
    for (query, start, end), result in zip(batch, results, strict=True):
        expected = answer(made, query, start, end)
        event(
            "rows: none" if not expected else "rows: 1" if len(expected) == 1 else "rows: several"
        )
        assert result["result"] == expected, query
