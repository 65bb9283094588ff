"""Hand-computed answers over the hand-written fixture ``tests/fixtures/calls_edge_cases.jsonl``.

Every expected value below was worked out on paper from the fixture, not read back from
the emulator. The fixture's groups of calls, each isolated in time so a query sees one:

- M (c01–c06, c19, c20): around the October/November 2026 boundary, costs 0.1 … 0.8;
- D (c07–c12): Europe/Berlin's fall-back day 2026-10-25 (25 hours), costs 1, 2, 4 … 32;
- N (c13–c18): America/New_York's spring-forward day 2026-03-08 (23 hours), same costs;
- K (c21, c22): either side of midnight in Asia/Kolkata (UTC+05:30);
- E (c23–c30): 2026-10-05, no assistant, the all-zero assistant, missing cost components,
  variable values, overlapping calls, a queued and an in-progress call;
- S (c31, c32): either side of October 1st in Europe/Berlin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest

from vapi_emulator.server import run_emulator

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "calls_edge_cases.jsonl"
KEY = "edge-key"
A = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
ZERO = "00000000-0000-0000-0000-000000000000"

M = ("2026-10-31T12:00:00Z", "2026-11-01T12:00:00Z")
D_ = ("2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z")
N = ("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z")
K = ("2026-10-15T00:00:00Z", "2026-10-16T00:00:00Z")
E = ("2026-10-05T00:00:00Z", "2026-10-06T00:00:00Z")
S = ("2026-09-30T00:00:00Z", "2026-10-01T00:00:00Z")
YEAR = ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")


def op(operation: str, column: str, alias: str | None = None) -> dict[str, str]:
    return {"operation": operation, "column": column} | ({"alias": alias} if alias else {})


SUM_COST = op("sum", "cost")
COUNT_ID = op("count", "id")


@dataclass(frozen=True)
class Case:
    id: str
    window: tuple[str, str]
    operations: list[dict[str, str]]
    expected: list[dict[str, Any]]
    step: str | None = None
    timezone: str | None = None
    group_by: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    table: str = "call"

    def query(self) -> dict[str, Any]:
        time_range: dict[str, str] = {"start": self.window[0], "end": self.window[1]}
        if self.step:
            time_range["step"] = self.step
        if self.timezone:
            time_range["timezone"] = self.timezone
        query: dict[str, Any] = {
            "table": self.table,
            "name": self.id[:40],
            "timeRange": time_range,
            "operations": self.operations,
        }
        if self.group_by:
            query["groupBy"] = self.group_by
        if self.variables:
            query["groupByVariableValue"] = [{"key": key} for key in self.variables]
        return query


CASES = [
    # --- month boundaries and time zones -------------------------------------------------
    Case(
        "M-utc-day",
        M,
        [SUM_COST, COUNT_ID],
        [
            {"date": "2026-10-31T00:00:00.000Z", "sumCost": D("0.6"), "countId": 3},
            {"date": "2026-11-01T00:00:00.000Z", "sumCost": 3, "countId": 5},
        ],
        step="day",
    ),
    Case(
        "M-berlin-day",
        M,
        [SUM_COST, COUNT_ID],
        [
            {"date": "2026-10-30T23:00:00.000Z", "sumCost": D("0.3"), "countId": 2},
            {"date": "2026-10-31T23:00:00.000Z", "sumCost": D("3.3"), "countId": 6},
        ],
        step="day",
        timezone="Europe/Berlin",
    ),
    Case(
        "M-kolkata-day",
        M,
        [SUM_COST, COUNT_ID],
        [
            {"date": "2026-10-30T18:30:00.000Z", "sumCost": D("0.1"), "countId": 1},
            {"date": "2026-10-31T18:30:00.000Z", "sumCost": D("3.5"), "countId": 7},
        ],
        step="day",
        timezone="Asia/Kolkata",
    ),
    Case(
        "M-new-york-month",
        M,
        [SUM_COST, COUNT_ID],
        [
            {"date": "2026-10-01T04:00:00.000Z", "sumCost": D("1.5"), "countId": 5},
            {"date": "2026-11-01T04:00:00.000Z", "sumCost": D("2.1"), "countId": 3},
        ],
        step="month",
        timezone="America/New_York",
    ),
    Case(
        "M-new-york-hour-fall-back",
        ("2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"),
        [SUM_COST],
        [
            {"date": "2026-11-01T05:00:00.000Z", "type": "outboundPhoneCall", "sumCost": D("0.7")},
            {"date": "2026-11-01T06:00:00.000Z", "type": "outboundPhoneCall", "sumCost": D("0.8")},
        ],
        step="hour",
        timezone="America/New_York",
        group_by=["type"],
    ),
    Case(
        "M-end-is-exclusive",
        ("2026-10-31T23:30:00Z", "2026-11-01T00:00:00Z"),
        [COUNT_ID, SUM_COST],
        [{"countId": 1, "sumCost": D("0.3")}],
    ),
    Case(
        "M-start-is-inclusive",
        ("2026-11-01T00:00:00Z", "2026-11-01T03:59:59.999Z"),
        [COUNT_ID, SUM_COST],
        [{"countId": 1, "sumCost": D("0.4")}],
    ),
    Case(
        "M-utc-second",
        ("2026-11-01T03:59:59Z", "2026-11-01T04:00:01Z"),
        [COUNT_ID],
        [
            {"date": "2026-11-01T03:59:59.000Z", "countId": 1},
            {"date": "2026-11-01T04:00:00.000Z", "countId": 1},
        ],
        step="second",
    ),
    Case(
        "S-berlin-month",
        S,
        [SUM_COST],
        [
            {"date": "2026-08-31T22:00:00.000Z", "sumCost": D("0.01")},
            {"date": "2026-09-30T22:00:00.000Z", "sumCost": D("0.02")},
        ],
        step="month",
        timezone="Europe/Berlin",
    ),
    Case(
        "S-utc-month",
        S,
        [SUM_COST],
        [{"date": "2026-09-01T00:00:00.000Z", "sumCost": D("0.03")}],
        step="month",
    ),
    # --- DST ------------------------------------------------------------------------------
    Case(
        "D-berlin-day-25-hours",
        D_,
        [SUM_COST, COUNT_ID],
        [
            {"date": "2026-10-23T22:00:00.000Z", "sumCost": 1, "countId": 1},
            {"date": "2026-10-24T22:00:00.000Z", "sumCost": 30, "countId": 4},
            {"date": "2026-10-25T23:00:00.000Z", "sumCost": 32, "countId": 1},
        ],
        step="day",
        timezone="Europe/Berlin",
    ),
    Case(
        "D-berlin-hour-twice-0230",
        ("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
        [SUM_COST],
        [
            {"date": "2026-10-25T00:00:00.000Z", "sumCost": 4},
            {"date": "2026-10-25T01:00:00.000Z", "sumCost": 8},
        ],
        step="hour",
        timezone="Europe/Berlin",
    ),
    Case(
        "D-berlin-week-starts-monday",
        ("2026-10-19T00:00:00Z", "2026-11-02T00:00:00Z"),
        [SUM_COST],
        [
            {"date": "2026-10-18T22:00:00.000Z", "sumCost": 31},
            {"date": "2026-10-25T23:00:00.000Z", "sumCost": D("35.6")},
        ],
        step="week",
        timezone="Europe/Berlin",
    ),
    Case(
        "N-new-york-day-23-hours",
        N,
        [SUM_COST],
        [
            {"date": "2026-03-07T05:00:00.000Z", "sumCost": 1},
            {"date": "2026-03-08T05:00:00.000Z", "sumCost": 30},
            {"date": "2026-03-09T04:00:00.000Z", "sumCost": 32},
        ],
        step="day",
        timezone="America/New_York",
    ),
    Case(
        "N-new-york-hour-gap",
        ("2026-03-08T06:00:00Z", "2026-03-08T08:00:00Z"),
        [SUM_COST],
        [
            {"date": "2026-03-08T06:00:00.000Z", "sumCost": 4},
            {"date": "2026-03-08T07:00:00.000Z", "sumCost": 8},
        ],
        step="hour",
        timezone="America/New_York",
    ),
    Case(
        "K-kolkata-hour-half-past",
        ("2026-10-15T17:00:00Z", "2026-10-15T19:00:00Z"),
        [COUNT_ID],
        [
            {"date": "2026-10-15T17:30:00.000Z", "countId": 1},
            {"date": "2026-10-15T18:30:00.000Z", "countId": 1},
        ],
        step="hour",
        timezone="Asia/Kolkata",
    ),
    Case(
        "K-kolkata-day",
        K,
        [SUM_COST],
        [
            {"date": "2026-10-14T18:30:00.000Z", "sumCost": D("0.25")},
            {"date": "2026-10-15T18:30:00.000Z", "sumCost": D("0.75")},
        ],
        step="day",
        timezone="Asia/Kolkata",
    ),
    Case(
        "all-quarters",
        YEAR,
        [COUNT_ID],
        [
            {"date": "2026-01-01T00:00:00.000Z", "countId": 6},
            {"date": "2026-07-01T00:00:00.000Z", "countId": 2},
            {"date": "2026-10-01T00:00:00.000Z", "countId": 24},
        ],
        step="quarter",
    ),
    Case(
        "all-year",
        YEAR,
        [COUNT_ID],
        [{"date": "2026-01-01T00:00:00.000Z", "countId": 32}],
        step="year",
    ),
    Case(
        "all-decade",
        YEAR,
        [COUNT_ID],
        [{"date": "2020-01-01T00:00:00.000Z", "countId": 32}],
        step="decade",
    ),
    Case(
        "all-century-postgres",
        YEAR,
        [COUNT_ID],
        [{"date": "2001-01-01T00:00:00.000Z", "countId": 32}],
        step="century",
    ),
    Case(
        "all-millennium-postgres",
        YEAR,
        [COUNT_ID],
        [{"date": "2001-01-01T00:00:00.000Z", "countId": 32}],
        step="millennium",
    ),
    # --- assistants, components, nulls ----------------------------------------------------
    Case(
        "E-by-assistant",
        E,
        [SUM_COST, COUNT_ID],
        [
            {"assistantId": ZERO, "sumCost": D("0.75"), "countId": 1},
            {"assistantId": A, "sumCost": D("1.500001"), "countId": 3},
            {"assistantId": B, "sumCost": D("0.000001"), "countId": 3},
            {"assistantId": None, "sumCost": D("2.25"), "countId": 1},
        ],
        group_by=["assistantId"],
    ),
    Case(
        "E-components-and-spec-aliases",
        E,
        [
            op("sum", "costBreakdown.llm"),
            op("sum", "costBreakdown.tts"),
            op("sum", "costBreakdown.transcriber"),
            op("sum", "costBreakdown.stt"),
            op("sum", "costBreakdown.analysisBreakdown.summary"),
            op("sum", "costBreakdown.vapi"),
            op("sum", "costBreakdown.transport"),
        ],
        [
            {
                "sumCostBreakdownLlm": D("1.3"),
                "sumCostBreakdownTts": D("0.4"),
                "sumCostBreakdownTranscriber": D("0.8"),
                "sumCostBreakdownStt": D("0.8"),
                "sumCostBreakdownAnalysisBreakdownSummary": D("0.000001"),
                "sumCostBreakdownVapi": D("1.450001"),
                "sumCostBreakdownTransport": D("0.4"),
            }
        ],
    ),
    Case(
        "E-avg-min-max-count-skip-nulls",
        E,
        [
            op("avg", "cost"),
            op("min", "cost"),
            op("max", "cost"),
            op("count", "cost"),
            op("avg", "costBreakdown.llm"),
        ],
        [
            {
                "avgCost": D("0.7500003333"),
                "minCost": 0,
                "maxCost": D("2.25"),
                "countCost": 6,
                "avgCostBreakdownLlm": D("0.65"),
            }
        ],
    ),
    Case(
        "E-sum-of-nothing-is-zero",
        E,
        [SUM_COST, op("avg", "cost"), op("max", "cost"), op("count", "cost")],
        [
            {
                "status": "ended",
                "sumCost": D("4.500002"),
                "avgCost": D("0.7500003333"),
                "maxCost": D("2.25"),
                "countCost": 6,
            },
            {
                "status": "in-progress",
                "sumCost": 0,
                "avgCost": None,
                "maxCost": None,
                "countCost": 0,
            },
            {"status": "queued", "sumCost": 0, "avgCost": None, "maxCost": None, "countCost": 0},
        ],
        group_by=["status"],
    ),
    Case(
        "E-tokens",
        E,
        [
            op("sum", "costBreakdown.llmPromptTokens"),
            op("sum", "costBreakdown.llmCompletionTokens"),
            op("sum", "costBreakdown.llmCachedPromptTokens"),
            op("sum", "costBreakdown.ttsCharacters"),
            op("avg", "costBreakdown.llmPromptTokens"),
            op("max", "costBreakdown.ttsCharacters"),
        ],
        [
            {
                "sumCostBreakdownLlmPromptTokens": 5500,
                "sumCostBreakdownLlmCompletionTokens": 1000,
                "sumCostBreakdownLlmCachedPromptTokens": 100,
                "sumCostBreakdownTtsCharacters": 2500,
                "avgCostBreakdownLlmPromptTokens": D("1833.3333333333"),
                "maxCostBreakdownTtsCharacters": 2000,
            }
        ],
    ),
    Case(
        "E-subscription-duration-minutes",
        E,
        [
            op("sum", "duration"),
            op("avg", "duration"),
            op("min", "duration"),
            op("max", "duration"),
            op("count", "duration"),
            op("sum", "minutesUsed"),
            op("avg", "minutesUsed"),
        ],
        [
            {
                "sumDuration": D("930.5"),
                "avgDuration": D("155.0833333333"),
                "minDuration": 0,
                "maxDuration": 600,
                "countDuration": 6,
                "sumMinutesUsed": D("15.5083333333"),
                "avgMinutesUsed": D("2.5847222222"),
            }
        ],
        table="subscription",
    ),
    Case(
        "E-variable-cost-center",
        E,
        [SUM_COST, COUNT_ID],
        [
            {"costCenter": "", "sumCost": 0, "countId": 1},
            {"costCenter": "legacy-crm", "sumCost": D("0.5"), "countId": 1},
            {"costCenter": "sales", "sumCost": D("1.000001"), "countId": 1},
            {"costCenter": None, "sumCost": D("3.000001"), "countId": 5},
        ],
        variables=["costCenter"],
    ),
    Case(
        "E-success-evaluation-and-tier",
        E,
        [COUNT_ID],
        [
            {"analysis.successEvaluation": "false", "customerTier": None, "countId": 1},
            {"analysis.successEvaluation": "true", "customerTier": "gold", "countId": 1},
            {"analysis.successEvaluation": "true", "customerTier": None, "countId": 2},
            {"analysis.successEvaluation": None, "customerTier": None, "countId": 4},
        ],
        group_by=["analysis.successEvaluation"],
        variables=["customerTier"],
    ),
    Case(
        "E-type-and-ended-reason",
        E,
        [COUNT_ID],
        [
            {"type": "inboundPhoneCall", "endedReason": "assistant-forwarded-call", "countId": 1},
            {"type": "inboundPhoneCall", "endedReason": "customer-ended-call", "countId": 1},
            {"type": "inboundPhoneCall", "endedReason": None, "countId": 2},
            {"type": "outboundPhoneCall", "endedReason": "customer-ended-call", "countId": 1},
            {"type": "outboundPhoneCall", "endedReason": "voicemail", "countId": 1},
            {"type": "webCall", "endedReason": "assistant-ended-call", "countId": 1},
            {
                "type": "webCall",
                "endedReason": "customer-did-not-give-microphone-permission",
                "countId": 1,
            },
        ],
        group_by=["type", "endedReason"],
    ),
    # --- concurrency and history ----------------------------------------------------------
    Case(
        "E-concurrency-every-operation",
        E,
        [
            op("max", "concurrency"),
            op("count", "concurrency"),
            op("sum", "concurrency"),
            op("avg", "concurrency"),
            op("min", "concurrency"),
        ],
        [
            {
                "maxConcurrency": 2,
                "countConcurrency": 6,
                "sumConcurrency": 9,
                "avgConcurrency": D("1.5"),
                "minConcurrency": 1,
            }
        ],
    ),
    Case(
        "E-concurrency-by-assistant",
        E,
        [op("max", "concurrency")],
        [
            {"assistantId": ZERO, "maxConcurrency": 1},
            {"assistantId": A, "maxConcurrency": 2},
            {"assistantId": B, "maxConcurrency": 1},
            {"assistantId": None, "maxConcurrency": 1},
        ],
        group_by=["assistantId"],
    ),
    Case(
        "E-concurrency-per-hour",
        E,
        [op("max", "concurrency"), COUNT_ID],
        [
            {"date": "2026-10-05T09:00:00.000Z", "maxConcurrency": 2, "countId": 7},
            {"date": "2026-10-05T10:00:00.000Z", "maxConcurrency": 1, "countId": 1},
        ],
        step="hour",
    ),
    Case(
        "D-history-by-local-day",
        D_,
        [op("history", "cost", "costByDay"), SUM_COST],
        [
            {
                "assistantId": B,
                "costByDay": [
                    {"date": "2026-10-23T22:00:00.000Z", "value": 1},
                    {"date": "2026-10-24T22:00:00.000Z", "value": 30},
                    {"date": "2026-10-25T23:00:00.000Z", "value": 32},
                ],
                "sumCost": 63,
            }
        ],
        timezone="Europe/Berlin",
        group_by=["assistantId"],
    ),
    Case(
        "N-history-inside-each-step",
        N,
        [op("history", "id")],
        [
            {
                "date": "2026-03-07T05:00:00.000Z",
                "historyId": [{"date": "2026-03-07T05:00:00.000Z", "value": 1}],
            },
            {
                "date": "2026-03-08T05:00:00.000Z",
                "historyId": [{"date": "2026-03-08T05:00:00.000Z", "value": 4}],
            },
            {
                "date": "2026-03-09T04:00:00.000Z",
                "historyId": [{"date": "2026-03-09T04:00:00.000Z", "value": 1}],
            },
        ],
        step="day",
        timezone="America/New_York",
    ),
    Case(
        "E-history-concurrency-and-minutes",
        E,
        [op("history", "concurrency"), op("history", "minutesUsed")],
        [
            {
                "historyConcurrency": [{"date": "2026-10-05T00:00:00.000Z", "value": 2}],
                "historyMinutesUsed": [
                    {"date": "2026-10-05T00:00:00.000Z", "value": D("15.5083333333")}
                ],
            }
        ],
    ),
    Case("empty-range-no-rows", ("2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z"), [SUM_COST], []),
    Case("alias-overrides-key", S, [op("sum", "cost", "spend")], [{"spend": D("0.03")}]),
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_emulator([FIXTURE], api_key=KEY) as url:
        yield url


def post(base_url: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{base_url}/analytics", headers={"Authorization": f"Bearer {KEY}"}, json=body, timeout=30
    )


def decoded(response: httpx.Response) -> Any:
    """The body with JSON numbers as exact Decimals (ints stay ints)."""
    return json.loads(response.text, parse_float=D)


def test_fixture_is_large_enough() -> None:
    assert len(FIXTURE.read_text().splitlines()) >= 30
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hand_computed_result(base_url: str, case: Case) -> None:
    response = post(base_url, {"queries": [case.query()]})
    assert response.status_code == 200, response.text
    (result,) = decoded(response)
    assert result["name"] == case.id[:40]
    assert result["result"] == case.expected


def test_money_is_exact_decimal_text(base_url: str) -> None:
    case = next(case for case in CASES if case.id == "M-berlin-day")
    response = post(base_url, {"queries": [case.query()]})
    assert '"sumCost":0.3,' in response.text
    assert "0.30000000000000004" not in response.text


def test_effective_time_range_is_echoed_with_defaults(base_url: str) -> None:
    query = {
        "table": "call",
        "name": "default-start",
        "timeRange": {"end": "2026-10-05T10:00:00Z"},
        "operations": [COUNT_ID],
    }
    (result,) = decoded(post(base_url, {"queries": [query]}))
    assert result == {
        "name": "default-start",
        "timeRange": {
            "start": "2026-09-28T10:00:00.000Z",
            "end": "2026-10-05T10:00:00.000Z",
            "timezone": "UTC",
        },
        "result": [{"countId": 9}],
    }


def test_batch_answers_in_request_order(base_url: str) -> None:
    first, second = CASES[0], CASES[1]
    results = decoded(post(base_url, {"queries": [second.query(), first.query()]}))
    assert [result["name"] for result in results] == [second.id, first.id]
    assert [result["result"] for result in results] == [second.expected, first.expected]
