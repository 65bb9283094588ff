"""The demo organisation: assistants, teams, cost centers and the assistant→team mapping.

The demo configuration in ``include/config/`` (``chargeback.yaml`` and
``assistant_teams.csv``) describes exactly this org, and the calls that
``vapi-emulator generate`` writes by default are taken by these assistants, so the demo
statement exercises every allocation rule: two assistants are missing from the mapping
(``unmapped-assistant``) and one moves to another cost center mid-October 2026 (the
day a mapping row ends and the next begins must both be honoured).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date

import numpy as np

DEFAULT_SEED = 7
DEFAULT_ASSISTANTS = 24
COST_CENTER_TEAMS: dict[str, tuple[str, ...]] = {
    "sales": ("inbound-sales", "outbound-sales"),
    "support": ("tier1-support", "billing-support"),
    "marketing": ("lead-qualification",),
    "operations": ("scheduling", "logistics"),
}
"""Cost center id → its teams, fixed: the demo chargeback.yaml names these."""

TEAMS: tuple[str, ...] = tuple(team for teams in COST_CENTER_TEAMS.values() for team in teams)
TEAM_COST_CENTER: dict[str, str] = {
    team: cost_center for cost_center, teams in COST_CENTER_TEAMS.items() for team in teams
}

MAPPING_VALID_FROM = date(2025, 1, 1)
MOVE_DATE = date(2026, 10, 15)
MOVER_FROM_TEAM = "tier1-support"
MOVER_TO_TEAM = "lead-qualification"
UNMAPPED_COUNT = 2
MIN_ASSISTANTS = len(TEAMS) + UNMAPPED_COUNT
"""Every team staffed, plus the two unmapped assistants."""
MAPPING_CSV_HEADER = ("assistant_id", "team", "cost_center_id", "valid_from", "valid_to")

_PERSONAS = (
    "Riley",
    "Jordan",
    "Avery",
    "Morgan",
    "Quinn",
    "Harper",
    "Rowan",
    "Sage",
    "Emerson",
    "Finley",
    "Reese",
    "Parker",
    "Skyler",
    "Dakota",
    "Hayden",
    "Kendall",
)
_TEAM_TITLES = {
    "inbound-sales": "Inbound Sales",
    "outbound-sales": "Outbound Sales",
    "tier1-support": "Tier-1 Support",
    "billing-support": "Billing Support",
    "lead-qualification": "Lead Qualification",
    "scheduling": "Scheduling",
    "logistics": "Logistics",
}


@dataclass(frozen=True)
class Assistant:
    """One Vapi assistant of the org; ``team``/``cost_center_id`` are None when unmapped."""

    id: str
    name: str
    team: str | None
    cost_center_id: str | None


@dataclass(frozen=True)
class MappingRow:
    """One line of the assistant→team mapping CSV (dates inclusive, ``valid_to`` open when None)."""

    assistant_id: str
    team: str
    cost_center_id: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True)
class DemoOrg:
    """The org behind the demo: its id, assistants (in id order of creation) and mapping rows."""

    org_id: str
    assistants: tuple[Assistant, ...]
    mapping: tuple[MappingRow, ...]

    @property
    def mover(self) -> Assistant:
        """The assistant that changes cost center on ``MOVE_DATE``."""
        moved = {row.assistant_id for row in self.mapping if row.valid_to is not None}
        return next(assistant for assistant in self.assistants if assistant.id in moved)

    @property
    def unmapped(self) -> tuple[Assistant, ...]:
        return tuple(assistant for assistant in self.assistants if assistant.team is None)


def random_uuid4(rng: np.random.Generator) -> str:
    """A version-4 UUID drawn from ``rng``, so ids are reproducible from the seed."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def demo_org(seed: int = DEFAULT_SEED, assistants: int = DEFAULT_ASSISTANTS) -> DemoOrg:
    """Build the deterministic demo org: same ``seed`` and ``assistants`` → same ids and mapping.

    Mapped assistants are dealt round-robin over the teams; names are a team title and a
    persona, numbered once the personas repeat (``Scheduling – Quinn 2``, under Vapi's 40
    characters); the last two drawn are unmapped; the first assistant of ``tier1-support`` moves to ``lead-qualification``
    (marketing) on 2026-10-15.
    """
    if assistants < MIN_ASSISTANTS:
        raise ValueError(
            f"--assistants {assistants}: the demo org needs at least {MIN_ASSISTANTS} "
            "assistants (one per team, two unmapped, one that moves team)"
        )
    rng = np.random.default_rng([seed, 0])
    org_id = random_uuid4(rng)
    mapped_count = assistants - UNMAPPED_COUNT
    persona_order = rng.permutation(len(_PERSONAS))
    members: list[Assistant] = []
    for index in range(assistants):
        assistant_id = random_uuid4(rng)
        persona = _PERSONAS[int(persona_order[index % len(_PERSONAS)])]
        if index >= len(_PERSONAS):
            persona += f" {index // len(_PERSONAS) + 1}"
        if index < mapped_count:
            team = TEAMS[index % len(TEAMS)]
            name = f"{_TEAM_TITLES[team]} – {persona}"
            members.append(Assistant(assistant_id, name, team, TEAM_COST_CENTER[team]))
        else:
            members.append(Assistant(assistant_id, f"Pilot – {persona}", None, None))
    return DemoOrg(org_id, tuple(members), _mapping_rows(members))


def _mapping_rows(members: list[Assistant]) -> tuple[MappingRow, ...]:
    mover = next(member for member in members if member.team == MOVER_FROM_TEAM)
    rows: list[MappingRow] = []
    for member in members:
        if member.team is None or member.cost_center_id is None:
            continue
        if member is mover:
            rows.append(
                MappingRow(
                    member.id,
                    member.team,
                    member.cost_center_id,
                    MAPPING_VALID_FROM,
                    date.fromordinal(MOVE_DATE.toordinal() - 1),
                )
            )
            rows.append(
                MappingRow(
                    member.id,
                    MOVER_TO_TEAM,
                    TEAM_COST_CENTER[MOVER_TO_TEAM],
                    MOVE_DATE,
                    None,
                )
            )
        else:
            rows.append(
                MappingRow(member.id, member.team, member.cost_center_id, MAPPING_VALID_FROM, None)
            )
    return tuple(rows)


def render_mapping_csv(org: DemoOrg) -> str:
    """The mapping CSV of ``org`` in the contract's format, rows in assistant order, LF endings."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MAPPING_CSV_HEADER)
    for row in org.mapping:
        writer.writerow(
            (
                row.assistant_id,
                row.team,
                row.cost_center_id,
                row.valid_from.isoformat(),
                row.valid_to.isoformat() if row.valid_to else "",
            )
        )
    return buffer.getvalue()
