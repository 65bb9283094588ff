"""Listing a month through ``GET /call``: every call once, whatever the page size, the order
within pages, how many calls share a millisecond, or what is created while the walk runs.

The fake API (``support.fake_calls_api``) applies Vapi's filters and limit and shuffles
every page, so nothing may rely on the order the API happens to send.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.analytics.calls import CallRecord, iter_calls, list_call_pages, parse_calls
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.analytics.errors import DamagedResponseError, UnusableResponseError
from vapi_chargeback.analytics.windows import UnsplittableWindowError, epoch_ms

from support.fake_calls_api import FakeCallsApi, call, ms_of
from support.scripted_server import RecordedRequest, Reply, ScriptedServer

KEY = "calls-key"
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
START_MS, END_MS = epoch_ms(START), epoch_ms(END)
NOW = datetime(2026, 11, 5, tzinfo=UTC)
INSTANT = START_MS + 12 * 86_400_000 + 123
"""One millisecond of a mid-October batch."""


def client(transport: httpx.BaseTransport) -> VapiAnalyticsClient:
    return VapiAnalyticsClient(
        "http://127.0.0.1:9", KEY, transport=transport, sleep=lambda _: None, max_retries=3
    )


def listed(api: FakeCallsApi, limit: int = 100) -> list[str]:
    with client(api.transport()) as vapi:
        return [
            record.id
            for record in iter_calls(vapi, START, END, limit=limit, digests=None)
            if record.id
        ]


def ids(calls: list[dict[str, Any]]) -> list[str]:
    return sorted(item["id"] for item in calls)


def test_more_than_limit_calls_in_one_millisecond_are_each_counted_once() -> None:
    batch = [call(n, INSTANT, INSTANT + 5_000 + n * 7) for n in range(250)]
    spread = [call(1000 + n, START_MS + n * 9_000_000) for n in range(200)]
    api = FakeCallsApi(batch + spread)

    got = listed(api, limit=100)

    assert sorted(got) == ids(batch + spread)
    assert len(got) == len(set(got))
    cell = [r for r in api.requests if "updatedAtGe" in r]
    assert cell and all(r["createdAtGe"] == "2026-10-13T00:00:00.123Z" for r in cell)


def test_same_millisecond_calls_of_one_assistant_in_one_updated_millisecond_are_refused() -> None:
    api = FakeCallsApi([call(n, INSTANT, INSTANT + 10) for n in range(101)])
    with pytest.raises(UnsplittableWindowError, match=r"2026-10-13T00:00:00.123Z"):
        listed(api, limit=100)


def test_a_full_page_is_not_kept_and_its_window_is_split() -> None:
    api = FakeCallsApi([call(n, START_MS + n * 100) for n in range(300)])
    with client(api.transport()) as vapi:
        pages = list(list_call_pages(vapi, START, END, limit=100, now=lambda: NOW))

    first = pages[0]
    assert not first.kept and first.count == 100 and first.calls == []
    following = pages[1].window
    assert following.created_ge == first.window.created_ge
    width = first.window.created_lt - first.window.created_ge
    assert 0 < following.created_lt - following.created_ge <= width // 2
    assert sum(len(page.calls) for page in pages) == 300
    kept = [page for page in pages if page.kept]
    assert all(page.count < 100 for page in kept)
    assert [p.window.created_lt for p in kept[:-1]] == [p.window.created_ge for p in kept[1:]]
    assert kept[0].window.created_ge == START_MS and kept[-1].window.created_lt == END_MS


def test_a_call_sent_twice_is_counted_once() -> None:
    calls = [call(n, START_MS + n * 60_000) for n in range(20)]

    def transport(request: httpx.Request) -> httpx.Response:
        page = FakeCallsApi(calls).answer(dict(request.url.params))
        return httpx.Response(200, json=page + page[:3])

    with client(httpx.MockTransport(transport)) as vapi:
        got = [record.id for record in iter_calls(vapi, START, END, limit=1000)]
    assert sorted(got) == ids(calls)


def test_a_call_updated_while_its_millisecond_is_walked_is_counted_once() -> None:
    batch = [call(n, INSTANT, INSTANT + 100 + n) for n in range(150)]
    moved = batch[0]

    def update_the_first_call(api: FakeCallsApi, number: int) -> None:
        if any("updatedAtGe" in r for r in api.requests) and moved["updatedAt"] != "moved":
            moved["updatedAt"] = "2026-11-04T00:00:00.000Z"

    api = FakeCallsApi(batch, on_request=update_the_first_call)
    with client(api.transport()) as vapi:
        got = [r.id for r in iter_calls(vapi, START, END, limit=100)]
    assert sorted(got) == ids(batch)


def test_calls_created_at_a_windows_end_during_the_walk_are_counted_once() -> None:
    """Over real HTTP: right after the first window is answered (not full), a call is created
    at its end instant and one at the month's end; the walk reads on and counts the first
    once, in the next window, and never the second."""
    calls = [call(n, START_MS + n * 3_600_000) for n in range(40)]
    added: list[dict[str, Any]] = []

    def create_after_the_first_kept_window(api: FakeCallsApi, number: int) -> None:
        if added or not api.requests:
            return
        last = api.requests[-1]
        if sum(api.matches(item, last) for item in api.calls) < int(last["limit"]):
            end = ms_of(last["createdAtLt"])
            added.extend([call(900, end), call(901, END_MS)])
            api.calls.extend(added)

    api = FakeCallsApi(list(calls), on_request=create_after_the_first_kept_window)

    def answer(request: RecordedRequest) -> Reply:
        return Reply(200, api.answer(dict(parse_qsl(urlsplit(request.path).query))))

    with ScriptedServer(default=answer) as server, VapiAnalyticsClient(server.url, KEY) as vapi:
        got = [record.id for record in iter_calls(vapi, START, END, limit=10)]

    assert added, "the script never created the calls"
    assert Counter(got)[added[0]["id"]] == 1
    assert added[1]["id"] not in got
    assert sorted(got) == ids([*calls, added[0]])
    assert any(r["createdAtGe"] == added[0]["createdAt"] for r in api.requests)


def test_a_server_ignoring_the_window_is_refused() -> None:
    stray = [call(1, END_MS + 5)]
    vapi = client(httpx.MockTransport(lambda _: httpx.Response(200, json=stray)))
    with vapi, pytest.raises(UnusableResponseError, match="outside the window"):
        list(iter_calls(vapi, START, END))


def test_a_page_cut_short_is_retried_and_its_digest_is_of_the_whole_body() -> None:
    api = FakeCallsApi([call(n, START_MS + n * 60_000) for n in range(5)])
    bodies: list[bytes] = []

    def transport(request: httpx.Request) -> httpx.Response:
        body = api.body(dict(request.url.params))
        bodies.append(body)
        return httpx.Response(200, content=body[: len(body) // 2] if len(bodies) == 1 else body)

    digests: list[str] = []
    with client(httpx.MockTransport(transport)) as vapi:
        pages = list(list_call_pages(vapi, START, END))
        assert len(list(iter_calls(vapi, START, END, digests=digests))) == 5
    assert pages[0].attempts == 2 and pages[0].kept
    assert pages[0].sha256 == hashlib.sha256(bodies[1]).hexdigest()
    assert len(digests) == len(pages)


def test_a_body_that_is_not_calls_is_unusable_and_a_cut_one_damaged() -> None:
    with pytest.raises(UnusableResponseError, match="not a list of Call objects"):
        parse_calls(b'{"message": "hello"}')
    with pytest.raises(DamagedResponseError):
        parse_calls(b'[{"id": "a", "createdAt": "2026-10-01T00:00:00.000Z"')


def test_only_the_recount_fields_are_kept() -> None:
    body = {
        **call(1, START_MS),
        "cost": 0.123456,
        "costBreakdown": {
            "llm": 0.1,
            "analysisCostBreakdown": {"summary": 0.01, "structuredData": 0.002},
            "voicemailDetectionCost": 0.003,
        },
        "costs": [
            {"type": "model", "cost": 0.1, "model": {"provider": "openai"}},
            {"type": "analysis", "analysisType": "summary", "cost": 0.01},
        ],
        "assistantOverrides": {"variableValues": {"costCenter": "sales", "secret": "x" * 50}},
        "analysis": {"successEvaluation": True, "summary": "long text"},
        "messages": [{"role": "user", "message": "hi"}],
    }
    (record,) = parse_calls(json.dumps([body]).encode())
    assert record.cost == Decimal("0.123456")
    assert record.variable_value == "sales"
    assert record.success_evaluation == "true"
    assert record.costs[1].analysis_type == "summary" and record.costs[1].cost == Decimal("0.01")
    assert record.cost_breakdown is not None
    assert record.cost_breakdown.voicemail_detection_cost == Decimal("0.003")
    assert record.duration_seconds == Decimal(60)
    assert set(CallRecord.model_fields) >= {"variable_value", "success_evaluation"}
    assert "secret" not in record.model_dump_json() and "messages" not in record.model_dump_json()
    (other,) = parse_calls(json.dumps([body]).encode(), variable_key="secret")
    assert other.variable_value == "x" * 50


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(
        st.one_of(
            st.integers(0, END_MS - START_MS - 1),
            st.sampled_from([0, 1, 999, 1000, END_MS - START_MS - 1]),
        ),
        min_size=0,
        max_size=120,
    ),
    outside=st.lists(st.integers(-5, 5), max_size=5),
    limit=st.integers(1, 12).map(lambda n: n * 5),
    seed=st.integers(0, 99),
)
def test_every_call_of_the_month_is_listed_exactly_once(
    offsets: list[int], outside: list[int], limit: int, seed: int
) -> None:
    """Clustered or spread, at the month's edges or beside them, with any page size."""
    inside = [call(n, START_MS + offset, START_MS + offset + n) for n, offset in enumerate(offsets)]
    beyond = [
        call(10_000 + n, (START_MS if delta < 0 else END_MS) + delta)
        for n, delta in enumerate(outside)
        if delta != 0 or n % 2
    ]
    beyond = [c for c in beyond if not START_MS <= ms_of(c["createdAt"]) < END_MS]
    api = FakeCallsApi(inside + beyond, seed=seed)

    got = listed(api, limit=limit)

    assert sorted(got) == ids(inside)
