"""The statement of one month: what allocation produces and every writer consumes.

It is the single hand-over point between computing money and formatting it, so the
writers never recompute a figure: each number on a CSV line, a workbook cell and the
manifest comes from the same ``Decimal`` here, already rounded to the cent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

UNALLOCATED = "UNALLOCATED"


@dataclass(frozen=True)
class ChargebackLine:
    """One line per (cost center, team, assistant, allocation); money rounded to the cent."""

    cost_center_id: str
    cost_center_name: str
    team: str
    assistant_id: str
    allocation: str
    """``direct``, ``shared:<pool name>`` or ``unallocated:<reason>``."""
    calls: int
    minutes: Decimal
    cost_usd: Decimal
    components_usd: dict[str, Decimal]
    """Reported cost components by name (``llm``, ``stt`` …), in the configured order."""

    @property
    def other_usd(self) -> Decimal:
        """Cost with no analytics column (analysis, voicemail detection …): cost − Σ components."""
        return self.cost_usd - sum(self.components_usd.values(), Decimal(0))


@dataclass(frozen=True)
class Breakdown:
    """One owner-defined query definition, as rows for an extra sheet of their workbook."""

    definition_id: str
    title: str
    columns: list[str]
    rows: list[list[str | int | Decimal | None]]


@dataclass(frozen=True)
class Reconciliation:
    org_total_usd: Decimal
    """From the independent ungrouped query, rounded to the cent."""
    shared_total_usd: Decimal
    lines_total_usd: Decimal
    difference_usd: Decimal
    empty_month_expected: bool = False
    """The API reported no calls at all and the run was told that is expected (a param);
    without it such a month is refused, as it more often means a wrong key or a dead
    integration than a silent month."""

    @property
    def ok(self) -> bool:
        return self.difference_usd == 0


@dataclass(frozen=True)
class Provenance:
    run_id: str
    """The Airflow run that made the statement: recorded in the manifest only, so that a rerun
    over unchanged inputs gives byte-identical statement files."""
    config_sha256: str
    mapping_sha256: str
    responses_sha256: dict[str, str]
    """Raw response file name → sha256 of its bytes."""
    generated_by: str

    @property
    def inputs_sha256(self) -> str:
        """One fingerprint of everything the figures were computed from."""
        parts = [self.config_sha256, self.mapping_sha256, self.generated_by]
        parts += [f"{name}={digest}" for name, digest in sorted(self.responses_sha256.items())]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class CostCenterInfo:
    id: str
    name: str
    owner_email: str


@dataclass(frozen=True)
class Statement:
    period: str
    """``YYYY-MM``."""
    timezone: str
    period_start: datetime
    period_end: datetime
    """Half-open ``[start, end)``, timezone-aware, in the org zone."""
    currency: str
    components: list[str]
    cost_centers: list[CostCenterInfo]
    lines: list[ChargebackLine]
    breakdowns: dict[str, list[Breakdown]] = field(default_factory=dict)
    """Cost center id → its owner's query-definition breakdowns."""
    reconciliation: Reconciliation | None = None
    provenance: Provenance | None = None
    pool_notes: dict[str, str] = field(default_factory=dict)
    """Shared pool name → how its split was made where the configured rule alone does not say
    (usage re-spread with the cost, an even fallback for a zero driver); shown beside the pool."""
