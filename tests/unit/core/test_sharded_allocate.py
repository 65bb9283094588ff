"""Allocation cut in shards of the plan's batches and merged gives the statement of one
allocation.

The property: give each shard any of the plan's queries (as whole stored batches are
given), sum each shard exactly over only its queries (``exact_sums(only=…)``), write and
read back each shard's sums, merge them in any order, round — the statement is byte for
byte the one ``allocate`` makes from all rows at once (lines, shared pools, breakdowns,
daily cost, successful calls). And the split of batches itself (``assign_batches``): every
batch in one shard, balanced, the same wherever it is worked out.
"""

from __future__ import annotations

import json
import random
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
from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import Plan, build_plan
from vapi_chargeback.shards import (
    MAX_AUTO_SHARDS,
    ShardCountError,
    assign_batches,
    auto_shard_count,
    checked_count,
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


def _month(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    pools: list[dict[str, Any]],
    calls: list[Call],
) -> tuple[ChargebackConfig, AssistantMapping, Plan, dict[str, AnalyticsQueryResult]]:
    config = _config(config_from, pools)
    entries, problems = parse_mapping(MAPPING.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    return config, AssistantMapping(entries), plan, fake_results(plan, calls)


def _split(plan: Plan, shards: int, draw: random.Random) -> list[set[str]]:
    """The plan's queries dealt to ``shards`` shards at random (some possibly none), each to
    exactly one: what a cut of whole batches gives each shard to sum."""
    names = [name for batch in plan.batches for name in batch]
    assert len(names) >= 4, "enough queries for the split to mean something"
    cut: list[set[str]] = [set() for _ in range(shards)]
    for name in names:
        cut[draw.randrange(shards)].add(name)
    return cut


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(call_strategy, min_size=1, max_size=60),
    pools=st.lists(pool_strategy, max_size=3, unique_by=lambda p: json.dumps(p, default=str)),
    shards=st.integers(min_value=2, max_value=7),
    draw=st.randoms(use_true_random=False),
)
def test_any_split_of_the_queries_merges_into_the_statement_of_one_allocation(
    calls: list[Call],
    pools: list[dict[str, Any]],
    shards: int,
    draw: random.Random,
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config, mapping, plan, results = _month(config_from, pools, calls)

    whole = allocate(config, mapping, plan, results)
    parts = [
        exact_sums.loads(
            exact_sums.dumps(sum_exactly(config, mapping, plan, results, only=only)),
            f"shard {i}",
        )
        for i, only in enumerate(_split(plan, shards, draw))
    ]
    draw.shuffle(parts)
    merged = parts[0]
    for part in parts[1:]:
        merged.add(part)

    assert statement_json.dumps(rounded_statement(config, plan, merged)) == statement_json.dumps(
        whole
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(call_strategy, min_size=1, max_size=40),
    shards=st.integers(min_value=2, max_value=5),
    draw=st.randoms(use_true_random=False),
)
def test_sums_over_disjoint_sets_of_queries_added_are_the_sums_of_every_query(
    calls: list[Call],
    shards: int,
    draw: random.Random,
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    """``only`` sums exactly the queries it names: sums over a partition of the plan's
    queries add up to the sums over all of them, piece for piece and group for group,
    each query counted once (a query summed twice, or skipped, would change them)."""
    config, mapping, plan, results = _month(config_from, [], calls)
    whole = sum_exactly(config, mapping, plan, results)
    split = _split(plan, shards, draw)
    parts = [sum_exactly(config, mapping, plan, results, only=only) for only in split]
    merged = parts[0]
    for part in parts[1:]:
        merged.add(part)

    assert exact_sums.dumps(merged) == exact_sums.dumps(whole)
    for left, right in zip(merged.groups, whole.groups, strict=True):
        assert left == right
    nothing = sum_exactly(config, mapping, plan, results, only=set())
    assert (nothing.pieces, nothing.days, nothing.successes) == ({}, {}, {})
    assert not any(nothing.groups)


def test_every_batch_goes_to_exactly_one_shard_balanced_by_size() -> None:
    draw = random.Random(16)
    for _ in range(200):
        sizes = {
            index: draw.choice([1, 5, 5, 40, draw.randrange(1, 10**6)])
            for index in range(draw.randrange(0, 40))
        }
        shards = draw.randrange(1, 12)
        cut = assign_batches(sizes, shards)

        assert len(cut) == shards
        assert sorted(index for batches in cut for index in batches) == sorted(sizes)
        assert all(batches == sorted(batches) for batches in cut)
        loads = [sum(sizes[index] for index in batches) for batches in cut]
        largest = max(sizes.values(), default=0)
        assert max(loads, default=0) <= sum(sizes.values()) / shards + largest, (sizes, cut)
        if len(sizes) >= shards:
            assert all(cut), "a shard left idle while another holds two batches"


def test_the_split_is_a_function_of_the_sizes_alone() -> None:
    """Every shard task works it out on its own: the order the records arrive in must not
    matter, and ties go the same way everywhere (lower index first, to the lower shard)."""
    sizes = {index: size for index, size in enumerate([7, 3, 7, 3, 10, 1, 1, 7])}
    expected = assign_batches(sizes, 3)
    for seed in range(20):
        items = list(sizes.items())
        random.Random(seed).shuffle(items)
        assert assign_batches(dict(items), 3) == expected
    assert expected == [[3, 4], [0, 7], [1, 2, 5, 6]]
    assert assign_batches({0: 5, 1: 5}, 4) == [[0], [1], [], []]
    assert assign_batches({0: 5, 1: 9}, 1) == [[0, 1]]
    with pytest.raises(ShardCountError):
        assign_batches(sizes, 0)


def test_the_automatic_count_grows_with_the_responses_and_stops_at_its_cap() -> None:
    mib = 1 << 20
    assert [auto_shard_count(n * mib) for n in (0, 1, 256, 257, 1024)] == [1, 1, 1, 2, 4]
    assert auto_shard_count(10**12) == MAX_AUTO_SHARDS


@pytest.mark.parametrize("count", [0, -1, 257, 2.0, True, "4"], ids=repr)
def test_a_shard_count_out_of_range_is_refused_naming_its_source(count: object) -> None:
    with pytest.raises(ShardCountError, match=r"allocate_shards: .* 1 to 256"):
        checked_count(count, "allocate_shards")


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
