"""``AssistantMapping.lookup`` answers what its rows say: the first row of the assistant (in
any case) that covers the day, or none — checked against ``MappingEntry.covers`` on random
rows, open ends included."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from vapi_chargeback.mapping import AssistantMapping, MappingEntry, MappingMatch

DAYS = [date(2026, 9, 25) + timedelta(days=n) for n in range(45)]
day_or_open = st.none() | st.sampled_from(DAYS)
entry = st.builds(
    MappingEntry,
    assistant_id=st.sampled_from(["asst-a", "asst-b"]),
    team=st.sampled_from(["t1", "t2"]),
    cost_center_id=st.sampled_from(["sales", "support"]),
    valid_from=day_or_open,
    valid_to=day_or_open,
    line=st.integers(2, 99),
)


def _reference(entries: list[MappingEntry], assistant: str, day: date) -> MappingMatch | None:
    for item in entries:
        if item.assistant_id == assistant.lower() and item.covers(day):
            return MappingMatch(item.team, item.cost_center_id)
    return None


@given(entries=st.lists(entry, max_size=6))
def test_lookup_is_the_first_row_covering_the_day(entries: list[MappingEntry]) -> None:
    mapping = AssistantMapping(entries)
    for assistant in ("asst-a", "ASST-A", "asst-b", "asst-c"):
        for day in (date.min, *DAYS, date.max):
            assert mapping.lookup(assistant, day) == _reference(entries, assistant, day)
