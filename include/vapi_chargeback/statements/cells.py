"""Columns and cells every statement sheet shares, so each sheet says a thing the same way.

A line's money reads the same on every sheet: calls, minutes (to the hundredth), cost,
the reported components and Other. Other is what no analytics column covers on a line of
usage; a shared pool has no components, so its cost shows once, as Shared (or as the
pool's own row), never again as Other. An assistant is shown by its id and its name side
by side, and a direct line says which rule charged it (the assistant mapping or the call's
cost-center variable), because both kinds of line otherwise look alike.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from vapi_chargeback.fx import convert
from vapi_chargeback.statement import ChargebackLine, Statement
from vapi_chargeback.statements.keyfigures import UnitCosts
from vapi_chargeback.statements.totals import Subtotal, is_pool, shown_minutes, shown_other
from vapi_chargeback.statements.workbook import CellValue, Column

COMPONENT_LABELS = {
    "llm": "LLM",
    "stt": "STT",
    "tts": "TTS",
    "vapi": "Vapi",
    "transport": "Transport",
    "analysis": "Analysis",
}
CHARGED_BY = {
    "mapping": "Assistant mapping",
    "variable": "Cost-center variable",
    "rule:metadata": "Metadata rule",
    "rule:name": "Name rule",
}
"""How the workbooks name the rule that charged a direct line (``ChargebackLine.charged_by``)."""
OTHER_NOTE = (
    "Other = cost − Σ components on lines of usage: charges with no analytics column "
    "(analysis, voicemail detection, knowledge base …). Shared pools have no components and "
    "show only as Shared, so a cost center's cost = components + Other + Shared. Corrections "
    "and the invoice adjustment are parts of that cost, shown apart as well."
)
CHARGED_BY_NOTE = (
    "Charged by: 'Assistant mapping' when the assistant's team mapping charged the call, "
    "'Cost-center variable' when the call's costCenter variable named the cost center "
    "(it wins over the mapping), 'Metadata rule' / 'Name rule' when no mapping row covered "
    "the call and a mapping rule of chargeback.yaml matched the assistant's metadata or name "
    "as the run listed it. A variable-charged line can carry an assistant that is mapped to "
    "another team or cost center."
)

VARIABLE_NOTE = (
    "Lines charged by the cost-center variable: the call named this cost center in its "
    "costCenter variable, which wins over the assistant mapping, so the assistant may be "
    "one mapped to another team or cost center."
)
LineKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class InCurrency:
    """The statement's lines in the reporting currency (``fx.convert``), by line key."""

    currency: str
    by_line: dict[LineKey, Decimal]
    total: Decimal
    by_cost_center: dict[str, Decimal]

    @classmethod
    def of(cls, statement: Statement) -> InCurrency | None:
        """Converted once per statement: the finance workbook and every owner's workbook of
        one render ask for the same statement, and a conversion rounds all its lines."""
        last = _CONVERTED[0] if _CONVERTED else None
        if last is not None and last[0]() is statement:
            return last[1]
        converted = convert(statement)
        money = (
            None
            if converted is None
            else cls(
                converted.currency,
                dict(zip([line.key for line in statement.lines], converted.lines, strict=True)),
                converted.total,
                dict(converted.by_cost_center),
            )
        )
        _CONVERTED[:] = [(weakref.ref(statement, _forget_converted), money)]
        return money

    def column(self) -> Column:
        return Column(f"Cost ({self.currency})")

    def sum(self, lines: Iterable[ChargebackLine]) -> Decimal:
        return sum((self.by_line[line.key] for line in lines), Decimal(0))


_CONVERTED: list[tuple[weakref.ref[Statement], InCurrency | None]] = []
"""The last statement converted and its conversion, forgotten with the statement."""


def _forget_converted(_: object) -> None:
    _CONVERTED.clear()


def currency_columns(money: InCurrency | None) -> list[Column]:
    return [] if money is None else [money.column()]


def currency_cells(money: InCurrency | None, lines: Iterable[ChargebackLine]) -> list[CellValue]:
    """The converted cost of ``lines`` as one cell; nothing without a reporting currency."""
    return [] if money is None else [money.sum(lines)]


def component_columns(statement: Statement) -> list[Column]:
    return [*(Column(label) for label in component_labels(statement)), Column("Other (USD)")]


def component_labels(statement: Statement) -> list[str]:
    """``LLM (USD)`` …, in the statement's component order."""
    return [
        f"{COMPONENT_LABELS.get(name, name.replace('_', ' ').capitalize())} (USD)"
        for name in statement.components
    ]


def usage_columns() -> list[Column]:
    return [Column("Calls"), Column("Minutes"), Column("Cost (USD)")]


def usage_cells(line: ChargebackLine) -> list[CellValue]:
    """Calls, minutes, cost, the components and Other; a pool's line shows its cost only
    (its components and Other blank), as it counts only as Shared."""
    if is_pool(line):
        blank: list[CellValue] = [None] * (len(line.components_usd) + 1)
        return [line.calls, shown_minutes(line.minutes), line.cost_usd, *blank]
    return [
        line.calls,
        shown_minutes(line.minutes),
        line.cost_usd,
        *line.components_usd.values(),
        shown_other(line),
    ]


def subtotal_cells(total: Subtotal) -> list[CellValue]:
    return [total.calls, total.minutes, total.cost_usd, *total.components_usd, total.other_usd]


def unit_columns() -> list[Column]:
    return [
        Column("$ per call", rate=True),
        Column("$ per minute", rate=True),
        Column("$ per successful call", rate=True),
    ]


def unit_cells(costs: UnitCosts) -> list[CellValue]:
    return [costs.per_call, costs.per_minute, costs.per_successful_call]


def charged_by(line: ChargebackLine) -> str:
    return CHARGED_BY.get(line.charged_by, "")


class Names:
    """Assistant id → the name shown beside it: the line's own name, else the run's names
    snapshot; blank where neither knows one (the id beside it says which assistant)."""

    def __init__(self, statement: Statement) -> None:
        self._names = statement.names.names if statement.names else {}

    def of(self, line: ChargebackLine) -> str:
        return line.assistant_name or self.get(line.assistant_id)

    def get(self, assistant_id: str) -> str:
        return self._names.get(assistant_id, "") if assistant_id else ""
