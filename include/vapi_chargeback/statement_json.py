"""A lossless JSON form of :class:`Statement`, so tasks on different workers can hand it on.

JSON has no decimal type: money travels as strings and comes back as ``Decimal``. Breakdown
cells mix text and numbers, so numeric cells are tagged (``{"d": "12.34"}``) — otherwise a
cost would come back as the text "12.34" and land in a workbook as a string.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from vapi_chargeback.statement import Statement

_ADAPTER = TypeAdapter(Statement)
_DECIMAL_TAG = "d"


def dumps(statement: Statement) -> bytes:
    """Deterministic bytes: the same statement always gives the same JSON.

    Keys keep their order (no ``sort_keys``): the order of ``components_usd`` is the order of
    the statement's columns, and a dict carries it.
    """
    data = _ADAPTER.dump_python(statement, mode="json")
    for cost_center, items in statement.breakdowns.items():
        for index, breakdown in enumerate(items):
            data["breakdowns"][cost_center][index]["rows"] = [
                [{_DECIMAL_TAG: str(cell)} if isinstance(cell, Decimal) else cell for cell in row]
                for row in breakdown.rows
            ]
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Statement:
    data: dict[str, Any] = json.loads(raw)
    for items in data.get("breakdowns", {}).values():
        for breakdown in items:
            breakdown["rows"] = [[_decode_cell(cell) for cell in row] for row in breakdown["rows"]]
    return _ADAPTER.validate_python(data)


def _decode_cell(cell: Any) -> Any:
    if isinstance(cell, dict):
        return Decimal(cell[_DECIMAL_TAG])
    return cell
