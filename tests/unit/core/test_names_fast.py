"""Lines named without ``dataclasses.replace``: the same lines, field for field."""

from __future__ import annotations

from dataclasses import fields, replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from vapi_chargeback.names import named_lines
from vapi_chargeback.statement import ChargebackLine, NamesSnapshot

ids = st.sampled_from(["a1", "a2", "", "b7"])


@st.composite
def lines(draw: st.DrawFn) -> ChargebackLine:
    return ChargebackLine(
        cost_center_id=draw(st.sampled_from(["sales", "UNALLOCATED"])),
        cost_center_name="Sales",
        team=draw(st.text(max_size=3)),
        assistant_id=draw(ids),
        allocation=draw(st.sampled_from(["direct", "shared:x"])),
        calls=draw(st.integers(0, 10)),
        minutes=Decimal(draw(st.integers(0, 999))) / 100,
        cost_usd=Decimal(draw(st.integers(-99, 999))) / 100,
        components_usd={"stt": Decimal("0.10")},
        assistant_name=draw(st.one_of(st.none(), st.text(max_size=3))),
    )


@given(st.lists(lines(), max_size=8), st.dictionaries(ids, st.text(max_size=5)))
def test_named_lines_are_the_lines_replace_makes(
    items: list[ChargebackLine], names: dict[str, str]
) -> None:
    snapshot = NamesSnapshot(names, dict.fromkeys(names, "mapping"), "0" * 64)
    expected = [
        replace(line, assistant_name=names[line.assistant_id])
        if line.assistant_id in names
        else line
        for line in items
    ]

    named = named_lines(items, snapshot)

    assert named == expected
    for got, want in zip(named, expected, strict=True):
        assert type(got) is ChargebackLine
        assert all(getattr(got, f.name) is getattr(want, f.name) for f in fields(want))
