"""Allocation cut in shards of assistants and merged gives the statement of one allocation.

The property: split any month's rows by :func:`shards.shard_of`, sum each shard exactly,
write and read back each shard's sums, merge them in any order, round — the statement is
byte for byte the one ``allocate`` makes from all rows at once (lines, shared pools,
breakdowns, daily cost, successful calls).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback import exact_sums, statement_json
from vapi_chargeback.allocate import allocate, rounded_statement
from vapi_chargeback.allocate import exact_sums as sum_exactly
from vapi_chargeback.analytics.decode import decode_json
from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan
from vapi_chargeback.shards import (
    MAX_AUTO_SHARDS,
    NO_ASSISTANT_SHARD,
    ShardCountError,
    _dumps,
    auto_shard_count,
    checked_count,
    shard_of,
)

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
ZERO_ID = "00000000-0000-0000-0000-000000000000"
ASSISTANTS = [
    None,
    "",
    ZERO_ID,
    "asst-moving",
    "ASST-SALES",
    "asst-sales",
    "asst-support",
    *(f"asst-{n}" for n in range(12)),
]
VARIABLES = [None, "", "sales", "support", "marketing", "legal"]
MAPPING = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-moving,inbound-sales,sales,,2026-10-14\n"
    "asst-moving,tier1-support,support,2026-10-15,\n"
    "asst-sales,outbound-sales,sales,,\n"
    "asst-support,billing-support,support,2026-01-01,\n"
    + "".join(f"asst-{n},team-{n % 3},{('sales', 'support')[n % 2]},,\n" for n in range(0, 12, 2))
)
DEFINITIONS = [
    {
        "id": "by-assistant-day",
        "title": "Cost by assistant by day",
        "dimensions": ["assistantId"],
        "step": "day",
        "metrics": ["calls", "minutes", "cost"],
    },
    {
        "id": "by-success",
        "title": "Calls by success",
        "dimensions": ["analysis.successEvaluation"],
        "step": "week",
        "metrics": ["calls", "cost", "avg_cost_per_call"],
    },
    {
        "id": "by-reason",
        "title": "Minutes by ended reason",
        "dimensions": ["endedReason"],
        "metrics": ["calls", "minutes", "llm", "avg_minutes_per_call"],
    },
]

call_strategy = st.builds(
    Call,
    day=st.integers(min_value=1, max_value=31).map(lambda n: date(2026, 10, n)),
    cost=st.decimals(min_value=0, max_value=50, places=6, allow_nan=False),
    assistant=st.sampled_from(ASSISTANTS),
    variable=st.sampled_from(VARIABLES),
    duration=st.decimals(min_value=0, max_value=3600, places=3, allow_nan=False),
    components=st.fixed_dictionaries(
        {c: st.decimals(min_value=0, max_value=5, places=5, allow_nan=False) for c in ("llm",)}
    ),
    ended_reason=st.sampled_from(["customer-ended-call", "silence-timed-out"]),
    success=st.sampled_from([None, "true", "false"]),
)
pool_strategy = st.sampled_from(
    [
        {"source": "calls-without-assistant", "method": "proportional", "driver": "minutes"},
        {"amount": D("1000.00"), "method": "proportional", "driver": "cost"},
        {"amount": D("99.99"), "method": "even"},
    ]
)


def _config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], pools: list[dict[str, Any]]
) -> ChargebackConfig:
    doc = base_config()
    doc["cost_centers"].append({"id": "marketing", "name": "Marketing", "owner_email": "m@x.io"})
    for center in doc["cost_centers"]:
        center["queries"] = DEFINITIONS
    doc["shared_costs"] = [{"name": f"pool-{i}", **pool} for i, pool in enumerate(pools)]
    return config_from(doc)


def _by_shard(
    results: dict[str, AnalyticsQueryResult], shards: int
) -> list[dict[str, AnalyticsQueryResult]]:
    """Each shard's view of the results: every query, only its assistants' rows."""
    cut: list[dict[str, AnalyticsQueryResult]] = [{} for _ in range(shards)]
    for name, result in results.items():
        for shard in range(shards):
            rows = [
                row for row in result.result if shard_of(row.get("assistantId"), shards) == shard
            ]
            cut[shard][name] = result.model_copy(update={"result": rows})
    return cut


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(call_strategy, min_size=1, max_size=60),
    pools=st.lists(pool_strategy, max_size=3, unique_by=lambda p: json.dumps(p, default=str)),
    shards=st.integers(min_value=2, max_value=7),
    order=st.randoms(use_true_random=False),
)
def test_any_sharding_merges_into_the_statement_of_one_allocation(
    calls: list[Call],
    pools: list[dict[str, Any]],
    shards: int,
    order: Any,
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _config(config_from, pools)
    entries, problems = parse_mapping(MAPPING.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    mapping = AssistantMapping(entries)
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, calls)

    whole = allocate(config, mapping, plan, results)
    parts = [
        exact_sums.loads(exact_sums.dumps(sum_exactly(config, mapping, plan, part)), f"shard {i}")
        for i, part in enumerate(_by_shard(results, shards))
    ]
    order.shuffle(parts)
    merged = parts[0]
    for part in parts[1:]:
        merged.add(part)

    assert statement_json.dumps(rounded_statement(config, plan, merged)) == statement_json.dumps(
        whole
    )


def test_an_assistant_always_lands_in_the_same_shard_whatever_its_case() -> None:
    assistant = "6F1D2C8A-0B1E-4C55-9D3B-2A7E5C1F9B00"
    expected = zlib.crc32(assistant.lower().encode()) % 16
    assert shard_of(assistant, 16) == shard_of(assistant.lower(), 16) == expected
    assert {shard_of(f"asst-{n}", 16) for n in range(200)} == set(range(16)), "spread over all"
    assert {shard_of(f"asst-{n}", 1) for n in range(50)} == {0}


@pytest.mark.parametrize(
    "assistant", [None, "", ZERO_ID, ZERO_ID.upper(), 42, ["not", "an", "id"]], ids=repr
)
def test_rows_without_an_assistant_go_to_the_fixed_shard(assistant: object) -> None:
    assert shard_of(assistant, 8) == NO_ASSISTANT_SHARD


def test_the_automatic_count_grows_with_the_responses_and_stops_at_its_cap() -> None:
    mib = 1 << 20
    assert [auto_shard_count(n * mib) for n in (0, 1, 256, 257, 1024)] == [1, 1, 1, 2, 4]
    assert auto_shard_count(10**12) == MAX_AUTO_SHARDS


@pytest.mark.parametrize("count", [0, -1, 257, 2.0, True, "4"], ids=repr)
def test_a_shard_count_out_of_range_is_refused_naming_its_source(count: object) -> None:
    with pytest.raises(ShardCountError, match=r"allocate_shards: .* 1 to 256"):
        checked_count(count, "allocate_shards")


@pytest.mark.parametrize("marked", [False, True], ids=["plain", "a string like a mark"])
def test_shard_files_keep_every_number_exactly(marked: bool) -> None:
    """Decimals are written as the numbers they are, with their exponent; a string of the
    data that looks like the writer's internal mark is still written as that string."""
    row: dict[str, Any] = {
        "assistantId": "a",
        "cost": D("0.000100"),
        "big": D("1E+3"),
        "calls": 7,
        "flag": True,
        "none": None,
    }
    if marked:
        row["costCenter"] = "\x00decimal:1.5"
        row["team"] = "\x001.5\x01"
    back = decode_json(_dumps({"result": [row]}))["result"][0]
    assert back == row
    assert [str(back[k]) for k in ("cost", "big")] == ["0.000100", "1E+3"]


def test_exact_sums_that_are_not_a_shards_are_refused_naming_the_file() -> None:
    with pytest.raises(exact_sums.ExactSumsError, match=r"shards/of-04/exact-002\.json"):
        exact_sums.loads(b'{"format": 1, "measures": []}', "shards/of-04/exact-002.json")
    with pytest.raises(exact_sums.ExactSumsError, match="format"):
        exact_sums.loads(b'{"format": 99}', "x.json")
    piece = ["c", "t", "a", "direct"] * 2
    for values in ([1.5], ["NaN"], "1.5"):
        document = {
            "format": 1,
            "measures": ["calls"],
            "pieces": [[*piece, values]],
            "charged": [],
            "successes": [],
            "days": {},
            "groups": [],
        }
        with pytest.raises(exact_sums.ExactSumsError, match=r"written as text|not finite"):
            exact_sums.loads(json.dumps(document).encode(), "x.json")
