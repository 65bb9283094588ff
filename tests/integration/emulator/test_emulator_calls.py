"""``GET /call`` of the emulator — Vapi's parameters, limits, order and errors — listed by our
client (clean and under 30 % faults), and the drift that makes its analytics disagree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_chargeback.analytics.calls import list_call_pages
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_emulator.app import create_app
from vapi_emulator.calls import DriftedEngine, DriftPlan
from vapi_emulator.cli import main
from vapi_emulator.data import generate_calls_file
from vapi_emulator.engine import Engine
from vapi_emulator.faults import FaultPlan
from vapi_emulator.server import run_app

KEY = "calls-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MONTH = (datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC))
"""October 2026 in Europe/Berlin, the demo org's zone."""


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calls") / "calls.jsonl"
    generate_calls_file(path, "2026-10", calls_per_month=1_500)
    return path


@pytest.fixture(scope="module")
def records(calls_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in calls_file.read_text().splitlines()]


@pytest.fixture(scope="module")
def api(calls_file: Path) -> Iterator[str]:
    with run_app(create_app(Engine([calls_file]), KEY)) as url:
        yield url


def get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/call", params=params, headers=AUTH)


def test_default_limit_is_100_newest_first_as_loaded(api: str, records: list[dict]) -> None:
    served = get(api).json()
    newest = sorted(records, key=lambda r: (r["createdAt"], r["id"]), reverse=True)[:100]
    assert [c["id"] for c in served] == [r["id"] for r in newest]
    first = json.loads(get(api, id=newest[0]["id"]).content, parse_float=Decimal)[0]
    for field in ("orgId", "createdAt", "updatedAt", "cost", "costBreakdown", "costs", "analysis"):
        assert first[field] == newest[0][field], field
    assert sum(item["cost"] for item in first["costs"]) == first["cost"]


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"limit": 1000}, lambda r, p: True),
        ({"limit": 7, "createdAtGe": "2026-10-10T00:00:00.000Z"}, None),
        ({"limit": 1000, "createdAtGt": "2026-10-10T00:00:00Z", "createdAtLe": "2026-10-11"}, None),
        (
            {
                "limit": 1000,
                "updatedAtGe": "2026-10-20T08:00:00Z",
                "updatedAtLt": "2026-10-20T12:00:00Z",
            },
            None,
        ),
        ({"limit": 1000, "createdAtLt": "2026-10-05T00:00:00.000Z"}, None),
    ],
    ids=["max-limit", "limit-and-ge", "gt-le", "updated-window", "lt"],
)
def test_time_filters_and_limit_select_exactly_the_matching_calls(
    api: str, records: list[dict], params: dict[str, Any], check: Any
) -> None:
    def inside(record: dict[str, Any]) -> bool:
        for name, value in params.items():
            if name == "limit":
                continue
            bound = datetime.fromisoformat(value.replace("Z", "+00:00"))
            bound = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
            field = record[name[:-2]]
            moment = datetime.fromisoformat(field.replace("Z", "+00:00"))
            op = name[-2:]
            if not {
                "Gt": moment > bound,
                "Ge": moment >= bound,
                "Lt": moment < bound,
                "Le": moment <= bound,
            }[op]:
                return False
        return True

    expected = sorted((r for r in records if inside(r)), key=lambda r: (r["createdAt"], r["id"]))
    expected = expected[::-1][: params["limit"]]
    served = get(api, **params).json()
    assert [c["id"] for c in served] == [r["id"] for r in expected]
    assert len(served) == min(params["limit"], len([r for r in records if inside(r)]))


def test_id_and_assistant_filters(api: str, records: list[dict]) -> None:
    target = next(r for r in records[1234:] if r["assistantId"])
    assert [c["id"] for c in get(api, id=target["id"]).json()] == [target["id"]]
    assistant = target["assistantId"]
    served = get(api, assistantId=assistant, limit=1000).json()
    assert {c["assistantId"] for c in served} == {assistant}
    assert len(served) == min(1000, sum(r["assistantId"] == assistant for r in records))
    assert get(api, id="no-such-call").json() == []


