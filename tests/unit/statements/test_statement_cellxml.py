"""Column-wise row writing gives the bytes of the row-by-row cell rules, for any plain values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.statements.cellxml import RowCells, StyleIds

STYLES = StyleIds(text=1, quoted=2, integer=3, money=4, share=5, rate=6, date=7)
LETTERS = ["A", "B", "C", "D"]
KINDS = ["", "share", "rate", ""]

values = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from("ab {}&<>=+-@_x005F\t \r"), max_size=8),
    st.integers(-(10**15), 10**15),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.dates(),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(values, min_size=4, max_size=4), min_size=1, max_size=12),
    st.integers(1, 10**6),
)
def test_column_wise_rows_equal_row_by_row(rows: list[list[object]], first: int) -> None:
    cells = RowCells("Sheet", LETTERS, KINDS, STYLES)
    expected = [cells.row(number, row) for number, row in enumerate(rows, start=first)]  # type: ignore[arg-type]
    assert cells.rows(first, rows) == expected  # type: ignore[arg-type]


def test_a_text_with_braces_is_written_as_it_is() -> None:
    cells = RowCells("Sheet", ["A"], [""], STYLES)
    assert cells.rows(7, [["{0} {x}"]]) == [
        '<row r="7"><c r="A7" s="1" t="inlineStr"><is><t>{0} {x}</t></is></c></row>'
    ]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (Decimal("NaN"), "B3: NaN is not a finite number"),
        (True, "B3: bool is not str"),
        (datetime(2026, 1, 1), "B3: datetime is not str"),
    ],
)
def test_a_chunk_with_a_value_outside_the_rules_is_refused_naming_its_cell(
    bad: object, error: str
) -> None:
    cells = RowCells("Sheet", ["A", "B"], ["", ""], STYLES)
    with pytest.raises((TypeError, ValueError), match=error):
        cells.rows(2, [["a", Decimal(1)], [date(2026, 1, 1), bad]])  # type: ignore[list-item]
