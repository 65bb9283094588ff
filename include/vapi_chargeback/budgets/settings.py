"""Budgets and the daily run in ``chargeback.yaml``: what an owner may spend in a month, when
to warn them, and at what local time the daily month-to-date run looks.

::

    daily:
      time: "07:00"            # local time in org.timezone; the run covers the days before it
    budgets:
      support:                 # a cost center id
        amount_usd: 5000.00
        thresholds_pct: [50, 80, 100]   # default; alerts on actual spend
        forecast_alert_pct: 100         # default; alert when the forecast exceeds it (null: off)

Budgets are keyed by cost center id, apart from the cost centers, so an org adds or drops
them in one block; a key naming no cost center is reported with its line like every other
config problem (:func:`budget_problems`, run with the config's cross-field checks). A
budget is in USD, the currency every statement is computed in: a reporting currency is a
view of the same USD figures at a month's rate, which is not known until the month ends.

This module imports nothing of the config, which imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time as Clock
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from vapi_chargeback.money import CENT

DEFAULT_THRESHOLDS_PCT: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
DEFAULT_FORECAST_ALERT_PCT = Decimal(100)
MAX_THRESHOLD_PCT = Decimal(1000)
"""A threshold above ten times the budget is a typo (an extra zero), not a warning."""
DEFAULT_DAILY_TIME = "07:00"
DEFAULT_TOP_ASSISTANTS = 5
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

Loc = tuple[int | str, ...]


def _no_float(value: object) -> object:
    """Money and percentages must not pass through binary floating point on their way in."""
    if isinstance(value, float):
        raise ValueError(f"{value!r} is a float; write it as a decimal number or numeric string")
    return value


Amount = Annotated[Decimal, BeforeValidator(_no_float), Field(strict=False, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Budget(_Strict):
    """One cost center's monthly budget and when its owner is warned."""

    amount_usd: Amount
    """What the cost center may spend in a calendar month (org zone), in USD, to the cent."""
    thresholds_pct: tuple[Amount, ...] = Field(default=DEFAULT_THRESHOLDS_PCT, strict=False)
    """Percentages of the budget that, once actual month-to-date spend reaches them, alert
    the owner (each once a month); strictly increasing, each above 0 and at most 1,000."""
    forecast_alert_pct: Amount | None = DEFAULT_FORECAST_ALERT_PCT
    """Alert when the month-end forecast *exceeds* this percentage of the budget; ``null``
    turns the forecast alert off."""

    @field_validator("amount_usd")
    @classmethod
    def _positive_cents(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(
                f"budget {value} is not above 0; give a positive monthly amount in USD"
                " (or remove the cost center from budgets: to have none)"
            )
        if value != value.quantize(CENT):
            raise ValueError(f"budget {value} has more than 2 decimal places; round it to cents")
        return value

    @field_validator("thresholds_pct")
    @classmethod
    def _increasing(cls, values: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not values:
            raise ValueError("list at least one threshold, e.g. [50, 80, 100]")
        for value in values:
            if not 0 < value <= MAX_THRESHOLD_PCT:
                raise ValueError(
                    f"threshold {value} % is not above 0 and at most {MAX_THRESHOLD_PCT:,} %;"
                    " write percentages of the budget, e.g. [50, 80, 100]"
                )
        for before, after in pairwise(values):
            if after <= before:
                raise ValueError(
                    f"thresholds must increase strictly: {after} follows {before}; list them"
                    " from lowest to highest, each once"
                )
        return values

    @field_validator("forecast_alert_pct")
    @classmethod
    def _forecast_pct(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not 0 < value <= MAX_THRESHOLD_PCT:
            raise ValueError(
                f"forecast alert {value} % is not above 0 and at most {MAX_THRESHOLD_PCT:,} %"
            )
        return value

    def crossed(self, spent_usd: Decimal) -> tuple[Decimal, ...]:
        """The thresholds ``spent_usd`` has reached (spend >= threshold % of the budget)."""
        return tuple(pct for pct in self.thresholds_pct if spent_usd * 100 >= pct * self.amount_usd)

    def forecast_exceeds(self, forecast_usd: Decimal) -> bool:
        """Whether the forecast is strictly above the forecast alert's percentage."""
        if self.forecast_alert_pct is None:
            return False
        return forecast_usd * 100 > self.forecast_alert_pct * self.amount_usd


def _clock(value: object) -> object:
    """``HH:MM`` on a 24-hour clock; YAML reads an unquoted ``7:30`` as the number 450."""
    if isinstance(value, int):  # bool is an int too
        raise ValueError(
            f"{value!r} is a number, not a time (YAML reads an unquoted 7:30 in base 60);"
            ' quote it: "07:30"'
        )
    if not isinstance(value, str) or not _CLOCK.match(value):
        raise ValueError(f'{value!r} is not a time of day; write it as HH:MM, e.g. "07:00"')
    return value


class DailySettings(_Strict):
    """The daily month-to-date run (DAG ``vapi_chargeback_daily``)."""

    time: Annotated[str, BeforeValidator(_clock)] = DEFAULT_DAILY_TIME
    """Local time of day in ``org.timezone`` at which the run starts; it covers the month's
    complete local days before that day (on the 1st: the whole previous month)."""
    top_assistants: int = Field(default=DEFAULT_TOP_ASSISTANTS, ge=0, le=50)
    """How many assistants the month-to-date figures list per cost center, costliest first."""

    @property
    def local_time(self) -> Clock:
        hours, minutes = self.time.split(":")
        return Clock(int(hours), int(minutes))


def budget_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Budgets naming no cost center, each with the path of the key to change.

    Works on the raw document, tolerating wrong types (other checks report those).
    """
    budgets = data.get("budgets")
    centers = data.get("cost_centers")
    if not isinstance(budgets, dict) or not isinstance(centers, list):
        return []
    known = sorted(
        {c["id"] for c in centers if isinstance(c, dict) and isinstance(c.get("id"), str)}
    )
    return [
        (("budgets", key), f"{key!r} is not a cost center id; use one of {known}")
        for key in budgets
        if key not in known
    ]
