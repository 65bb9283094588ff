"""The committed demo mapping is exactly what the emulator's default org renders.

If this fails, the demo statement would allocate generated calls with a mapping of some
other org: regenerate with ``vapi-emulator org --out include/config/assistant_teams.csv``.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from vapi_emulator.org import (
    COST_CENTER_TEAMS,
    MOVE_DATE,
    MappingRow,
    demo_org,
    render_mapping_csv,
)

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "include" / "config" / "assistant_teams.csv"


def test_committed_mapping_matches_default_org() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_mapping_csv(demo_org()), (
        f"{COMMITTED} differs from demo_org(); run: "
        "vapi-emulator org --out include/config/assistant_teams.csv"
    )


def test_same_seed_same_org_other_seed_other_ids() -> None:
    assert demo_org(7, 24) == demo_org(7, 24)
    assert {a.id for a in demo_org(8).assistants}.isdisjoint({a.id for a in demo_org(7).assistants})


@pytest.mark.parametrize("assistants", [9, 24, 60], ids=lambda n: f"{n}-assistants")
def test_org_shape(assistants: int) -> None:
    org = demo_org(assistants=assistants)
    mapped = {row.assistant_id for row in org.mapping}
    assert len(org.assistants) == assistants
    assert len({a.id for a in org.assistants}) == assistants
    assert [a.id for a in org.unmapped] == [a.id for a in org.assistants if a.id not in mapped]
    assert len(org.unmapped) == 2
    assert {row.team for row in org.mapping} == {
        team for teams in COST_CENTER_TEAMS.values() for team in teams
    }
    assert all(row.valid_from == date(2025, 1, 1) for row in org.mapping if row.valid_to)


def test_exactly_one_assistant_moves_cost_center_on_move_date() -> None:
    org = demo_org()
    rows = [row for row in org.mapping if row.assistant_id == org.mover.id]
    assert rows == [
        MappingRow(org.mover.id, "tier1-support", "support", date(2025, 1, 1), date(2026, 10, 14)),
        MappingRow(org.mover.id, "lead-qualification", "marketing", MOVE_DATE, None),
    ]
    movers = {row.assistant_id for row in org.mapping if row.valid_to is not None}
    assert movers == {org.mover.id}


def test_rendered_csv_has_contract_header_and_one_row_per_mapping_row() -> None:
    org = demo_org()
    rows = list(csv.DictReader(io.StringIO(render_mapping_csv(org))))
    assert list(rows[0]) == ["assistant_id", "team", "cost_center_id", "valid_from", "valid_to"]
    assert len(rows) == len(org.mapping) == 23
    assert {row["cost_center_id"] for row in rows} == set(COST_CENTER_TEAMS)
