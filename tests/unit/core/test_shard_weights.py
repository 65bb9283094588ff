"""Batches are dealt to shards by the CPU they cost, not their bytes alone.

A byte of the core query's results costs a shard about twice a byte of a breakdown
query's (attributed, summed into lines, successes and daily costs, its exact sums the
largest written), so ``shards.batch_weights`` counts it ``CORE_WEIGHT`` times, from the
plan and the fetch records alone: every shard task works out the same deal.
"""

from __future__ import annotations

import random

from vapi_chargeback.plan import Plan
from vapi_chargeback.shards import CORE_WEIGHT, assign_batches, batch_weights
from vapi_chargeback.workfolder import FetchedBatch


def _plan(batches: list[list[str]], families: dict[str, list[str]] | None = None) -> Plan:
    return Plan.model_construct(core_query="core", batches=batches, families=families or {})


def _record(
    index: int,
    size: int,
    spans: dict[str, tuple[int, int]] | None = None,
    pieces: dict[str, list[str]] | None = None,
) -> FetchedBatch:
    return FetchedBatch(
        index=index,
        file=f"batch-{index:03d}.json",
        sha256="0" * 64,
        size=size,
        attempts=1,
        status_code=200,
        spans=spans or {},
        pieces=pieces or {},
    )


def test_the_core_querys_bytes_count_double_the_rest_once() -> None:
    plan = _plan([["core-w1", "by-type"], ["by-reason"]], {"core": ["core-w1", "core-w2"]})
    fetched = [
        _record(0, 1000, {"core-w1": (1, 601), "by-type": (602, 999)}),
        _record(1, 500, {"by-reason": (1, 499)}),
    ]
    assert batch_weights(plan, fetched) == {0: 1000 + (CORE_WEIGHT - 1) * 600, 1: 500}


def test_a_core_query_asked_in_pieces_counts_each_piece() -> None:
    plan = _plan([["core-w1", "by-type"]], {"core": ["core-w1"]})
    record = _record(
        0,
        900,
        {"core-w1.a": (1, 301), "core-w1.b": (302, 502), "by-type": (503, 899)},
        {"core-w1": ["core-w1.a", "core-w1.b"]},
    )
    assert batch_weights(plan, [record]) == {0: 900 + (CORE_WEIGHT - 1) * 500}


def test_a_record_without_spans_counts_whole_by_what_its_batch_asks() -> None:
    plan = _plan([["core", "by-type"], ["by-type-2"]])
    weights = batch_weights(plan, [_record(0, 700), _record(1, 300)])
    assert weights == {0: 700 * CORE_WEIGHT, 1: 300}


def test_core_heavy_batches_are_spread_and_the_deal_ignores_record_order() -> None:
    """Core batches of 100 bytes each and a breakdown batch of 200, in two shards: by bytes
    the two core batches share a shard (100 + 100 against 200); by weight each shard gets
    one core batch."""
    names = [["core-a"], ["core-b"], ["t1"]]
    plan = _plan(names, {"core": ["core-a", "core-b"]})
    fetched = [
        _record(i, size, {batch[0]: (0, size)})
        for i, (batch, size) in enumerate(zip(names, [100, 100, 200], strict=True))
    ]
    assert assign_batches({r.index: r.size for r in fetched}, 2) == [[2], [0, 1]]
    expected = assign_batches(batch_weights(plan, fetched), 2)
    assert expected == [[0, 2], [1]]
    for seed in range(10):
        shuffled = list(fetched)
        random.Random(seed).shuffle(shuffled)
        assert assign_batches(batch_weights(plan, shuffled), 2) == expected