@pytest.mark.parametrize(
    ("params", "messages"),
    [
        ({"limit": 1001}, ["limit must not be greater than 1000"]),
        ({"limit": "ten"}, ["limit must be an integer number"]),
        ({"createdAtGe": "yesterday"}, ["createdAtGe must be a valid ISO 8601 date string"]),
        ({"cursor": "x"}, ["property cursor should not exist"]),
        ({"assistantId": ""}, ["assistantId should not be empty"]),
        (
            [("id", "a"), ("id", "b"), ("updatedAtLt", "nope")],
            ["updatedAtLt must be a valid ISO 8601 date string", "id must be given once"],
        ),
    ],
    ids=["limit-over-1000", "limit-not-a-number", "bad-date", "unknown", "empty-id", "several"],
)
def test_bad_parameters_are_400_with_one_message_each(
    api: str, params: Any, messages: list[str]
) -> None:
    answer = httpx.get(f"{api}/call", params=params, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json() == {"statusCode": 400, "error": "Bad Request", "message": messages}


def test_a_missing_or_wrong_key_is_401_before_parameters_are_read(api: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = httpx.get(f"{api}/call", params={"limit": 5000}, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"statusCode": 401, "message": "Unauthorized"}
    assert httpx.get(f"{api}/_drift").status_code == 401


def listing(url: str, **options: Any) -> tuple[list[tuple[str, bool]], list[str]]:
    """(sha256, kept) of every page read, and the ids listed, for the demo month."""
    with VapiAnalyticsClient(url, KEY, **options) as client:
        pages = list(list_call_pages(client, *MONTH, limit=100))
    return [(p.sha256, p.kept) for p in pages], [c.id for p in pages for c in p.calls]


@pytest.fixture(scope="module")
def clean(api: str) -> tuple[list[tuple[str, bool]], list[str]]:
    return listing(api)


def test_the_client_lists_the_month_once_each(
    clean: tuple[list[tuple[str, bool]], list[str]], records: list[dict]
) -> None:
    pages, ids = clean
    expected = {
        r["id"]
        for r in records
        if "2026-09-30T22:00:00.000Z" <= r["createdAt"] < "2026-10-31T23:00:00.000Z"
    }
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert any(not kept for _, kept in pages)


@pytest.mark.slow
def test_under_30_percent_faults_the_listing_is_identical(
    calls_file: Path, clean: tuple[list[tuple[str, bool]], list[str]]
) -> None:
    plan = FaultPlan.parse(
        "rate=0.3,kinds=429,503,timeout,reset,slow,garbage,hang=1,delay=0.05,retry_after=0", seed=5
    )
    app = create_app(Engine([calls_file]), KEY, faults=plan)
    with run_app(app) as url:
        faulty = listing(url, read_timeout=0.5, backoff_base=0.01, backoff_cap=0.05, max_retries=4)
        stats = app.state.stats.snapshot()
    assert faulty == clean
    assert sum(stats["faults"].values()) >= 3
    assert stats["requests"]["GET /call"] > len(clean[0])


def drifted(calls_file: Path, plan: DriftPlan) -> Iterator[str]:
    with run_app(create_app(DriftedEngine([calls_file], plan), KEY)) as url:
        yield url


def totals(url: str) -> tuple[int, Decimal]:
    query = {
        "queries": [
            {
                "table": "call",
                "name": "total",
                "timeRange": {"start": "2026-09-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
                "operations": [
                    {"operation": "count", "column": "id", "alias": "calls"},
                    {"operation": "sum", "column": "cost", "alias": "cost"},
                ],
            }
        ]
    }
    row = httpx.post(f"{url}/analytics", json=query, headers=AUTH).json()[0]["result"][0]
    return row["calls"], Decimal(str(row["cost"]))


def drift_of(calls_file: Path, plan: DriftPlan) -> list[dict[str, Any]]:
    engine = DriftedEngine([calls_file], plan)
    try:
        engine.load()
        return list(json.loads(engine.drift_json()))
    finally:
        engine.close()


def test_drift_changes_only_the_analytics_and_names_the_calls(
    calls_file: Path, records: list[dict]
) -> None:
    plan = DriftPlan(drop_percent=0.5, recost_percent=1.0, seed=11)
    for url in drifted(calls_file, plan):
        answer = httpx.get(f"{url}/_drift", headers=AUTH).json()
        count, cost = totals(url)
        first = answer["calls"][0]["id"]
        listed = [c["id"] for c in get(url, id=first).json()]
    assert answer["calls"] == drift_of(calls_file, plan), "same seed, same calls"
    assert drift_of(calls_file, DriftPlan(0.5, 1.0, seed=12)) != answer["calls"]
    changed = {c["id"]: c for c in answer["calls"]}
    dropped = [c for c in changed.values() if c["kind"] == "drop"]
    recosted = [c for c in changed.values() if c["kind"] == "recost"]
    assert (len(dropped), len(recosted)) == (round(len(records) * 0.005), len(records) // 100)
    by_id = {r["id"]: r for r in records}
    assert count == len(records) - len(dropped)
    expected = sum(r["cost"] or 0 for r in records)
    expected -= sum(by_id[c["id"]]["cost"] or 0 for c in dropped)
    expected += sum(Decimal(str(c["costDelta"])) for c in recosted)
    assert cost == expected
    assert all(Decimal(str(c["costDelta"])) > 0 for c in recosted)
    assert all(c["assistantId"] == by_id[c["id"]]["assistantId"] for c in changed.values())
    assert all(c["createdAt"] == by_id[c["id"]]["createdAt"] for c in changed.values())
    assert listed == [first], "GET /call still serves a drifted call"


def test_drift_percentages_are_checked() -> None:
    for drop, recost in ((-1, 0), (101, 0), (60, 50)):
        with pytest.raises(ValueError, match="drift"):
            DriftPlan(drop, recost)


def test_serve_refuses_drift_over_100_percent_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "never-read.parquet"
    code = main(["serve", "--calls", str(missing), "--drift-drop", "60", "--drift-recost", "50"])
    assert code == 2
    assert "--drift-drop and --drift-recost together exceed 100 %" in capsys.readouterr().err
