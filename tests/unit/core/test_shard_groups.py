"""A shard's breakdown groups read back exactly as written, and anything else refused."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.shard_groups import ShardGroupsError, dumps_groups, loads_line

part = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.integers(min_value=0, max_value=400).map(lambda n: date(2026, 1, 1) + timedelta(days=n)),
)
sums = st.lists(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.tuples(part, part), sums, max_size=20))
def test_groups_read_back_as_written(groups: dict) -> None:
    (line,) = dumps_groups([groups]).splitlines()

    read = loads_line(line, "groups-000.jsonl line 1")

    assert read == groups
    assert {k: list(map(str, v)) for k, v in read.items()} == {
        k: list(map(str, v)) for k, v in groups.items()
    }


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"{}",
        b"[1]",
        b'["a"]',
        b"[[]]",
        b'[["a", "1"]]',
        b'[["a", [1]]]',
        b'[["a", ["1", 2.5]]]',
        b'[["a", ["NaN"]]]',
        b'[["a", ["-Infinity"]]]',
        b'[["a", ["x"]]]',
        b'[[true, ["1"]]]',
        b'[[3, ["1"]]]',
        b'[[["a"], ["1"]]]',
        b'[[{"week": "2026-10-05"}, ["1"]]]',
        b'[[{"day": "2026-13-05"}, ["1"]]]',
        b'[[{"day": 5}, ["1"]]]',
        b'[[{"day": "2026-10-05", "x": 1}, ["1"]]]',
        b'[["a", [{"day": "2026-10-05"}]]]',
    ],
)
def test_what_a_shard_does_not_write_is_refused(line: bytes) -> None:
    with pytest.raises(ShardGroupsError, match="line 7: not a shard's breakdown groups"):
        loads_line(line, "groups-003.jsonl line 7")
