"""The ``verification:`` block of ``chargeback.yaml``: whether runs recount the month from
call records, and how far the recount may differ before the month is held back."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError(f"{value!r} is a float; write the tolerance as a plain decimal")
    return value


Tolerance = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(strict=False, allow_inf_nan=False, ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
            ]
        }
    ),
]


class VerificationSettings(BaseModel):
    """A difference holds the month back only when it exceeds both tolerances: the absolute
    one keeps a cent of rounding on a small line from blocking, the relative one scales
    with large lines. Calls and minutes have no currency: only the relative one applies."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    enabled: bool = False
    """Recount every run's month (the DAG param ``verify_calls`` overrides it per run)."""
    tolerance_usd: Tolerance = Decimal("0.01")
    """Money differences up to this many USD per line (or day) never block."""
    tolerance_pct: Tolerance = Decimal(0)
    """Differences up to this percentage of the larger of the two figures never block."""

    def blocks(self, statement: Decimal, recount: Decimal, *, money: bool) -> bool:
        """Whether this difference is over tolerance (and so stops publishing)."""
        difference = abs(recount - statement)
        if difference == 0:
            return False
        if money and difference <= self.tolerance_usd:
            return False
        return difference * 100 > self.tolerance_pct * max(abs(statement), abs(recount))
