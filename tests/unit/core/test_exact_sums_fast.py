"""The column-at-a-time sums of ``ExactSums`` are those of a row-at-a-time loop: the same
exact values (exponents included), the same lines, pieces and rules, made in the same order.

Rows share attribution objects (as the ``Attributor`` hands them out), and some objects are
equal but distinct, which the bucketing by identity must still add into one line.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.attribution import DIRECT, PRECEDENCE, Attribution
from vapi_chargeback.exact_sums import ExactSums, ExactSumsError, dumps, line_key, loads
from vapi_chargeback.split import exact_context

MEASURES = ["calls", "seconds", "cost", "llm"]
POOL = [
    Attribution("sales", "team-a", "asst-1", DIRECT, "mapping"),
    Attribution("sales", "team-a", "asst-1", DIRECT, "mapping"),
    Attribution("sales", "", "asst-1", DIRECT, "variable"),
    Attribution("sales", "team-a", "asst-2", DIRECT, "rule:name"),
    Attribution("support", "team-b", "asst-2", DIRECT, "rule:metadata"),
    Attribution("UNALLOCATED", "", "", "unallocated:no-assistant"),
    Attribution("UNALLOCATED", "", "asst-3", "unallocated:unmapped-assistant"),
]
number = st.one_of(
    st.integers(0, 10**6),
    st.tuples(st.integers(0, 10**9), st.integers(-9, 3)).map(
        lambda pair: Decimal(pair[0]).scaleb(pair[1])
    ),
)
row = st.tuples(
    st.integers(0, len(POOL) - 1),
    st.integers(0, len(POOL) - 1),
    st.tuples(*[number] * 6),
    st.booleans(),
)


def _reference(
    rows: list[tuple[int, int, tuple[Decimal | int, ...], bool]],
    positions: list[int],
    with_atoms: bool,
) -> ExactSums:
    """Row at a time, in row order."""
    sums = ExactSums(measures=MEASURES)
    for attribution_at, atom_at, values, succeeded in rows:
        attribution = POOL[attribution_at]
        atom = POOL[atom_at] if with_atoms else attribution
        key = line_key(attribution)
        piece = sums.pieces.setdefault((line_key(atom), key), [Decimal(0)] * len(positions))
        for slot, position in enumerate(positions):
            piece[slot] += values[position]
        held = sums.charged.get(key)
        rule = attribution.charged_by
        sums.charged[key] = rule if held is None else min(held, rule, key=PRECEDENCE.index)
        if succeeded:
            sums.successes[key] = sums.successes.get(key, Decimal(0)) + values[1]
    return sums


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(st.lists(row, max_size=40), min_size=1, max_size=3),
    positions=st.permutations(range(6)).map(lambda order: list(order[:4])),
    with_atoms=st.booleans(),
)
def test_sums_by_column_are_the_row_by_row_sums_in_the_same_order(
    batches: list[list[tuple[int, int, tuple[Decimal | int, ...], bool]]],
    positions: list[int],
    with_atoms: bool,
) -> None:
    got = ExactSums(measures=MEASURES)
    with exact_context():
        for rows in batches:
            attributions = [POOL[item[0]] for item in rows]
            atoms = [POOL[item[1]] for item in rows] if with_atoms else None
            values = [item[2] for item in rows]
            got.add_lines(attributions, atoms, values, positions)
            got.add_successes(attributions, [item[3] for item in rows], values, 1)
        expected = _reference([item for rows in batches for item in rows], positions, with_atoms)
    assert dumps(got) == dumps(expected)
    assert list(got.pieces) == list(expected.pieces)
    assert list(got.charged) == list(expected.charged)
    assert list(got.successes) == list(expected.successes)
    assert all(type(value) is Decimal for values in got.pieces.values() for value in values)
    assert all(type(value) is Decimal for value in got.successes.values())
    exponents = {
        piece: [value.as_tuple().exponent for value in values]
        for piece, values in got.pieces.items()
    }
    assert exponents == {
        piece: [value.as_tuple().exponent for value in values]
        for piece, values in expected.pieces.items()
    }


@given(st.sampled_from([7, None, 1.5, ["c"], {"day": "2026-10-01"}]), st.integers(0, 7))
def test_a_piece_key_part_that_is_not_text_is_refused(part: object, position: int) -> None:
    key: list[object] = ["c", "t", "a", DIRECT] * 2
    key[position] = part
    document = {
        "format": 1,
        "measures": ["calls"],
        "pieces": [[*key, ["1"]]],
        "charged": [],
        "successes": [],
        "days": {},
        "groups": [],
    }
    with pytest.raises(ExactSumsError, match="not eight texts"):
        loads(json.dumps(document).encode(), "x.json")


@given(st.lists(st.sampled_from(PRECEDENCE), min_size=1, max_size=5))
def test_merged_rules_are_the_first_in_precedence_whatever_the_order(rules: list[str]) -> None:
    key = ("c", "t", "a", DIRECT)
    merged = ExactSums(measures=["calls"], charged={key: rules[0]})  # type: ignore[dict-item]
    for rule in rules[1:]:
        merged.add(ExactSums(measures=["calls"], charged={key: rule}))  # type: ignore[dict-item]
    assert merged.charged[key] == min(rules, key=PRECEDENCE.index)
