"""The synthetic org's calls: deterministic, realistic, and exact to the micro-dollar."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vapi_emulator.cli import main
from vapi_emulator.data import demo_org, generate_calls_file
from vapi_emulator.generate import ENDED_REASONS, TYPES, ZERO_ASSISTANT_ID

CALLS = 20_000
BERLIN = ZoneInfo("Europe/Berlin")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def october(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("gen") / "october.jsonl"
    generate_calls_file(path, "2026-10", calls_per_month=CALLS)
    return [json.loads(line, parse_float=Decimal) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_same_arguments_same_bytes_other_seed_other_bytes(tmp_path: Path, suffix: str) -> None:
    first, second, other = (tmp_path / f"{name}.{suffix}" for name in ("a", "b", "c"))
    generate_calls_file(first, "2026-10", calls_per_month=2_000)
    generate_calls_file(second, "2026-10", calls_per_month=2_000)
    generate_calls_file(other, "2026-10", calls_per_month=2_000, seed=8)
    assert sha256(first) == sha256(second) != sha256(other)


def test_a_month_is_the_same_alone_or_inside_a_longer_run(tmp_path: Path) -> None:
    alone, run = tmp_path / "alone.jsonl", tmp_path / "run.jsonl"
    generate_calls_file(alone, "2026-11", calls_per_month=500)
    generate_calls_file(run, "2026-10", months=2, calls_per_month=500)
    assert run.read_text().splitlines()[500:] == alone.read_text().splitlines()


def test_calls_fall_in_the_local_month_in_creation_order(october: list[dict[str, Any]]) -> None:
    created = [datetime.fromisoformat(call["createdAt"]) for call in october]
    assert created == sorted(created)
    assert created[0] >= datetime(2026, 10, 1, tzinfo=BERLIN)
    assert created[-1] < datetime(2026, 11, 1, tzinfo=BERLIN)
    assert len({call["id"] for call in october}) == CALLS


FIVE = ("transport", "stt", "llm", "tts", "vapi")


def money_values(call: dict[str, Any]) -> list[Decimal]:
    breakdown = call["costBreakdown"]
    others = [breakdown["voicemailDetectionCost"], breakdown["knowledgeBaseCost"]]
    return [
        *(breakdown[name] for name in FIVE),
        *breakdown["analysisCostBreakdown"].values(),
        *others,
    ]


def test_cost_is_total_and_more_than_the_five_components(october: list[dict[str, Any]]) -> None:
    billed = [call for call in october if call["cost"] is not None]
    assert len(billed) > 0.99 * CALLS
    for call in billed:
        assert call["cost"] == call["costBreakdown"]["total"] == sum(money_values(call), Decimal(0))
    five_short = [
        call
        for call in billed
        if sum((call["costBreakdown"][n] for n in FIVE), Decimal(0)) < call["cost"]
    ]
    assert len(five_short) > 0.5 * len(billed)


def test_money_is_decimal_text_with_at_most_six_places(october: list[dict[str, Any]]) -> None:
    places = Counter(
        -Decimal(value).as_tuple().exponent
        for call in october
        if call["cost"] is not None
        for value in (call["cost"], *money_values(call))
    )
    assert max(places) <= 6
    assert places[6] > 0


def test_shares_of_edge_cases(october: list[dict[str, Any]]) -> None:
    assistants = Counter(call["assistantId"] for call in october)
    assert 0.02 < assistants[None] / CALLS < 0.04
    assert 0.005 < assistants[ZERO_ASSISTANT_ID] / CALLS < 0.015
    centers = Counter(
        (call["assistantOverrides"] or {}).get("variableValues", {}).get("costCenter")
        for call in october
        if call["assistantOverrides"]
    )
    with_center = sum(count for value, count in centers.items() if value is not None)
    assert 0.065 < with_center / CALLS < 0.095
    assert (
        centers["legacy-crm"] > 0 and centers[""] > 0 and centers["sales"] > centers["legacy-crm"]
    )
    statuses = Counter(call["status"] for call in october)
    assert statuses["ended"] > 0.99 * CALLS and set(statuses) <= {"ended", "in-progress", "queued"}


def test_every_assistant_of_the_org_takes_calls_including_unmapped_and_mover(
    october: list[dict[str, Any]],
) -> None:
    org = demo_org()
    taken = {call["assistantId"] for call in october}
    assert {a.id for a in org.assistants} <= taken
    assert taken <= {a.id for a in org.assistants} | {None, ZERO_ASSISTANT_ID}
    mover_days = {call["createdAt"][:10] for call in october if call["assistantId"] == org.mover.id}
    assert min(mover_days) < "2026-10-15" <= max(mover_days)


def test_real_vapi_names_and_shapes(october: list[dict[str, Any]]) -> None:
    assert {call["type"] for call in october} == set(TYPES)
    reasons = Counter(call["endedReason"] for call in october)
    assert set(reasons) - {None} <= set(ENDED_REASONS)
    assert reasons["customer-ended-call"] == max(reasons.values())
    assert reasons["exceeded-max-duration"] > 0
    evaluations = Counter((call["analysis"] or {}).get("successEvaluation") for call in october)
    assert {"true", "false", None} <= set(evaluations)


def test_seasonality_and_log_normal_durations(october: list[dict[str, Any]]) -> None:
    local = [datetime.fromisoformat(call["createdAt"]).astimezone(BERLIN) for call in october]
    weekday_days = Counter(moment.date() for moment in local if moment.weekday() < 5)
    weekend_days = Counter(moment.date() for moment in local if moment.weekday() >= 5)
    assert median(weekday_days.values()) > 2.5 * median(weekend_days.values())
    hours = Counter(moment.hour for moment in local)
    assert hours[10] > 10 * hours[3]
    talks = [
        (
            datetime.fromisoformat(c["endedAt"]) - datetime.fromisoformat(c["startedAt"])
        ).total_seconds()
        for c in october
        if c["endedReason"] == "customer-ended-call"
    ]
    assert 100 < median(talks) < 300
    assert (
        max(talks)
        <= 600
        < max(
            (
                datetime.fromisoformat(c["endedAt"]) - datetime.fromisoformat(c["startedAt"])
            ).total_seconds()
            for c in october
            if c["endedReason"] == "exceeded-max-duration"
        )
    )


def test_cli_generate_and_org(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "calls.parquet"
    assert main(["generate", "--month", "2026-10", "--calls", "100", "--out", str(out)]) == 0
    assert "wrote 100 calls" in capsys.readouterr().out
    mapping = tmp_path / "teams.csv"
    assert main(["org", "--out", str(mapping)]) == 0
    assert mapping.read_text().startswith("assistant_id,team,cost_center_id,valid_from,valid_to\n")
    assert main(["generate", "--month", "October", "--out", str(out)]) == 2
    assert "expected YYYY-MM" in capsys.readouterr().err
